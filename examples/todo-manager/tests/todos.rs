//! The `todo-manager` binary against a development authorization server, driven by rmcp's own
//! MCP client: per-tool scopes, owners from the token's subject, hostile origins refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use mcpauth::dev::DevAuthServer;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

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

fn start(issuer: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo-manager"))
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("BIND")
        .env("PORT", "0")
        .env("MCP_AUTH_ISSUER", issuer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Keep draining, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first
        .strip_prefix("todo-manager: listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    Server {
        child,
        url: format!("http://{addr}/mcp"),
    }
}

async fn client(url: &str, token: String) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<Value, String> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = client.call_tool(params).await.map_err(|e| e.to_string())?;
    let result = serde_json::to_value(result).unwrap();
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    Ok(serde_json::from_str(text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_follow_the_tokens_scopes_and_subjects() {
    let dev = DevAuthServer::start().await.unwrap();
    let server = tokio::task::spawn_blocking({
        let issuer = dev.issuer().to_owned();
        move || start(&issuer)
    })
    .await
    .unwrap();
    let token = |subject: &str, scopes: &[&str]| {
        dev.token()
            .subject(subject)
            .audience(&server.url)
            .scopes(scopes.iter().copied())
            .sign()
            .unwrap()
    };

    let alice = client(&server.url, token("alice", &["create:todos"])).await;
    let created = call(&alice, "create_todo", json!({"content": "buy milk"}))
        .await
        .unwrap();
    assert_eq!(created["ownerId"], "alice");
    let id = created["id"].as_str().unwrap().to_owned();

    // Without create:todos the HTTP layer refuses before the tool runs.
    let bob = client(&server.url, token("bob", &[])).await;
    let refused = call(&bob, "create_todo", json!({"content": "nope"}))
        .await
        .unwrap_err();
    assert!(
        refused.contains("403") || refused.to_lowercase().contains("insufficient"),
        "{refused}"
    );
    // Bob sees only his own (none); a reader sees all.
    assert_eq!(
        call(&bob, "get_todos", json!({})).await.unwrap(),
        json!({"todos": []})
    );
    let reader = client(&server.url, token("carol", &["read:todos"])).await;
    let all = call(&reader, "get_todos", json!({})).await.unwrap();
    assert_eq!(all["todos"][0]["id"], id);
    // Bob cannot delete Alice's todo; a deleter can.
    let failed = call(&bob, "delete_todo", json!({"id": id})).await.unwrap();
    assert_eq!(failed, json!({"error": "Failed to delete todo"}));
    let deleter = client(&server.url, token("dave", &["delete:todos"])).await;
    let deleted = call(&deleter, "delete_todo", json!({"id": id}))
        .await
        .unwrap();
    assert_eq!(deleted["message"], format!("Todo {id} deleted"));
    for client in [alice, bob, reader, deleter] {
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_origin_is_refused_even_with_a_valid_token() {
    let dev = DevAuthServer::start().await.unwrap();
    let server = tokio::task::spawn_blocking({
        let issuer = dev.issuer().to_owned();
        move || start(&issuer)
    })
    .await
    .unwrap();
    let token = dev
        .token()
        .subject("alice")
        .audience(&server.url)
        .sign()
        .unwrap();
    let response = reqwest::Client::new()
        .post(&server.url)
        .bearer_auth(token)
        .header("origin", "https://evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Without a token the challenge comes first.
    let anonymous = reqwest::Client::new()
        .post(&server.url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );
}

#[test]
fn a_start_up_failure_is_one_line_and_exit_status_1() {
    let output = Command::new(env!("CARGO_BIN_EXE_todo-manager"))
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("BIND")
        .env("PORT", "0")
        .env("RUST_BACKTRACE", "1")
        .env("MCP_AUTH_ISSUER", "http://auth.example.com")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "todo-manager: error: invalid configuration: invalid issuer: `http://auth.example.com` uses http on a non-loopback host: use https (http is only allowed for localhost, 127.0.0.0/8 and ::1)\n"
    );
}
