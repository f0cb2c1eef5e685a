//! Wire types of the two metadata documents an MCP resource server deals with:
//! authorization-server metadata (RFC 8414, plus the OpenID Connect Discovery fields a resource
//! server or its clients use) and protected-resource metadata (RFC 9728).
//!
//! Both types keep members they do not know in [`extra`](AuthorizationServerMetadata::extra), so
//! a document read and written again is not silently trimmed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Members of a metadata document that have no field of their own, in document order.
pub type ExtraFields = Map<String, Value>;

/// Which discovery specification an authorization server follows.
///
/// The type decides where its metadata is fetched from (see
/// [`well_known`](crate::discovery::well_known)): RFC 8414 inserts
/// `/.well-known/oauth-authorization-server` before the issuer's path, OpenID Connect Discovery
/// appends `/.well-known/openid-configuration` to it.
///
/// ```
/// use mcpauth::AuthServerType;
///
/// assert_eq!("oidc".parse::<AuthServerType>(), Ok(AuthServerType::Oidc));
/// assert_eq!(AuthServerType::OAuth.to_string(), "oauth");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthServerType {
    /// An OAuth 2.0 authorization server (RFC 8414 metadata).
    OAuth,
    /// An OpenID Connect provider (OpenID Connect Discovery 1.0 metadata).
    Oidc,
}

impl AuthServerType {
    /// The lowercase name used in configuration: `oauth` or `oidc`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::Oidc => "oidc",
        }
    }
}

impl fmt::Display for AuthServerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`AuthServerType`] from a string other than `oauth` or `oidc`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown authorization server type `{0}`: expected `oauth` or `oidc`")]
pub struct UnknownAuthServerType(pub String);

impl FromStr for AuthServerType {
    type Err = UnknownAuthServerType;

    /// Parses `oauth` or `oidc`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("oauth") {
            Ok(Self::OAuth)
        } else if s.eq_ignore_ascii_case("oidc") {
            Ok(Self::Oidc)
        } else {
            Err(UnknownAuthServerType(s.to_owned()))
        }
    }
}

/// Authorization-server metadata: every RFC 8414 §2 member, plus the OpenID Connect Discovery
/// 1.0 §3 members that a resource server or its clients use.
///
/// The four members RFC 8414 and the MCP Auth SDKs treat as required are plain fields; the rest
/// are optional and omitted from the JSON when unset. Members without a field are kept in
/// [`extra`](Self::extra) and written back in place of nothing, so a document round-trips.
///
/// ```
/// use mcpauth::AuthorizationServerMetadata;
///
/// let mut metadata = AuthorizationServerMetadata::new(
///     "https://auth.example.com",
///     "https://auth.example.com/authorize",
///     "https://auth.example.com/token",
///     ["code"],
/// );
/// metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
/// metadata.jwks_uri = Some("https://auth.example.com/jwks".into());
/// let json = serde_json::to_value(&metadata).unwrap();
/// assert_eq!(json["code_challenge_methods_supported"][0], "S256");
/// assert!(json.get("registration_endpoint").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// `issuer` (RFC 8414 §2, required): the authorization server's issuer identifier, an https
    /// URL without query or fragment. Tokens it issues carry it as `iss`.
    pub issuer: String,
    /// `authorization_endpoint` (RFC 8414 §2): where clients send users to authorize.
    pub authorization_endpoint: String,
    /// `token_endpoint` (RFC 8414 §2): where clients exchange grants for tokens.
    pub token_endpoint: String,
    /// `jwks_uri` (RFC 8414 §2): the JSON Web Key Set used to verify the server's signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `registration_endpoint` (RFC 8414 §2): the RFC 7591 dynamic client registration endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// `scopes_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `response_types_supported` (RFC 8414 §2, required).
    pub response_types_supported: Vec<String>,
    /// `response_modes_supported` (RFC 8414 §2); absent means `["query", "fragment"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_modes_supported: Option<Vec<String>>,
    /// `grant_types_supported` (RFC 8414 §2); absent means `["authorization_code", "implicit"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `service_documentation` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
    /// `ui_locales_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales_supported: Option<Vec<String>>,
    /// `op_policy_uri` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_policy_uri: Option<String>,
    /// `op_tos_uri` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_tos_uri: Option<String>,
    /// `revocation_endpoint` (RFC 8414 §2, RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// `revocation_endpoint_auth_methods_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `revocation_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `introspection_endpoint` (RFC 8414 §2, RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// `introspection_endpoint_auth_methods_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `introspection_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `code_challenge_methods_supported` (RFC 8414 §2, RFC 7636): absent means no PKCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// `signed_metadata` (RFC 8414 §2.1): the metadata as a signed JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_metadata: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// `protected_resources` (RFC 9728 §4): resources this server issues tokens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_resources: Option<Vec<String>>,
    /// `client_id_metadata_document_supported` (OAuth Client ID Metadata Document; what MCP
    /// clients use to register without dynamic registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
    /// `userinfo_endpoint` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// `end_session_endpoint` (OpenID Connect RP-Initiated Logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// `subject_types_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_types_supported: Option<Vec<String>>,
    /// `id_token_signing_alg_values_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// `userinfo_signing_alg_values_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signing_alg_values_supported: Option<Vec<String>>,
    /// `claims_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_supported: Option<Vec<String>>,
    /// `claims_parameter_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_parameter_supported: Option<bool>,
    /// `request_parameter_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameter_supported: Option<bool>,
    /// `request_uri_parameter_supported` (OpenID Connect Discovery §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
    /// Every member without a field of its own, kept so the document round-trips.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

impl AuthorizationServerMetadata {
    /// Metadata with the four required members set and everything else unset.
    pub fn new<I, S>(
        issuer: impl Into<String>,
        authorization_endpoint: impl Into<String>,
        token_endpoint: impl Into<String>,
        response_types_supported: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            issuer: issuer.into(),
            authorization_endpoint: authorization_endpoint.into(),
            token_endpoint: token_endpoint.into(),
            jwks_uri: None,
            registration_endpoint: None,
            scopes_supported: None,
            response_types_supported: response_types_supported
                .into_iter()
                .map(Into::into)
                .collect(),
            response_modes_supported: None,
            grant_types_supported: None,
            token_endpoint_auth_methods_supported: None,
            token_endpoint_auth_signing_alg_values_supported: None,
            service_documentation: None,
            ui_locales_supported: None,
            op_policy_uri: None,
            op_tos_uri: None,
            revocation_endpoint: None,
            revocation_endpoint_auth_methods_supported: None,
            revocation_endpoint_auth_signing_alg_values_supported: None,
            introspection_endpoint: None,
            introspection_endpoint_auth_methods_supported: None,
            introspection_endpoint_auth_signing_alg_values_supported: None,
            code_challenge_methods_supported: None,
            signed_metadata: None,
            authorization_response_iss_parameter_supported: None,
            protected_resources: None,
            client_id_metadata_document_supported: None,
            userinfo_endpoint: None,
            end_session_endpoint: None,
            subject_types_supported: None,
            id_token_signing_alg_values_supported: None,
            userinfo_signing_alg_values_supported: None,
            claims_supported: None,
            claims_parameter_supported: None,
            request_parameter_supported: None,
            request_uri_parameter_supported: None,
            extra: ExtraFields::new(),
        }
    }

    /// The grant types the server supports, with the RFC 8414 / OpenID Connect Discovery default
    /// (`authorization_code` and `implicit`) when the member is absent.
    pub fn effective_grant_types(&self) -> Vec<&str> {
        match &self.grant_types_supported {
            Some(grants) => grants.iter().map(String::as_str).collect(),
            None => vec!["authorization_code", "implicit"],
        }
    }
}

/// An authorization server a protected resource trusts: its discovery type and its metadata.
///
/// This is what [`fetch_server_config`](crate::discovery::fetch_server_config) returns, and what a
/// statically configured [`AuthServer`](crate::AuthServer) holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthServerConfig {
    /// The discovery specification the server follows.
    #[serde(rename = "type")]
    pub server_type: AuthServerType,
    /// The server's metadata.
    pub metadata: AuthorizationServerMetadata,
}

/// A list member from literals.
#[cfg(any(feature = "dev-server", feature = "broker"))]
pub(crate) fn owned_list(values: &[&str]) -> Option<Vec<String>> {
    Some(values.iter().map(|v| (*v).to_owned()).collect())
}

#[cfg(any(feature = "dev-server", feature = "broker"))]
impl AuthorizationServerMetadata {
    /// The metadata of a code-flow server this crate runs: `/authorize`, `/token` and `/jwks`
    /// under its issuer; the caller adds the rest.
    pub(crate) fn served_at(issuer: &str) -> Self {
        let mut metadata = Self::new(
            issuer,
            format!("{issuer}/authorize"),
            format!("{issuer}/token"),
            ["code"],
        );
        metadata.jwks_uri = Some(format!("{issuer}/jwks"));
        metadata
    }
}

impl AuthServerConfig {
    /// Pairs a type with metadata.
    pub fn new(server_type: AuthServerType, metadata: AuthorizationServerMetadata) -> Self {
        Self {
            server_type,
            metadata,
        }
    }

    /// The server's issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.metadata.issuer
    }
}

/// Protected-resource metadata: every RFC 9728 §2 member.
///
/// This is both the document served at the resource's well-known URL and, through
/// [`ProtectedResource`](crate::ProtectedResource), the description of a resource in
/// configuration. Members without a field (for example a language-tagged `resource_name#fr`) are
/// kept in [`extra`](Self::extra).
///
/// ```
/// use mcpauth::ProtectedResourceMetadata;
///
/// let metadata: ProtectedResourceMetadata = serde_json::from_str(
///     r#"{"resource":"https://api.example.com/notes","resource_name#fr":"Notes"}"#,
/// )
/// .unwrap();
/// assert_eq!(metadata.extra["resource_name#fr"], "Notes");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// `resource` (RFC 9728 §2, required): the resource identifier, an https URL without
    /// fragment. Clients compare it byte for byte with the URL they used.
    pub resource: String,
    /// `authorization_servers` (RFC 9728 §2): issuer identifiers of the authorization servers
    /// that issue tokens for the resource. MCP requires at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_servers: Option<Vec<String>>,
    /// `jwks_uri` (RFC 9728 §2): the resource's own signing keys (not the authorization
    /// server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `scopes_supported` (RFC 9728 §2): scopes used in requests for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `bearer_methods_supported` (RFC 9728 §2): how a bearer token may be sent; MCP allows only
    /// `header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// `resource_signing_alg_values_supported` (RFC 9728 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_signing_alg_values_supported: Option<Vec<String>>,
    /// `resource_name` (RFC 9728 §2): a human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `resource_documentation` (RFC 9728 §2): a page for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// `resource_policy_uri` (RFC 9728 §2): how the resource uses data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// `resource_tos_uri` (RFC 9728 §2): terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// `tls_client_certificate_bound_access_tokens` (RFC 9728 §2, RFC 8705).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// `authorization_details_types_supported` (RFC 9728 §2, RFC 9396).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details_types_supported: Option<Vec<String>>,
    /// `dpop_signing_alg_values_supported` (RFC 9728 §2, RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// `dpop_bound_access_tokens_required` (RFC 9728 §2, RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// `signed_metadata` (RFC 9728 §2.2): the metadata as a signed JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_metadata: Option<String>,
    /// Every member without a field of its own, kept so the document round-trips.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

impl ProtectedResourceMetadata {
    /// Metadata naming only the resource identifier.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: None,
            jwks_uri: None,
            scopes_supported: None,
            bearer_methods_supported: None,
            resource_signing_alg_values_supported: None,
            resource_name: None,
            resource_documentation: None,
            resource_policy_uri: None,
            resource_tos_uri: None,
            tls_client_certificate_bound_access_tokens: None,
            authorization_details_types_supported: None,
            dpop_signing_alg_values_supported: None,
            dpop_bound_access_tokens_required: None,
            signed_metadata: None,
            extra: ExtraFields::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpauth_rules::metadata::{
        AUTHORIZATION_SERVER_MEMBERS, Member, MemberKind, PROTECTED_RESOURCE_MEMBERS,
    };
    use serde_json::json;

    #[test]
    fn authorization_server_metadata_round_trips_unknown_members() {
        let document = json!({
            "issuer": "https://auth.example.com",
            "authorization_endpoint": "https://auth.example.com/authorize",
            "token_endpoint": "https://auth.example.com/token",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "userinfo_endpoint": "https://auth.example.com/me",
            "client_id_metadata_document_supported": true,
            "x_vendor": {"nested": [1, 2, 3]},
            "another_unknown": "kept"
        });
        let metadata: AuthorizationServerMetadata =
            serde_json::from_value(document.clone()).unwrap();
        assert_eq!(metadata.issuer, "https://auth.example.com");
        assert_eq!(
            metadata.userinfo_endpoint.as_deref(),
            Some("https://auth.example.com/me")
        );
        assert_eq!(metadata.client_id_metadata_document_supported, Some(true));
        assert_eq!(metadata.extra.len(), 2);
        assert_eq!(metadata.extra["x_vendor"], json!({"nested": [1, 2, 3]}));
        assert_eq!(serde_json::to_value(&metadata).unwrap(), document);
    }

    #[test]
    fn authorization_server_metadata_keeps_every_rfc8414_member() {
        let document = json!({
            "issuer": "https://a.example",
            "authorization_endpoint": "https://a.example/authorize",
            "token_endpoint": "https://a.example/token",
            "jwks_uri": "https://a.example/jwks",
            "registration_endpoint": "https://a.example/register",
            "scopes_supported": ["openid"],
            "response_types_supported": ["code", "code id_token"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "service_documentation": "https://a.example/docs",
            "ui_locales_supported": ["en", "fr"],
            "op_policy_uri": "https://a.example/policy",
            "op_tos_uri": "https://a.example/tos",
            "revocation_endpoint": "https://a.example/revoke",
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
            "revocation_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "introspection_endpoint": "https://a.example/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "introspection_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "signed_metadata": "eyJ...",
            "authorization_response_iss_parameter_supported": true,
            "protected_resources": ["https://api.example/notes"],
            "client_id_metadata_document_supported": true,
            "userinfo_endpoint": "https://a.example/me",
            "end_session_endpoint": "https://a.example/logout",
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": true
        });
        let metadata: AuthorizationServerMetadata =
            serde_json::from_value(document.clone()).unwrap();
        assert!(
            metadata.extra.is_empty(),
            "a member landed in extra: {:?}",
            metadata.extra
        );
        assert_eq!(serde_json::to_value(&metadata).unwrap(), document);
    }

    #[test]
    fn protected_resource_metadata_round_trips_every_member() {
        let document = json!({
            "resource": "https://api.example.com/notes",
            "authorization_servers": ["https://auth.example.com"],
            "jwks_uri": "https://api.example.com/jwks",
            "scopes_supported": ["read:notes", "write:notes"],
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": ["ES256"],
            "resource_name": "Notes",
            "resource_documentation": "https://api.example.com/docs",
            "resource_policy_uri": "https://api.example.com/policy",
            "resource_tos_uri": "https://api.example.com/tos",
            "tls_client_certificate_bound_access_tokens": false,
            "authorization_details_types_supported": ["payment"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "dpop_bound_access_tokens_required": false,
            "signed_metadata": "eyJ...",
            "resource_name#fr": "Notes (fr)"
        });
        let metadata: ProtectedResourceMetadata = serde_json::from_value(document.clone()).unwrap();
        assert_eq!(metadata.extra.len(), 1);
        assert_eq!(serde_json::to_value(&metadata).unwrap(), document);
    }

    /// Found by the `as_metadata` / `pr_metadata` fuzz targets: a number in an unknown member
    /// changed on a round trip (serde_json's default float parsing is not correctly rounded,
    /// so the shortest form written back read as another number).
    #[test]
    fn numbers_in_unknown_members_round_trip_exactly() {
        for number in [
            "88888888888888888888888888888888888888888888",
            "3333333666666666666666666666666666666666666666",
            "0.30000000000000004",
            "1.7976931348623157e308",
        ] {
            let text = format!(r#"{{"resource":"https://x.example","x":[{number}]}}"#);
            let parsed: ProtectedResourceMetadata = serde_json::from_str(&text).unwrap();
            let written = serde_json::to_string(&parsed).unwrap();
            let again: ProtectedResourceMetadata = serde_json::from_str(&written).unwrap();
            assert_eq!(again, parsed, "{number} became {written}");

            let text = format!(
                r#"{{"issuer":"https://a.example","authorization_endpoint":"https://a.example/a","token_endpoint":"https://a.example/t","response_types_supported":["code"],"x":{number}}}"#
            );
            let parsed: AuthorizationServerMetadata = serde_json::from_str(&text).unwrap();
            let written = serde_json::to_string(&parsed).unwrap();
            let again: AuthorizationServerMetadata = serde_json::from_str(&written).unwrap();
            assert_eq!(again, parsed, "{number} became {written}");
        }
    }

    #[test]
    fn unset_members_are_omitted() {
        let json =
            serde_json::to_value(ProtectedResourceMetadata::new("https://x.example")).unwrap();
        assert_eq!(json, json!({"resource": "https://x.example"}));
    }

    #[test]
    fn required_members_are_required() {
        let missing_token_endpoint = json!({
            "issuer": "https://a.example",
            "authorization_endpoint": "https://a.example/authorize",
            "response_types_supported": ["code"]
        });
        let error = serde_json::from_value::<AuthorizationServerMetadata>(missing_token_endpoint)
            .unwrap_err();
        assert!(error.to_string().contains("token_endpoint"), "{error}");
    }

    #[test]
    fn auth_server_type_parses_and_prints() {
        assert_eq!("OAuth".parse::<AuthServerType>(), Ok(AuthServerType::OAuth));
        assert_eq!("OIDC".parse::<AuthServerType>(), Ok(AuthServerType::Oidc));
        assert_eq!(
            "saml".parse::<AuthServerType>().unwrap_err().to_string(),
            "unknown authorization server type `saml`: expected `oauth` or `oidc`"
        );
        assert_eq!(
            serde_json::to_value(AuthServerType::Oidc).unwrap(),
            json!("oidc")
        );
        let config: AuthServerConfig = serde_json::from_value(json!({
            "type": "oauth",
            "metadata": {
                "issuer": "https://a.example",
                "authorization_endpoint": "https://a.example/authorize",
                "token_endpoint": "https://a.example/token",
                "response_types_supported": ["code"]
            }
        }))
        .unwrap();
        assert_eq!(config.server_type, AuthServerType::OAuth);
        assert_eq!(config.issuer(), "https://a.example");
    }

    /// A value for every field, so that every member is serialised.
    trait Filled {
        fn filled() -> Self;
    }

    impl Filled for String {
        fn filled() -> Self {
            "https://a.example/x".to_owned()
        }
    }

    impl Filled for Vec<String> {
        fn filled() -> Self {
            vec![String::filled()]
        }
    }

    impl Filled for bool {
        fn filled() -> Self {
            true
        }
    }

    impl<T: Filled> Filled for Option<T> {
        fn filled() -> Self {
            Some(T::filled())
        }
    }

    fn filled<T: Filled>() -> T {
        T::filled()
    }

    /// The members `value` serialises to, in order, each checked against the kind `members`
    /// gives it.
    fn members_of(value: impl Serialize, members: &[Member]) -> Vec<String> {
        let Value::Object(object) = serde_json::to_value(value).unwrap() else {
            panic!("metadata serialises to an object");
        };
        for (name, value) in &object {
            let Some(member) = members.iter().find(|m| m.name == name) else {
                continue;
            };
            let fits = match member.kind {
                MemberKind::Issuer | MemberKind::Url | MemberKind::Text => value.is_string(),
                MemberKind::Strings => value.is_array(),
                MemberKind::Flag => value.is_boolean(),
                _ => true,
            };
            assert!(fits, "`{name}` is {value}, not of kind {:?}", member.kind);
        }
        object.keys().cloned().collect()
    }

    fn names(members: &[Member], required_only: bool) -> Vec<String> {
        members
            .iter()
            .filter(|m| m.required || !required_only)
            .map(|m| m.name.to_owned())
            .collect()
    }

    /// The macros accept the members of `mcpauth_rules::metadata`'s tables. A field added to a
    /// metadata type makes this test fail until it is in the table (the struct literals below
    /// do not compile without it; give it `filled()` like the others).
    #[test]
    fn the_member_tables_name_every_field_of_the_metadata_types() {
        let server = AuthorizationServerMetadata {
            issuer: filled(),
            authorization_endpoint: filled(),
            token_endpoint: filled(),
            jwks_uri: filled(),
            registration_endpoint: filled(),
            scopes_supported: filled(),
            response_types_supported: filled(),
            response_modes_supported: filled(),
            grant_types_supported: filled(),
            token_endpoint_auth_methods_supported: filled(),
            token_endpoint_auth_signing_alg_values_supported: filled(),
            service_documentation: filled(),
            ui_locales_supported: filled(),
            op_policy_uri: filled(),
            op_tos_uri: filled(),
            revocation_endpoint: filled(),
            revocation_endpoint_auth_methods_supported: filled(),
            revocation_endpoint_auth_signing_alg_values_supported: filled(),
            introspection_endpoint: filled(),
            introspection_endpoint_auth_methods_supported: filled(),
            introspection_endpoint_auth_signing_alg_values_supported: filled(),
            code_challenge_methods_supported: filled(),
            signed_metadata: filled(),
            authorization_response_iss_parameter_supported: filled(),
            protected_resources: filled(),
            client_id_metadata_document_supported: filled(),
            userinfo_endpoint: filled(),
            end_session_endpoint: filled(),
            subject_types_supported: filled(),
            id_token_signing_alg_values_supported: filled(),
            userinfo_signing_alg_values_supported: filled(),
            claims_supported: filled(),
            claims_parameter_supported: filled(),
            request_parameter_supported: filled(),
            request_uri_parameter_supported: filled(),
            extra: ExtraFields::new(),
        };
        assert_eq!(
            members_of(&server, AUTHORIZATION_SERVER_MEMBERS),
            names(AUTHORIZATION_SERVER_MEMBERS, false)
        );
        let resource = ProtectedResourceMetadata {
            resource: filled(),
            authorization_servers: filled(),
            jwks_uri: filled(),
            scopes_supported: filled(),
            bearer_methods_supported: filled(),
            resource_signing_alg_values_supported: filled(),
            resource_name: filled(),
            resource_documentation: filled(),
            resource_policy_uri: filled(),
            resource_tos_uri: filled(),
            tls_client_certificate_bound_access_tokens: filled(),
            authorization_details_types_supported: filled(),
            dpop_signing_alg_values_supported: filled(),
            dpop_bound_access_tokens_required: filled(),
            signed_metadata: filled(),
            extra: ExtraFields::new(),
        };
        assert_eq!(
            members_of(&resource, PROTECTED_RESOURCE_MEMBERS),
            names(PROTECTED_RESOURCE_MEMBERS, false)
        );

        // The required members are the ones always serialised.
        let minimal = AuthorizationServerMetadata::new("i", "a", "t", ["code"]);
        assert_eq!(
            members_of(&minimal, AUTHORIZATION_SERVER_MEMBERS),
            names(AUTHORIZATION_SERVER_MEMBERS, true)
        );
        let minimal = ProtectedResourceMetadata::new("https://a.example");
        assert_eq!(
            members_of(&minimal, PROTECTED_RESOURCE_MEMBERS),
            names(PROTECTED_RESOURCE_MEMBERS, true)
        );
    }

    #[test]
    fn grant_types_default_as_oidc_discovery_says() {
        let mut metadata = AuthorizationServerMetadata::new("i", "a", "t", ["code"]);
        assert_eq!(
            metadata.effective_grant_types(),
            ["authorization_code", "implicit"]
        );
        metadata.grant_types_supported = Some(vec![]);
        assert!(metadata.effective_grant_types().is_empty());
    }
}
