//! The protected-resource metadata router over real HTTP: paths, methods, statuses, headers
//! and exact bodies.
#![allow(deprecated)] // the deprecated authorization-server mode is tested on purpose

use axum::Router;
use axum::http::StatusCode;
use mcpauth::{AuthServer, AuthServerType, AuthorizationServerMode, McpAuth, ProtectedResource};
use mcpauth_tests::{
    Reply, StubServer, TestServer, closed_port, compatible_config as server, compatible_metadata,
};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.com";

async fn serve(auth: &McpAuth) -> TestServer {
    TestServer::start(auth.resource_metadata_router()).await
}

async fn request(method: Method, url: &str) -> Response {
    Client::new().request(method, url).send().await.unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn get_serves_the_document_with_json_cache_and_cors_headers() {
    let auth = McpAuth::resource_server([ProtectedResource::new("https://api.example.com/notes")
        .authorization_server(server(ISSUER))
        .authorization_server(server("https://second.example.com/tenant"))
        .scopes(["read:notes", "write:notes"])
        .resource_name("Notes")
        .resource_documentation("https://api.example.com/docs")])
    .unwrap();
    let app = serve(&auth).await;

    let response = request(
        Method::GET,
        &app.url("/.well-known/oauth-protected-resource/notes"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(
        header(&response, "cache-control"),
        Some("public, max-age=3600")
    );
    assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
    let body = response.text().await.unwrap();
    // Byte for byte: `resource` exactly as configured, issuers in order, unset members omitted.
    assert_eq!(
        body,
        r#"{"resource":"https://api.example.com/notes","authorization_servers":["https://auth.example.com","https://second.example.com/tenant"],"scopes_supported":["read:notes","write:notes"],"bearer_methods_supported":["header"],"resource_name":"Notes","resource_documentation":"https://api.example.com/docs"}"#
    );
}

#[tokio::test]
async fn head_options_and_other_methods() {
    let auth = McpAuth::resource_server([ProtectedResource::new("https://api.example.com/notes")
        .authorization_server(server(ISSUER))])
    .unwrap();
    let app = serve(&auth).await;
    let url = app.url("/.well-known/oauth-protected-resource/notes");

    let head = request(Method::HEAD, &url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert!(head.bytes().await.unwrap().is_empty());

    let preflight = Client::new()
        .request(Method::OPTIONS, &url)
        .header("origin", "https://inspector.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&preflight, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&preflight, "access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-headers"),
        Some("*")
    );
    assert_eq!(header(&preflight, "access-control-max-age"), Some("86400"));
    assert!(preflight.bytes().await.unwrap().is_empty());

    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let response = request(method.clone(), &url).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        let allow = header(&response, "allow").unwrap();
        for allowed in ["GET", "HEAD", "OPTIONS"] {
            assert!(allow.contains(allowed), "{method}: allow = {allow}");
        }
    }

    let elsewhere = request(
        Method::GET,
        &app.url("/.well-known/oauth-protected-resource"),
    )
    .await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    let other = request(
        Method::GET,
        &app.url("/.well-known/oauth-protected-resource/notes/x"),
    )
    .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn paths_follow_rfc_9728_for_root_nested_and_trailing_slash_resources() {
    let auth = McpAuth::resource_server([
        ProtectedResource::new("https://root.example.com").authorization_server(server(ISSUER)),
        ProtectedResource::new("https://api.example.com/v1/mcp")
            .authorization_server(server(ISSUER)),
        ProtectedResource::new("https://api.example.com/v2/").authorization_server(server(ISSUER)),
    ])
    .unwrap();
    let app = serve(&auth).await;
    let rows = [
        (
            "/.well-known/oauth-protected-resource",
            "https://root.example.com",
        ),
        (
            "/.well-known/oauth-protected-resource/v1/mcp",
            "https://api.example.com/v1/mcp",
        ),
        (
            "/.well-known/oauth-protected-resource/v2/",
            "https://api.example.com/v2/",
        ),
    ];
    for (path, resource) in rows {
        let response = request(Method::GET, &app.url(path)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["resource"], resource, "{path}");
        assert_eq!(
            auth.resource_metadata_url(resource).unwrap().as_str(),
            format!(
                "{}{path}",
                resource.split('/').take(3).collect::<Vec<_>>().join("/")
            ),
        );
    }
}

#[tokio::test]
async fn resources_on_different_hosts_sharing_a_path_are_told_apart_by_host() {
    let auth = McpAuth::resource_server([
        ProtectedResource::new("https://a.example.com/mcp").authorization_server(server(ISSUER)),
        ProtectedResource::new("https://b.example.com/mcp").authorization_server(server(ISSUER)),
    ])
    .unwrap();
    let app = serve(&auth).await;
    let url = app.url("/.well-known/oauth-protected-resource/mcp");
    for (host, expected) in [
        ("a.example.com", Some("https://a.example.com/mcp")),
        ("B.Example.com:443", Some("https://b.example.com/mcp")),
        ("c.example.com", None),
    ] {
        let response = Client::new()
            .get(&url)
            .header("host", host)
            .send()
            .await
            .unwrap();
        match expected {
            Some(resource) => {
                assert_eq!(response.status(), StatusCode::OK, "{host}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["resource"], resource);
            }
            None => assert_eq!(response.status(), StatusCode::NOT_FOUND, "{host}"),
        }
    }
}

#[tokio::test]
async fn the_root_opt_in_serves_the_single_resource_at_the_root_too() {
    let auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new("https://api.example.com/mcp")
                .authorization_server(server(ISSUER)),
        )
        .metadata_at_root(true)
        .metadata_max_age(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let app = serve(&auth).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = request(Method::GET, &app.url(path)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=60")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["resource"], "https://api.example.com/mcp");
    }

    // A resource at the root needs no second route.
    let root = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new("https://api.example.com").authorization_server(server(ISSUER)),
        )
        .metadata_at_root(true)
        .build()
        .unwrap();
    let app = serve(&root).await;
    let response = request(
        Method::GET,
        &app.url("/.well-known/oauth-protected-resource"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_router_merges_into_an_application_with_state() {
    #[derive(Clone)]
    struct AppState {
        greeting: &'static str,
    }
    let auth = McpAuth::resource_server([
        ProtectedResource::new("http://127.0.0.1:9/mcp").authorization_server(server(ISSUER))
    ])
    .unwrap();
    let app: Router = Router::new()
        .route(
            "/hello",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    state.greeting
                },
            ),
        )
        .merge(auth.resource_metadata_router())
        .with_state(AppState { greeting: "hi" });
    let app = TestServer::start(app).await;
    assert_eq!(
        request(Method::GET, &app.url("/hello"))
            .await
            .text()
            .await
            .unwrap(),
        "hi"
    );
    let response = request(
        Method::GET,
        &app.url("/.well-known/oauth-protected-resource/mcp"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_deprecated_mode_serves_the_authorization_server_metadata() {
    let auth = AuthorizationServerMode::new(server(ISSUER)).unwrap();
    let app = TestServer::start(auth.router()).await;
    let response = request(
        Method::GET,
        &app.url("/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::to_value(&server(ISSUER).metadata).unwrap()
    );

    // Lazily configured: fetched on the first request.
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(
        "/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );
    let lazy =
        AuthorizationServerMode::new(AuthServer::discover(&issuer, AuthServerType::Oidc)).unwrap();
    let app = TestServer::start(lazy.router()).await;
    let body: Value = request(
        Method::GET,
        &app.url("/.well-known/oauth-authorization-server"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body, compatible_metadata(&issuer));
}

#[tokio::test]
async fn the_deprecated_mode_answers_503_while_the_metadata_cannot_be_had() {
    let down = closed_port().await;
    let auth = AuthorizationServerMode::new(AuthServer::discover(
        format!("http://{down}"),
        AuthServerType::Oidc,
    ))
    .unwrap();
    let app = TestServer::start(auth.router()).await;
    let response = request(
        Method::GET,
        &app.url("/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The key cache's retry interval (10 s by default), counted from the failed fetch.
    let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "temporarily_unavailable",
            "error_description": "The authorization server metadata cannot be retrieved right now."
        })
    );
}

#[tokio::test]
async fn the_deprecated_mode_does_not_ask_a_failing_server_once_per_request() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    let path = "/.well-known/openid-configuration";
    stub.on(
        path,
        Reply::Raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "down".into(),
        ),
    );
    let auth =
        AuthorizationServerMode::new(AuthServer::discover(&issuer, AuthServerType::Oidc)).unwrap();
    let app = TestServer::start(auth.router()).await;
    let url = app.url("/.well-known/oauth-authorization-server");
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let response = request(Method::GET, &url).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(header(&response, "retry-after").is_some());
    }
    // At most one fetch per retry interval (10 s by default): one, unless the machine is so
    // loaded that the 100 requests took longer than that.
    let intervals = started.elapsed().as_secs() / 10;
    let hits = stub.hits(path) as u64;
    assert!(
        hits <= 1 + intervals,
        "{hits} fetches for 100 requests in {intervals} retry intervals"
    );
}
