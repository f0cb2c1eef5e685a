//! Pieces the identity-provider stand-ins share: client authentication, PKCE, random values,
//! redirects and OAuth error bodies.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use url::Url;

/// The client credentials of a token request: HTTP Basic (form-decoded, RFC 6749 §2.3.1), else
/// the form.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|credentials| STANDARD.decode(credentials.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (decode(id), decode(secret)))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    }
}

/// Whether `verifier` is the one `challenge` (S256) was made from.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())) == challenge
}

/// `bytes` random bytes, base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).unwrap();
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A 302 to `target` with `params` added to its query.
pub fn redirect_to(target: &str, params: &[(&str, &str)]) -> Response {
    let mut target = Url::parse(target).unwrap();
    target.query_pairs_mut().extend_pairs(params);
    Redirect::to(target.as_str()).into_response()
}

/// An OAuth error answer of the token endpoint.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: String,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        (self.status, Json(body)).into_response()
    }
}

/// An OAuth error answer of the token endpoint.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error: error.to_owned(),
        description: description.to_owned(),
    }
}

/// The scopes of a space-separated `scope` parameter, in order, each once.
pub fn scopes_of(scope: Option<&String>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in scope.map(String::as_str).unwrap_or_default().split(' ') {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}
