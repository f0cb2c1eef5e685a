//! An identity provider's answer to the broker's code exchange (`UpstreamClient::exchange`:
//! the token request, reading the answer as JSON or form-encoded, then identifying the user),
//! over loopback HTTP from a stand-in provider that answers what the input says.
//!
//! Input: a flag byte (bit 0: the GitHub preset, whose `scope` is comma-separated and whose
//! user is `/user`'s numeric `id`; else a plain OAuth 2.0 provider with a userinfo `sub`), a
//! status byte (one of 200, 201, 400, 401, 403, 404, 429, 302, 500, 502, 503), a content-type
//! byte (JSON, form-encoded, each with and without `charset`, `text/plain`, upper-case JSON,
//! none, or the input's first line), then the token answer's body.
//!
//! Invariants, against a model of RFC 6749 §5.1/§5.2 and the providers' known quirks written
//! here (form bodies read by `mcpauth_fuzz::broker::form_pairs`, JSON by `serde_json`):
//! - no panic, an answer within the time bound;
//! - a 5xx answer is `unavailable` whatever its body; so is a body that is neither a JSON
//!   object nor (for a form-encoded content type, case-insensitive, parameters aside) a form
//!   without repeated names;
//! - an `error` string member is `refused` with that code and the `error_description` string;
//! - otherwise a status other than 2xx is `unavailable`; a missing or empty `access_token` is
//!   `invalid`, and so is one that is not RFC 6749 §A.12's `1*VSCHAR`;
//! - an accepted answer yields exactly its `access_token`, its `refresh_token` and
//!   `id_token` strings, its `scope` (GitHub's commas read as separators), expiries `expires_in`
//!   / `refresh_token_expires_in` seconds from now (a non-negative integer, or a string of
//!   digits), and the user the provider names.
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::{ExchangeError, ExchangedTokens, UpstreamExchange};
use mcpauth::broker::Upstream;
use mcpauth_fuzz::broker::{first_repeated, form_pairs};
use serde_json::{Map, Value};
use tokio::runtime::Runtime;

const STATUSES: [u16; 11] = [200, 201, 400, 401, 403, 404, 429, 302, 500, 502, 503];
const CONTENT_TYPES: [&str; 7] = [
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "text/plain",
    "Application/JSON",
    "",
];

/// What the stand-in provider's token endpoint answers next.
static ANSWER: Mutex<(u16, String, Vec<u8>)> = Mutex::new((200, String::new(), Vec::new()));

struct Setup {
    runtime: Runtime,
    generic: UpstreamExchange,
    github: UpstreamExchange,
}

async fn token_answer() -> Response {
    let (status, content_type, body) = ANSWER.lock().expect("answer").clone();
    let status = StatusCode::from_u16(status).expect("status");
    let mut response = (status, body).into_response();
    response.headers_mut().remove(header::CONTENT_TYPE);
    if !content_type.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            content_type.parse().expect("a visible-ASCII content type"),
        );
    }
    response
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = Runtime::new().expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/token", post(token_answer))
            .route("/login/oauth/access_token", post(token_answer))
            .route(
                "/userinfo",
                get(|| async { axum::Json(serde_json::json!({"sub": "user-1"})) }),
            )
            .route(
                "/api/user",
                get(|| async { axum::Json(serde_json::json!({"id": 42})) }),
            );
        runtime.spawn(async move { axum::serve(listener, app).await });
        let generic = Upstream::oauth(
            format!("{base}/authorize"),
            format!("{base}/token"),
            format!("{base}/userinfo"),
            "broker-client",
        );
        let github = Upstream::github("broker-client")
            .client_secret("broker-secret")
            .github_base_urls(&base, format!("{base}/api"));
        Setup {
            generic: UpstreamExchange::new(generic).expect("generic upstream"),
            github: UpstreamExchange::new(github).expect("GitHub upstream"),
            runtime,
        }
    })
}

/// RFC 6749 §5.1 `expires_in`: seconds as a non-negative integer; a string of digits (an
/// optional `+` first) is the quirk of form-encoded answers.
fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let digits = s.strip_prefix('+').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.bytes().try_fold(0u64, |n, b| {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })
        }
        _ => None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The members of the answer, or `None` when it is unreadable.
fn members(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/x-www-form-urlencoded" {
        let pairs = form_pairs(body);
        if first_repeated(&pairs).is_some() {
            return None;
        }
        return Some(
            pairs
                .into_iter()
                .map(|(n, v)| (n, Value::String(v)))
                .collect(),
        );
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(members)) => Some(members),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, status, content_type, rest @ ..] = data else {
        return;
    };
    let github = flags & 1 != 0;
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let (content_type, body) = match usize::from(*content_type) % (CONTENT_TYPES.len() + 1) {
        i if i < CONTENT_TYPES.len() => (CONTENT_TYPES[i].to_owned(), rest),
        _ => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = &rest[..end];
            if !line.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
                return;
            }
            let line = String::from_utf8_lossy(line).trim_matches(' ').to_owned();
            (line, rest.get(end + 1..).unwrap_or_default())
        }
    };
    *ANSWER.lock().expect("answer") = (status, content_type.clone(), body.to_vec());

    let setup = setup();
    let upstream = if github {
        &setup.github
    } else {
        &setup.generic
    };
    let before = now();
    let result = setup.runtime.block_on(upstream.exchange("the-code"));
    let after = now();

    let unavailable = |why: &str| {
        assert!(
            matches!(result, Err(ExchangeError::Unavailable(_))),
            "{why}: expected unavailable, got {result:?}"
        );
    };
    if status >= 500 {
        return unavailable("a 5xx answer");
    }
    let Some(members) = members(&content_type, body) else {
        return unavailable("an unreadable body");
    };
    let text = |name: &str| members.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(code) = text("error") {
        assert_eq!(
            result,
            Err(ExchangeError::Refused(code, text("error_description"))),
            "an OAuth error answer"
        );
        return;
    }
    if !(200..300).contains(&status) {
        return unavailable("a status other than 2xx");
    }
    // RFC 6749 §A.12: access-token = 1*VSCHAR (what an `Authorization` header can carry).
    let vschar = |t: &String| !t.is_empty() && t.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let Some(access_token) = text("access_token").filter(vschar) else {
        assert!(
            matches!(result, Err(ExchangeError::Invalid(_))),
            "no access token: expected invalid, got {result:?}"
        );
        return;
    };
    let tokens: ExchangedTokens = result.expect("a valid answer was refused");
    assert_eq!(tokens.access_token, access_token);
    assert_eq!(tokens.refresh_token, text("refresh_token"));
    assert_eq!(tokens.id_token, text("id_token"));
    let scope = text("scope").map(|scope| {
        if github {
            scope
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            scope
        }
    });
    assert_eq!(tokens.scope, scope);
    for (name, at) in [
        ("expires_in", tokens.expires_at),
        ("refresh_token_expires_in", tokens.refresh_expires_at),
    ] {
        match seconds(members.get(name)) {
            None => assert_eq!(at, None, "{name}"),
            Some(s) => {
                let at = at.unwrap_or_else(|| panic!("{name} {s} was dropped"));
                assert!(
                    (before.saturating_add(s)..=after.saturating_add(s)).contains(&at),
                    "{name} {s} read as {at}"
                );
            }
        }
    }
    assert_eq!(tokens.user_id, if github { "42" } else { "user-1" });
});
