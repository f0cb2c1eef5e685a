//! The verified-token cache over real HTTP: a repeated token is verified once (also under
//! concurrency), every hit still gets each route's checks (scopes, audience, `typ`, `exp`),
//! entries end at `exp` and when their key leaves the key set, refusals are never cached, the
//! bounds hold, and the cache can be turned off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use mcpauth::dev::{DevAuthServer, KeyRotation};
use mcpauth::{
    AuthInfo, AuthServer, KeyCacheOptions, McpAuth, ProtectedResource, TokenCacheOptions,
    TokenCacheStats,
};
use mcpauth_tests::{TestServer, parse_challenge};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

/// An application with one resource and several routes, each behind its own layer:
/// `/read` (needs `read:notes`), `/write` (needs `write:notes`), `/strict` (RFC 9068 `typ`
/// only), `/any-audience` (audience check off), `/no-leeway` (leeway 0).
struct App {
    dev: DevAuthServer,
    auth: McpAuth,
    resource: String,
    server: TestServer,
    client: reqwest::Client,
}

impl App {
    async fn start(cache: TokenCacheOptions, keys: KeyCacheOptions) -> Self {
        let dev = DevAuthServer::start().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/notes", listener.local_addr().unwrap());
        let auth = McpAuth::builder()
            .protected_resource(
                ProtectedResource::new(&resource)
                    .authorization_server(AuthServer::new(dev.config()))
                    .scopes(["read:notes", "write:notes"]),
            )
            .key_cache(keys)
            .token_cache(cache)
            .build()
            .unwrap();
        // Details shown: the tests read each refusal's precise reason.
        let layer = || {
            auth.bearer_auth(&resource)
                .unwrap()
                .show_error_details(true)
        };
        let subject = || get(|auth: AuthInfo| async move { auth.subject().to_owned() });
        let app = axum::Router::new()
            .route(
                "/read",
                subject().route_layer(layer().required_scopes(["read:notes"]).unwrap()),
            )
            .route(
                "/write",
                subject().route_layer(layer().required_scopes(["write:notes"]).unwrap()),
            )
            .route(
                "/strict",
                subject().route_layer(layer().strict_token_type()),
            )
            .route(
                "/any-audience",
                subject().route_layer(layer().skip_audience_check()),
            )
            .route(
                "/no-leeway",
                subject().route_layer(layer().leeway(Duration::ZERO)),
            );
        let server = TestServer::serve(listener, app);
        Self {
            dev,
            auth,
            resource,
            server,
            client: reqwest::Client::new(),
        }
    }

    async fn with_defaults() -> Self {
        Self::start(TokenCacheOptions::default(), KeyCacheOptions::default()).await
    }

    fn token(&self) -> mcpauth::dev::TokenBuilder {
        self.dev
            .token()
            .subject("alice")
            .audience(&self.resource)
            .scopes(["read:notes"])
    }

    /// The status and the body (JSON, or the text as a JSON string).
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let (status, text) = self.server.get_with_bearer(&self.client, path, token).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The parameters of the `WWW-Authenticate` challenge a refused request gets.
    async fn challenge(&self, path: &str, token: &str) -> BTreeMap<String, String> {
        let response = self
            .client
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (scheme, params) =
            parse_challenge(response.headers()["www-authenticate"].to_str().unwrap());
        assert_eq!(scheme, "Bearer");
        params
    }

    fn stats(&self) -> TokenCacheStats {
        self.auth.token_cache_stats(&self.resource).unwrap()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn a_repeated_token_is_verified_once_and_every_hit_still_checks_scopes() {
    let app = App::with_defaults().await;
    let token = app.token().sign().unwrap();
    for _ in 0..5 {
        let (status, body) = app.get("/read", &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "alice");
    }
    let stats = app.stats();
    assert_eq!(stats.verifications, 1);
    assert_eq!(stats.entries, 1);
    assert!(stats.estimated_bytes > 2 * token.len() as u64, "{stats:?}");

    // A hit on another route gets that route's scope check, and its challenge.
    let (status, body) = app.get("/write", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["missing_scopes"], serde_json::json!(["write:notes"]));
    let challenge = app.challenge("/write", &token).await;
    assert_eq!(challenge["error"], "insufficient_scope");
    assert_eq!(challenge["scope"], "write:notes");
    assert_eq!(
        challenge["resource_metadata"],
        app.server
            .url("/.well-known/oauth-protected-resource/notes")
    );
    assert_eq!(app.stats().verifications, 1, "answered from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_new_token_verify_it_once() {
    let app = Arc::new(App::with_defaults().await);
    // Warm the key cache, so the first verification does not wait for the key set.
    let warm = app.token().sign().unwrap();
    assert_eq!(app.get("/read", &warm).await.0, StatusCode::OK);

    let token = Arc::new(app.token().subject("bob").sign().unwrap());
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { app.get("/read", &token).await })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "bob");
    }
    assert_eq!(app.stats().verifications, 2, "one for each token");
}

#[tokio::test]
async fn a_hit_gets_each_routes_audience_and_type_rules() {
    let app = App::with_defaults().await;
    // Accepted where the audience is not checked, and cached there…
    let foreign = app
        .token()
        .audience("https://elsewhere.example.com/")
        .sign()
        .unwrap();
    assert_eq!(app.get("/any-audience", &foreign).await.0, StatusCode::OK);
    assert_eq!(app.stats().entries, 1);
    // …but refused where it is.
    let (status, body) = app.get("/read", &foreign).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "invalid_audience");
    assert_eq!(
        app.challenge("/read", &foreign).await["error"],
        "invalid_token"
    );

    // `typ: JWT` passes the lenient routes, never the strict one.
    let plain = app.token().header_type(Some("JWT")).sign().unwrap();
    assert_eq!(app.get("/read", &plain).await.0, StatusCode::OK);
    let (status, body) = app.get("/strict", &plain).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "invalid_token_type");
    assert_eq!(app.stats().verifications, 2, "both refusals came from hits");
}

#[tokio::test]
async fn an_entry_ends_at_exp_whatever_the_leeway() {
    let app = App::with_defaults().await;
    let token = app.token().expires_at(unix_now() + 2).sign().unwrap();
    assert_eq!(app.get("/no-leeway", &token).await.0, StatusCode::OK);
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.stats().verifications, 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;

    let (status, body) = app.get("/no-leeway", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "expired");
    // Within the default leeway the token is still accepted, but verified each time: an
    // expired token is never served from the cache.
    let before = app.stats().verifications;
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.stats().verifications, before + 2);
    assert_eq!(app.stats().entries, 0);
}

/// Polls `/read` with `token` until it is refused (the key set refreshes in the background).
async fn refused_within(app: &App, token: &str, limit: Duration) -> Value {
    let start = tokio::time::Instant::now();
    loop {
        let (status, body) = app.get("/read", token).await;
        if status == StatusCode::UNAUTHORIZED {
            return body;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn short_lived_keys() -> KeyCacheOptions {
    KeyCacheOptions::default()
        .default_ttl(Duration::from_millis(500))
        .ttl_bounds(Duration::from_millis(500), Duration::from_secs(1))
        .min_refresh_interval(Duration::from_millis(100))
}

#[tokio::test]
async fn a_rotation_that_drops_the_key_ends_its_entries() {
    let app = App::start(TokenCacheOptions::default(), short_lived_keys()).await;
    let token = app.token().sign().unwrap();
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.stats().entries, 1);

    // Only cache hits from here on: the key set still refreshes behind them.
    app.dev.rotate_keys(KeyRotation::NewKeyIds).await.unwrap();
    let body = refused_within(&app, &token, Duration::from_secs(5)).await;
    assert_eq!(body["reason"], "unknown_key");
    // And it stays refused.
    assert_eq!(app.get("/read", &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/read", &app.token().sign().unwrap()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_rotation_that_reuses_the_kid_ends_its_entries() {
    let app = App::start(TokenCacheOptions::default(), short_lived_keys()).await;
    let token = app.token().sign().unwrap();
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);

    app.dev.rotate_keys(KeyRotation::ReuseKeyIds).await.unwrap();
    let body = refused_within(&app, &token, Duration::from_secs(5)).await;
    assert_eq!(body["reason"], "invalid_signature");
}

#[tokio::test]
async fn a_refetched_key_set_with_the_same_keys_keeps_the_entries() {
    let app = App::start(TokenCacheOptions::default(), short_lived_keys()).await;
    let token = app.token().sign().unwrap();
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    let fetches = app.dev.jwks_requests();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert!(
        app.dev.jwks_requests() > fetches,
        "the stale set was refetched"
    );
    assert_eq!(
        app.stats().verifications,
        1,
        "the unchanged key kept its entry"
    );
}

#[tokio::test]
async fn refusals_are_not_cached_and_cannot_displace_a_valid_token() {
    let app = App::with_defaults().await;
    let token = app.token().sign().unwrap();
    // The same header and payload with another signature (same kid): refused every time.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(342));
    for _ in 0..3 {
        let (status, body) = app.get("/read", &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["reason"], "invalid_signature");
    }
    assert_eq!(app.stats().entries, 0);
    assert_eq!(app.stats().verifications, 3);
    // The valid token is unaffected, before and after.
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.get("/read", &forged).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    assert_eq!(app.stats().entries, 1);
}

/// The stats after 40 requests, each with a new token, to an app whose cache has `options`.
async fn after_forty_new_tokens(options: TokenCacheOptions) -> TokenCacheStats {
    let app = App::start(options, KeyCacheOptions::default()).await;
    for i in 0..40 {
        let token = app.token().subject(format!("user-{i}")).sign().unwrap();
        assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    }
    app.stats()
}

#[tokio::test]
async fn the_entry_and_byte_bounds_hold() {
    let stats = after_forty_new_tokens(TokenCacheOptions::default().max_entries(4)).await;
    assert!(stats.entries >= 1 && stats.entries <= 4, "{stats:?}");
    assert_eq!(stats.verifications, 40);

    let budget = 8 * 1024;
    let stats = after_forty_new_tokens(TokenCacheOptions::default().max_bytes(budget)).await;
    assert!(stats.estimated_bytes <= budget as u64, "{stats:?}");
    assert!(stats.entries >= 1 && stats.entries < 40, "{stats:?}");
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let app = App::start(TokenCacheOptions::disabled(), KeyCacheOptions::default()).await;
    let token = app.token().sign().unwrap();
    for _ in 0..3 {
        assert_eq!(app.get("/read", &token).await.0, StatusCode::OK);
    }
    assert_eq!(app.get("/write", &token).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.auth.token_cache_stats(&app.resource), None);
}
