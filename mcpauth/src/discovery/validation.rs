//! Whether an authorization server can serve MCP clients: the authorization-code flow with PKCE
//! `S256` (errors), and a way for clients to register (warnings).

use std::fmt;

pub use mcpauth_rules::compat::{
    AuthServerConfigErrorCode, AuthServerConfigSuccessCode, AuthServerConfigWarningCode,
};
use mcpauth_rules::compat::{CompatibilityInput, check_compatibility};
use serde::Serialize;

use crate::metadata::AuthServerConfig;

/// The result of checking an authorization server for MCP compatibility.
///
/// ```
/// use mcpauth::discovery::{AuthServerConfigErrorCode, validate_server_config};
/// use mcpauth::{AuthServerConfig, AuthServerType, AuthorizationServerMetadata};
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
    let metadata = &config.metadata;
    let report = check_compatibility(&CompatibilityInput {
        response_types_supported: &metadata.response_types_supported,
        grant_types_supported: metadata.grant_types_supported.as_deref(),
        code_challenge_methods_supported: metadata.code_challenge_methods_supported.as_deref(),
        registration_endpoint: metadata.registration_endpoint.is_some(),
        client_id_metadata_document_supported: metadata.client_id_metadata_document_supported,
    });
    AuthServerConfigValidation {
        errors: report.errors,
        warnings: report.warnings,
        successes: report.successes,
    }
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
