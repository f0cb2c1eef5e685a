//! The `todo-manager` binary with `MCP_CORS_ORIGINS`, over loopback HTTP: preflights to `/mcp`
//! from the listed origins are answered without a token, those pages can read the challenge and
//! the session id, other origins get no CORS header, and the MCP transport's own `Origin` check
//! refuses every other origin on real requests, even with a valid token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use mcpauth::dev::DevAuthServer;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const APP: &str = "https://app.example";
const LOCAL_APP: &str = "http://127.0.0.1:5173";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(issuer: &str, cors_origins: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo-manager"))
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("MCP_AUTH_ISSUER_TYPE")
        .env_remove("BIND")
        .env("PORT", "0")
        .env("MCP_AUTH_ISSUER", issuer)
        .env("MCP_CORS_ORIGINS", cors_origins)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let rest: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    std::thread::spawn(move || lines.for_each(drop));
    assert_eq!(
        rest[2],
        format!("todo-manager: CORS for {}", cors_origins.replace(',', " "))
    );
    let addr = first
        .strip_prefix("todo-manager: listening on http://")
        .unwrap_or_else(|| panic!("{first}"));
    Server {
        url: format!("http://{addr}/mcp"),
        child,
    }
}

async fn deploy() -> (DevAuthServer, Server, String) {
    let dev = DevAuthServer::start().await.unwrap();
    let server = tokio::task::spawn_blocking({
        let issuer = dev.issuer().to_owned();
        move || start(&issuer, &format!("{APP},{LOCAL_APP}"))
    })
    .await
    .unwrap();
    let token = dev
        .token()
        .subject("alice")
        .audience(&server.url)
        .scopes(["read:todos"])
        .sign()
        .unwrap();
    (dev, server, token)
}

/// The CORS headers that let a page read a response or send a request. (The bearer layer's own
/// `Access-Control-Expose-Headers` on a challenge grants nothing without an allowed origin.)
fn cors_grants(headers: &HeaderMap) -> Vec<&str> {
    headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| {
            name.starts_with("access-control-allow-") || *name == "access-control-max-age"
        })
        .collect()
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,mcp-protocol-version,mcp-session-id",
        )
        .send()
        .await
        .unwrap()
}

/// An MCP `initialize` POST from `origin`, with `token` if any.
async fn initialize(url: &str, origin: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("origin", origin)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "cors-test", "version": "1.0.0"}
            }
        }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_from_a_listed_origin_is_answered_without_a_token() {
    let (_dev, server, _) = deploy().await;
    for origin in [APP, LOCAL_APP] {
        let answer = preflight(&server.url, origin).await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT, "{origin}");
        let headers = answer.headers();
        assert_eq!(headers["access-control-allow-origin"], origin);
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
        assert!(!headers.contains_key("www-authenticate"));
        assert!(answer.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_origin_reads_the_challenge_and_the_session_id() {
    let (_dev, server, token) = deploy().await;
    let anonymous = initialize(&server.url, APP, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let headers = anonymous.headers();
    assert_eq!(headers["access-control-allow-origin"], APP);
    assert_eq!(
        headers["access-control-expose-headers"],
        "www-authenticate,mcp-session-id"
    );
    let metadata = server
        .url
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer resource_metadata=\"{metadata}\", scope=\"read:todos\"").as_str()
    );
    // No credentials: no `error` (RFC 6750 §3.1), a description the page can show.
    let body: Value = anonymous.json().await.unwrap();
    assert!(body.get("error").is_none(), "{body}");
    assert!(body["error_description"].is_string(), "{body}");

    // With a token, the MCP transport accepts the listed origin too.
    for origin in [APP, LOCAL_APP] {
        let accepted = initialize(&server.url, origin, Some(&token)).await;
        assert_eq!(accepted.status(), StatusCode::OK, "{origin}");
        let headers = accepted.headers();
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert_eq!(
            headers["access-control-expose-headers"],
            "www-authenticate,mcp-session-id"
        );
        assert!(!headers["mcp-session-id"].is_empty());
        let body = accepted.text().await.unwrap();
        assert!(
            body.contains("\"protocolVersion\":\"2025-11-25\""),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_get_no_cors_headers_and_are_refused_even_with_a_valid_token() {
    let (_dev, server, token) = deploy().await;
    for origin in [
        "https://evil.example",
        "https://app.example:8443",
        "http://127.0.0.1:5174",
        "http://localhost:5173",
        "null",
    ] {
        // The preflight is not answered: it meets the bearer layer like any request.
        let answer = preflight(&server.url, origin).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{origin}");
        assert_eq!(
            cors_grants(answer.headers()),
            Vec::<&str>::new(),
            "{origin}"
        );

        // A real request with a valid token: the MCP transport refuses the origin.
        let refused = initialize(&server.url, origin, Some(&token)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(
            cors_grants(refused.headers()),
            Vec::<&str>::new(),
            "{origin}"
        );
        assert!(!refused.headers().contains_key("mcp-session-id"));
        let body = refused.text().await.unwrap();
        assert!(body.contains("Origin"), "{origin}: {body}");
    }
    // No Origin at all (a native client): served as before.
    let accepted = reqwest::Client::new()
        .post(&server.url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "native", "version": "1.0.0"}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(cors_grants(accepted.headers()), Vec::<&str>::new());
}
