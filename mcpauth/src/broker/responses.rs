//! The shapes of the broker's answers: JSON documents, RFC 6749 §5.2 token errors, OAuth error
//! redirects (with `state` and `iss`), and HTML error pages for what must not be redirected.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::BrokerState;
use super::pages;
use super::store::StoreError;

/// `GET /.well-known/oauth-authorization-server{P}`.
pub(crate) async fn metadata(State(state): State<Arc<BrokerState>>) -> Response {
    with_cors(Json(&state.metadata).into_response())
}

/// `GET {P}/jwks`.
pub(crate) async fn jwks(State(state): State<Arc<BrokerState>>) -> Response {
    let mut response = with_cors(Json(state.keys.jwks()).into_response());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Browser-based clients read metadata, keys and the token, registration and revocation
/// answers across origins; none of them depends on cookies.
pub(crate) fn with_cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// A CORS preflight of the JSON endpoints: any origin (they read no cookies), the methods and
/// headers MCP clients send (`MCP-Protocol-Version` on discovery, JSON bodies on registration).
pub(crate) async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, mcp-protocol-version"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    with_cors(response)
}

/// An RFC 6749 §5.2 error from the token, registration or revocation endpoint.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) description: String,
    pub(crate) retry_after: Option<u64>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 401: clients re-register on `invalid_client`, so an unknown client must get it.
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub(crate) fn unavailable(description: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                description,
            )
        }
    }
}

/// Seconds a client or browser is asked to wait after a store failure.
pub(crate) const STORE_RETRY_AFTER: u64 = 5;

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(%error, "broker store failed");
        Self::unavailable(
            "the authorization server's store is unavailable; try again",
            STORE_RETRY_AFTER,
        )
    }
}

impl From<super::secrets::CryptoFailure> for OAuthError {
    fn from(_: super::secrets::CryptoFailure) -> Self {
        tracing::error!("broker cryptography failed");
        Self::unavailable("the authorization server cannot issue tokens now", 5)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = no_store((self.status, Json(body)).into_response());
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 names the scheme the client may authenticate with.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"token\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response = retry_after(response, seconds);
        }
        with_cors(response)
    }
}

/// A successful JSON answer that must not be cached (tokens, registrations).
pub(crate) fn json_no_store(status: StatusCode, body: Value) -> Response {
    with_cors(no_store((status, Json(body)).into_response()))
}

pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An HTML page for an error that cannot be sent to the client (before its redirect URI is
/// known to be its own, or once the browser's request cannot be trusted).
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    pages::page_response(status, pages::error_page(title, detail))
}

/// A 303 to `redirect_uri` with `params` added to its own query, plus `iss` (RFC 9207).
pub(crate) fn redirect_to_client(
    redirect_uri: &str,
    issuer: &str,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The client's redirect URI cannot be used.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        query.append_pair("iss", issuer);
    }
    see_other(url.as_str())
}

/// An OAuth error redirect: `error`, the client's `state` when it sent one, `iss`.
pub(crate) fn error_redirect(
    redirect_uri: &str,
    issuer: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> Response {
    let mut params = vec![("error", code), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_to_client(redirect_uri, issuer, &params)
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => no_store((StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response()),
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect target cannot be sent.",
        ),
    }
}

/// The page for a browser request the store cannot serve now: 503 with `Retry-After`.
pub(crate) fn store_unavailable_page(error: &StoreError) -> Response {
    tracing::warn!(%error, "broker store failed");
    retry_after(
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "The sign-in cannot continue right now.",
        ),
        STORE_RETRY_AFTER,
    )
}

/// Adds `Retry-After: seconds` to a response, written as the bearer layer writes it.
pub(crate) fn retry_after(mut response: Response, seconds: u64) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        crate::challenge::retry_after_value(Duration::from_secs(seconds)),
    );
    response
}

/// The page for a sign-in whose client registration changed while it was under way.
pub(crate) fn registration_changed_page() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Application changed",
        "The application's registration changed during sign-in. Start again from your MCP client.",
    )
}
