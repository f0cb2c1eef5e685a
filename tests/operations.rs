//! Scopes per MCP operation at the HTTP layer, over real HTTP: the operation is read from the
//! JSON-RPC body (and the 2026-07-28 headers), the body reaches the server unchanged, and a
//! token without the operation's scopes gets a 403 challenge naming all of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpauth::dev::DevAuthServer;
use mcpauth::{McpAuth, OperationScopes, ProtectedResource};
use mcpauth_tests::{TestServer, parse_challenge};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

struct App {
    server: TestServer,
    resource: String,
    dev: DevAuthServer,
}

async fn app(operations: OperationScopes) -> App {
    let dev = DevAuthServer::start().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let auth = McpAuth::resource_server([ProtectedResource::new(&resource)
        .authorization_server(dev.config())
        .scopes(["read:todos", "create:todos", "delete:todos", "admin:todos"])
        .scope_implies("admin:todos", ["create:todos", "delete:todos"])])
    .unwrap();
    let layer = auth
        .bearer_auth(&resource)
        .unwrap()
        .operation_scopes(operations)
        .unwrap();
    // The "MCP server": echoes the body it received.
    let router = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(|body: String| async move { body }).get(|| async { "stream" }),
        )
        .route_layer(layer);
    App {
        server: TestServer::serve(listener, router),
        resource,
        dev,
    }
}

fn todo_scopes() -> OperationScopes {
    OperationScopes::new()
        .baseline(["read:todos"])
        .tool("create_todo", ["create:todos"])
        .tool("delete_todo", ["delete:todos"])
        .max_body_bytes(64 * 1024)
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {"content": "milk"}}})
}

impl App {
    fn token(&self, scopes: &str) -> String {
        self.dev
            .token()
            .audience(&self.resource)
            .claim("scope", scopes)
            .sign()
            .unwrap()
    }

    async fn post(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.server.url("/mcp"))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

fn challenge(response: &reqwest::Response) -> std::collections::BTreeMap<String, String> {
    parse_challenge(response.headers()["www-authenticate"].to_str().unwrap()).1
}

#[tokio::test]
async fn each_tool_needs_its_scopes_and_the_body_is_handed_on_unchanged() {
    let app = app(todo_scopes()).await;
    let reader = app.token("read:todos");
    let body = call("create_todo");

    let refused = app.post(Some(&reader), &[], &body).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let params = challenge(&refused);
    assert_eq!(params["error"], "insufficient_scope");
    assert_eq!(
        params["scope"], "read:todos create:todos",
        "every scope the operation needs"
    );
    let refused_body: Value = refused.json().await.unwrap();
    assert_eq!(refused_body["missing_scopes"], json!(["create:todos"]));

    let writer = app.token("read:todos create:todos");
    let accepted = app.post(Some(&writer), &[], &body).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(
        accepted.json::<Value>().await.unwrap(),
        body,
        "the body arrives unchanged"
    );

    // The hierarchy counts: admin implies create.
    let admin = app.token("read:todos admin:todos");
    assert_eq!(
        app.post(Some(&admin), &[], &body).await.status(),
        StatusCode::OK
    );
    // A tool without its own scopes needs only the baseline.
    assert_eq!(
        app.post(Some(&reader), &[], &call("get_todos"))
            .await
            .status(),
        StatusCode::OK
    );
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(
        app.post(Some(&reader), &[], &list).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn challenges_without_a_token_name_the_baseline() {
    let app = app(todo_scopes()).await;
    let response = app.post(None, &[], &call("create_todo")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let params = challenge(&response);
    assert_eq!(params["scope"], "read:todos");
    assert!(!params.contains_key("error"));
    // A token without even the baseline: 403 naming it.
    let nothing = app.token("other");
    let response = app.post(Some(&nothing), &[], &call("get_todos")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&response)["scope"], "read:todos");
}

#[tokio::test]
async fn mcp_headers_must_agree_with_the_body() {
    let app = app(todo_scopes()).await;
    let writer = app.token("read:todos create:todos delete:todos");
    let body = call("create_todo");
    let agreeing = [("mcp-method", "tools/call"), ("mcp-name", "create_todo")];
    assert_eq!(
        app.post(Some(&writer), &agreeing, &body).await.status(),
        StatusCode::OK
    );
    for headers in [
        vec![("mcp-method", "tools/call"), ("mcp-name", "delete_todo")],
        vec![("mcp-method", "tools/list")],
        vec![("mcp-name", "create_todo")],
    ] {
        let response = app.post(Some(&writer), &headers, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(challenge(&response)["error"], "invalid_request");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["reason"], "invalid_mcp_operation");
    }
    // A reader cannot hide a tool call behind headers that name another operation.
    let reader = app.token("read:todos");
    let hidden = app
        .post(Some(&reader), &[("mcp-method", "tools/list")], &body)
        .await;
    assert_eq!(hidden.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batches_need_the_scopes_of_every_operation() {
    let app = app(todo_scopes()).await;
    let batch = json!([call("create_todo"), call("delete_todo")]);
    let creator = app.token("read:todos create:todos");
    let response = app.post(Some(&creator), &[], &batch).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&response)["scope"],
        "read:todos create:todos delete:todos"
    );
    let both = app.token("read:todos create:todos delete:todos");
    assert_eq!(
        app.post(Some(&both), &[], &batch).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bodies_over_the_bound_are_refused_and_requests_without_body_need_the_baseline() {
    let app = app(todo_scopes()).await;
    let writer = app.token("read:todos create:todos");
    let mut huge = call("create_todo");
    huge["params"]["arguments"]["content"] = json!("x".repeat(70 * 1024));
    let response = app.post(Some(&writer), &[], &huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(
        response.json::<Value>().await.unwrap()["reason"],
        "body_too_large"
    );

    let reader = app.token("read:todos");
    let stream = reqwest::Client::new()
        .get(app.server.url("/mcp"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.text().await.unwrap(), "stream");
}

#[tokio::test]
async fn undeclared_operation_scopes_are_configuration_errors() {
    let dev = DevAuthServer::start().await.unwrap();
    let auth = McpAuth::resource_server([ProtectedResource::new("http://127.0.0.1:9/mcp")
        .authorization_server(dev.config())
        .scopes(["read:todos"])])
    .unwrap();
    let error = auth
        .bearer_auth("http://127.0.0.1:9/mcp")
        .unwrap()
        .operation_scopes(OperationScopes::new().tool("create_todo", ["create:todo"]))
        .unwrap_err();
    assert!(
        matches!(error, mcpauth::ConfigError::UndeclaredScope { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn advertised_scopes_are_named_at_login_without_being_required() {
    let app = app(OperationScopes::new()
        .advertise(["read:todos"])
        .tool("create_todo", ["create:todos"]))
    .await;
    let response = app.post(None, &[], &call("get_todos")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response)["scope"], "read:todos");
    let nothing = app.token("other");
    assert_eq!(
        app.post(Some(&nothing), &[], &call("get_todos"))
            .await
            .status(),
        StatusCode::OK
    );
    let refused = app.post(Some(&nothing), &[], &call("create_todo")).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&refused)["scope"], "create:todos");
}
