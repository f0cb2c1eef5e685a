//! The `notes` binary, run as a newcomer runs it: it starts with no configuration, and every
//! start-up failure is one clear line on standard error and a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const BINARY: &str = env!("CARGO_BIN_EXE_notes");

fn notes(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    for name in [
        "MCP_AUTH_ISSUER",
        "MCP_AUTH_ISSUER_TYPE",
        "MCP_RESOURCE_IDENTIFIER",
        "PORT",
        "BIND",
        "RUST_BACKTRACE",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    // An ephemeral port unless the case says otherwise; backtraces on, so a panic would show.
    command.env("PORT", "0").env("RUST_BACKTRACE", "1");
    command.envs(env.iter().copied());
    command
}

/// The command line a POSIX shell runs for `command` once `export` (a line `notes` prints for
/// pasting) has run: its words, after the shell's expansion and quote removal.
fn pasted(export: &str, command: &str) -> Vec<String> {
    let script = format!("{export}\nset -- {command}\nprintf '%s\\n' \"$@\"\n");
    let output = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs a start-up that must fail and returns its one stderr line.
async fn failing_start(env: &[(&str, &str)]) -> String {
    let mut command = notes(env);
    let output: Output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(String::from_utf8(output.stdout).unwrap().is_empty());
    lines[0].to_owned()
}

/// A one-route authorization-server stand-in serving `document` at `path`.
async fn metadata_server(
    path: &'static str,
    document: impl Fn(&str) -> Value + Send + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let body = document(&issuer);
    let app = axum::Router::new().route(path, get(move || async move { Json(body) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

fn compatible(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"]
    })
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn next_line(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(60)).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> Running {
    let mut child = notes(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    Running { child, lines }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_configuration_it_runs_a_development_server_and_serves_metadata() {
    let running = start(&[]);
    let listening = running.next_line();
    let addr = listening
        .strip_prefix("notes: listening on http://")
        .unwrap_or_else(|| panic!("first line: {listening}"))
        .to_owned();
    let mut lines = Vec::new();
    for _ in 0..6 {
        lines.push(running.next_line());
    }
    let resource = format!("http://{addr}/notes");
    assert_eq!(lines[0], format!("notes: resource {resource}"));
    let metadata_url = format!("http://{addr}/.well-known/oauth-protected-resource/notes");
    assert_eq!(lines[1], format!("notes: metadata: curl -s {metadata_url}"));
    assert!(lines[2].starts_with("notes: development authorization server at http://127.0.0.1:"));
    assert_eq!(
        lines[3],
        "notes: a token (read:notes write:notes, valid 1 h) and a request with it, to paste into a shell:"
    );
    let token = lines[4].strip_prefix("export TOKEN=").unwrap();
    assert_eq!(token.split('.').count(), 3);
    // Pasted into a shell, the two lines run `curl` with the token in its header.
    let curl = pasted(&lines[4], &lines[5]);
    assert_eq!(
        curl,
        [
            "curl".to_owned(),
            "-s".to_owned(),
            "-H".to_owned(),
            format!("Authorization: Bearer {token}"),
            format!("http://{addr}/notes"),
        ]
    );

    let response = reqwest::get(&metadata_url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resource"], resource);
    assert_eq!(
        body["scopes_supported"],
        json!(["read:notes", "write:notes"])
    );
    let issuer = lines[2]
        .strip_prefix("notes: development authorization server at ")
        .unwrap()
        .trim_end_matches(" (development only)");
    assert_eq!(body["authorization_servers"], json!([issuer]));

    // The printed token is for this resource, from that issuer.
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], resource);
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["scope"], "read:notes write:notes");

    // And it opens /notes, which without it answers with the challenge.
    let notes = format!("http://{addr}/notes");
    let client = reqwest::Client::new();
    let anonymous = client.get(&notes).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"read:notes\"").as_str()
    );
    let created = client
        .post(&notes)
        .bearer_auth(token)
        .json(&json!({"text": "first note"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // The request of the pasted `curl` line.
    let listed: Value = client
        .get(&curl[4])
        .header(
            reqwest::header::AUTHORIZATION,
            curl[3].strip_prefix("Authorization: ").unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!({"subject": "dev-user", "notes": [{"id": 1, "owner": "dev-user", "text": "first note"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notes_method_needs_its_own_scope() {
    let issuer_server = mcpauth::dev::DevAuthServer::start().await.unwrap();
    let issuer = issuer_server.issuer().to_owned();
    let running = start(&[("MCP_AUTH_ISSUER", &issuer)]);
    let addr = running
        .next_line()
        .strip_prefix("notes: listening on http://")
        .unwrap()
        .to_owned();
    let resource = format!("http://{addr}/notes");
    let read_only = issuer_server
        .token()
        .audience(&resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    let client = reqwest::Client::new();
    let listed = client
        .get(&resource)
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let refused = client
        .post(&resource)
        .bearer_auth(&read_only)
        .json(&json!({"text": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.ends_with("scope=\"write:notes\""), "{challenge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_uses_an_external_issuer_of_the_given_type() {
    let issuer = metadata_server("/.well-known/oauth-authorization-server", compatible).await;
    let running = start(&[
        ("MCP_AUTH_ISSUER", &issuer),
        ("MCP_AUTH_ISSUER_TYPE", "oauth"),
    ]);
    let addr = running
        .next_line()
        .strip_prefix("notes: listening on http://")
        .unwrap()
        .to_owned();
    let body: Value = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource/notes"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(body["authorization_servers"], json!([issuer]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_is_one_line_naming_the_url() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let issuer = format!("http://{closed}");
    let line = failing_start(&[("MCP_AUTH_ISSUER", &issuer)]).await;
    assert!(
        line.starts_with(&format!(
            "notes: error: cannot use the authorization server: GET {issuer}/.well-known/openid-configuration failed: "
        )),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_well_known_form_of_the_given_type_is_fetched() {
    // Only the OIDC form exists; with type oauth the start-up fails on the RFC 8414 URL.
    let issuer = metadata_server("/.well-known/openid-configuration", compatible).await;
    let line = failing_start(&[
        ("MCP_AUTH_ISSUER", &issuer),
        ("MCP_AUTH_ISSUER_TYPE", "OAuth"),
    ])
    .await;
    assert_eq!(
        line,
        format!(
            "notes: error: cannot use the authorization server: GET {issuer}/.well-known/oauth-authorization-server failed: HTTP status 404 Not Found"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_mismatch_is_one_line_naming_both_issuers() {
    let issuer = metadata_server("/.well-known/openid-configuration", |issuer| {
        compatible(&format!("{issuer}/other"))
    })
    .await;
    let line = failing_start(&[("MCP_AUTH_ISSUER", &issuer)]).await;
    assert_eq!(
        line,
        format!(
            "notes: error: cannot use the authorization server: the metadata at {issuer}/.well-known/openid-configuration names issuer `{issuer}/other`, but `{issuer}` was configured: they must be identical (RFC 8414 §3.3)"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_metadata_is_one_line_with_the_reason() {
    let issuer = metadata_server("/.well-known/openid-configuration", |issuer| {
        let mut document = compatible(issuer);
        document
            .as_object_mut()
            .unwrap()
            .remove("code_challenge_methods_supported");
        document
    })
    .await;
    let line = failing_start(&[("MCP_AUTH_ISSUER", &issuer)]).await;
    assert!(
        line.starts_with(&format!(
            "notes: error: cannot use the authorization server: the authorization server `{issuer}` is not compatible with MCP: "
        )),
        "{line}"
    );
    assert!(line.contains("(pkce_not_supported)"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_resource_identifier_is_one_line_with_the_reason() {
    let line =
        failing_start(&[("MCP_RESOURCE_IDENTIFIER", "http://notes.example.com/notes")]).await;
    assert_eq!(
        line,
        "notes: error: invalid configuration: invalid resource identifier: `http://notes.example.com/notes` uses http on a non-loopback host: use https (http is only allowed for localhost, 127.0.0.0/8 and ::1)"
    );
    let line = failing_start(&[("MCP_RESOURCE_IDENTIFIER", "notes")]).await;
    assert!(
        line.starts_with("notes: error: invalid configuration: invalid resource identifier: `notes` is not an absolute URL"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_one_line_each() {
    let line = failing_start(&[
        ("MCP_AUTH_ISSUER", "https://x.example"),
        ("MCP_AUTH_ISSUER_TYPE", "saml"),
    ])
    .await;
    assert_eq!(
        line,
        "notes: error: MCP_AUTH_ISSUER_TYPE=\"saml\" is invalid: unknown authorization server type `saml`: expected `oauth` or `oidc`"
    );
    let line = failing_start(&[("PORT", "http")]).await;
    assert_eq!(
        line,
        "notes: error: PORT=\"http\" is invalid: invalid digit found in string"
    );
    let line = failing_start(&[("MCP_AUTH_ISSUER", "http://auth.example.com")]).await;
    assert_eq!(
        line,
        "notes: error: invalid configuration: invalid issuer: `http://auth.example.com` uses http on a non-loopback host: use https (http is only allowed for localhost, 127.0.0.0/8 and ::1)"
    );
}
