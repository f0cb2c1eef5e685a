//! Faults around verification, over real HTTP: the authorization server down before and after
//! keys were cached, key rotation (new and reused `kid`), concurrent misses, random `kid`
//! floods, oversized and silent key-set endpoints; custom verifiers and layer configuration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcpauth::dev::{DevAuthServer, KeyRotation};
use mcpauth::discovery::MetadataFetcher;
use mcpauth::{
    AuthInfo, AuthServer, AuthServerType, ConfigError, CustomVerifyError, KeyCacheOptions, McpAuth,
    ProtectedResource,
};
use mcpauth_tests::protected::Protected;
use mcpauth_tests::{Reply, StubServer, TestServer, closed_port, silent_server};
use serde_json::{Value, json};

fn interval(millis: u64) -> KeyCacheOptions {
    KeyCacheOptions::default().min_refresh_interval(Duration::from_millis(millis))
}

async fn assert_unavailable(response: reqwest::Response, reason: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "not the client's fault"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["reason"], reason);
}

#[tokio::test]
async fn an_unreachable_authorization_server_means_503_until_it_can_be_reached() {
    // The issuer's port is free now; the authorization server starts there later.
    let addr = closed_port().await;
    let issuer = format!("http://{addr}");
    let app = Protected::start(
        AuthServer::discover(&issuer, AuthServerType::Oidc),
        interval(200),
        |l| l,
    )
    .await;
    // The protected server starts and serves its metadata without the authorization server.
    assert_eq!(
        reqwest::get(app.metadata_url()).await.unwrap().status(),
        StatusCode::OK
    );
    let response = app
        .get_with("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "an unknown issuer is refused without any fetch"
    );

    let dev = DevAuthServer::builder().bind(addr).start().await.unwrap();
    assert_eq!(dev.issuer(), issuer);
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    dev.shutdown().await;

    assert_unavailable(app.get_with(&token).await, "metadata_unavailable").await;
    assert_unavailable(app.get_with(&token).await, "metadata_unavailable").await;

    // Back up (same port, same issuer, new keys): after the retry interval it works.
    let dev = DevAuthServer::builder().bind(addr).start().await.unwrap();
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(app.get_with(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_at_the_first_token_mean_503() {
    let dev = DevAuthServer::start().await.unwrap();
    let config = dev.config();
    let token = |resource: &str| {
        dev.token()
            .audience(resource)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    let app = Protected::start(AuthServer::new(config), interval(100), |l| l).await;
    let valid = token(&app.resource);
    dev.shutdown().await;
    assert_unavailable(app.get_with(&valid).await, "keys_unavailable").await;
    // Within the interval no new fetch is tried, and the answer stays 503.
    assert_unavailable(app.get_with(&valid).await, "keys_unavailable").await;
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_authorization_server_is_down() {
    let dev = DevAuthServer::start().await.unwrap();
    // Keys go stale at once, so every request would like a refresh: it must fail quietly.
    let options = interval(50).ttl_bounds(Duration::ZERO, Duration::ZERO);
    let app = Protected::start(AuthServer::new(dev.config()), options, |l| l).await;
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    assert_eq!(app.get_with(&token).await.status(), StatusCode::OK);
    dev.shutdown().await;
    for _ in 0..5 {
        assert_eq!(app.get_with(&token).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

#[tokio::test]
async fn rotation_to_a_new_kid_costs_one_fetch() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(AuthServer::new(dev.config()), interval(200), |l| l).await;
    let token = || {
        dev.token()
            .audience(&app.resource)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    let old = token();
    assert_eq!(app.get_with(&old).await.status(), StatusCode::OK);
    assert_eq!(dev.jwks_requests(), 1);
    assert_eq!(app.get_with(&old).await.status(), StatusCode::OK);
    assert_eq!(dev.jwks_requests(), 1, "keys are cached");

    dev.rotate_keys(KeyRotation::NewKeyIds).await.unwrap();
    let new = token();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(app.get_with(&new).await.status(), StatusCode::OK);
    assert_eq!(dev.jwks_requests(), 2);
    assert_eq!(app.get_with(&new).await.status(), StatusCode::OK);
    assert_eq!(dev.jwks_requests(), 2);
}

#[tokio::test]
async fn rotation_that_reuses_a_kid_costs_one_fetch() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(AuthServer::new(dev.config()), interval(200), |l| {
        l.show_error_details(true)
    })
    .await;
    let token = || {
        dev.token()
            .audience(&app.resource)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    let old = token();
    assert_eq!(app.get_with(&old).await.status(), StatusCode::OK);

    dev.rotate_keys(KeyRotation::ReuseKeyIds).await.unwrap();
    let new = token();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(app.get_with(&new).await.status(), StatusCode::OK);
    assert_eq!(dev.jwks_requests(), 2);
    // The old key is gone for good: its token no longer verifies.
    let response = app.get_with(&old).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["reason"],
        "invalid_signature"
    );
}

#[tokio::test]
async fn five_hundred_concurrent_requests_with_a_new_kid_fetch_once() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Arc::new(Protected::start(AuthServer::new(dev.config()), interval(100), |l| l).await);
    let token = || {
        dev.token()
            .audience(&app.resource)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    assert_eq!(app.get_with(&token()).await.status(), StatusCode::OK);
    dev.rotate_keys(KeyRotation::NewKeyIds).await.unwrap();
    let new = Arc::new(token());
    tokio::time::sleep(Duration::from_millis(150)).await;

    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..500)
        .map(|_| {
            let (client, app, new) = (client.clone(), app.clone(), new.clone());
            tokio::spawn(async move {
                client
                    .get(app.notes())
                    .bearer_auth(new.as_str())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        dev.jwks_requests(),
        2,
        "one fetch for the warm-up, one for the new kid"
    );
}

#[tokio::test]
async fn random_kids_cannot_make_the_cache_fetch_more_often_than_the_interval() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Arc::new(Protected::start(AuthServer::new(dev.config()), interval(500), |l| l).await);
    assert_eq!(
        app.get_with(
            &dev.token()
                .audience(&app.resource)
                .scopes(["read:notes"])
                .sign()
                .unwrap()
        )
        .await
        .status(),
        StatusCode::OK
    );
    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            dev.token()
                .audience(&app.resource)
                .scopes(["read:notes"])
                .key_id(format!("random-{i}"))
                .sign()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let client = reqwest::Client::new();
    for batch in tokens.chunks(25) {
        let requests: Vec<_> = batch
            .iter()
            .map(|token| {
                let (client, url, token) = (client.clone(), app.notes(), token.clone());
                tokio::spawn(async move {
                    client
                        .get(url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), StatusCode::UNAUTHORIZED);
        }
    }
    let elapsed = started.elapsed();
    let allowed = 1 + (elapsed.as_millis() / 500) as usize + 1;
    let fetches = dev.jwks_requests();
    assert!(
        fetches <= allowed,
        "{fetches} fetches in {elapsed:?} (at most {allowed})"
    );
}

/// Found by the soak run: a token of a new key arriving while the fetch that brings its key is
/// under way (a slow authorization server) must wait for that fetch, not be told the key is
/// unknown because a fetch "started less than the interval ago".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_arriving_during_a_slow_key_fetch_joins_it() {
    let dev = DevAuthServer::start().await.unwrap();
    let jwks = || async {
        reqwest::get(dev.jwks_uri())
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let old_keys = jwks().await;
    let app_token = |resource: &str| {
        dev.token()
            .audience(resource)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    let stub = StubServer::start().await;
    let mut config = dev.config();
    config.metadata.jwks_uri = Some(stub.url("/jwks"));
    let app = Arc::new(Protected::start(AuthServer::new(config), interval(300), |l| l).await);
    let old = app_token(&app.resource);
    dev.rotate_keys(KeyRotation::NewKeyIds).await.unwrap();
    let new_keys = jwks().await;
    let (a, b) = (app_token(&app.resource), app_token(&app.resource));
    stub.on_sequence(
        "/jwks",
        vec![
            Reply::Json(old_keys),
            Reply::SlowJson(Duration::from_millis(1500), new_keys),
        ],
    );
    assert_eq!(app.get_with(&old).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A starts the (slow) fetch; B arrives while it is under way.
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.get_with(&a).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(app.get_with(&b).await.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "B waited for the fetch"
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(stub.hits("/jwks"), 2);
}

#[tokio::test]
async fn an_oversized_key_set_is_refused() {
    let dev = DevAuthServer::start().await.unwrap();
    let stub = StubServer::start().await;
    let huge = json!({"keys": [], "padding": "x".repeat(300 * 1024)});
    stub.on("/jwks", Reply::Json(huge));
    let mut config = dev.config();
    config.metadata.jwks_uri = Some(stub.url("/jwks"));
    let app = Protected::start(AuthServer::new(config), interval(100), |l| l).await;
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    assert_unavailable(app.get_with(&token).await, "keys_unavailable").await;
    assert_eq!(stub.hits("/jwks"), 1);
}

#[tokio::test]
async fn a_key_set_endpoint_that_never_answers_fails_within_the_bound() {
    let dev = DevAuthServer::start().await.unwrap();
    let (silent, _held) = silent_server().await;
    let mut config = dev.config();
    config.metadata.jwks_uri = Some(format!("http://{silent}/jwks"));
    let fetcher = MetadataFetcher::builder()
        .timeout(Duration::from_millis(500))
        .build();
    let app = Arc::new(
        Protected::start(
            AuthServer::new(config).fetcher(fetcher),
            interval(100),
            |l| l,
        )
        .await,
    );
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();

    let started = Instant::now();
    let pending = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { app.get_with(&token).await })
    };
    // While the fetch hangs, the server keeps serving.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        reqwest::get(app.metadata_url()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_unavailable(pending.await.unwrap(), "keys_unavailable").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn metadata_without_jwks_uri_is_a_500_without_challenge() {
    let dev = DevAuthServer::start().await.unwrap();
    let mut config = dev.config();
    config.metadata.jwks_uri = None;
    let app = Protected::start(AuthServer::new(config), interval(100), |l| l).await;
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    let response = app.get_with(&token).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("www-authenticate").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "server_error");
    assert_eq!(body["reason"], "missing_jwks_uri");
    // An unknown issuer is still a plain 401, whatever the server's state.
    let foreign = dev
        .token()
        .issuer("https://x.example")
        .audience(&app.resource)
        .sign()
        .unwrap();
    assert_eq!(
        app.get_with(&foreign).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn custom_verifiers_are_still_checked_for_issuer_audience_and_scopes() {
    let dev = DevAuthServer::start().await.unwrap();
    let base = Protected::start(AuthServer::new(dev.config()), interval(100), |l| l).await;
    let (issuer, resource) = (dev.issuer().to_owned(), base.resource.clone());
    // An opaque-token verifier: `<subject>[-<variant>]`.
    let verifier = move |token: String| {
        let (issuer, resource) = (issuer.clone(), resource.clone());
        async move {
            let (who, variant) = token.split_once('-').unwrap_or((token.as_str(), ""));
            let (issuer, audience) = match (who, variant) {
                ("down", _) => {
                    return Err(CustomVerifyError::Unavailable(
                        "introspection is down".into(),
                    ));
                }
                ("nobody", _) => return Err(CustomVerifyError::InvalidToken("inactive".into())),
                (_, "foreign") => ("https://evil.example".to_owned(), resource),
                (_, "elsewhere") => (issuer, "https://other.example".to_owned()),
                (_, "reader") => (issuer, resource),
                (_, "expired") => {
                    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
                    return Ok(AuthInfo::builder(token.clone(), issuer, who)
                        .audience([resource])
                        .scopes(["read:notes"])
                        .expires_at(past)
                        .build());
                }
                _ => {
                    return Ok(AuthInfo::builder(token.clone(), issuer, who)
                        .audience([resource])
                        .build());
                }
            };
            Ok(AuthInfo::builder(token.clone(), issuer, who)
                .audience([audience])
                .scopes(["read:notes"])
                .build())
        }
    };
    let layer = base
        .auth
        .bearer_auth(&base.resource)
        .unwrap()
        .required_scopes(["read:notes"])
        .unwrap()
        .show_error_details(true)
        .verifier(verifier);
    let app = TestServer::start(
        axum::Router::new()
            .route(
                "/notes",
                axum::routing::get(|auth: AuthInfo| async move { auth.subject().to_owned() }),
            )
            .route_layer(layer),
    )
    .await;
    let get = |token: &'static str| {
        let url = app.url("/notes");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let ok = get("alice-reader").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "alice");
    for (token, status, reason) in [
        ("alice", StatusCode::FORBIDDEN, "insufficient_scope"),
        (
            "alice-foreign",
            StatusCode::UNAUTHORIZED,
            "untrusted_issuer",
        ),
        (
            "alice-elsewhere",
            StatusCode::UNAUTHORIZED,
            "invalid_audience",
        ),
        ("nobody", StatusCode::UNAUTHORIZED, "rejected"),
        ("alice-expired", StatusCode::UNAUTHORIZED, "expired"),
        (
            "down",
            StatusCode::SERVICE_UNAVAILABLE,
            "verifier_unavailable",
        ),
    ] {
        let response = get(token).await;
        assert_eq!(response.status(), status, "{token}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["reason"],
            reason,
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_handler_asking_for_auth_info_without_the_layer_gets_500_not_anonymous_access() {
    let app = TestServer::start(axum::Router::new().route(
        "/",
        axum::routing::get(|auth: AuthInfo| async move { auth.subject().to_owned() }),
    ))
    .await;
    let response = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn bearer_layers_are_checked_when_made() {
    let dev = DevAuthServer::start().await.unwrap();
    let auth = McpAuth::resource_server([ProtectedResource::new("https://api.example.com/notes")
        .authorization_server(dev.config())
        .scopes(["read:notes"])])
    .unwrap();
    assert!(matches!(
        auth.bearer_auth("https://api.example.com/other"),
        Err(ConfigError::UnknownResource { .. })
    ));
    let layer = auth.bearer_auth("https://api.example.com/notes").unwrap();
    let error = layer.clone().required_scopes(["read:note"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the scope \"read:note\" is not among the scopes_supported of the resource `https://api.example.com/notes`: declare it or fix the spelling"
    );
    assert!(matches!(
        layer.required_scopes(["read notes"]),
        Err(ConfigError::InvalidScope { .. })
    ));
}
