//! A bounded HTTP client for the documents this crate fetches (authorization-server metadata,
//! and key sets): https unless loopback, connect and overall timeouts, a maximum response size,
//! redirects followed only within the same origin, and errors that name the URL and the reason.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;
use url::Url;

use mcpauth_rules::url::{self as url_rules, UrlError};

/// Default time allowed to establish a connection.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for a whole request, body included.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default maximum size of a response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How many same-origin redirects are followed before giving up.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Why a document could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL breaks the URL rules (not absolute, not https on a remote host, …).
    #[error("refusing to fetch: {0}")]
    InvalidUrl(#[from] UrlError),
    /// The HTTP client could not be built (TLS initialisation failed).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] TransportError),
    /// Nothing answered in time.
    #[error("{method} {url} failed: no complete answer within {timeout:?}")]
    Timeout {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// The overall timeout in force.
        timeout: Duration,
    },
    /// The connection failed or broke.
    #[error("{method} {url} failed: {reason}")]
    Connection {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// What went wrong, as the HTTP client said it.
        reason: String,
        /// The underlying error.
        #[source]
        source: TransportError,
    },
    /// The server redirected to another origin (or too many times).
    #[error("{method} {url} failed: {reason}")]
    Redirect {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// Where it redirected and why that was refused.
        reason: String,
    },
    /// The server answered with a status other than 2xx.
    #[error("{method} {url} failed: HTTP status {status}")]
    Status {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// The status it answered with.
        status: http::StatusCode,
    },
    /// The body exceeded the size bound.
    #[error("{method} {url} failed: the response is larger than the {limit}-byte limit")]
    TooLarge {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// The bound in force.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("{method} {url} failed: the response is not JSON ({reason})")]
    NotJson {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// The parser's complaint, with the content type.
        reason: String,
    },
    /// The body is JSON but not a JSON object.
    #[error("{method} {url} failed: the response is a JSON {found}, not a JSON object")]
    NotObject {
        /// The request method.
        method: http::Method,
        /// The URL requested.
        url: String,
        /// What it is instead (`array`, `string`, …).
        found: &'static str,
    },
}

/// The limits a [`BoundedClient`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A fetched JSON document with the response headers (for caching decisions).
#[derive(Debug)]
pub(crate) struct FetchedJson {
    pub(crate) value: Value,
    pub(crate) headers: HeaderMap,
}

/// The redirect refusal reqwest carries back to us as an error source.
#[derive(Debug)]
struct RefusedRedirect(String);

impl fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedRedirect {}

/// An error of the HTTP client underneath, kept opaque so that its type is not part of this
/// crate's API: read it through `Display` and [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct TransportError(Arc<reqwest::Error>);

impl TransportError {
    fn new(error: reqwest::Error) -> Self {
        Self(Arc::new(error))
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// An HTTP client that enforces [`Limits`] and the URL rules.
#[derive(Clone)]
pub(crate) struct BoundedClient {
    client: Result<reqwest::Client, TransportError>,
    limits: Limits,
}

impl fmt::Debug for BoundedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedClient")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl BoundedClient {
    pub(crate) fn new(limits: Limits) -> Self {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let Some(first) = attempt.previous().first() else {
                return attempt.follow();
            };
            if attempt.previous().len() > MAX_REDIRECTS {
                let reason = format!("more than {MAX_REDIRECTS} redirects");
                return attempt.error(RefusedRedirect(reason));
            }
            if !url_rules::same_origin(first, attempt.url()) {
                let reason = format!(
                    "redirected to another origin ({}); only same-origin redirects are followed",
                    attempt.url()
                );
                return attempt.error(RefusedRedirect(reason));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .redirect(redirects)
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TransportError::new);
        Self { client, limits }
    }

    /// GETs `url` and parses the body as a JSON object, within the limits.
    pub(crate) async fn get_json_object(&self, url: &Url) -> Result<FetchedJson, FetchError> {
        self.json_object(http::Method::GET, url, |request| request)
            .await
    }

    /// Sends a `method` request to `url` (shaped by `configure`: headers, a form…) and parses
    /// the answer as a JSON object, within the limits and the URL rules.
    pub(crate) async fn json_object(
        &self,
        method: http::Method,
        url: &Url,
        configure: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<FetchedJson, FetchError> {
        url_rules::parse_secure_url(url.as_str())?;
        let client = self
            .client
            .as_ref()
            .map_err(|e| FetchError::Client(e.clone()))?;
        let url_text = url.to_string();
        tracing::debug!(%method, url = %url_text, "fetching");
        let request = client
            .request(method.clone(), url.clone())
            .header(http::header::ACCEPT, "application/json");
        let mut response = configure(request)
            .send()
            .await
            .map_err(|error| self.request_error(&method, &url_text, error))?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                method,
                url: url_text,
                status: response.status(),
            });
        }
        let limit = self.limits.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(FetchError::TooLarge {
                method,
                url: url_text,
                limit,
            });
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.request_error(&method, &url_text, error))?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge {
                    method,
                    url: url_text,
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let value: Value = serde_json::from_slice(&body).map_err(|error| {
            let content_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            FetchError::NotJson {
                method: method.clone(),
                url: url_text.clone(),
                reason: format!("{error}; content type: {content_type}"),
            }
        })?;
        if !value.is_object() {
            return Err(FetchError::NotObject {
                method,
                url: url_text,
                found: json_kind(&value),
            });
        }
        Ok(FetchedJson { value, headers })
    }

    fn request_error(&self, method: &http::Method, url: &str, error: reqwest::Error) -> FetchError {
        if let Some(refused) = find_source::<RefusedRedirect>(&error) {
            return FetchError::Redirect {
                method: method.clone(),
                url: url.to_owned(),
                reason: refused.0.clone(),
            };
        }
        if error.is_timeout() {
            return FetchError::Timeout {
                method: method.clone(),
                url: url.to_owned(),
                timeout: self.limits.timeout,
            };
        }
        FetchError::Connection {
            method: method.clone(),
            url: url.to_owned(),
            reason: error_chain(&error),
            source: TransportError::new(error),
        }
    }
}

/// The name of a JSON value's kind, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The first error of type `T` in `error`'s source chain.
pub(crate) fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// `error` and its sources joined by `: `, skipping repeats (reqwest's own message often
/// repeats its source's).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}
