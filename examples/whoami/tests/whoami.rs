//! The `whoami` binary against a development authorization server, with rmcp's MCP client:
//! tokens verified by userinfo (cached) or introspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use mcpauth::dev::DevAuthServer;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

struct Server {
    child: Child,
    url: String,
    mode: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(issuer: &str, introspection: bool) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_whoami"));
    command
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("BIND")
        .env_remove("MCP_AUTH_INTROSPECTION_CLIENT_ID")
        .env_remove("MCP_AUTH_INTROSPECTION_CLIENT_SECRET")
        .env("PORT", "0")
        .env("MCP_AUTH_ISSUER", issuer);
    if introspection {
        command
            .env("MCP_AUTH_INTROSPECTION_CLIENT_ID", "whoami")
            .env("MCP_AUTH_INTROSPECTION_CLIENT_SECRET", "secret");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("whoami: listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let _endpoint = lines.next().unwrap().unwrap();
    let mode = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        url: format!("http://{addr}/mcp"),
        mode,
    }
}

async fn whoami(url: &str, token: String) -> Value {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let result = serde_json::to_value(result).unwrap();
    client.cancel().await.unwrap();
    serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_answers_are_cached_per_token() {
    let dev = DevAuthServer::start().await.unwrap();
    let issuer = dev.issuer().to_owned();
    let server = tokio::task::spawn_blocking(move || start(&issuer, false))
        .await
        .unwrap();
    assert_eq!(server.mode, "whoami: tokens verified by userinfo");
    let token = dev
        .token()
        .subject("alice")
        .claim("name", "Alice")
        .sign()
        .unwrap();
    let me = whoami(&server.url, token.clone()).await;
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["issuer"], dev.issuer());
    assert_eq!(me["claims"]["name"], "Alice");
    let calls = dev.userinfo_requests();
    whoami(&server.url, token).await;
    assert_eq!(
        dev.userinfo_requests(),
        calls,
        "the second session used the cached answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_used_with_client_credentials() {
    let dev = DevAuthServer::start().await.unwrap();
    let issuer = dev.issuer().to_owned();
    let server = tokio::task::spawn_blocking(move || start(&issuer, true))
        .await
        .unwrap();
    assert_eq!(server.mode, "whoami: tokens verified by introspection");
    let token = dev
        .token()
        .subject("bob")
        .audience(&server.url)
        .sign()
        .unwrap();
    assert_eq!(whoami(&server.url, token).await["subject"], "bob");
    assert!(dev.introspection_requests() >= 1);
    // A token for another resource is refused: introspection answers carry the audience.
    let foreign = dev
        .token()
        .subject("bob")
        .audience("https://other.example")
        .sign()
        .unwrap();
    let response = reqwest::Client::new()
        .post(&server.url)
        .bearer_auth(foreign)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
