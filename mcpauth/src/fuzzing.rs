//! Internal entry points for the fuzz targets in `fuzz/`; not a public API.
//!
//! Compiled only with the `__fuzzing` feature. Each item is a thin wrapper that hands untrusted
//! bytes to one of the crate's parsers or builders exactly as the request path does, so the
//! targets exercise the real code. Names and signatures here may change in any release.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use url::Url;

use crate::KeyCacheOptions;
use crate::auth_error::AuthError;
use crate::challenge::Challenges;
use crate::http_client::{BoundedClient, Limits};
use crate::jwks::{KeyCache, Lookup, VerificationKeys};
use crate::operations::OperationScopes;

/// The broker's parsers (`broker::__fuzzing`).
#[cfg(feature = "broker")]
pub use crate::broker::__fuzzing as broker;

/// The bearer token of a request's headers (`bearer::bearer_token`), with the header bound
/// `max_len`.
pub fn bearer_token(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    crate::bearer::bearer_token(headers, max_len)
}

/// Decodes JWKS documents as a key cache does when a fetch answers (`KeyCache::decode`).
#[derive(Debug)]
pub struct JwksDecoder {
    cache: Arc<KeyCache>,
}

impl JwksDecoder {
    /// A decoder keeping at most `max_keys` keys of a set (no fetch is ever made).
    pub fn new(max_keys: usize) -> Self {
        let uri = Url::parse("https://auth.example.com/jwks").unwrap_or_else(|_| unreachable!());
        let options = KeyCacheOptions::default().max_keys(max_keys);
        Self {
            cache: KeyCache::new(uri, BoundedClient::new(Limits::default()), None, options),
        }
    }

    /// Decodes `document`, fetched with the response `headers` (`Cache-Control`).
    pub fn decode(&self, document: &Value, headers: &HeaderMap) -> Result<DecodedKeys, String> {
        self.cache.decode(document, headers).map(DecodedKeys)
    }
}

/// A decoded key set.
#[derive(Debug)]
pub struct DecodedKeys(VerificationKeys);

impl DecodedKeys {
    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Whether a token with `kid` signed with `algorithm` finds a key (`VerificationKeys::lookup`).
    pub fn finds(&self, kid: Option<&str>, algorithm: Algorithm) -> bool {
        matches!(self.0.lookup(kid, algorithm), Lookup::Found(_))
    }
}

/// The scopes a request needs for its MCP operation, after `base`
/// (`OperationScopes::required`).
pub fn required_scopes(
    operations: &OperationScopes,
    base: &[String],
    method: &http::Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, AuthError> {
    operations.required(base, method, headers, body)
}

/// A `WWW-Authenticate: Bearer …` value from the parameters present
/// (`challenge::bearer_challenge`).
pub fn bearer_challenge(params: &[(&str, Option<&str>)]) -> HeaderValue {
    crate::challenge::bearer_challenge(params)
}

/// The refusal response a route with this metadata URL and these scopes sends for `error`
/// (`Challenges::new` and `Challenges::response`).
pub fn challenge_response(
    resource_metadata: &str,
    required_scopes: &[String],
    show_details: bool,
    error: &AuthError,
) -> Response<Body> {
    Challenges::new(resource_metadata, required_scopes, show_details).response(error)
}
