//! [`AuthInfo`]: who made a request, as established by a verified access token.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Everything but the token: shared by every request that presents the same verified token
/// (the verified-token cache keeps this, and the token once, as its key).
#[derive(Clone, PartialEq)]
struct Inner {
    issuer: String,
    subject: String,
    client_id: Option<String>,
    audience: Vec<String>,
    scopes: Vec<String>,
    expires_at: Option<SystemTime>,
    claims: Claims,
}

/// A token's claims: a map, or (for verified JWTs) the payload's JSON, parsed into a map when
/// a handler first asks, so remembered tokens take a fraction of the memory.
#[derive(Clone)]
enum Claims {
    Map(Map<String, Value>),
    Json {
        payload: Box<[u8]>,
        parsed: OnceLock<Map<String, Value>>,
    },
}

impl Claims {
    fn map(&self) -> &Map<String, Value> {
        match self {
            Self::Map(map) => map,
            // The payload was a JSON object when the token was verified.
            Self::Json { payload, parsed } => parsed.get_or_init(|| {
                serde_json::from_slice::<Map<String, Value>>(payload).unwrap_or_default()
            }),
        }
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

/// The shared part of an [`AuthInfo`], without the token.
#[derive(Clone)]
pub(crate) struct Identity(Arc<Inner>);

impl Identity {
    /// The audiences (`aud`).
    pub(crate) fn audience(&self) -> &[String] {
        &self.0.audience
    }

    /// The size of the claims kept as JSON (0 for claims given as a map).
    pub(crate) fn claims_json_len(&self) -> usize {
        match &self.0.claims {
            Claims::Json { payload, .. } => payload.len(),
            Claims::Map(_) => 0,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The verified identity behind a request: issuer, subject, client, audience, scopes, expiry,
/// every claim and the raw token.
///
/// The bearer layer puts it in the request's extensions; handlers take it as an extractor
/// (`AuthInfo`, or `Option<AuthInfo>` on routes where authentication is optional). Cloning is
/// cheap (the data is shared).
///
/// ```
/// use axum::{Router, routing::get};
/// use mcpauth::AuthInfo;
///
/// async fn whoami(auth: AuthInfo) -> String {
///     format!("{} via {}", auth.subject(), auth.client_id().unwrap_or("unknown client"))
/// }
///
/// async fn hello(auth: Option<AuthInfo>) -> String {
///     match auth {
///         Some(auth) => format!("hello {}", auth.subject()),
///         None => "hello stranger".to_owned(),
///     }
/// }
///
/// let app: Router = Router::new().route("/whoami", get(whoami)).route("/hello", get(hello));
/// # let _ = app;
/// ```
#[derive(Clone, PartialEq)]
pub struct AuthInfo {
    inner: Arc<Inner>,
    token: Arc<str>,
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw token is a credential: never in logs.
        f.debug_struct("AuthInfo")
            .field("issuer", &self.inner.issuer)
            .field("subject", &self.inner.subject)
            .field("client_id", &self.inner.client_id)
            .field("audience", &self.inner.audience)
            .field("scopes", &self.inner.scopes)
            .field("expires_at", &self.inner.expires_at)
            .finish_non_exhaustive()
    }
}

impl AuthInfo {
    /// Starts describing a verified token (for custom verifiers): the raw token, its issuer and
    /// its subject; everything else is empty until set.
    pub fn builder(
        token: impl Into<String>,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> AuthInfoBuilder {
        AuthInfoBuilder {
            token: token.into(),
            inner: Inner {
                issuer: issuer.into(),
                subject: subject.into(),
                client_id: None,
                audience: Vec::new(),
                scopes: Vec::new(),
                expires_at: None,
                claims: Claims::Map(Map::new()),
            },
        }
    }

    /// The verified identity `identity` presented with `token`.
    pub(crate) fn new(identity: &Identity, token: &str) -> Self {
        Self {
            inner: identity.0.clone(),
            token: token.into(),
        }
    }

    /// The part shared by every request with this token.
    pub(crate) fn identity(&self) -> Identity {
        Identity(self.inner.clone())
    }

    /// The raw access token. It is a credential: do not log it, and never forward it to another
    /// service (MCP forbids token passthrough).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The issuer (`iss`), one of the resource's authorization servers.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The subject (`sub`): the user, or the client for client-credentials tokens.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The client the token was issued to (`client_id`, else `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// The audiences (`aud`, as a list even when the token has a single string).
    pub fn audience(&self) -> &[String] {
        &self.inner.audience
    }

    /// The granted scopes (from `scope` and `scp`, or the claims the authorization server is
    /// configured with; see [`AuthServer::scope_claims`](crate::AuthServer::scope_claims)), without repeats.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// Whether `scope` was granted (exact, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.inner.scopes.iter().any(|s| s == scope)
    }

    /// When the token expires (`exp`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// Every claim of the token (for custom verifiers, whatever they put there).
    pub fn claims(&self) -> &Map<String, Value> {
        self.inner.claims.map()
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }
}

/// Builds an [`AuthInfo`] (for custom verifiers).
#[derive(Clone)]
#[must_use]
pub struct AuthInfoBuilder {
    token: String,
    inner: Inner,
}

impl fmt::Debug for AuthInfoBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in logs.
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfo")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl AuthInfoBuilder {
    /// Sets the client ID.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.inner.client_id = Some(client_id.into());
        self
    }

    /// Sets the audiences.
    pub fn audience<I>(mut self, audience: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.inner.audience = audience.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.inner.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, expires_at: SystemTime) -> Self {
        self.inner.expires_at = Some(expires_at);
        self
    }

    /// Sets the claims.
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.inner.claims = Claims::Map(claims);
        self
    }

    /// Sets the claims as the JSON object `payload` (parsed again only when asked for).
    pub(crate) fn claims_json(mut self, payload: Vec<u8>) -> Self {
        self.inner.claims = Claims::Json {
            payload: payload.into_boxed_slice(),
            parsed: OnceLock::new(),
        };
        self
    }

    /// Finishes.
    pub fn build(self) -> AuthInfo {
        AuthInfo {
            inner: Arc::new(self.inner),
            token: self.token.into(),
        }
    }
}

/// A NumericDate (seconds since the epoch, possibly fractional) as a `SystemTime`.
pub(crate) fn system_time(seconds: f64) -> Option<SystemTime> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|since_epoch| UNIX_EPOCH.checked_add(since_epoch))
}

/// The answer when a handler asks for `AuthInfo` on a route no bearer layer protects: a server
/// bug, so 500, never a silent anonymous pass.
#[derive(Debug, Clone, Copy)]
pub struct MissingAuthInfo;

impl IntoResponse for MissingAuthInfo {
    fn into_response(self) -> Response {
        tracing::error!(
            "a handler asked for AuthInfo on a route without the bearer layer: add `.route_layer(bearer_auth)`"
        );
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({
                "error": "server_error",
                "error_description": "Authentication is not configured for this route.",
            })),
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthInfo {
    type Rejection = MissingAuthInfo;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthInfo>()
            .cloned()
            .ok_or(MissingAuthInfo)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AuthInfo>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_kept_as_json_read_like_a_map_and_the_token_never_shows_in_debug() {
        let payload = br#"{"iss":"https://as.example.com","sub":"alice","n":1}"#.to_vec();
        let lazy = AuthInfo::builder("secret-token", "https://as.example.com", "alice")
            .claims_json(payload)
            .build();
        assert_eq!(lazy.claim("n"), Some(&json!(1)));
        assert_eq!(lazy.claims().len(), 3);

        let Value::Object(map) = json!({"iss": "https://as.example.com", "sub": "alice", "n": 1})
        else {
            unreachable!()
        };
        let eager = AuthInfo::builder("secret-token", "https://as.example.com", "alice")
            .claims(map)
            .build();
        assert_eq!(lazy, eager);

        // Another request with the same token shares the identity, not a copy of it.
        let again = AuthInfo::new(&lazy.identity(), "secret-token");
        assert!(Arc::ptr_eq(&again.inner, &lazy.inner));
        assert_eq!(again.token(), "secret-token");

        let builder = AuthInfo::builder("secret-token", "https://as.example.com", "alice");
        assert!(!format!("{builder:?}").contains("secret-token"));
        assert!(!format!("{lazy:?}").contains("secret-token"));
    }
}
