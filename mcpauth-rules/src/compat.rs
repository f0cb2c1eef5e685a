//! MCP compatibility of an authorization server: the authorization-code flow with PKCE `S256`
//! (errors), and a way for clients to register (warnings). Stable codes for every result.

use std::fmt;

use serde::Serialize;

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

/// The members of an authorization server's metadata that MCP compatibility depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompatibilityInput<'a> {
    /// `response_types_supported`.
    pub response_types_supported: &'a [String],
    /// `grant_types_supported` (`None`: absent, which means `authorization_code` and
    /// `implicit`).
    pub grant_types_supported: Option<&'a [String]>,
    /// `code_challenge_methods_supported` (`None`: absent, which means no PKCE).
    pub code_challenge_methods_supported: Option<&'a [String]>,
    /// Whether `registration_endpoint` is present.
    pub registration_endpoint: bool,
    /// `client_id_metadata_document_supported`.
    pub client_id_metadata_document_supported: Option<bool>,
}

/// The outcome of every compatibility check, in check order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompatibilityReport {
    /// Failed checks.
    pub errors: Vec<AuthServerConfigErrorCode>,
    /// Warnings.
    pub warnings: Vec<AuthServerConfigWarningCode>,
    /// Passed checks.
    pub successes: Vec<AuthServerConfigSuccessCode>,
}

/// Checks MCP compatibility: a `code` response type, the `authorization_code` grant (absent
/// `grant_types_supported` means `authorization_code` and `implicit`), PKCE with `S256`;
/// warnings for no dynamic registration and no Client ID Metadata Document support.
pub fn check_compatibility(input: &CompatibilityInput<'_>) -> CompatibilityReport {
    use AuthServerConfigErrorCode as E;
    use AuthServerConfigSuccessCode as S;
    use AuthServerConfigWarningCode as W;

    let mut report = CompatibilityReport::default();
    let code = input
        .response_types_supported
        .iter()
        .any(|types| types.split(' ').any(|t| t == "code"));
    if code {
        report.successes.push(S::CodeResponseTypeSupported);
    } else {
        report.errors.push(E::CodeResponseTypeNotSupported);
    }

    let authorization_code = match input.grant_types_supported {
        Some(grants) => grants.iter().any(|g| g == "authorization_code"),
        None => true,
    };
    if authorization_code {
        report.successes.push(S::AuthorizationCodeGrantSupported);
    } else {
        report.errors.push(E::AuthorizationCodeGrantNotSupported);
    }

    match input.code_challenge_methods_supported {
        None | Some([]) => report.errors.push(E::PkceNotSupported),
        Some(methods) => {
            report.successes.push(S::PkceSupported);
            if methods.iter().any(|m| m == "S256") {
                report.successes.push(S::S256CodeChallengeMethodSupported);
            } else {
                report.errors.push(E::S256CodeChallengeMethodNotSupported);
            }
        }
    }

    if input.registration_endpoint {
        report.successes.push(S::DynamicRegistrationSupported);
    } else {
        report.warnings.push(W::DynamicRegistrationNotSupported);
    }

    if input.client_id_metadata_document_supported == Some(true) {
        report.successes.push(S::ClientIdMetadataDocumentSupported);
    } else {
        report
            .warnings
            .push(W::ClientIdMetadataDocumentNotSupported);
    }
    report
}
