//! The `notes` binary with `MCP_CORS_ORIGINS`: preflights from the listed origins are answered
//! without a token, those pages can read the challenges, other origins get no CORS header, and
//! a bad origin is a one-line start-up failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const APP: &str = "https://app.example";
const LOCAL_APP: &str = "http://127.0.0.1:5173";
const ALLOWED_HEADERS: &str = "authorization,content-type,accept,mcp-method,mcp-name,\
                               mcp-protocol-version,mcp-session-id,last-event-id";

fn notes(cors_origins: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_notes"));
    for name in [
        "MCP_AUTH_ISSUER",
        "MCP_AUTH_ISSUER_TYPE",
        "MCP_RESOURCE_IDENTIFIER",
        "MCP_CORS_ORIGINS",
        "BIND",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.env("PORT", "0").env("RUST_BACKTRACE", "1");
    if let Some(origins) = cors_origins {
        command.env("MCP_CORS_ORIGINS", origins);
    }
    command
}

/// A running `notes` (with its development authorization server): its URL and a token for it.
struct Running {
    child: Child,
    url: String,
    token: String,
    lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `notes` and reads its start-up lines (`count` of them).
fn start(cors_origins: Option<&str>, count: usize) -> Running {
    let mut child = notes(cors_origins)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let lines: Vec<String> = (0..count)
        .map(|_| stdout.next().unwrap().unwrap())
        .collect();
    std::thread::spawn(move || stdout.for_each(drop));
    let addr = lines[0]
        .strip_prefix("notes: listening on http://")
        .unwrap_or_else(|| panic!("{}", lines[0]));
    let token = lines[5]
        .strip_prefix("export TOKEN=")
        .unwrap_or_else(|| panic!("{}", lines[5]))
        .to_owned();
    Running {
        url: format!("http://{addr}/notes"),
        token,
        child,
        lines,
    }
}

async fn preflight(url: &str, origin: &str, method: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

/// The CORS headers that let a page read a response or send a request: `Access-Control-Allow-*`
/// and `Access-Control-Max-Age`. (The bearer layer's own `Access-Control-Expose-Headers` on a
/// challenge grants nothing without `Access-Control-Allow-Origin`.)
fn cors_grants(headers: &HeaderMap) -> Vec<&str> {
    headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| {
            name.starts_with("access-control-allow-") || *name == "access-control-max-age"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_get_preflights_answered_and_can_read_challenges() {
    let running = tokio::task::spawn_blocking(|| start(Some(&format!("{APP}, {LOCAL_APP}")), 8))
        .await
        .unwrap();
    assert_eq!(
        running.lines[7],
        format!("notes: CORS for {APP} {LOCAL_APP}")
    );
    let url = &running.url;

    // The preflight, for either listed origin: 204, no token needed.
    for origin in [APP, LOCAL_APP] {
        let answer = preflight(url, origin, "POST").await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT, "{origin}");
        let headers = answer.headers();
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert_eq!(
            headers["access-control-allow-methods"],
            "GET,POST,DELETE,OPTIONS"
        );
        assert_eq!(headers["access-control-allow-headers"], ALLOWED_HEADERS);
        assert_eq!(headers["access-control-max-age"], "600");
        assert!(!headers.contains_key("access-control-allow-credentials"));
        assert!(!headers.contains_key("www-authenticate"));
        assert!(answer.bytes().await.unwrap().is_empty());
    }

    // The request itself, without a token: the challenge, readable by the page.
    let anonymous = reqwest::Client::new()
        .get(url)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let headers = anonymous.headers();
    assert_eq!(headers["access-control-allow-origin"], APP);
    assert_eq!(
        headers["access-control-expose-headers"],
        "www-authenticate,mcp-session-id"
    );
    let metadata = url.replace("/notes", "/.well-known/oauth-protected-resource/notes");
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer resource_metadata=\"{metadata}\", scope=\"read:notes\"").as_str()
    );

    // With the token: the notes, readable by the page.
    let created = reqwest::Client::new()
        .post(url)
        .header("origin", LOCAL_APP)
        .bearer_auth(&running.token)
        .json(&json!({"text": "from a web page"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["access-control-allow-origin"], LOCAL_APP);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["note"]["text"], "from a web page");

    // The metadata, from a listed origin: the listed origin is named instead of `*`.
    let document = reqwest::Client::new()
        .get(&metadata)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), StatusCode::OK);
    assert_eq!(document.headers()["access-control-allow-origin"], APP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_get_no_cors_headers() {
    let running = tokio::task::spawn_blocking(|| start(Some(APP), 8))
        .await
        .unwrap();
    let url = &running.url;
    for origin in [
        "https://evil.example",
        "https://app.example:8443",
        "http://app.example",
        "null",
    ] {
        // Not answered as a preflight: `/notes` has no OPTIONS route.
        let answer = preflight(url, origin, "POST").await;
        assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED, "{origin}");
        assert_eq!(
            cors_grants(answer.headers()),
            Vec::<&str>::new(),
            "{origin}"
        );

        // The request is served (a browser would not let the page read it), without CORS.
        let listed = reqwest::Client::new()
            .get(url)
            .header("origin", origin)
            .bearer_auth(&running.token)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{origin}");
        assert_eq!(
            cors_grants(listed.headers()),
            Vec::<&str>::new(),
            "{origin}"
        );

        let anonymous = reqwest::Client::new()
            .get(url)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{origin}");
        assert_eq!(
            cors_grants(anonymous.headers()),
            Vec::<&str>::new(),
            "{origin}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origins_there_is_no_cors() {
    let running = tokio::task::spawn_blocking(|| start(None, 7))
        .await
        .unwrap();
    let answer = preflight(&running.url, APP, "GET").await;
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(cors_grants(answer.headers()), Vec::<&str>::new());
    let anonymous = reqwest::Client::new()
        .get(&running.url)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cors_grants(anonymous.headers()), Vec::<&str>::new());
}

#[test]
fn a_bad_cors_origin_is_one_line_and_exit_status_1() {
    let cases = [
        (
            "*",
            "notes: error: MCP_CORS_ORIGINS=\"*\" is invalid: `*`: wildcards are not allowed for \
             protected routes; list each origin (e.g. `https://app.example`)",
        ),
        (
            "https://app.example/",
            "notes: error: MCP_CORS_ORIGINS=\"https://app.example/\" is invalid: \
             `https://app.example/` ends with `/`: browsers send origins without it, write \
             `https://app.example`",
        ),
        (
            "https://app.example,https://app.example/notes",
            "notes: error: MCP_CORS_ORIGINS=\"https://app.example,https://app.example/notes\" is \
             invalid: `https://app.example/notes` has a path, query or fragment: an origin is \
             `scheme://host[:port]` only, write `https://app.example`",
        ),
        (
            "https://app .example",
            "notes: error: MCP_CORS_ORIGINS=\"https://app .example\" is invalid: \
             \"https://app .example\" contains whitespace or a control character: write \
             `scheme://host[:port]`",
        ),
        (
            ",",
            "notes: error: MCP_CORS_ORIGINS=\",\" is invalid: no allowed origin: list the \
             origins of the web pages that call this server (e.g. `https://app.example`), or \
             leave the CORS layer out",
        ),
    ];
    for (origins, expected) in cases {
        let output = notes(Some(origins)).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{origins}");
        assert_eq!(
            String::from_utf8(output.stderr).unwrap(),
            format!("{expected}\n"),
            "{origins}"
        );
        assert!(output.stdout.is_empty());
    }
}
