//! CORS for browser-based MCP clients (feature `cors`).
//!
//! A web page that speaks MCP (the MCP TypeScript SDK in a browser, an inspector connecting
//! directly) calls the MCP endpoint from another origin. Its browser first sends a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, never with a token), and then
//! lets the page read a response only if it names the page's origin. The bearer layer
//! authenticates every request, preflights included, so CORS is served by a layer *outside* it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::post};
//! use mcpauth::{AuthInfo, AuthServer, AuthServerType, McpAuth, ProtectedResource};
//! use tower::ServiceExt as _;
//!
//! let resource = "https://mcp.example.com/mcp";
//! let issuer = AuthServer::discover("https://tenant.logto.app/oidc", AuthServerType::Oidc);
//! let auth = McpAuth::resource_server([ProtectedResource::new(resource)
//!     .authorization_server(issuer)
//!     .scopes(["read:todos"])])?;
//! let bearer = auth.bearer_auth(resource)?;
//!
//! let app = Router::new()
//!     .route("/mcp", post(|who: AuthInfo| async move { who.subject().to_owned() }))
//!     .route_layer(bearer)
//!     .merge(auth.resource_metadata_router())
//!     .layer(mcpauth::cors::mcp_cors(["https://app.example"])?); // outside the bearer layer
//!
//! // The preflight is answered by the CORS layer: no token needed.
//! let preflight = http::Request::options("/mcp")
//!     .header("origin", "https://app.example")
//!     .header("access-control-request-method", "POST")
//!     .header("access-control-request-headers", "authorization, content-type")
//!     .body(axum::body::Body::empty())?;
//! let answer = app.clone().oneshot(preflight).await?;
//! assert_eq!(answer.status(), 204);
//! assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example");
//!
//! // The request itself is authenticated, and the page can read the challenge.
//! let request = http::Request::post("/mcp")
//!     .header("origin", "https://app.example")
//!     .body(axum::body::Body::empty())?;
//! let answer = app.oneshot(request).await?;
//! assert_eq!(answer.status(), 401);
//! assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example");
//! assert_eq!(
//!     answer.headers()["access-control-expose-headers"],
//!     "www-authenticate,mcp-session-id"
//! );
//! # Ok(()) }
//! ```
//!
//! What [`McpCors`] answers, built on `tower-http`'s [`CorsLayer`]:
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from a listed
//!   origin: `204 No Content` with `Access-Control-Allow-Origin: <that origin>`,
//!   `Access-Control-Allow-Methods` ([`ALLOWED_METHODS`]), `Access-Control-Allow-Headers`
//!   ([`ALLOWED_HEADERS`]) and `Access-Control-Max-Age` ([`DEFAULT_MAX_AGE`]). It never reaches
//!   the routes.
//! - Any other request from a listed origin goes to the routes (and is authenticated there); its
//!   response gets `Access-Control-Allow-Origin: <that origin>` and
//!   `Access-Control-Expose-Headers` ([`EXPOSED_HEADERS`]), so the page can read a
//!   `WWW-Authenticate` challenge and the `Mcp-Session-Id`.
//! - A request from any other origin, or without `Origin`, goes to the routes as if the layer
//!   were absent, and gets no CORS header from it (a preflight from an unlisted origin is
//!   therefore refused by the bearer layer, like any request without a token; the challenge's
//!   own `Access-Control-Expose-Headers` grants nothing without `Access-Control-Allow-Origin`).
//! - Every response gets `Vary: origin, access-control-request-method,
//!   access-control-request-headers`, so caches keep the answers to different origins apart.
//!
//! Origins are listed explicitly, never `*`, and `Access-Control-Allow-Credentials` is never
//! sent: bearer tokens travel in the `Authorization` header, which a page sets itself, so no
//! cookie or browser credential is needed (or let through).
//!
//! CORS only decides which pages may *read* responses; a server that must refuse other origins
//! outright also checks `Origin` on the request (the MCP transport requires it: rmcp's
//! `StreamableHttpServerConfig::with_allowed_origins`, given [`McpCors::origins`] and the
//! server's own origin).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::cors::{
    AllowHeaders, AllowMethods, AllowOrigin, Cors, CorsLayer, ExposeHeaders, ResponseFuture,
};
use url::Url;

/// The request headers a browser-based MCP client may send: `Authorization` (the bearer token),
/// `Content-Type`, `Accept`, the MCP transport's `Mcp-Method`, `Mcp-Name`,
/// `MCP-Protocol-Version` and `Mcp-Session-Id`, and `Last-Event-ID` (resuming an SSE stream).
pub const ALLOWED_HEADERS: [HeaderName; 8] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("mcp-session-id"),
    HeaderName::from_static("last-event-id"),
];

/// The response headers a browser-based MCP client may read beyond the CORS-safelisted ones:
/// `WWW-Authenticate` (the RFC 6750 / RFC 9728 challenge that starts login and step-up) and
/// `Mcp-Session-Id`.
pub const EXPOSED_HEADERS: [HeaderName; 2] = [
    header::WWW_AUTHENTICATE,
    HeaderName::from_static("mcp-session-id"),
];

/// The methods of the streamable HTTP transport: `GET` (the SSE stream), `POST` (messages),
/// `DELETE` (ending a session) and `OPTIONS`.
pub const ALLOWED_METHODS: [Method; 4] =
    [Method::GET, Method::POST, Method::DELETE, Method::OPTIONS];

/// How long a browser may reuse a preflight answer (`Access-Control-Max-Age`), by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// Why an allowed origin was refused. Each message names the origin and the form to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorsError {
    /// The list is empty.
    #[error(
        "no allowed origin: list the origins of the web pages that call this server \
         (e.g. `https://app.example`), or leave the CORS layer out"
    )]
    NoOrigins,
    /// `*`, or an origin with a `*` in it.
    #[error(
        "`{origin}`: wildcards are not allowed for protected routes; list each origin \
         (e.g. `https://app.example`)"
    )]
    Wildcard {
        /// The offending entry.
        origin: String,
    },
    /// `null`, the origin of sandboxed frames, `file:` pages and some redirects.
    #[error("`null` cannot be allowed: every sandboxed frame and local file sends it")]
    NullOrigin,
    /// Whitespace or a control character anywhere in the entry.
    #[error("{origin:?} contains whitespace or a control character: write `scheme://host[:port]`")]
    Whitespace {
        /// The offending entry.
        origin: String,
    },
    /// Not an absolute URL at all.
    #[error(
        "`{origin}` is not an origin ({reason}): write `scheme://host[:port]`, \
         e.g. `https://app.example`"
    )]
    NotAnOrigin {
        /// The offending entry.
        origin: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than `https` and `http`.
    #[error(
        "`{origin}` uses the `{scheme}` scheme: only https (or http on a loopback host) is allowed"
    )]
    UnsupportedScheme {
        /// The offending entry.
        origin: String,
        /// Its scheme.
        scheme: String,
    },
    /// `http` on a host that is not loopback: anyone on the network path could run script as
    /// that origin.
    #[error(
        "`{origin}` uses http on a non-loopback host: use https (http is only allowed for \
         localhost, 127.0.0.0/8 and ::1)"
    )]
    InsecureHttp {
        /// The offending entry.
        origin: String,
    },
    /// A `user:password@` part.
    #[error("`{origin}` carries credentials (`user:password@`): write `{expected}`")]
    HasCredentials {
        /// The offending entry.
        origin: String,
        /// The origin without them.
        expected: String,
    },
    /// Ends with `/`; browsers send origins without it.
    #[error("`{origin}` ends with `/`: browsers send origins without it, write `{expected}`")]
    TrailingSlash {
        /// The offending entry.
        origin: String,
        /// The origin without it.
        expected: String,
    },
    /// A path, query or fragment.
    #[error(
        "`{origin}` has a path, query or fragment: an origin is `scheme://host[:port]` only, \
         write `{expected}`"
    )]
    HasPath {
        /// The offending entry.
        origin: String,
        /// The origin alone.
        expected: String,
    },
    /// Not in the serialized form browsers send: upper case, a default port, a Unicode or
    /// numeric host spelling.
    #[error("`{origin}` is not written as browsers send it: write `{expected}`")]
    NotSerialized {
        /// The offending entry.
        origin: String,
        /// The form browsers send.
        expected: String,
    },
}

/// Checks one allowed origin: a serialized origin (RFC 6454 §6.2), `scheme://host[:port]`,
/// https (http only on loopback), exactly as a browser sends it in `Origin`.
fn parse_origin(raw: &str) -> Result<HeaderValue, CorsError> {
    let origin = || raw.to_owned();
    if raw.contains('*') {
        return Err(CorsError::Wildcard { origin: origin() });
    }
    if raw.eq_ignore_ascii_case("null") {
        return Err(CorsError::NullOrigin);
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CorsError::Whitespace { origin: origin() });
    }
    let url = Url::parse(raw).map_err(|error| CorsError::NotAnOrigin {
        origin: origin(),
        reason: error.to_string(),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if mcpauth_rules::url::is_loopback(&url) => {}
        "http" => return Err(CorsError::InsecureHttp { origin: origin() }),
        scheme => {
            return Err(CorsError::UnsupportedScheme {
                origin: origin(),
                scheme: scheme.to_owned(),
            });
        }
    }
    let expected = url.origin().ascii_serialization();
    if raw == expected {
        return HeaderValue::try_from(expected).map_err(|error| CorsError::NotAnOrigin {
            origin: origin(),
            reason: error.to_string(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CorsError::HasCredentials {
            origin: origin(),
            expected,
        });
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(CorsError::HasPath {
            origin: origin(),
            expected,
        });
    }
    if raw.ends_with('/') {
        return Err(CorsError::TrailingSlash {
            origin: origin(),
            expected,
        });
    }
    Err(CorsError::NotSerialized {
        origin: origin(),
        expected,
    })
}

/// The CORS layer for the MCP endpoint and other protected routes, allowing the given origins:
/// `mcp_cors(["https://app.example"])?` (see the [module docs](self)).
///
/// Each origin must be a serialized origin, `scheme://host[:port]`, as browsers send it: https
/// (http only on `localhost`, `127.0.0.0/8` and `::1`), lower case, no default port, no path, no
/// trailing `/`, no whitespace; `*` and `null` are refused. Repeated origins count once.
pub fn mcp_cors<I>(origins: I) -> Result<McpCors, CorsError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    McpCors::new(origins)
}

/// A tower [`Layer`] serving CORS for browser-based MCP clients from a fixed list of origins
/// (see the [module docs](self)); made by [`mcp_cors`]. Add it with `.layer(...)` *outside* the
/// bearer layer.
#[derive(Clone)]
#[must_use]
pub struct McpCors {
    origins: Arc<[HeaderValue]>,
    layer: CorsLayer,
}

impl fmt::Debug for McpCors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpCors")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl McpCors {
    /// Checks the origins (see [`mcp_cors`]) and builds the layer.
    pub fn new<I>(origins: I) -> Result<Self, CorsError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut checked: Vec<HeaderValue> = Vec::new();
        for origin in origins {
            let origin = parse_origin(origin.as_ref())?;
            if !checked.contains(&origin) {
                checked.push(origin);
            }
        }
        if checked.is_empty() {
            return Err(CorsError::NoOrigins);
        }
        let layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(checked.iter().cloned()))
            .allow_methods(AllowMethods::list(ALLOWED_METHODS))
            .allow_headers(AllowHeaders::list(ALLOWED_HEADERS))
            .expose_headers(ExposeHeaders::list(EXPOSED_HEADERS))
            .max_age(DEFAULT_MAX_AGE);
        Ok(Self {
            origins: checked.into(),
            layer,
        })
    }

    /// How long browsers may reuse a preflight answer (default [`DEFAULT_MAX_AGE`]; browsers
    /// cap it, Chromium at two hours).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.layer = self.layer.max_age(max_age);
        self
    }

    /// The allowed origins, as checked and as browsers send them (for a transport's own `Origin`
    /// check, such as rmcp's `StreamableHttpServerConfig::with_allowed_origins`; rmcp 3.11 reads
    /// an entry without a port as "any port", so give it the default port explicitly).
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins
            .iter()
            .filter_map(|origin| origin.to_str().ok())
    }

    fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        origin.is_some_and(|origin| self.origins.contains(origin))
    }
}

impl<S> Layer<S> for McpCors {
    type Service = McpCorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpCorsService {
            cors: self.layer.layer(inner),
            config: self.clone(),
        }
    }
}

/// The service made by [`McpCors`] around your routes.
#[derive(Clone)]
pub struct McpCorsService<S> {
    cors: Cors<S>,
    config: McpCors,
}

impl<S> fmt::Debug for McpCorsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpCorsService")
            .field("origins", &self.config.origins)
            .finish_non_exhaustive()
    }
}

/// The `Vary` value tower-http sends: the request headers a CORS answer depends on.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

impl<S, B, ResBody> Service<Request<B>> for McpCorsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = McpCorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let headers = request.headers();
        let kind = if !self.config.allows(headers.get(header::ORIGIN)) {
            // Not a listed origin (or none): as if the layer were absent.
            Kind::Other {
                future: self.cors.get_mut().call(request),
            }
        } else if request.method() == Method::OPTIONS {
            if headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
                Kind::Preflight {
                    future: self.cors.call(request),
                }
            } else {
                // An OPTIONS request that is not a preflight is the routes' business (and is
                // authenticated there); tower-http would answer it as one.
                Kind::Other {
                    future: self.cors.get_mut().call(request),
                }
            }
        } else {
            Kind::Allowed {
                future: self.cors.call(request),
            }
        };
        McpCorsFuture { kind }
    }
}

pin_project! {
    #[project = KindProjection]
    enum Kind<F> {
        Preflight { #[pin] future: ResponseFuture<F> },
        Allowed { #[pin] future: ResponseFuture<F> },
        Other { #[pin] future: F },
    }
}

pin_project! {
    /// The response future of [`McpCorsService`].
    pub struct McpCorsFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

impl<F> fmt::Debug for McpCorsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpCorsFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for McpCorsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Preflight { future } => future.poll(cx).map_ok(|mut response| {
                // tower-http answers 200; a preflight answer has no content.
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }),
            KindProjection::Allowed { future } => future.poll(cx),
            KindProjection::Other { future } => future.poll(cx).map_ok(|mut response| {
                response.headers_mut().append(header::VARY, VARY);
                response
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt as _;

    fn refused(origin: &str) -> CorsError {
        mcp_cors([origin]).unwrap_err()
    }

    #[test]
    fn origins_must_be_listed_explicitly() {
        assert_eq!(mcp_cors::<[&str; 0]>([]).unwrap_err(), CorsError::NoOrigins);
        assert_eq!(refused("*"), CorsError::Wildcard { origin: "*".into() });
        assert_eq!(
            refused("https://*.example.com"),
            CorsError::Wildcard {
                origin: "https://*.example.com".into()
            }
        );
        assert_eq!(refused("null"), CorsError::NullOrigin);
        assert_eq!(
            refused("*").to_string(),
            "`*`: wildcards are not allowed for protected routes; list each origin \
             (e.g. `https://app.example`)"
        );
    }

    #[test]
    fn origins_are_serialized_origins_without_path_or_slash() {
        let cases = [
            (
                "https://app.example/",
                CorsError::TrailingSlash {
                    origin: "https://app.example/".into(),
                    expected: "https://app.example".into(),
                },
                "`https://app.example/` ends with `/`: browsers send origins without it, \
                 write `https://app.example`",
            ),
            (
                "https://app.example/mcp",
                CorsError::HasPath {
                    origin: "https://app.example/mcp".into(),
                    expected: "https://app.example".into(),
                },
                "`https://app.example/mcp` has a path, query or fragment: an origin is \
                 `scheme://host[:port]` only, write `https://app.example`",
            ),
            (
                "https://app.example?x",
                CorsError::HasPath {
                    origin: "https://app.example?x".into(),
                    expected: "https://app.example".into(),
                },
                "`https://app.example?x` has a path, query or fragment: an origin is \
                 `scheme://host[:port]` only, write `https://app.example`",
            ),
            (
                " https://app.example",
                CorsError::Whitespace {
                    origin: " https://app.example".into(),
                },
                "\" https://app.example\" contains whitespace or a control character: \
                 write `scheme://host[:port]`",
            ),
            (
                "https://app.example\n",
                CorsError::Whitespace {
                    origin: "https://app.example\n".into(),
                },
                "\"https://app.example\\n\" contains whitespace or a control character: \
                 write `scheme://host[:port]`",
            ),
            (
                "https://App.Example:443",
                CorsError::NotSerialized {
                    origin: "https://App.Example:443".into(),
                    expected: "https://app.example".into(),
                },
                "`https://App.Example:443` is not written as browsers send it: write \
                 `https://app.example`",
            ),
            (
                "http://app.example",
                CorsError::InsecureHttp {
                    origin: "http://app.example".into(),
                },
                "`http://app.example` uses http on a non-loopback host: use https (http is \
                 only allowed for localhost, 127.0.0.0/8 and ::1)",
            ),
            (
                "chrome-extension://abc",
                CorsError::UnsupportedScheme {
                    origin: "chrome-extension://abc".into(),
                    scheme: "chrome-extension".into(),
                },
                "`chrome-extension://abc` uses the `chrome-extension` scheme: only https (or \
                 http on a loopback host) is allowed",
            ),
            (
                "https://user@app.example",
                CorsError::HasCredentials {
                    origin: "https://user@app.example".into(),
                    expected: "https://app.example".into(),
                },
                "`https://user@app.example` carries credentials (`user:password@`): write \
                 `https://app.example`",
            ),
            (
                "app.example",
                CorsError::NotAnOrigin {
                    origin: "app.example".into(),
                    reason: "relative URL without a base".into(),
                },
                "`app.example` is not an origin (relative URL without a base): write \
                 `scheme://host[:port]`, e.g. `https://app.example`",
            ),
        ];
        for (origin, error, message) in cases {
            let refusal = refused(origin);
            assert_eq!(refusal, error, "{origin}");
            assert_eq!(refusal.to_string(), message, "{origin}");
        }
    }

    #[test]
    fn serialized_origins_are_accepted_once_each() {
        let cors = mcp_cors([
            "https://app.example",
            "https://app.example:8443",
            "http://127.0.0.1:5173",
            "http://localhost:6274",
            "http://[::1]:3000",
            "https://app.example",
        ])
        .unwrap();
        assert_eq!(
            cors.origins().collect::<Vec<_>>(),
            [
                "https://app.example",
                "https://app.example:8443",
                "http://127.0.0.1:5173",
                "http://localhost:6274",
                "http://[::1]:3000",
            ]
        );
    }

    /// A route that answers 401 with a challenge unless it sees a token, like the bearer layer.
    fn app(cors: McpCors) -> Router {
        Router::new()
            .route(
                "/mcp",
                post(|| async { "ok" }).options(|| async { "handler ran" }),
            )
            .route_layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    if request.headers().contains_key(header::AUTHORIZATION) {
                        next.run(request).await
                    } else {
                        let mut refusal = Response::new(Body::empty());
                        *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                        refusal.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static("Bearer resource_metadata=\"x\""),
                        );
                        refusal
                    }
                },
            ))
            .layer(cors)
    }

    async fn send(app: Router, request: http::request::Builder) -> Response<Body> {
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn cors_headers(response: &Response<Body>) -> Vec<String> {
        response
            .headers()
            .keys()
            .map(|name| name.as_str().to_owned())
            .filter(|name| name.starts_with("access-control-"))
            .collect()
    }

    fn preflight(origin: &str) -> http::request::Builder {
        Request::options("/mcp")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type,mcp-protocol-version",
            )
    }

    #[tokio::test]
    async fn a_preflight_from_a_listed_origin_is_answered_without_a_token() {
        let cors = mcp_cors(["https://app.example", "http://127.0.0.1:5173"]).unwrap();
        let answer = send(app(cors), preflight("http://127.0.0.1:5173")).await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        let headers = answer.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "http://127.0.0.1:5173"
        );
        assert_eq!(
            headers["access-control-allow-methods"],
            "GET,POST,DELETE,OPTIONS"
        );
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,content-type,accept,mcp-method,mcp-name,mcp-protocol-version,\
             mcp-session-id,last-event-id"
        );
        assert_eq!(headers["access-control-max-age"], "600");
        assert!(!headers.contains_key("access-control-allow-credentials"));
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            headers["vary"],
            "origin, access-control-request-method, access-control-request-headers"
        );
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn the_max_age_can_be_changed() {
        let cors = mcp_cors(["https://app.example"])
            .unwrap()
            .max_age(Duration::from_secs(7200));
        let answer = send(app(cors), preflight("https://app.example")).await;
        assert_eq!(answer.headers()["access-control-max-age"], "7200");
    }

    #[tokio::test]
    async fn other_origins_get_no_cors_headers_and_meet_the_bearer_layer() {
        let cors = mcp_cors(["https://app.example"]).unwrap();
        for origin in ["https://evil.example", "https://app.example.evil", "null"] {
            let answer = send(app(cors.clone()), preflight(origin)).await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{origin}");
            assert_eq!(cors_headers(&answer), Vec::<String>::new(), "{origin}");
            assert_eq!(
                answer.headers()["vary"],
                "origin, access-control-request-method, access-control-request-headers"
            );

            let request = Request::post("/mcp").header(header::ORIGIN, origin);
            let answer = send(app(cors.clone()), request).await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{origin}");
            assert_eq!(cors_headers(&answer), Vec::<String>::new(), "{origin}");
        }
        // No Origin at all (a server-side client): untouched.
        let answer = send(
            app(cors),
            Request::post("/mcp").header("authorization", "t"),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(cors_headers(&answer), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_request_from_a_listed_origin_can_read_the_challenge() {
        let cors = mcp_cors(["https://app.example"]).unwrap();
        let request = Request::post("/mcp").header(header::ORIGIN, "https://app.example");
        let answer = send(app(cors.clone()), request).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let headers = answer.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example"
        );
        assert_eq!(
            headers["access-control-expose-headers"],
            "www-authenticate,mcp-session-id"
        );
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer resource_metadata=\"x\""
        );
        assert!(!headers.contains_key("access-control-allow-methods"));

        let request = Request::post("/mcp")
            .header(header::ORIGIN, "https://app.example")
            .header(header::AUTHORIZATION, "t");
        let answer = send(app(cors), request).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn an_options_request_that_is_no_preflight_reaches_the_routes_authenticated() {
        let cors = mcp_cors(["https://app.example"]).unwrap();
        let request = Request::options("/mcp").header(header::ORIGIN, "https://app.example");
        let answer = send(app(cors.clone()), request).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(cors_headers(&answer), Vec::<String>::new());
        let request = Request::options("/mcp")
            .header(header::ORIGIN, "https://app.example")
            .header(header::AUTHORIZATION, "t");
        let answer = send(app(cors), request).await;
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"handler ran");
    }
}
