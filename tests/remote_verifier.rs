//! Opaque-token verification by asking the authorization server (introspection, userinfo),
//! against the development server over HTTP: each token costs bounded work on the server —
//! one call per token under concurrency, refusals remembered briefly, failures never, calls
//! rate-limited (503 with `Retry-After` beyond), caches bounded in entries and bytes — and
//! answers are read strictly (token type; userinfo scopes only from a named member).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use mcpauth::dev::DevAuthServer;
use mcpauth::{BearerAuthLayer, McpAuth, ProtectedResource, RemoteVerifier};
use mcpauth_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

const RESOURCE: &str = "http://127.0.0.1:9/api";

async fn protect(
    dev: &DevAuthServer,
    layer: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer,
) -> TestServer {
    let auth = McpAuth::resource_server([ProtectedResource::new(RESOURCE)
        .authorization_server(dev.config())
        .scopes(["read", "write"])])
    .unwrap();
    // Details shown: the tests read each refusal's precise reason.
    let bearer = layer(
        auth.bearer_auth(RESOURCE)
            .unwrap()
            .required_scopes(["read"])
            .unwrap()
            .show_error_details(true),
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

/// One request's status, `Retry-After` and JSON body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn request(client: &reqwest::Client, server: &TestServer, token: &str) -> Answer {
    let response = client
        .get(server.url("/api"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `count` requests with `token` at once.
async fn concurrently(server: &TestServer, token: &str, count: usize) -> Vec<Answer> {
    let client = reqwest::Client::new();
    join_all((0..count).map(|_| request(&client, server, token))).await
}

fn introspection_at(dev: &DevAuthServer, endpoint: &str) -> RemoteVerifier {
    RemoteVerifier::introspection(dev.issuer(), endpoint, "resource-server", "secret").unwrap()
}

fn introspection(dev: &DevAuthServer) -> RemoteVerifier {
    introspection_at(
        dev,
        dev.metadata().introspection_endpoint.as_deref().unwrap(),
    )
}

fn userinfo_at(dev: &DevAuthServer, endpoint: &str) -> RemoteVerifier {
    RemoteVerifier::userinfo(dev.issuer(), endpoint).unwrap()
}

fn userinfo(dev: &DevAuthServer) -> RemoteVerifier {
    userinfo_at(dev, dev.metadata().userinfo_endpoint.as_deref().unwrap())
}

fn reader(dev: &DevAuthServer) -> String {
    dev.token()
        .subject("alice")
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap()
}

type Rewrite = Box<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

struct FrontState {
    introspect: String,
    userinfo: String,
    delay: Duration,
    rewrite: Rewrite,
    /// Statuses to answer the next calls with instead of forwarding them.
    failures: Mutex<Vec<AxumStatus>>,
    calls: AtomicUsize,
    client: reqwest::Client,
}

/// A front for the development server's `/introspect` and `/userinfo`: each call is counted,
/// held for `delay` (a slow server), then forwarded and its JSON answer rewritten, or answered
/// with a failure when one is queued.
struct Front {
    server: TestServer,
    state: Arc<FrontState>,
}

impl Front {
    async fn start(
        dev: &DevAuthServer,
        delay: Duration,
        rewrite: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    ) -> Self {
        let metadata = dev.metadata();
        let state = Arc::new(FrontState {
            introspect: metadata.introspection_endpoint.clone().unwrap(),
            userinfo: metadata.userinfo_endpoint.clone().unwrap(),
            delay,
            rewrite: Box::new(rewrite),
            failures: Mutex::default(),
            calls: AtomicUsize::new(0),
            client: reqwest::Client::new(),
        });
        let app = axum::Router::new()
            .route("/introspect", axum::routing::post(forward_introspection))
            .route("/userinfo", axum::routing::get(forward_userinfo))
            .with_state(state.clone());
        Self {
            server: TestServer::start(app).await,
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Answers the next call with `status`.
    fn fail_next(&self, status: AxumStatus) {
        self.state.failures.lock().unwrap().push(status);
    }
}

async fn forward(state: &FrontState, request: reqwest::RequestBuilder) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let failure = {
        let mut failures = state.failures.lock().unwrap();
        (!failures.is_empty()).then(|| failures.remove(0))
    };
    tokio::time::sleep(state.delay).await;
    if let Some(status) = failure {
        return (status, "failing on purpose").into_response();
    }
    let response = request.send().await.unwrap();
    let status = AxumStatus::from_u16(response.status().as_u16()).unwrap();
    let mut body: Value = response.json().await.unwrap();
    if let Some(members) = body.as_object_mut() {
        (state.rewrite)(members);
    }
    (status, axum::Json(body)).into_response()
}

async fn forward_introspection(
    State(state): State<Arc<FrontState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = state.client.post(&state.introspect).body(body);
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.to_str().unwrap());
        }
    }
    forward(&state, request).await
}

async fn forward_userinfo(State(state): State<Arc<FrontState>>, headers: HeaderMap) -> Response {
    let mut request = state.client.get(&state.userinfo);
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        request = request.header("authorization", value.to_str().unwrap());
    }
    forward(&state, request).await
}

#[tokio::test]
async fn introspection_answers_are_cached_per_token() {
    let dev = DevAuthServer::start().await.unwrap();
    let server = protect(&dev, |l| l.verifier(introspection(&dev))).await;
    let token = reader(&dev);
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
async fn concurrent_requests_with_one_new_token_make_one_call() {
    let dev = DevAuthServer::start().await.unwrap();
    let front = Front::start(&dev, Duration::from_millis(500), |_| {}).await;
    let verifier = introspection_at(&dev, &front.url("/introspect"));
    let server = protect(&dev, |l| l.verifier(verifier)).await;

    let token = reader(&dev);
    let answers = concurrently(&server, &token, 32).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(front.calls(), 1, "32 concurrent requests, one call");
    assert_eq!(dev.introspection_requests(), 1);

    // The same for a token the server refuses: one call, every request 401.
    let answers = concurrently(&server, "bogus", 32).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::UNAUTHORIZED));
    assert_eq!(front.calls(), 2);

    // And for userinfo.
    let verifier = userinfo_at(&dev, &front.url("/userinfo"));
    let server = protect(&dev, |l| l.verifier(verifier).skip_audience_check()).await;
    let calls = dev.userinfo_requests();
    let token = dev.token().sign().unwrap();
    let answers = concurrently(&server, &token, 32).await;
    // Userinfo grants no scopes unless told where they are: 403, after one call.
    assert!(answers.iter().all(|a| a.status == StatusCode::FORBIDDEN));
    assert_eq!(dev.userinfo_requests(), calls + 1);
}

#[tokio::test]
async fn a_refused_token_repeated_costs_one_call_until_the_refusal_ends() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = introspection(&dev);
    let stats = verifier.clone();
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    for _ in 0..50 {
        let (status, body) = get(&server, "bogus").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["reason"],
            "rejected"
        );
    }
    assert_eq!(dev.introspection_requests(), 1, "50 requests, one call");
    assert_eq!(stats.stats().refusals, 1);
    assert_eq!(stats.stats().answers, 0, "a refusal is not an answer");

    // Userinfo's 401 is a refusal too.
    let server = protect(&dev, |l| l.verifier(userinfo(&dev)).skip_audience_check()).await;
    for _ in 0..50 {
        assert_eq!(get(&server, "bogus").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(dev.userinfo_requests(), 1);

    // A refusal ends after the refusal time.
    let verifier = introspection(&dev).refusal_ttl(Duration::from_millis(300));
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let calls = dev.introspection_requests();
    assert_eq!(get(&server, "bogus").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&server, "bogus").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(dev.introspection_requests(), calls + 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(&server, "bogus").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(dev.introspection_requests(), calls + 2);
}

#[tokio::test]
async fn failures_are_shared_with_waiting_requests_and_never_remembered() {
    let dev = DevAuthServer::start().await.unwrap();
    let front = Front::start(&dev, Duration::from_millis(500), |_| {}).await;
    let verifier = introspection_at(&dev, &front.url("/introspect"));
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let token = reader(&dev);

    // A slow failure: the requests that waited for the call share it…
    front.fail_next(AxumStatus::INTERNAL_SERVER_ERROR);
    let answers = concurrently(&server, &token, 16).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.body["reason"], "verifier_unavailable");
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    assert_eq!(front.calls(), 1);
    // …and the next request asks again.
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(front.calls(), 2);

    // The introspection endpoint refusing this server's credentials (RFC 7662 §2.3) is not the
    // token's fault: 503, and not remembered.
    let other = reader(&dev);
    front.fail_next(AxumStatus::UNAUTHORIZED);
    let client = reqwest::Client::new();
    let answer = request(&client, &server, &other).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["reason"], "verifier_unavailable");
    assert_eq!(get(&server, &other).await.0, StatusCode::OK);
    assert_eq!(front.calls(), 4);
}

#[tokio::test]
async fn calls_beyond_the_rate_are_answered_503_with_retry_after() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = introspection(&dev)
        .max_calls_per_second(1)
        .max_call_burst(10);
    let stats = verifier.clone();
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let valid = reader(&dev);
    assert_eq!(get(&server, &valid).await.0, StatusCode::OK);

    let started = Instant::now();
    let client = reqwest::Client::new();
    let bogus: Vec<String> = (0..200).map(|i| format!("bogus-{i}")).collect();
    let answers = join_all(bogus.iter().map(|token| request(&client, &server, token))).await;
    // A cached answer needs no call: the valid token works while the limit holds.
    assert_eq!(get(&server, &valid).await.0, StatusCode::OK);
    let elapsed = started.elapsed().as_secs_f64().ceil() as usize;

    let calls = dev.introspection_requests();
    let bound = 10 + elapsed;
    assert!(calls <= bound, "{calls} calls, more than {bound}");
    let refused = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused, calls - 1, "each call refused one bogus token");
    let throttled: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(refused + throttled.len(), 200);
    assert!(throttled.len() >= 200 - bound);
    for answer in throttled {
        assert_eq!(answer.body["reason"], "verifier_unavailable");
        // One call a second: the next one within a second.
        assert_eq!(answer.retry_after.as_deref(), Some("1"));
    }
    assert_eq!(stats.stats().throttled, 200 - refused as u64);
    assert_eq!(stats.stats().calls, calls as u64);
}

#[tokio::test]
async fn an_introspected_token_that_is_not_a_bearer_access_token_is_refused() {
    let dev = DevAuthServer::start().await.unwrap();
    let cases = [
        (json!("refresh_token"), StatusCode::UNAUTHORIZED),
        (json!("id_token"), StatusCode::UNAUTHORIZED),
        (json!("DPoP"), StatusCode::UNAUTHORIZED),
        (json!("N_A"), StatusCode::UNAUTHORIZED),
        (json!(["Bearer"]), StatusCode::UNAUTHORIZED),
        (json!("Bearer"), StatusCode::OK),
        (json!("bearer"), StatusCode::OK),
        (json!("access_token"), StatusCode::OK),
        (
            json!("urn:ietf:params:oauth:token-type:access_token"),
            StatusCode::OK,
        ),
        (Value::Null, StatusCode::OK),
    ];
    for (token_type, expected) in cases {
        let kind = token_type.clone();
        let front = Front::start(&dev, Duration::ZERO, move |answer| {
            if kind.is_null() {
                answer.remove("token_type");
            } else {
                answer.insert("token_type".into(), kind.clone());
            }
        })
        .await;
        let verifier = introspection_at(&dev, &front.url("/introspect"));
        let server = protect(&dev, |l| l.verifier(verifier)).await;
        let (status, body) = get(&server, &reader(&dev)).await;
        assert_eq!(status, expected, "token_type {token_type}: {body}");
        if expected == StatusCode::UNAUTHORIZED {
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["reason"],
                "rejected"
            );
        }
    }
}

#[tokio::test]
async fn userinfo_verifies_tokens_and_reads_scopes_only_from_the_named_member() {
    let dev = DevAuthServer::start().await.unwrap();
    let token = dev.token().subject("bob").scopes(["read"]).sign().unwrap();

    // By default the userinfo document grants no scopes, whatever it says.
    let server = protect(&dev, |l| l.verifier(userinfo(&dev)).skip_audience_check()).await;
    let (status, body) = get(&server, &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "insufficient_scope"
    );

    // Named, the member is read.
    let verifier = userinfo(&dev).scopes_member("scope");
    // Userinfo answers say nothing of the audience: skipping the check is explicit.
    let server = protect(&dev, |l| l.verifier(verifier).skip_audience_check()).await;
    let calls = dev.userinfo_requests();
    assert_eq!(
        get(&server, &token).await,
        (StatusCode::OK, "bob [\"read\"]".to_owned())
    );
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(dev.userinfo_requests(), calls + 1);
    let expired = dev
        .token()
        .scopes(["read"])
        .expires_at(1_000)
        .sign()
        .unwrap();
    assert_eq!(get(&server, &expired).await.0, StatusCode::UNAUTHORIZED);

    // The document's `aud` is not taken as the token's: without skipping the check, refused.
    let verifier = userinfo(&dev).scopes_member("scope");
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let token = dev
        .token()
        .audience(RESOURCE)
        .scopes(["read"])
        .sign()
        .unwrap();
    let (status, body) = get(&server, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "invalid_audience"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_in_time_entries_and_bytes() {
    let dev = DevAuthServer::start().await.unwrap();

    // Time: an answer serves until the ceiling.
    let verifier = introspection(&dev).max_cache_ttl(Duration::from_millis(200));
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let token = reader(&dev);
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(dev.introspection_requests(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(
        dev.introspection_requests(),
        2,
        "the cached answer outlived its ceiling"
    );

    // Entries.
    let verifier = introspection(&dev).max_cached_tokens(4);
    let stats = verifier.clone();
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    for _ in 0..20 {
        assert_eq!(get(&server, &reader(&dev)).await.0, StatusCode::OK);
    }
    let held = stats.stats();
    assert!(held.answers >= 1 && held.answers <= 4, "{held:?}");
    assert_eq!(held.calls, 20);

    // Bytes: answers of about 40 KiB, 200 KiB allowed.
    let front = Front::start(&dev, Duration::ZERO, |answer| {
        answer.insert("profile".into(), "x".repeat(40 << 10).into());
    })
    .await;
    let verifier = introspection_at(&dev, &front.url("/introspect")).max_cache_bytes(200 << 10);
    let stats = verifier.clone();
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    // Such an answer is cached (and serves in full).
    let token = reader(&dev);
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(get(&server, &token).await.0, StatusCode::OK);
    assert_eq!(front.calls(), 1, "the large answer was cached");
    let mut largest = 0;
    for _ in 0..20 {
        assert_eq!(get(&server, &reader(&dev)).await.0, StatusCode::OK);
        let held = stats.stats();
        assert!(held.answer_bytes <= 200 << 10, "{held:?}");
        largest = largest.max(held.answers);
    }
    assert!(largest <= 2, "{:?}, at most {largest}", stats.stats());
    assert_eq!(front.calls(), 21);
}

#[tokio::test]
async fn an_unreachable_provider_means_503() {
    let dev = DevAuthServer::start().await.unwrap();
    let verifier = introspection(&dev);
    let server = protect(&dev, |l| l.verifier(verifier)).await;
    let token = reader(&dev);
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
