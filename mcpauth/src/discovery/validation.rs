//! Whether an authorization server can serve MCP clients: the authorization-code flow with PKCE
//! `S256` (errors), and a way for clients to register (warnings).

use std::fmt;

use serde::Serialize;

use crate::metadata::AuthServerConfig;

macro_rules! codes {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal : $description:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $code)] $variant, )+
        }

        impl $name {
            /// The stable code, for logs and machine-readable reports.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $code, )+ }
            }

            /// A sentence explaining the result.
            pub const fn description(self) -> &'static str {
                match self { $( Self::$variant => $description, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.description(), self.as_str())
            }
        }
    };
}

codes! {
    /// A reason an authorization server cannot serve MCP clients.
    AuthServerConfigErrorCode {
        /// `response_types_supported` has no value containing `code`.
        CodeResponseTypeNotSupported = "code_response_type_not_supported":
            "The server does not support the \"code\" response type.",
        /// `grant_types_supported` is present and lacks `authorization_code`.
        AuthorizationCodeGrantNotSupported = "authorization_code_grant_not_supported":
            "The server does not support the \"authorization_code\" grant type.",
        /// `code_challenge_methods_supported` is absent or empty.
        PkceNotSupported = "pkce_not_supported":
            "The server does not advertise Proof Key for Code Exchange (PKCE) support (no code_challenge_methods_supported).",
        /// `code_challenge_methods_supported` lacks `S256`.
        S256CodeChallengeMethodNotSupported = "s256_code_challenge_method_not_supported":
            "The server does not support the \"S256\" PKCE code challenge method.",
    }
}

codes! {
    /// Something MCP clients may miss, though the server can still be used.
    AuthServerConfigWarningCode {
        /// No `registration_endpoint`: clients cannot register themselves with RFC 7591.
        DynamicRegistrationNotSupported = "dynamic_registration_not_supported":
            "The server does not support Dynamic Client Registration (RFC 7591): clients need another way to get a client ID.",
        /// `client_id_metadata_document_supported` is not `true`.
        ClientIdMetadataDocumentNotSupported = "client_id_metadata_document_not_supported":
            "The server does not support Client ID Metadata Documents: MCP clients cannot use a URL as their client ID.",
    }
}

codes! {
    /// A check that passed (reported only by the verbose validation).
    AuthServerConfigSuccessCode {
        /// A response type containing `code` is supported.
        CodeResponseTypeSupported = "code_response_type_supported":
            "The server supports the \"code\" response type.",
        /// The `authorization_code` grant is supported.
        AuthorizationCodeGrantSupported = "authorization_code_grant_supported":
            "The server supports the \"authorization_code\" grant type.",
        /// PKCE is advertised.
        PkceSupported = "pkce_supported":
            "The server supports Proof Key for Code Exchange (PKCE).",
        /// PKCE `S256` is supported.
        S256CodeChallengeMethodSupported = "s256_code_challenge_method_supported":
            "The server supports the \"S256\" PKCE code challenge method.",
        /// A `registration_endpoint` is advertised.
        DynamicRegistrationSupported = "dynamic_registration_supported":
            "The server supports Dynamic Client Registration (RFC 7591).",
        /// Client ID Metadata Documents are supported.
        ClientIdMetadataDocumentSupported = "client_id_metadata_document_supported":
            "The server supports Client ID Metadata Documents.",
    }
}

/// The result of checking an authorization server for MCP compatibility.
///
/// ```
/// use mcpauth::{
///     AuthServerConfig, AuthServerConfigErrorCode, AuthServerType, AuthorizationServerMetadata,
///     validate_server_config,
/// };
///
/// let metadata = AuthorizationServerMetadata::new(
///     "https://auth.example.com",
///     "https://auth.example.com/authorize",
///     "https://auth.example.com/token",
///     ["code"],
/// );
/// let result = validate_server_config(&AuthServerConfig::new(AuthServerType::OAuth, metadata));
/// assert!(!result.is_valid());
/// assert_eq!(result.errors, [AuthServerConfigErrorCode::PkceNotSupported]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuthServerConfigValidation {
    /// Reasons the server cannot serve MCP clients; empty when it can.
    pub errors: Vec<AuthServerConfigErrorCode>,
    /// Things MCP clients may miss.
    pub warnings: Vec<AuthServerConfigWarningCode>,
    /// Checks that passed; filled only by [`validate_server_config_verbose`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub successes: Vec<AuthServerConfigSuccessCode>,
}

impl AuthServerConfigValidation {
    /// Whether no check failed (warnings do not count).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for AuthServerConfigValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors.iter().map(ToString::to_string);
        let warnings = self.warnings.iter().map(|w| format!("warning: {w}"));
        let all: Vec<String> = errors.chain(warnings).collect();
        if all.is_empty() {
            f.write_str("compatible")
        } else {
            f.write_str(&all.join("; "))
        }
    }
}

/// Checks that an authorization server can serve MCP clients: a `code` response type, the
/// `authorization_code` grant (an absent `grant_types_supported` means `authorization_code` and
/// `implicit`), and PKCE with `S256`. Missing dynamic registration and missing Client ID
/// Metadata Document support are warnings.
pub fn validate_server_config(config: &AuthServerConfig) -> AuthServerConfigValidation {
    let mut result = validate_server_config_verbose(config);
    result.successes.clear();
    result
}

/// [`validate_server_config`], also listing every check that passed.
pub fn validate_server_config_verbose(config: &AuthServerConfig) -> AuthServerConfigValidation {
    use AuthServerConfigErrorCode as E;
    use AuthServerConfigSuccessCode as S;
    use AuthServerConfigWarningCode as W;

    let metadata = &config.metadata;
    let mut result = AuthServerConfigValidation::default();

    let code_response_type = metadata
        .response_types_supported
        .iter()
        .any(|types| types.split(' ').any(|t| t == "code"));
    if code_response_type {
        result.successes.push(S::CodeResponseTypeSupported);
    } else {
        result.errors.push(E::CodeResponseTypeNotSupported);
    }

    if metadata
        .effective_grant_types()
        .contains(&"authorization_code")
    {
        result.successes.push(S::AuthorizationCodeGrantSupported);
    } else {
        result.errors.push(E::AuthorizationCodeGrantNotSupported);
    }

    match metadata.code_challenge_methods_supported.as_deref() {
        None | Some([]) => result.errors.push(E::PkceNotSupported),
        Some(methods) => {
            result.successes.push(S::PkceSupported);
            if methods.iter().any(|m| m == "S256") {
                result.successes.push(S::S256CodeChallengeMethodSupported);
            } else {
                result.errors.push(E::S256CodeChallengeMethodNotSupported);
            }
        }
    }

    if metadata.registration_endpoint.is_some() {
        result.successes.push(S::DynamicRegistrationSupported);
    } else {
        result.warnings.push(W::DynamicRegistrationNotSupported);
    }

    if metadata.client_id_metadata_document_supported == Some(true) {
        result.successes.push(S::ClientIdMetadataDocumentSupported);
    } else {
        result
            .warnings
            .push(W::ClientIdMetadataDocumentNotSupported);
    }

    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{AuthServerType, AuthorizationServerMetadata};

    use AuthServerConfigErrorCode as E;
    use AuthServerConfigSuccessCode as S;
    use AuthServerConfigWarningCode as W;

    fn compatible() -> AuthorizationServerMetadata {
        let mut metadata = AuthorizationServerMetadata::new(
            "https://a.example",
            "https://a.example/authorize",
            "https://a.example/token",
            ["code"],
        );
        metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
        metadata.registration_endpoint = Some("https://a.example/register".into());
        metadata.client_id_metadata_document_supported = Some(true);
        metadata
    }

    fn check(change: impl FnOnce(&mut AuthorizationServerMetadata)) -> AuthServerConfigValidation {
        let mut metadata = compatible();
        change(&mut metadata);
        validate_server_config(&AuthServerConfig::new(AuthServerType::Oidc, metadata))
    }

    #[test]
    fn a_compatible_server_has_no_findings() {
        let result = check(|_| {});
        assert!(result.is_valid());
        assert!(result.warnings.is_empty());
        assert!(result.successes.is_empty());
        assert_eq!(result.to_string(), "compatible");
    }

    #[test]
    fn verbose_mode_lists_every_passed_check() {
        let result = validate_server_config_verbose(&AuthServerConfig::new(
            AuthServerType::Oidc,
            compatible(),
        ));
        assert_eq!(
            result.successes,
            [
                S::CodeResponseTypeSupported,
                S::AuthorizationCodeGrantSupported,
                S::PkceSupported,
                S::S256CodeChallengeMethodSupported,
                S::DynamicRegistrationSupported,
                S::ClientIdMetadataDocumentSupported,
            ]
        );
    }

    #[test]
    fn each_rule_has_its_code() {
        let rows: Vec<(&str, AuthServerConfigValidation, Vec<E>)> = vec![
            (
                "no code response type",
                check(|m| m.response_types_supported = vec!["token".into()]),
                vec![E::CodeResponseTypeNotSupported],
            ),
            (
                "hybrid code response type counts",
                check(|m| m.response_types_supported = vec!["code id_token".into()]),
                vec![],
            ),
            (
                "absent grant types default to authorization_code",
                check(|m| m.grant_types_supported = None),
                vec![],
            ),
            (
                "explicit empty grant types",
                check(|m| m.grant_types_supported = Some(vec![])),
                vec![E::AuthorizationCodeGrantNotSupported],
            ),
            (
                "no authorization_code grant",
                check(|m| m.grant_types_supported = Some(vec!["client_credentials".into()])),
                vec![E::AuthorizationCodeGrantNotSupported],
            ),
            (
                "no PKCE",
                check(|m| m.code_challenge_methods_supported = None),
                vec![E::PkceNotSupported],
            ),
            (
                "empty PKCE methods",
                check(|m| m.code_challenge_methods_supported = Some(vec![])),
                vec![E::PkceNotSupported],
            ),
            (
                "plain PKCE only",
                check(|m| m.code_challenge_methods_supported = Some(vec!["plain".into()])),
                vec![E::S256CodeChallengeMethodNotSupported],
            ),
        ];
        for (name, result, errors) in rows {
            assert_eq!(result.errors, errors, "{name}");
            assert_eq!(result.is_valid(), errors.is_empty(), "{name}");
        }
    }

    #[test]
    fn missing_registration_means_are_warnings() {
        let result = check(|m| {
            m.registration_endpoint = None;
            m.client_id_metadata_document_supported = None;
        });
        assert!(result.is_valid());
        assert_eq!(
            result.warnings,
            [
                W::DynamicRegistrationNotSupported,
                W::ClientIdMetadataDocumentNotSupported
            ]
        );
    }

    #[test]
    fn codes_are_stable_strings() {
        assert_eq!(E::PkceNotSupported.as_str(), "pkce_not_supported");
        assert_eq!(
            serde_json::to_value(W::DynamicRegistrationNotSupported).unwrap(),
            "dynamic_registration_not_supported"
        );
        let result = check(|m| {
            m.code_challenge_methods_supported = None;
            m.registration_endpoint = None;
        });
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({
                "errors": ["pkce_not_supported"],
                "warnings": ["dynamic_registration_not_supported"]
            })
        );
        assert!(result.to_string().contains("(pkce_not_supported)"));
    }
}
