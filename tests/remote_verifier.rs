//! Opaque-token verification by asking the authorization server (introspection, userinfo),
//! with answers cached per token and bounded, against the development server over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mcpauth::dev::DevAuthServer;
use mcpauth::{BearerAuthLayer, McpAuth, ProtectedResource, RemoteVerifier};
use mcpauth_tests::TestServer;
use reqwest::StatusCode;
use serde_json::Value;

const RESOURCE: &str = "http://127.0.0.1:9/api";

async fn protect(
    dev: &DevAuthServer,
    layer: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer,
) -> TestServer {
    let auth = McpAuth::resource_server([ProtectedResource::new(RESOURCE)
        .authorization_server(dev.config())
        .scopes(["read", "write"])])
    .unwrap();
    let bearer = layer(
        auth.bearer_auth(RESOURCE)
            .unwrap()
            .required_scopes(["read"])
            .unwrap(),
    );
    let app = axum::Router::new()
        .route(
            "/api",
            axum::routing::get(|auth: mcpauth::AuthInfo| async move {
                format!("{} {:?}", auth.subject(), auth.scopes())
            }),
        )
        .route_layer(bearer);
    TestServer::start(app).await
}

async fn get(server: &TestServer, token: &str) -> (StatusCode, String) {
    server
        .get_with_bearer(&reqwest::Client::new(), "/api", token)
        .await
}

fn introspection(dev: &DevAuthServer) -> RemoteVerifier {
    RemoteVerifier::introspection(
        dev.issuer(),
        dev.metadata().introspection_endpoint.as_deref().unwrap(),
        "resource-server",
        "secret",
    )
    .unwrap()
}

#[tokio::test]
async fn introspection_answers_are_cached_per_token() {
    let dev = DevAuthServer::start().await.unwrap();
    let server = protect(&dev, |l| l.verifier(introspection(&dev))).await;
    let token = dev
        .token()
        .subject("alice")
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap();
    assert_eq!(
        get(&server, &token).await,
        (StatusCode::OK, "alice [\"read\"]".to_owned())
    );
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(
        dev.introspection_requests(),
        1,
        "the second request used the cached answer"
    );

    // Inactive tokens, tokens for another resource and missing scopes are refused.
    let (status, body) = get(&server, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "rejected"
    );
    let foreign = dev
        .token()
        .audience("https://other.example")
        .scopes(["read"])
        .sign()
        .unwrap();
    assert_eq!(get(&server, &foreign).await.0, StatusCode::UNAUTHORIZED);
    let writer = dev
        .token()
        .audience(RESOURCE)
        .scopes(["write"])
        .sign()
        .unwrap();
    assert_eq!(get(&server, &writer).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_cache_is_bounded_in_time_and_entries() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = introspection(&dev)
        .max_cache_ttl(Duration::from_millis(200))
        .max_cached_tokens(1);
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let first = dev
        .token()
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap();
    let second = dev
        .token()
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap();
    assert_eq!(get(&server, &first).await.0, StatusCode::OK);
    assert_eq!(get(&server, &second).await.0, StatusCode::OK);
    assert_eq!(get(&server, &second).await.0, StatusCode::OK);
    assert_eq!(
        dev.introspection_requests(),
        3,
        "only one answer fits in the cache"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(&server, &first).await.0, StatusCode::OK);
    assert_eq!(
        dev.introspection_requests(),
        4,
        "the cached answer outlived its ceiling"
    );
}

#[tokio::test]
async fn userinfo_verifies_tokens_by_calling_the_provider() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = RemoteVerifier::userinfo(
        dev.issuer(),
        dev.metadata().userinfo_endpoint.as_deref().unwrap(),
    )
    .unwrap();
    // Userinfo answers say nothing of the audience: skipping the check is explicit.
    let server = protect(&dev, |l| l.verifier(verifier).skip_audience_check()).await;
    let token = dev.token().subject("bob").scopes(["read"]).sign().unwrap();
    assert_eq!(
        get(&server, &token).await,
        (StatusCode::OK, "bob [\"read\"]".to_owned())
    );
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(dev.userinfo_requests(), 1);
    let expired = dev
        .token()
        .scopes(["read"])
        .expires_at(1_000)
        .sign()
        .unwrap();
    assert_eq!(get(&server, &expired).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_provider_means_503() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = introspection(&dev);
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let token = dev
        .token()
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap();
    dev.shutdown().await;
    let (status, body) = get(&server, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "verifier_unavailable"
    );
}

#[test]
fn endpoints_follow_the_url_rules() {
    assert!(RemoteVerifier::userinfo("https://a.example", "http://a.example/me").is_err());
    assert!(
        RemoteVerifier::introspection("https://a.example#x", "https://a.example/i", "c", "s")
            .is_err()
    );
}
