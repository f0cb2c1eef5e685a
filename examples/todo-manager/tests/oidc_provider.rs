//! Interop with a real, independent authorization server: oidc-provider (npm; the engine Logto
//! is built on), run by `interop/provider.mjs` with an issuer under a path. The todo-manager
//! discovers it, verifies its JWT access tokens, refuses its tokens for another resource, and
//! keeps working across key rotations (a new `kid`, and a restart that reuses the `kid`). The
//! official TypeScript and Python MCP SDKs log in at it (client credentials; the authorization
//! code flow with PKCE), step up after our 403, and speak protocol versions 2025-06-18,
//! 2025-11-25 and 2026-07-28.
//!
//! Needs Node.js and npm; `interop/node_modules` is installed from the lock file when missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Fails the test with one line naming what to install when `program` cannot be run.
fn require(program: &str, debian_packages: &str) {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        runs,
        "the interop tests need `{program}`: install it (Debian: apt-get install {debian_packages})"
    );
}

fn require_node() {
    require("node", "nodejs npm");
    require("npm", "nodejs npm");
}

/// The Python of `interop/.venv`, with the pinned `mcp` installed (created when missing).
fn python() -> PathBuf {
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import mcp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        require("python3", "python3 python3-venv");
        let venv = Command::new("python3")
            .args(["-m", "venv", ".venv"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(
            venv.success(),
            "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)"
        );
        let install = Command::new(dir.join(".venv/bin/pip"))
            .args(["install", "--quiet", "-r", "requirements.txt"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(
            install.success(),
            "pip install -r interop/requirements.txt failed"
        );
    }
    python
}

fn ensure_node_modules() {
    require_node();
    let dir = interop_dir();
    if dir.join("node_modules/oidc-provider").exists()
        && dir.join("node_modules/@modelcontextprotocol/sdk").exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// A child process killed when dropped, with its stdout lines.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a process and returns it with the rest of its first `count` stdout lines.
fn spawn(mut command: Command, count: usize) -> (Process, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = (0..count).map(|_| lines.next().unwrap().unwrap()).collect();
    std::thread::spawn(move || lines.for_each(drop));
    (Process { child }, first)
}

fn provider(port: Option<u16>, kid: Option<&str>) -> (Process, String, String) {
    require_node();
    let mut command = Command::new("node");
    command.arg("provider.mjs").current_dir(interop_dir());
    if let Some(port) = port {
        command.args(["--port", &port.to_string()]);
    }
    if let Some(kid) = kid {
        command.args(["--kid", kid]);
    }
    let (process, lines) = spawn(command, 2);
    let issuer = lines[0].strip_prefix("issuer ").unwrap().to_owned();
    let kid = lines[1].strip_prefix("kid ").unwrap().to_owned();
    (process, issuer, kid)
}

fn todo_manager(issuer: &str) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_todo-manager"));
    command
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("MCP_AUTH_ISSUER_TYPE")
        .env_remove("BIND")
        .env("PORT", "0")
        .env("MCP_AUTH_ISSUER", issuer);
    let (process, lines) = spawn(command, 1);
    let addr = lines[0]
        .strip_prefix("todo-manager: listening on http://")
        .unwrap_or_else(|| panic!("{}", lines[0]));
    (process, format!("http://{addr}/mcp"))
}

/// A client-credentials token from oidc-provider for `resource`.
async fn token(issuer: &str, client: &str, scope: &str, resource: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client, Some(format!("{client}-secret")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

async fn call(url: &str, token: String, tool: &str, arguments: Value) -> Result<Value, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .map_err(|e| e.to_string())?;
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = client.call_tool(params).await.map_err(|e| e.to_string());
    let _ = client.cancel().await;
    let result = serde_json::to_value(result?).unwrap();
    Ok(serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or("null")).unwrap())
}

async fn status_of(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// oidc-provider (its process, issuer and signing `kid`) and a todo-manager using it (its
/// process and MCP URL), both started.
struct Deployment {
    provider: Process,
    issuer: String,
    kid: String,
    _server: Process,
    url: String,
}

async fn deploy() -> Deployment {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .unwrap();
    let (provider, issuer, kid) = tokio::task::spawn_blocking(|| provider(None, None))
        .await
        .unwrap();
    let (server, url) = {
        let issuer = issuer.clone();
        tokio::task::spawn_blocking(move || todo_manager(&issuer))
            .await
            .unwrap()
    };
    Deployment {
        provider,
        issuer,
        kid,
        _server: server,
        url,
    }
}

/// oidc-provider and a todo-manager using it, then `program script <mcp-url> <issuer> args…` run
/// to completion; returns the issuer, the MCP URL and the JSON object the script printed last.
async fn run_client(
    program: PathBuf,
    script: &'static str,
    args: &[&str],
) -> (String, String, Value) {
    let deployment = deploy().await;
    let mut command = Command::new(program);
    command
        .args([script, &deployment.url, &deployment.issuer])
        .args(args)
        .current_dir(interop_dir());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (deployment.issuer, deployment.url, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_manager_works_with_oidc_provider_tokens_across_key_rotations() {
    let Deployment {
        provider: provider_process,
        issuer,
        kid,
        _server,
        url,
    } = deploy().await;
    let port: u16 = issuer
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/oidc")
        .parse()
        .unwrap();

    // Discovered through the appended OpenID Connect form (the RFC 8414 form is 404 there).
    let writer = token(&issuer, "writer", "read:todos create:todos", &url).await;
    let created = call(
        &url,
        writer.clone(),
        "create_todo",
        json!({"content": "interop"}),
    )
    .await
    .unwrap();
    assert_eq!(created["ownerId"], "writer");
    let reader = token(&issuer, "reader", "read:todos", &url).await;
    let refused = call(
        &url,
        reader.clone(),
        "create_todo",
        json!({"content": "no"}),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("403") || refused.to_lowercase().contains("insufficient"),
        "{refused}"
    );
    let all = call(&url, reader.clone(), "get_todos", json!({}))
        .await
        .unwrap();
    assert_eq!(all["todos"][0]["content"], "interop");

    // A token oidc-provider issued for another resource is refused.
    let foreign = token(&issuer, "writer", "read:todos", "http://127.0.0.1:1/other").await;
    assert_eq!(status_of(&url, &foreign).await, 401);

    // Rotation to a new kid: restart on the same port with a new key.
    drop(provider_process);
    let (provider_process, _, new_kid) =
        tokio::task::spawn_blocking(move || provider(Some(port), None))
            .await
            .unwrap();
    assert_ne!(new_kid, kid);
    let rotated = token(&issuer, "reader", "read:todos", &url).await;
    // The key cache refetches at most every 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;
    call(&url, rotated.clone(), "get_todos", json!({}))
        .await
        .unwrap();

    // A restart that reuses the kid with a new key.
    drop(provider_process);
    let (_provider, _, same_kid) = {
        let kid = new_kid.clone();
        tokio::task::spawn_blocking(move || provider(Some(port), Some(&kid)))
            .await
            .unwrap()
    };
    assert_eq!(same_kid, new_kid);
    let reused = token(&issuer, "reader", "read:todos", &url).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    call(&url, reused, "get_todos", json!({})).await.unwrap();
    // The previous key is gone: its token no longer verifies.
    assert_eq!(status_of(&url, &rotated).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_typescript_client_discovers_calls_and_meets_the_step_up_challenge() {
    let (issuer, url, results) = run_client(PathBuf::from("node"), "ts_client.mjs", &[]).await;
    assert_eq!(results["challengeStatus"], 401);
    assert_eq!(results["resourceMetadataUrl"], metadata_url(&url));
    assert_eq!(results["resource"], url);
    assert_eq!(results["authorizationServers"], json!([issuer]));
    assert_eq!(results["issuer"], issuer);
    // The SDK's newest version, negotiated in the initialize handshake.
    assert_eq!(results["protocolVersion"], "2025-11-25");
    assert_eq!(results["getTodos"], json!({"todos": []}));
    let refused = results["createTodo"].as_str().unwrap();
    assert!(refused.contains("403"), "{refused}");
    // What crossed the wire: the login challenge first, then successes without a challenge,
    // and the write refused (also when the SDK retries it) with our step-up challenge.
    let exchanges = results["exchanges"].as_array().unwrap();
    let login = json!({"status": 401, "challenge": login_challenge(&url)});
    let step_up = json!({"status": 403, "challenge": step_up_challenge(&url)});
    assert_eq!(exchanges.first(), Some(&login), "{exchanges:?}");
    assert!(exchanges.contains(&step_up), "{exchanges:?}");
    for exchange in &exchanges[1..] {
        let succeeded = [200, 202].contains(&exchange["status"].as_u64().unwrap())
            && exchange["challenge"].is_null();
        assert!(succeeded || *exchange == step_up, "{exchanges:?}");
    }
}

/// The challenge the todo-manager at `url` answers a request without a token with.
fn login_challenge(url: &str) -> String {
    format!(
        "Bearer resource_metadata=\"{}\", scope=\"read:todos\"",
        metadata_url(url)
    )
}

/// The challenge the todo-manager at `url` answers a `create_todo` without `create:todos` with.
fn step_up_challenge(url: &str) -> String {
    format!(
        "Bearer error=\"insufficient_scope\", error_description=\"The access token does not grant \
         the scopes this request needs.\", resource_metadata=\"{}\", scope=\"create:todos\"",
        metadata_url(url)
    )
}

/// The RFC 9728 metadata URL of the MCP resource `url` (`http://host:port/mcp`).
fn metadata_url(url: &str) -> String {
    url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
}

/// The authorization code flow with PKCE, as an interactive MCP client runs it: the TypeScript
/// SDK's `auth()` against oidc-provider (automatic login and consent), then the step-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_logs_in_with_the_authorization_code_flow_and_steps_up() {
    let (issuer, url, results) =
        run_client(PathBuf::from("node"), "ts_authcode_client.mjs", &[]).await;
    let authorizations = results["authorizations"].as_array().unwrap();
    assert_eq!(authorizations.len(), 2, "{results}");
    for authorization in authorizations {
        assert_eq!(authorization["endpoint"], format!("{issuer}/auth"));
        assert_eq!(
            authorization["resource"], url,
            "RFC 8707 resource indicator"
        );
        assert_eq!(authorization["codeChallengeMethod"], "S256");
    }
    // The first login asks for what our 401 challenge names; the step-up for what the 403 names.
    assert_eq!(authorizations[0]["scope"], "read:todos");
    assert_eq!(authorizations[1]["scope"], "create:todos");
    // RFC 9207: the authorization response names its issuer.
    assert_eq!(results["iss"], issuer);
    assert_eq!(
        results["tokenScopes"],
        json!(["read:todos", "create:todos"])
    );
    assert_eq!(results["protocolVersion"], "2025-11-25");
    assert_eq!(results["getTodos"], json!({"todos": []}));
    // The end-user who logged in owns what the tool created.
    assert_eq!(results["createTodo"]["ownerId"], "alice");
    assert_eq!(results["createTodo"]["content"], "from the browser flow");
    let statuses = results["statuses"].as_array().unwrap();
    assert_eq!(statuses.first(), Some(&json!(401)), "{statuses:?}");
    assert!(statuses.contains(&json!(403)), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&json!(200)), "{statuses:?}");
    // The challenges the SDK acted on: the 401's baseline scope, then the 403's step-up.
    let challenges = results["challenges"].as_array().unwrap();
    assert_eq!(
        challenges.first(),
        Some(&json!(login_challenge(&url))),
        "{challenges:?}"
    );
    assert!(
        challenges.contains(&json!(step_up_challenge(&url))),
        "{challenges:?}"
    );
}

/// The Python SDK speaking `version`: 401, a read-only token, `get_todos`, 403 for
/// `create_todo`, a step-up token keeping the earlier scope, success — and the version
/// negotiated and declared on every request is `version`.
async fn python_client_steps_up(version: &'static str) {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let (_, _, results) = run_client(python, "py_client.py", &[version]).await;
    assert_eq!(results["protocolVersion"], version);
    assert_eq!(results["getTodos"], json!({"todos": []}));
    assert_eq!(results["createTodo"]["ownerId"], "writer");
    assert_eq!(results["createTodo"]["content"], "from the Python SDK");
    let statuses = results["statuses"].as_array().unwrap();
    assert!(
        statuses.contains(&json!(401)),
        "the first request is challenged: {statuses:?}"
    );
    assert!(
        statuses.contains(&json!(403)),
        "create_todo met the step-up challenge: {statuses:?}"
    );
    let scopes = results["tokenScopes"].as_array().unwrap();
    let last = scopes.last().unwrap().as_str().unwrap();
    assert!(
        scopes.len() >= 2,
        "a second token after the 403: {scopes:?}"
    );
    assert!(last.split(' ').any(|s| s == "create:todos"), "{scopes:?}");
    assert!(
        last.split(' ').any(|s| s == "read:todos"),
        "previous scopes kept: {scopes:?}"
    );
    // Every request after the negotiation declares the version; 2026-07-28 requests also name
    // their operation in headers (which our layer checked against the bodies).
    let headers = results["headers"].as_array().unwrap();
    let declared: Vec<&Value> = headers
        .iter()
        .filter(|h| h.get("mcp-protocol-version").is_some())
        .collect();
    assert!(!declared.is_empty(), "{headers:?}");
    assert!(
        declared
            .iter()
            .all(|h| h["mcp-protocol-version"] == version),
        "{headers:?}"
    );
    let create = json!({
        "mcp-protocol-version": version,
        "mcp-method": "tools/call",
        "mcp-name": "create_todo",
    });
    if version == "2026-07-28" {
        assert!(headers.contains(&create), "{headers:?}");
    } else {
        assert!(
            headers.iter().all(|h| h.get("mcp-method").is_none()),
            "{headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_steps_up_with_protocol_2025_06_18() {
    python_client_steps_up("2025-06-18").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_steps_up_with_protocol_2025_11_25() {
    python_client_steps_up("2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_steps_up_with_protocol_2026_07_28() {
    python_client_steps_up("2026-07-28").await;
}
