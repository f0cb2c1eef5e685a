//! Scopes per MCP operation at the HTTP layer, over real HTTP: the operation is read from the
//! JSON-RPC body (and the 2026-07-28 headers), the body reaches the server unchanged, and a
//! token without the operation's scopes gets a 403 challenge naming all of them.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mcpauth::dev::DevAuthServer;
use mcpauth::{McpAuth, OperationScopes, ProtectedResource};
use mcpauth_tests::{TestServer, parse_challenge};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_http::decompression::RequestDecompressionLayer;

struct App {
    server: TestServer,
    resource: String,
    dev: DevAuthServer,
    /// Requests the "MCP server" behind the layer received.
    handled: Arc<AtomicUsize>,
}

async fn app(operations: OperationScopes) -> App {
    app_with(operations, false).await
}

/// The application, with a request-decompression layer inside the bearer layer when
/// `decompress` (as an application that accepts compressed bodies would have).
async fn app_with(operations: OperationScopes, decompress: bool) -> App {
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
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let echo = axum::routing::post(move |body: String| async move {
        count.fetch_add(1, Ordering::SeqCst);
        body
    })
    .get(|| async { "stream" });
    let echo = if decompress {
        echo.layer(RequestDecompressionLayer::new())
    } else {
        echo
    };
    let router = axum::Router::new().route("/mcp", echo).route_layer(layer);
    App {
        server: TestServer::serve(listener, router),
        resource,
        dev,
        handled,
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

    /// A POST with raw body bytes and headers.
    async fn post_raw(
        &self,
        token: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.server.url("/mcp"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Bodies (with their headers) that name `create_todo` to some reader, and that the scope check
/// cannot read unambiguously; the reason code each must get.
/// One request the check must refuse: what it is, its headers, its body, the reason code.
type Refused = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    &'static str,
);

fn ambiguous_create_todo_requests() -> Vec<Refused> {
    let call = serde_json::to_vec(&call("create_todo")).unwrap();
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(&call);
    vec![
        ("byte-order mark", vec![], bom.clone(), "malformed_mcp_body"),
        (
            "gzip",
            vec![("content-encoding", "gzip")],
            gzip(&call),
            "unsupported_content_encoding",
        ),
        (
            "byte-order mark with Mcp-Method tools/list",
            vec![("mcp-method", "tools/list")],
            bom,
            "malformed_mcp_body",
        ),
        (
            "duplicate name (first one harmless)",
            vec![],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_todos","name":"create_todo"}}"#.to_vec(),
            "ambiguous_mcp_body",
        ),
        (
            "NAME beside name",
            vec![],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_todos","NAME":"create_todo"}}"#.to_vec(),
            "ambiguous_mcp_body",
        ),
        (
            "Method beside method",
            vec![],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"create_todo"}}"#.to_vec(),
            "ambiguous_mcp_body",
        ),
        (
            "duplicate method",
            vec![],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"create_todo"}}"#.to_vec(),
            "ambiguous_mcp_body",
        ),
        (
            "not JSON",
            vec![],
            b"method=tools/call&name=create_todo".to_vec(),
            "malformed_mcp_body",
        ),
    ]
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
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "the token is fine: no challenge"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_request");
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

#[tokio::test]
async fn bodies_the_check_cannot_read_unambiguously_are_refused_before_the_server() {
    for decompress in [false, true] {
        let app = app_with(todo_scopes(), decompress).await;
        let reader = app.token("read:todos");
        let writer = app.token("read:todos create:todos");
        for (case, headers, body, reason) in ambiguous_create_todo_requests() {
            for token in [&reader, &writer] {
                let response = app.post_raw(token, &headers, body.clone()).await;
                let status = response.status();
                assert!(
                    response.headers().get("www-authenticate").is_none(),
                    "{case}: the token is fine, no challenge"
                );
                let text = response.text().await.unwrap();
                assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {text}");
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(answer["error"], "invalid_request", "{case}");
                assert_eq!(answer["reason"], reason, "{case}: {answer}");
                let description = answer["error_description"].as_str().unwrap();
                assert!(
                    !description.contains("bearer"),
                    "{case}: says what is wrong with the body: {description}"
                );
            }
            assert_eq!(
                app.handled(),
                0,
                "{case} (decompression inside: {decompress})"
            );
        }
        // A plain body still passes (the decompression layer lets identity bodies through).
        let plain = serde_json::to_vec(&call("create_todo")).unwrap();
        let response = app.post_raw(&writer, &[], plain.clone()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.bytes().await.unwrap(), plain);
    }
}

#[tokio::test]
async fn every_mcp_method_passes_with_the_right_scopes() {
    let app = app(todo_scopes()
        .method("resources/read", ["admin:todos"])
        .method("tasks/cancel", ["delete:todos"]))
    .await;
    let reader = app.token("read:todos");
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "x"}}),
        call("get_todos"),
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "p", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/templates/list"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": "todo://1"}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/unsubscribe", "params": {"uri": "todo://1"}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "completion/complete", "params": {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "b"}}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "info"}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": "t1"}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/list"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/result", "params": {"taskId": "t1"}}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
        json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
        json!({"jsonrpc": "2.0", "id": 5, "result": {"roots": []}}),
        json!({"jsonrpc": "2.0", "id": 6, "error": {"code": -1, "message": "no"}}),
    ];
    for message in &messages {
        let response = app.post(Some(&reader), &[], message).await;
        assert_eq!(response.status(), StatusCode::OK, "{message}");
    }
    // A batch of all of them, too.
    assert_eq!(
        app.post(Some(&reader), &[], &json!(messages))
            .await
            .status(),
        StatusCode::OK
    );
    // Methods with their own scopes: refused without, accepted with.
    for (message, scope) in [
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "todo://1"}}),
            "admin:todos",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/cancel", "params": {"taskId": "t1"}}),
            "delete:todos",
        ),
        (call("delete_todo"), "delete:todos"),
    ] {
        let refused = app.post(Some(&reader), &[], &message).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{message}");
        assert_eq!(challenge(&refused)["scope"], format!("read:todos {scope}"));
        let granted = app.token(&format!("read:todos {scope}"));
        assert_eq!(
            app.post(Some(&granted), &[], &message).await.status(),
            StatusCode::OK,
            "{message}"
        );
    }
}

#[tokio::test]
async fn mcp_name_headers_as_2026_clients_send_them() {
    let app = app(todo_scopes()).await;
    let writer = app.token("read:todos create:todos delete:todos");
    // Base64-wrapped names (non-ASCII, or spaces at the edges) are unwrapped.
    for name in ["créer", " create_todo", "create_todo "] {
        let wrapped = format!("=?base64?{}?=", STANDARD.encode(name));
        let headers = [("mcp-method", "tools/call"), ("mcp-name", wrapped.as_str())];
        let response = app.post(Some(&writer), &headers, &call(name)).await;
        assert_eq!(response.status(), StatusCode::OK, "{name:?}");
        // The wrapped name must still be the body's.
        let other = app
            .post(Some(&writer), &headers, &call("create_todo"))
            .await;
        assert_eq!(other.status(), StatusCode::BAD_REQUEST, "{name:?}");
    }
    // Tasks carry their taskId in Mcp-Name.
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let message =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"taskId": "task-7"}});
        let agreeing = [("mcp-method", method), ("mcp-name", "task-7")];
        assert_eq!(
            app.post(Some(&writer), &agreeing, &message).await.status(),
            StatusCode::OK,
            "{method}"
        );
        let disagreeing = [("mcp-method", method), ("mcp-name", "task-8")];
        let response = app.post(Some(&writer), &disagreeing, &message).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["reason"],
            "invalid_mcp_operation"
        );
    }
    // Malformed Base64 is refused.
    let headers = [("mcp-method", "tools/call"), ("mcp-name", "=?base64?%%%?=")];
    let response = app
        .post(Some(&writer), &headers, &call("create_todo"))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
