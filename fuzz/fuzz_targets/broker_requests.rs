//! Authorization and token requests through a real broker's router (memory store, configured
//! clients, client metadata documents off, an identity provider that is never reached):
//! `GET /authorize?…`, `POST /token` and `POST /register` as a client or browser sends them.
//!
//! Input: a selector byte, then (0) the authorization request's query string (bytes outside
//! RFC 3986's query characters percent-encoded), (1) a token request's form body, (2) a token
//! request whose `Content-Type` is the first line and whose body is the rest, sent with
//! `Authorization: Basic …` when the selector's bit 2 is set, (3) a registration body.
//!
//! Invariants (RFC 6749 §4.1.2.1, §5.2, RFC 7636, RFC 9207, reference §2 and §5), with
//! parameters read by `mcpauth_fuzz::broker::form_pairs`:
//! - never a 500; a 503 carries `Retry-After`;
//! - authorization: a repeated parameter is refused with a page (400), never a redirect; a
//!   redirect goes either to the consent page (only for a configured client, a redirect URI it
//!   registered — by reference §5's matching —, `response_type=code`, an S256 `code_challenge`
//!   of 43 base64url characters) or back to the client: then only to a redirect URI that
//!   matches one the client registered (or its only one, when none is named), keeping its
//!   query, adding `error`, the client's `state` when sent, and `iss` = the issuer once;
//! - token: always a JSON RFC 6749 §5.2 error here (no code can be guessed) with
//!   `Cache-Control: no-store`: 401 `invalid_client` for an unknown client or client
//!   credentials, 400 `invalid_request` for a body that is not a form or repeats a parameter;
//! - registration: 201 only for a public client (`token_endpoint_auth_method` `none`, no
//!   secret), with the redirect URIs it sent.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use mcpauth::broker::{Broker, MemoryStore, Upstream};
use mcpauth_fuzz::body_json;
use mcpauth_fuzz::broker::{first_repeated, form_pairs, redirect_uri_matches};
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:9";
/// The configured clients and their redirect URIs.
const CLIENTS: [(&str, &[&str]); 2] = [
    (
        "app",
        &[
            "http://localhost/cb",
            "https://app.example/cb?x=1",
            "cursor://app/cb",
        ],
    ),
    ("web", &["https://web.example/callback"]),
];
const TOKEN_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

struct Setup {
    runtime: Runtime,
    router: Router,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut builder = Broker::builder(ISSUER)
            .resource(format!("{ISSUER}/mcp"), ["read", "write"])
            .upstream(Upstream::oauth(
                "http://127.0.0.1:9/upstream/authorize",
                "http://127.0.0.1:9/upstream/token",
                "http://127.0.0.1:9/upstream/userinfo",
                "broker",
            ))
            .store(MemoryStore::new())
            .without_client_metadata_documents()
            .registration_limits(100, 1000);
        for (id, uris) in CLIENTS {
            builder = builder.client(id, uris.iter().copied(), Some(id));
        }
        let broker = runtime.block_on(builder.build()).expect("broker");
        Setup {
            router: broker.router(),
            runtime,
        }
    })
}

/// `bytes` with everything but RFC 3986 query characters (and `%`) percent-encoded.
fn query_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_authorize(query: &str, response: http::Response<Body>) {
    let status = response.status();
    let pairs = form_pairs(query.as_bytes());
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("a Location is text").to_owned());
    if first_repeated(&pairs).is_some() {
        assert_eq!(status, StatusCode::BAD_REQUEST, "a repeated parameter");
        assert_eq!(location, None, "a repeated parameter was redirected");
        return;
    }
    let Some(location) = location else {
        return;
    };
    assert_eq!(status, StatusCode::SEE_OTHER, "redirects are 303");
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (_, registered) = CLIENTS
        .iter()
        .find(|(id, _)| Some(*id) == param("client_id"))
        .unwrap_or_else(|| panic!("a redirect for an unknown client: {location}"));
    let target = match param("redirect_uri") {
        Some(requested) => {
            assert!(
                registered
                    .iter()
                    .any(|r| redirect_uri_matches(r, requested)),
                "redirected for the unregistered {requested:?}: {location}"
            );
            requested
        }
        None => {
            assert_eq!(registered.len(), 1, "no redirect_uri among several");
            registered[0]
        }
    };
    if location.starts_with("/consent?transaction=") {
        assert_eq!(param("response_type"), Some("code"));
        assert_eq!(param("code_challenge_method"), Some("S256"));
        let challenge = param("code_challenge").unwrap_or_default();
        assert!(
            challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "challenge {challenge:?}"
        );
        return;
    }
    let sent = url::Url::parse(&location).expect("an absolute redirect");
    let expected = url::Url::parse(target).expect("a registered URI parses");
    assert_eq!(
        (sent.scheme(), sent.host_str(), sent.port(), sent.path()),
        (
            expected.scheme(),
            expected.host_str(),
            expected.port(),
            expected.path()
        ),
        "redirected elsewhere than {target:?}: {location}"
    );
    let own = expected.query().unwrap_or_default();
    assert!(
        sent.query().unwrap_or_default().starts_with(own),
        "the redirect URI's own query was not kept: {location}"
    );
    let added: Vec<(String, String)> = sent.query_pairs().into_owned().collect();
    let count = |name: &str| added.iter().filter(|(n, _)| n == name).count();
    assert_eq!(count("iss"), 1, "{location}");
    assert!(added.contains(&("iss".into(), ISSUER.into())), "{location}");
    assert_eq!(count("error"), 1, "{location}");
    match param("state") {
        Some(state) => assert!(
            added.contains(&("state".into(), state.into())),
            "{location}"
        ),
        None => assert_eq!(count("state"), 0, "{location}"),
    }
}

fn check_token(body: &[u8], form: bool, credentials: bool, response: http::Response<Body>) {
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let json = body_json(response);
    let error = json["error"].as_str().expect("an error code");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return;
    }
    assert!(TOKEN_ERRORS.contains(&error), "{error}");
    assert_eq!(
        status == StatusCode::UNAUTHORIZED,
        error == "invalid_client"
    );
    assert!(matches!(status.as_u16(), 400 | 401), "{status}");
    if !form {
        assert_eq!((status.as_u16(), error), (400, "invalid_request"));
        return;
    }
    let pairs = form_pairs(body);
    if first_repeated(&pairs).is_some() {
        assert_eq!(
            (status.as_u16(), error),
            (400, "invalid_request"),
            "a repeat"
        );
        return;
    }
    let client = pairs
        .iter()
        .find(|(n, _)| n == "client_id")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    if credentials || !CLIENTS.iter().any(|(id, _)| Some(*id) == client) {
        assert_eq!((status.as_u16(), error), (401, "invalid_client"));
    }
}

fn check_register(body: &[u8], response: http::Response<Body>) {
    let status = response.status();
    if status != StatusCode::CREATED {
        assert!(matches!(status.as_u16(), 400 | 413 | 429 | 503), "{status}");
        return;
    }
    let json = body_json(response);
    assert_eq!(json["token_endpoint_auth_method"], "none");
    assert!(json.get("client_secret").is_none(), "{json}");
    let sent: Value = serde_json::from_slice(body).expect("a registered body is JSON");
    let mut uris: Vec<&Value> = Vec::new();
    for uri in sent["redirect_uris"].as_array().expect("redirect_uris") {
        if !uris.contains(&uri) {
            uris.push(uri);
        }
    }
    assert_eq!(
        json["redirect_uris"]
            .as_array()
            .map(|a| a.iter().collect::<Vec<_>>()),
        Some(uris)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let send = |request: Request<Body>| {
        let response = setup
            .runtime
            .block_on(setup.router.clone().oneshot(request))
            .expect("the router is infallible");
        assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                response.headers().contains_key(header::RETRY_AFTER),
                "503 without Retry-After"
            );
        }
        response
    };
    match selector % 4 {
        0 => {
            let query = query_text(rest);
            let Ok(request) = Request::get(format!("/authorize?{query}")).body(Body::empty())
            else {
                return;
            };
            check_authorize(&query, send(request));
        }
        1 | 2 => {
            let (content_type, body) = if selector % 4 == 1 {
                ("application/x-www-form-urlencoded".as_bytes(), rest)
            } else {
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                (&rest[..end], rest.get(end + 1..).unwrap_or_default())
            };
            let Ok(content_type) = http::HeaderValue::from_bytes(content_type) else {
                return;
            };
            let form = content_type.to_str().is_ok_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
            let credentials = selector & 4 != 0;
            let mut request = Request::post("/token").header(header::CONTENT_TYPE, content_type);
            if credentials {
                request = request.header(header::AUTHORIZATION, "Basic YXBwOnNlY3JldA==");
            }
            let request = request.body(Body::from(body.to_vec())).expect("request");
            check_token(body, form, credentials, send(request));
        }
        _ => {
            let request = Request::post("/register")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(rest.to_vec()))
                .expect("request");
            check_register(rest, send(request));
        }
    }
});
