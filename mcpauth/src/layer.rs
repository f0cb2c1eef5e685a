//! The tower layer that protects routes of one resource: it reads the bearer token, verifies
//! it, checks the scopes the route needs, puts the [`AuthInfo`] in the request's extensions and
//! answers refusals with the RFC 6750 / RFC 9728 challenge.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, Method, Request, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::auth_error::{AuthError, AuthErrorReason, CustomVerifyError};
use crate::auth_info::AuthInfo;
use crate::bearer::{DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES, bearer_token};
use crate::challenge::Challenges;
use crate::claims::ExpectedAudience;
use crate::http_client::find_source;
use crate::jwt::TokenTypePolicy;
use crate::mcp_auth::{ConfigError, McpAuth, ResourceState};
use crate::metrics::{self, RequestOutcome};
use crate::operations::OperationScopes;
use crate::verify::{JwtRules, verify_jwt};

/// The default clock leeway for `exp` and `nbf`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A token verifier for tokens the layer cannot verify locally (opaque tokens checked by
/// introspection, a userinfo call…). Its result is still checked: the issuer must be one of the
/// resource's authorization servers, the audience must include the resource (unless the
/// audience check is turned off) and the route's scopes must be granted.
///
/// Any `Fn(String) -> impl Future<Output = Result<AuthInfo, CustomVerifyError>>` is one.
///
/// ```
/// use mcpauth::{AuthInfo, CustomVerifyError};
///
/// let verifier = |token: String| async move {
///     if token == "let-me-in" {
///         Ok(AuthInfo::builder(token, "https://auth.example.com", "alice").build())
///     } else {
///         Err(CustomVerifyError::InvalidToken("unknown token".into()))
///     }
/// };
/// # fn is_verifier(_: impl mcpauth::VerifyToken) {}
/// # is_verifier(verifier);
/// ```
pub trait VerifyToken: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<AuthInfo, CustomVerifyError>> + Send + 'a>>;
}

impl<F, Fut> VerifyToken for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AuthInfo, CustomVerifyError>> + Send + 'static,
{
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<AuthInfo, CustomVerifyError>> + Send + 'a>> {
        Box::pin(self(token.to_owned()))
    }
}

/// How the layer verifies tokens.
#[derive(Clone)]
enum Verification {
    /// As JWTs, against the resource's authorization servers' keys.
    Jwt,
    /// With a custom verifier (opaque tokens).
    Custom(Arc<dyn VerifyToken>),
}

#[derive(Clone)]
struct Config {
    auth: McpAuth,
    resource: usize,
    verification: Verification,
    rules: JwtRules,
    required_scopes: Vec<String>,
    optional: bool,
    show_details: bool,
    max_header_bytes: usize,
    operations: Option<OperationScopes>,
    /// Every request's scopes: the layer's, then the operations' baseline.
    static_scopes: Vec<String>,
    challenges: Challenges,
}

impl Config {
    fn resource(&self) -> &ResourceState {
        // The index was checked when the layer was made and resources never change.
        &self.auth.resource_states()[self.resource]
    }

    fn rebuild_challenges(&mut self) {
        let add = |list: &mut Vec<String>, more: &[String]| {
            for scope in more {
                if !list.contains(scope) {
                    list.push(scope.clone());
                }
            }
        };
        let mut required = self.required_scopes.clone();
        let mut advertised = Vec::new();
        if let Some(operations) = &self.operations {
            add(&mut required, &operations.baseline);
            advertised = operations.advertised.clone();
        }
        // Challenges name what is required, then what a client should ask for at login.
        let mut challenged = required.clone();
        add(&mut challenged, &advertised);
        let metadata_url = self.resource().metadata_url.to_string();
        self.challenges = Challenges::new(&metadata_url, &challenged, self.show_details);
        self.static_scopes = required;
    }

    /// `info` when it has the scopes every request needs, else the refusal.
    fn with_static_scopes(&self, info: AuthInfo) -> Result<Option<AuthInfo>, AuthError> {
        let missing = self.missing(&info, &self.static_scopes);
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope {
                required: self.static_scopes.clone(),
                missing,
            });
        }
        Ok(Some(info))
    }

    /// The scopes of `required` that `info` lacks, through the resource's hierarchy.
    fn missing(&self, info: &AuthInfo, required: &[String]) -> Vec<String> {
        let hierarchy = &self.resource().scope_hierarchy;
        required
            .iter()
            .filter(|scope| !hierarchy.satisfies(info.scopes(), scope))
            .cloned()
            .collect()
    }
}

/// Protects routes of one resource with bearer-token verification; make one with
/// [`McpAuth::bearer_auth`] and add it with axum's `route_layer` (or `layer`).
///
/// Defaults: JWT verification against the resource's authorization servers, audience = the
/// resource identifier, no required scopes, 60 s leeway, lenient `typ`, generic error
/// descriptions, authentication required, `Authorization` headers up to 8 KiB.
///
/// ```no_run
/// # fn run(auth: mcpauth::McpAuth) -> Result<(), mcpauth::ConfigError> {
/// use axum::{Router, routing::get};
/// use mcpauth::AuthInfo;
///
/// let read = auth
///     .bearer_auth("https://api.example.com/notes")?
///     .required_scopes(["read:notes"])?;
/// let app: Router = Router::new()
///     .route("/notes", get(|auth: AuthInfo| async move { auth.subject().to_owned() }))
///     .route_layer(read)
///     .merge(auth.resource_metadata_router());
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct BearerAuthLayer {
    config: Arc<Config>,
}

impl fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        f.debug_struct("BearerAuthLayer")
            .field("resource", &config.resource().identifier)
            .field(
                "custom_verifier",
                &matches!(config.verification, Verification::Custom(_)),
            )
            .field("audience_check", &config.rules.audience.is_some())
            .field("required_scopes", &config.required_scopes)
            .field("leeway", &config.rules.leeway)
            .field("optional", &config.optional)
            .field("show_details", &config.show_details)
            .finish()
    }
}

impl McpAuth {
    /// A bearer-auth layer for the resource `resource` (its identifier as configured).
    pub fn bearer_auth(&self, resource: &str) -> Result<BearerAuthLayer, ConfigError> {
        let Some(index) = self
            .resource_states()
            .iter()
            .position(|r| r.identifier == resource)
        else {
            return Err(ConfigError::UnknownResource {
                resource: resource.to_owned(),
            });
        };
        crate::crypto::install_provider();
        let mut config = Config {
            auth: self.clone(),
            resource: index,
            verification: Verification::Jwt,
            rules: JwtRules {
                leeway: DEFAULT_LEEWAY,
                audience: Some(ExpectedAudience::new(resource)),
                type_policy: TokenTypePolicy::Lenient,
            },
            required_scopes: Vec::new(),
            optional: false,
            show_details: false,
            max_header_bytes: DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES,
            operations: None,
            static_scopes: Vec::new(),
            challenges: Challenges::new("", &[], false),
        };
        config.rebuild_challenges();
        Ok(BearerAuthLayer {
            config: Arc::new(config),
        })
    }
}

impl BearerAuthLayer {
    /// The default clock leeway for `exp` and `nbf`: 60 s.
    pub const DEFAULT_LEEWAY: Duration = DEFAULT_LEEWAY;
    /// The default bound on the `Authorization` header: 8 KiB.
    pub const DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES: usize =
        DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES;

    fn with(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        change(&mut config);
        config.rebuild_challenges();
        Self {
            config: Arc::new(config),
        }
    }

    /// Requires every one of `scopes` (403 `insufficient_scope` listing them all otherwise); a
    /// granted scope that implies a required one (see
    /// [`ProtectedResource::scope_implies`](crate::ProtectedResource::scope_implies)) satisfies it.
    /// Each must be a valid scope token, and one of the resource's `scopes_supported` when it
    /// declares any.
    pub fn required_scopes<I>(self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.check_scopes(&scopes)?;
        Ok(self.with(|c| {
            for scope in scopes {
                if !c.required_scopes.contains(&scope) {
                    c.required_scopes.push(scope);
                }
            }
        }))
    }

    /// Requires scopes per MCP operation (see [`OperationScopes`]): the body of each request is
    /// read (within a bound) to find its operation, and a token lacking the operation's scopes
    /// gets 403 `insufficient_scope` naming every scope the operation needs. 401 challenges
    /// name the baseline. Every scope must be declared by the resource (when it declares any).
    pub fn operation_scopes(self, operations: OperationScopes) -> Result<Self, ConfigError> {
        let scopes: Vec<String> = operations.all_scopes().cloned().collect();
        self.check_scopes(&scopes)?;
        Ok(self.with(|c| c.operations = Some(operations)))
    }

    fn check_scopes(&self, scopes: &[String]) -> Result<(), ConfigError> {
        let resource = self.config.resource();
        for scope in scopes {
            if let Some(reason) = mcpauth_rules::scope::scope_token_problem(scope) {
                return Err(ConfigError::InvalidScope {
                    resource: resource.identifier.clone(),
                    scope: scope.clone(),
                    reason,
                });
            }
            if let Some(declared) = &resource.metadata.scopes_supported
                && !declared.contains(scope)
            {
                return Err(ConfigError::UndeclaredScope {
                    resource: resource.identifier.clone(),
                    scope: scope.clone(),
                });
            }
        }
        Ok(())
    }

    /// Verifies tokens with `verifier` instead of as JWTs (for opaque tokens).
    pub fn verifier(self, verifier: impl VerifyToken) -> Self {
        let verifier: Arc<dyn VerifyToken> = Arc::new(verifier);
        self.with(|c| c.verification = Verification::Custom(verifier))
    }

    /// Accepts tokens whatever their audience. MCP requires the audience check (a token issued
    /// for another resource must not be accepted here); turn it off only for tokens that carry
    /// no audience and are bound to this resource some other way.
    pub fn skip_audience_check(self) -> Self {
        self.with(|c| c.rules.audience = None)
    }

    /// The clock leeway for `exp` and `nbf` (default 60 s).
    pub fn leeway(self, leeway: Duration) -> Self {
        self.with(|c| c.rules.leeway = leeway)
    }

    /// Accepts only RFC 9068 access tokens (`typ` `at+jwt` or `application/at+jwt`).
    pub fn strict_token_type(self) -> Self {
        self.with(|c| c.rules.type_policy = TokenTypePolicy::Strict)
    }

    /// Shows the specific cause of a refusal in `error_description`, and the precise `reason`
    /// code of a refused token or malformed `Authorization` header in the body (default: a
    /// generic sentence and no such code, so a client probing with tokens learns only that they
    /// are refused; the server's logs always have the reason). The reasons of other refusals —
    /// missing credentials, insufficient scope, an unreadable MCP request, unavailability — are
    /// always in the body.
    pub fn show_error_details(self, show: bool) -> Self {
        self.with(|c| c.show_details = show)
    }

    /// Lets requests without credentials through without [`AuthInfo`] (handlers take
    /// `Option<AuthInfo>`); a token that is present is still verified, and its scopes checked.
    ///
    /// Required scopes then bind only requests that carry a token: an anonymous request passes
    /// without them, so a handler must treat `None` as "no rights", never as "all rights".
    pub fn optional(self) -> Self {
        self.with(|c| c.optional = true)
    }

    /// The longest `Authorization` header accepted (default 8 KiB).
    pub fn max_authorization_header_bytes(self, bytes: usize) -> Self {
        self.with(|c| c.max_header_bytes = bytes)
    }

    /// Authenticates a request from its headers: `Ok(None)` for an anonymous request in
    /// optional mode.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<AuthInfo>, AuthError> {
        let token = match self.authenticate_now(headers) {
            Authenticated::Now(answer) => return answer,
            Authenticated::Later(token) => token,
        };
        let started = std::time::Instant::now();
        let verified = self.verify_token(token).await;
        metrics::verification(started, verified.is_ok());
        verified
    }

    /// Verifies a token the verified-token cache could not answer for at once.
    async fn verify_token(&self, token: &str) -> Result<Option<AuthInfo>, AuthError> {
        let config = &*self.config;
        let resource = config.resource();
        let retry_after = config.auth.inner.key_cache_options.min_refresh_interval;
        let info = match &config.verification {
            Verification::Jwt => {
                let servers = &resource.auth_servers;
                match &resource.token_cache {
                    Some(cache) => {
                        cache
                            .verify(token, servers, &config.rules, retry_after)
                            .await?
                    }
                    None => {
                        verify_jwt(token, servers, &config.rules, retry_after)
                            .await?
                            .0
                    }
                }
            }
            Verification::Custom(verifier) => {
                let unavailable = |detail, retry_after| AuthError::Unavailable {
                    reason: AuthErrorReason::VerifierUnavailable,
                    detail,
                    retry_after,
                };
                let info = verifier.verify(token).await.map_err(|error| match error {
                    CustomVerifyError::InvalidToken(detail) => {
                        AuthError::invalid_token(AuthErrorReason::Rejected, detail)
                    }
                    CustomVerifyError::Unavailable(detail) => unavailable(detail, retry_after),
                    CustomVerifyError::UnavailableFor {
                        detail,
                        retry_after,
                    } => unavailable(detail, retry_after),
                })?;
                if !resource
                    .auth_servers
                    .iter()
                    .any(|s| s.issuer() == info.issuer())
                {
                    return Err(AuthError::invalid_token(
                        AuthErrorReason::UntrustedIssuer,
                        format!(
                            "The issuer {:?} is not an authorization server of this resource.",
                            info.issuer()
                        ),
                    ));
                }
                if let Some(expected) = &config.rules.audience {
                    expected.check(info.audience())?;
                }
                if let Some(expires_at) = info.expires_at() {
                    let expired_for = std::time::SystemTime::now()
                        .duration_since(expires_at)
                        .unwrap_or_default();
                    if expired_for > config.rules.leeway {
                        return Err(AuthError::invalid_token(
                            AuthErrorReason::Expired,
                            format!("The token expired {} s ago.", expired_for.as_secs()),
                        ));
                    }
                }
                info
            }
        };
        config.with_static_scopes(info)
    }

    /// What can be answered without waiting: no credentials, malformed ones, and a JWT that
    /// the verified-token cache holds (its scopes checked); else the token to verify.
    fn authenticate_now<'h>(&self, headers: &'h HeaderMap) -> Authenticated<'h> {
        let config = &*self.config;
        let token = match bearer_token(headers, config.max_header_bytes) {
            Ok(Some(token)) => token,
            Ok(None) if config.optional => return Authenticated::Now(Ok(None)),
            Ok(None) => return Authenticated::Now(Err(AuthError::MissingCredentials)),
            Err(error) => return Authenticated::Now(Err(error)),
        };
        let resource = config.resource();
        if let Verification::Jwt = config.verification
            && let Some(cache) = &resource.token_cache
            && let Some(cached) = cache.cached(token, &resource.auth_servers, &config.rules)
        {
            return Authenticated::Now(cached.and_then(|info| config.with_static_scopes(info)));
        }
        Authenticated::Later(token)
    }

    /// Reads the body and checks the scopes its MCP operation needs; returns the body to hand
    /// on unchanged.
    async fn check_operation(
        &self,
        operations: &OperationScopes,
        info: Option<&AuthInfo>,
        method: &Method,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Bytes, AuthError> {
        let limit = operations.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
            if find_source::<http_body_util::LengthLimitError>(&error).is_some() {
                AuthError::BodyTooLarge { limit }
            } else {
                unreadable()
            }
        })?;
        let required = operations.required(&self.config.static_scopes, method, headers, &bytes)?;
        if let Some(info) = info {
            let missing = self.config.missing(info, &required);
            if !missing.is_empty() {
                return Err(AuthError::InsufficientScope { required, missing });
            }
        }
        Ok(bytes)
    }

    /// The response the layer sends for `error`.
    pub fn error_response(&self, error: &AuthError) -> Response<Body> {
        self.config.challenges.response(error)
    }

    /// The response for a refused request, logged in `span` and counted.
    fn refuse(&self, error: &AuthError, span: &tracing::Span) -> Response<Body> {
        let reason = error.reason().as_str();
        span.record("reason", reason);
        span.in_scope(|| tracing::debug!(%error, "request refused"));
        metrics::request(RequestOutcome::Refused(error.reason()));
        self.error_response(error)
    }

    /// The span of one request: the resource, then who called (issuer and client) or why the
    /// request was refused — never the token.
    fn request_span(&self) -> tracing::Span {
        // Debug level: an info span on every request would cost the cache-hit path more than
        // the rest of it under a usual `info` filter.
        tracing::debug_span!(
            "mcpauth.request",
            resource = %self.config.resource().identifier,
            issuer = tracing::field::Empty,
            client_id = tracing::field::Empty,
            reason = tracing::field::Empty,
        )
    }
}

/// The outcome of [`BearerAuthLayer::authenticate_now`].
enum Authenticated<'h> {
    /// The answer: the caller (`None`: anonymous, in optional mode) or the refusal.
    Now(Result<Option<AuthInfo>, AuthError>),
    /// A token to verify.
    Later(&'h str),
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`BearerAuthLayer`].
#[derive(Clone)]
pub struct BearerAuthService<S> {
    inner: S,
    layer: BearerAuthLayer,
}

impl<S> fmt::Debug for BearerAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// Hands the caller's identity to the inner service (none: anonymous, in optional mode), and
/// counts the request.
fn admit(request: &mut Request<Body>, info: Option<AuthInfo>, span: &tracing::Span) {
    match info {
        Some(info) => {
            span.record("issuer", info.issuer());
            if let Some(client_id) = info.client_id() {
                span.record("client_id", client_id);
            }
            metrics::request(RequestOutcome::Accepted);
            request.extensions_mut().insert(info);
        }
        None => metrics::request(RequestOutcome::Anonymous),
    }
}

fn unreadable() -> AuthError {
    AuthError::InvalidMcpRequest {
        reason: AuthErrorReason::UnreadableBody,
        detail: "The request body could not be read.".into(),
    }
}

impl<S, B, ResBody> Service<Request<B>> for BearerAuthService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // What needs no waiting (no credentials, malformed ones, a token the verified-token
        // cache holds) is decided here, unless the body must be read for per-operation scopes:
        // the inner service, polled ready, is called now, and not cloned.
        if self.layer.config.operations.is_none()
            && let Authenticated::Now(answer) = self.layer.authenticate_now(request.headers())
        {
            let span = self.layer.request_span();
            return match answer {
                Ok(info) => {
                    let mut request = request.map(Body::new);
                    admit(&mut request, info, &span);
                    let response = span.in_scope(|| self.inner.call(request));
                    Box::pin(async move { Ok(response.await?.map(Body::new)) }.instrument(span))
                }
                Err(error) => {
                    let refusal = self.layer.refuse(&error, &span);
                    Box::pin(async move { Ok(refusal) })
                }
            };
        }
        // The clone is the one that was polled ready; keep it for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let span = layer.request_span();
        let in_span = span.clone();
        Box::pin(
            async move {
                let refuse = |error: AuthError| layer.refuse(&error, &in_span);
                // Every request is authenticated, CORS preflights included: a preflight carries no
                // credentials, so it is refused here like any other request without them. Serve
                // CORS with a layer outside this one, which answers preflights itself.
                let mut request = request.map(Body::new);
                let info = match layer.authenticate(request.headers()).await {
                    Ok(info) => info,
                    Err(error) => return Ok(refuse(error)),
                };
                if let Some(operations) = &layer.config.operations {
                    let (parts, body) = request.into_parts();
                    let checked = layer.check_operation(
                        operations,
                        info.as_ref(),
                        &parts.method,
                        &parts.headers,
                        body,
                    );
                    match checked.await {
                        Ok(bytes) => request = Request::from_parts(parts, Body::from(bytes)),
                        Err(error) => return Ok(refuse(error)),
                    }
                }
                admit(&mut request, info, &in_span);
                let response = inner.call(request).await?;
                Ok(response.map(Body::new))
            }
            .instrument(span),
        )
    }
}
