//! Why a request was refused: the RFC 6750 category (which decides the status and challenge)
//! and a precise, stable reason code.

use std::fmt;
use std::time::Duration;

macro_rules! reasons {
    ($( $(#[$meta:meta])* $variant:ident = $code:literal, )+) => {
        /// The precise reason a request was refused, reported in the JSON body as `reason`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AuthErrorReason {
            $( $(#[$meta])* $variant, )+
        }

        impl AuthErrorReason {
            /// The stable code.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $code, )+ }
            }
        }
    };
}

reasons! {
    /// No `Authorization` header, or one with another scheme.
    MissingCredentials = "missing_credentials",
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders = "multiple_authorization_headers",
    /// The `Authorization` header is longer than the bound.
    AuthorizationHeaderTooLarge = "authorization_header_too_large",
    /// The `Authorization` header is not `Bearer <token>`.
    MalformedAuthorizationHeader = "malformed_authorization_header",
    /// `Bearer` with no token.
    EmptyToken = "empty_token",
    /// The token has characters outside the RFC 6750 `b64token` grammar.
    InvalidTokenCharacters = "invalid_token_characters",
    /// The token is not a well-formed JWT (parts, base64url, JSON).
    MalformedToken = "malformed_token",
    /// `alg` is `none`, HMAC, unknown, or not the one the key is for.
    UnsupportedAlgorithm = "unsupported_algorithm",
    /// The JWT header has `crit` (no critical extension is understood).
    UnsupportedCriticalHeader = "unsupported_critical_header",
    /// `typ` is not an access-token type.
    InvalidTokenType = "invalid_token_type",
    /// No `iss` claim.
    MissingIssuer = "missing_issuer",
    /// `iss` is not one of the resource's authorization servers.
    UntrustedIssuer = "untrusted_issuer",
    /// No key in the authorization server's key set matches the token.
    UnknownKey = "unknown_key",
    /// The signature does not verify.
    InvalidSignature = "invalid_signature",
    /// No `exp` claim.
    MissingExpiry = "missing_expiry",
    /// `exp` has passed (beyond the leeway).
    Expired = "expired",
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid = "not_yet_valid",
    /// `aud` does not contain the resource.
    InvalidAudience = "invalid_audience",
    /// No `sub` claim.
    MissingSubject = "missing_subject",
    /// A claim has the wrong type.
    InvalidClaim = "invalid_claim",
    /// A custom verifier refused the token.
    Rejected = "rejected",
    /// The token lacks scopes the request needs.
    InsufficientScope = "insufficient_scope",
    /// The `Mcp-Method` / `Mcp-Name` headers are malformed or disagree with the body.
    InvalidMcpOperation = "invalid_mcp_operation",
    /// The body of an MCP request is not strict JSON-RPC (not UTF-8, a byte-order mark, not
    /// JSON, not a message or batch, a method's target missing, a body where none belongs).
    MalformedMcpBody = "malformed_mcp_body",
    /// The body of an MCP request gives a deciding member twice, or in another case.
    AmbiguousMcpBody = "ambiguous_mcp_body",
    /// The body of an MCP request is content-encoded.
    UnsupportedContentEncoding = "unsupported_content_encoding",
    /// The body is larger than the bound for reading the MCP operation.
    BodyTooLarge = "body_too_large",
    /// The body could not be read (the connection broke).
    UnreadableBody = "unreadable_body",
    /// The authorization server's metadata cannot be fetched.
    MetadataUnavailable = "metadata_unavailable",
    /// The authorization server's keys cannot be fetched.
    KeysUnavailable = "keys_unavailable",
    /// A custom verifier could not reach what it needs.
    VerifierUnavailable = "verifier_unavailable",
    /// The authorization server's metadata has no `jwks_uri`.
    MissingJwksUri = "missing_jwks_uri",
    /// The authorization server's `jwks_uri` breaks the URL rules.
    InvalidJwksUri = "invalid_jwks_uri",
}

impl fmt::Display for AuthErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused. Each variant is one row of the response table: it decides the
/// status, the `WWW-Authenticate` challenge and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials: 401 with a challenge and no `error`.
    #[error("no bearer token")]
    MissingCredentials,
    /// A malformed credential: 400 `invalid_request`.
    #[error("malformed request ({reason}): {detail}")]
    InvalidRequest {
        /// The precise reason.
        reason: AuthErrorReason,
        /// What exactly is wrong (shown to clients only when details are enabled).
        detail: String,
    },
    /// An unusable token: 401 `invalid_token`.
    #[error("invalid token ({reason}): {detail}")]
    InvalidToken {
        /// The precise reason.
        reason: AuthErrorReason,
        /// What exactly is wrong (shown to clients only when details are enabled).
        detail: String,
    },
    /// An MCP request whose operation cannot be read unambiguously (its body, or its
    /// `Mcp-Method` / `Mcp-Name` headers): 400 `invalid_request` without a challenge, since the
    /// credentials are not at fault. The description always says what is wrong.
    #[error("unreadable MCP request ({reason}): {detail}")]
    InvalidMcpRequest {
        /// The precise reason.
        reason: AuthErrorReason,
        /// What exactly is wrong.
        detail: String,
    },
    /// A valid token without the scopes the request needs: 403 `insufficient_scope`.
    #[error("insufficient scope: missing {}", missing.join(" "))]
    InsufficientScope {
        /// Every scope the request needs (the challenge's `scope`).
        required: Vec<String>,
        /// The ones the token lacks.
        missing: Vec<String>,
    },
    /// The body is too large to read the MCP operation from: 413, no challenge.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The bound in force.
        limit: usize,
    },
    /// What verification needs cannot be had right now: 503 with `Retry-After`.
    #[error("verification unavailable ({reason}): {detail}")]
    Unavailable {
        /// The precise reason.
        reason: AuthErrorReason,
        /// What failed.
        detail: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// A configuration fault on this side: 500 `server_error`.
    #[error("server error ({reason}): {detail}")]
    ServerError {
        /// The precise reason.
        reason: AuthErrorReason,
        /// What is wrong.
        detail: String,
    },
}

impl AuthError {
    pub(crate) fn invalid_request(reason: AuthErrorReason, detail: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid_token(reason: AuthErrorReason, detail: impl Into<String>) -> Self {
        Self::InvalidToken {
            reason,
            detail: detail.into(),
        }
    }

    /// The precise reason.
    pub fn reason(&self) -> AuthErrorReason {
        match self {
            Self::MissingCredentials => AuthErrorReason::MissingCredentials,
            Self::InsufficientScope { .. } => AuthErrorReason::InsufficientScope,
            Self::BodyTooLarge { .. } => AuthErrorReason::BodyTooLarge,
            Self::InvalidRequest { reason, .. }
            | Self::InvalidMcpRequest { reason, .. }
            | Self::InvalidToken { reason, .. }
            | Self::Unavailable { reason, .. }
            | Self::ServerError { reason, .. } => *reason,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::MissingCredentials | Self::InvalidToken { .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest { .. } | Self::InvalidMcpRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 error code (`None` for missing credentials, which carry none), or
    /// `temporarily_unavailable` / `server_error` for faults on this side.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingCredentials => None,
            Self::InvalidRequest { .. }
            | Self::InvalidMcpRequest { .. }
            | Self::BodyTooLarge { .. } => Some("invalid_request"),
            Self::InvalidToken { .. } => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unavailable { .. } => Some("temporarily_unavailable"),
            Self::ServerError { .. } => Some("server_error"),
        }
    }
}

/// What a custom verifier answers when it cannot accept a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomVerifyError {
    /// The token is not valid (expired, revoked, unknown…): 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The verifier could not reach what it needs (an introspection endpoint…): 503.
    #[error("verifier unavailable: {0}")]
    Unavailable(String),
    /// The verifier cannot answer now and knows when it can (its own rate limit…): 503 with
    /// this `Retry-After`.
    #[error("verifier unavailable for {retry_after:?}: {detail}")]
    UnavailableFor {
        /// What is unavailable.
        detail: String,
        /// When to try again.
        retry_after: Duration,
    },
}
