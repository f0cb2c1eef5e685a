//! The axum router serving protected-resource metadata documents (RFC 9728), and the response
//! pieces every metadata route shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use url::Url;

use crate::discovery::well_known::OAUTH_PROTECTED_RESOURCE;
use crate::mcp_auth::McpAuth;

const ALLOWED_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const ANY: HeaderValue = HeaderValue::from_static("*");
const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

/// One metadata document and the authority (`host[:port]`) of the resource it describes.
#[derive(Debug)]
struct Document {
    resource: Url,
    body: Bytes,
}

impl Document {
    /// Whether the request's `Host` names this document's resource (ports compared after
    /// defaulting by the resource's scheme; hosts without regard to ASCII case).
    fn matches_host(&self, host: &str) -> bool {
        let (name, port) = split_host(host);
        let Some(resource_host) = self.resource.host_str() else {
            return false;
        };
        let port = match port {
            Some(port) => port.parse::<u16>().ok(),
            None => self.resource.port_or_known_default(),
        };
        name.eq_ignore_ascii_case(resource_host) && port == self.resource.port_or_known_default()
    }
}

/// Splits `host[:port]` (with IPv6 literals in brackets).
fn split_host(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.split_once("]:") {
            Some((name, port)) => (&host[..name.len() + 1], Some(port)),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

fn request_host(request: &Request<Body>) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

fn cors_headers(headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
}

pub(crate) fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    cors_headers(headers);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS);
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ANY);
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
    response
}

pub(crate) fn json_response(
    status: StatusCode,
    body: Bytes,
    cache_control: HeaderValue,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON);
    headers.insert(header::CACHE_CONTROL, cache_control);
    cors_headers(headers);
    response
}

/// The route for one well-known path, serving the document whose resource the request's host
/// names when several resources share the path (a multi-host server).
fn metadata_route<S>(documents: Vec<Document>, cache_control: HeaderValue) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let documents = Arc::new(documents);
    get(move |request: Request<Body>| {
        let documents = documents.clone();
        let cache_control = cache_control.clone();
        async move {
            let document = match documents.as_slice() {
                [only] => Some(only),
                many => request_host(&request)
                    .and_then(|host| many.iter().find(|d| d.matches_host(host))),
            };
            match document {
                Some(document) => {
                    json_response(StatusCode::OK, document.body.clone(), cache_control)
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    })
    .options(|| async { preflight() })
}

/// `Cache-Control` for a metadata document kept `max_age`.
pub(crate) fn max_age_header(max_age: std::time::Duration) -> HeaderValue {
    let seconds = max_age.as_secs();
    HeaderValue::try_from(format!("public, max-age={seconds}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

impl McpAuth {
    /// An axum router serving each protected resource's RFC 9728 metadata.
    ///
    /// Each document is served at `/.well-known/oauth-protected-resource` followed by its
    /// resource's path (`https://api.example.com/notes` →
    /// `/.well-known/oauth-protected-resource/notes`): GET and HEAD answer 200 with
    /// `application/json`, `Cache-Control: public, max-age=…` and
    /// `Access-Control-Allow-Origin: *`; OPTIONS answers a CORS preflight; other methods 405.
    /// Resources on different hosts that share a path are told apart by the `Host` header.
    /// The documents are serialised once, here.
    ///
    /// Merge it into your application's router (it works with any state type).
    pub fn resource_metadata_router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let resources = self.resource_states();
        let mut by_path: BTreeMap<&str, Vec<Document>> = BTreeMap::new();
        for resource in resources {
            let document = || Document {
                resource: resource.url.clone(),
                body: resource.metadata_body.clone(),
            };
            by_path
                .entry(resource.metadata_path.as_str())
                .or_default()
                .push(document());
            if self.inner.metadata_at_root && resource.metadata_path != OAUTH_PROTECTED_RESOURCE {
                by_path
                    .entry(OAUTH_PROTECTED_RESOURCE)
                    .or_default()
                    .push(document());
            }
        }
        let cache_control = max_age_header(self.inner.metadata_max_age);
        by_path
            .into_iter()
            .fold(Router::new(), |router, (path, documents)| {
                router.route(path, metadata_route(documents, cache_control.clone()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_and_match() {
        assert_eq!(split_host("a.com"), ("a.com", None));
        assert_eq!(split_host("a.com:8443"), ("a.com", Some("8443")));
        assert_eq!(split_host("[::1]:3000"), ("[::1]", Some("3000")));
        assert_eq!(split_host("[::1]"), ("[::1]", None));
        let document = Document {
            resource: Url::parse("https://API.example.com/notes").unwrap(),
            body: Bytes::new(),
        };
        assert!(document.matches_host("api.example.com"));
        assert!(document.matches_host("Api.Example.com:443"));
        assert!(!document.matches_host("api.example.com:8443"));
        assert!(!document.matches_host("other.example.com"));
        let loopback = Document {
            resource: Url::parse("http://[::1]:3000/x").unwrap(),
            body: Bytes::new(),
        };
        assert!(loopback.matches_host("[::1]:3000"));
    }
}
