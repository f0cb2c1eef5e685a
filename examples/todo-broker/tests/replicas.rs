//! Two `todo-broker` processes as replicas behind one public URL, sharing one Redis: each step
//! of a login may land on either, a code raced on both is redeemed once, and Redis going away
//! or restarting mid-login answers 503 with `Retry-After` until it is back, after which the
//! replicas carry on by themselves.
//!
//! The replicas listen on two ports but share `MCP_RESOURCE_IDENTIFIER` (so one issuer), the
//! Redis store and its prefix, and the development keys the first one wrote there. The
//! identity provider (GitHub-like, in this test's process) outlives them and knows one
//! callback, the issuer's. Needs `redis-server`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis_test_server::RedisServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::github_like::{GitHubLike, USER_ID};
use support::{
    BrokerConfig, Browser, ConsentPage, Login, TodoBroker, call_tool, claims, free_port,
    http_client, refresh, register, start_broker, token,
};

const REDIRECT_URI: &str = "http://127.0.0.1:53682/callback";

/// Two replicas on `redis` in front of `github`, with `env` on top: (A, B). A's address is the
/// public URL both serve as.
async fn replicas(
    github: &GitHubLike,
    redis: &RedisServer,
    env: &[(&str, &str)],
) -> (TodoBroker, TodoBroker) {
    let port = free_port();
    let mut config = BrokerConfig::new(Path::new(&redis.url()))
        .at_github_like(github)
        .env(
            "MCP_RESOURCE_IDENTIFIER",
            &format!("http://127.0.0.1:{port}/mcp"),
        );
    for (name, value) in env {
        config = config.env(name, value);
    }
    let a = start_broker(&config, port).await;
    let b = start_broker(&config, 0).await;
    assert_eq!(a.callback, b.callback, "one issuer, one callback");
    github.set_callback(&a.callback);
    (a, b)
}

/// The same URL on another replica.
fn on(broker: &TodoBroker, url: &str) -> String {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!("{}/{path}", broker.origin)
}

/// The same consent form, posted to another replica.
fn posted_to(broker: &TodoBroker, page: &ConsentPage) -> ConsentPage {
    ConsentPage {
        action: on(broker, &page.action),
        ..page.clone()
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn refresh_form(client_id: &str, refresh_token: &str) -> Vec<(String, String)> {
    form(&[
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh_token),
    ])
}

/// `POST /revoke` at `origin`: the status.
async fn revoke(origin: &str, client_id: &str, token: &str) -> StatusCode {
    http_client()
        .post(format!("{origin}/revoke"))
        .form(&[("client_id", client_id), ("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// An MCP request with `token` at `mcp`: the status and the `WWW-Authenticate` challenge.
async fn mcp_status(mcp: &str, token: &str) -> (StatusCode, String) {
    let response = http_client()
        .post(mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "replicas", "version": "0"}
            }
        }))
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

/// The browser part of a login for `resource`, its steps alternating between `first` and
/// `second` (authorization request, consent page, approval, callback); the code.
async fn code_across(
    first: &TodoBroker,
    second: &TodoBroker,
    login: &Login,
    resource: &str,
) -> String {
    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(&first.origin, resource))
        .await;
    let page = browser.load_consent(&on(second, &consent)).await;
    let upstream = browser.approve(&posted_to(first, &page)).await;
    let callback = browser.through_upstream(&upstream, &first.callback).await;
    let answer = browser
        .open_callback(&on(second, &callback), REDIRECT_URI)
        .await;
    assert_eq!(answer["state"], login.state);
    answer["code"].clone()
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_login_may_land_on_either_replica() {
    let redis = support::start_redis();
    let github = GitHubLike::start().await;
    let (a, b) = replicas(
        &github,
        &redis,
        &[("BROKER_ACCESS_TOKEN_LIFETIME_SECS", "2")],
    )
    .await;
    // The replicas share the development keys the first one kept in Redis.
    let jwks = |broker: &TodoBroker| {
        let url = format!("{}/jwks", broker.origin);
        async move {
            let keys: Value = http_client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            keys
        }
    };
    assert_eq!(jwks(&a).await, jwks(&b).await);

    // Register on A, authorize on B, consent page on A, approval on B, callback on A.
    let client_id = register(&a.origin, REDIRECT_URI).await;
    let login = Login::new(&client_id, REDIRECT_URI, "read:todos create:todos");
    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(&b.origin, &a.mcp))
        .await;
    assert!(consent.starts_with(&b.origin), "{consent}");
    let page = browser.load_consent(&on(&a, &consent)).await;
    let upstream = browser.approve(&posted_to(&b, &page)).await;
    let callback = browser.through_upstream(&upstream, &a.callback).await;
    let answer = browser.open_callback(&callback, REDIRECT_URI).await;
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], a.origin);

    // Token on B, refresh on A; the access tokens work on both.
    let (status, tokens) = token(&b.origin, &login.code_form(&answer["code"], &a.mcp)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}\n{}", b.process.stderr());
    assert_eq!(tokens["expires_in"], 2);
    let refreshed = refresh(
        &a.origin,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let access = refreshed["access_token"].as_str().unwrap();
    let subject = format!("127.0.0.1|{USER_ID}");
    assert_eq!(claims(access)["sub"], subject.as_str());
    for broker in [&a, &b] {
        let listed = call_tool(&broker.mcp, access, "get_todos", json!({}))
            .await
            .unwrap();
        assert!(listed["todos"].is_array(), "{listed}");
    }

    // Revoke on B: the refresh tokens, newest and oldest, are refused on both.
    let newest = refreshed["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&b.origin, &client_id, newest).await, StatusCode::OK);
    for broker in [&a, &b] {
        for refresh_token in [newest, tokens["refresh_token"].as_str().unwrap()] {
            let (status, refused) =
                token(&broker.origin, &refresh_form(&client_id, refresh_token)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
            assert_eq!(refused["error"], "invalid_grant");
        }
    }

    // The access token is self-contained: it works until it expires, then neither replica
    // takes it (past the bearer layer's 60 s clock leeway).
    let expires = claims(access)["exp"].as_u64().unwrap();
    let wait = (expires + 61).saturating_sub(now()) + 1;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    for broker in [&a, &b] {
        let (status, challenge) = mcp_status(&broker.mcp, access).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", broker.mcp);
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_redeemed_on_both_replicas_at_once_is_redeemed_once() {
    const TRIES: usize = 100;
    let redis = support::start_redis();
    let github = GitHubLike::start().await;
    let (a, b) = replicas(&github, &redis, &[]).await;
    let client_id = register(&b.origin, REDIRECT_URI).await;

    let mut logins = Vec::with_capacity(TRIES);
    for n in 0..TRIES {
        let login = Login::new(&client_id, REDIRECT_URI, "read:todos");
        let (first, second) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let code = code_across(first, second, &login, &a.mcp).await;
        logins.push((login, code));
    }

    let mut wins = [0usize; 2];
    for (login, code) in &logins {
        let form = login.code_form(code, &a.mcp);
        let ((status_a, answer_a), (status_b, answer_b)) =
            tokio::join!(token(&a.origin, &form), token(&b.origin, &form));
        let (winner, loser) = match (status_a, status_b) {
            (StatusCode::OK, _) => {
                wins[0] += 1;
                ((status_a, &answer_a), (status_b, &answer_b))
            }
            (_, StatusCode::OK) => {
                wins[1] += 1;
                ((status_b, &answer_b), (status_a, &answer_a))
            }
            _ => panic!("no replica redeemed the code: {answer_a} / {answer_b}"),
        };
        assert!(winner.1["access_token"].is_string(), "{}", winner.1);
        assert_eq!(
            loser.0,
            StatusCode::BAD_REQUEST,
            "both redeemed: {}",
            loser.1
        );
        assert_eq!(loser.1["error"], "invalid_grant", "{}", loser.1);
    }
    assert_eq!(wins[0] + wins[1], TRIES);
}

/// Asserts a 503 with `Retry-After`: the token endpoint's JSON `temporarily_unavailable`, or a
/// page.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(response.headers().contains_key("retry-after"), "{what}");
    let html = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
    let body = response.text().await.unwrap();
    if html {
        assert!(body.contains("Try again"), "{what}: {body}");
    } else {
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "temporarily_unavailable", "{what}: {body}");
        assert!(json.get("access_token").is_none(), "{what}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_or_restarted_mid_login_answers_503_and_the_replicas_resume() {
    let mut redis = support::start_redis();
    let github = GitHubLike::start().await;
    let (a, b) = replicas(&github, &redis, &[]).await;
    let http = http_client();
    let client_id = register(&a.origin, REDIRECT_URI).await;
    let login = Login::new(&client_id, REDIRECT_URI, "read:todos");

    // Redis unreachable: registration, the authorization request and the token endpoint.
    redis.stop();
    let response = http
        .post(format!("{}/register", b.origin))
        .json(&json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_unavailable(response, "register").await;
    let authorization = login.authorization_url(&a.origin, &a.mcp);
    let response = http.get(&authorization).send().await.unwrap();
    assert_unavailable(response, "authorize").await;
    let response = http
        .post(format!("{}/token", b.origin))
        .form(&refresh_form(&client_id, "not-a-token"))
        .send()
        .await
        .unwrap();
    assert_unavailable(response, "token").await;

    // Back: the next request is served.
    redis.restart();
    let mut browser = Browser::default();
    let consent = browser.authorize(&authorization).await;
    let page = browser.load_consent(&on(&b, &consent)).await;

    // Restarted between two steps: the approval (which consumes the consent) is served.
    redis.restart();
    let upstream = browser.approve(&posted_to(&a, &page)).await;
    let callback = browser.through_upstream(&upstream, &a.callback).await;

    // Down at the callback: a page; the sign-in is kept, and completes once Redis is back.
    redis.stop();
    let response = browser.get(&on(&b, &callback)).await;
    assert_unavailable(response, "callback").await;
    redis.restart();
    let answer = browser
        .open_callback(&on(&b, &callback), REDIRECT_URI)
        .await;
    let code_form = login.code_form(&answer["code"], &a.mcp);

    // Down at the token endpoint: no token; the code is still good afterwards.
    redis.stop();
    let response = http
        .post(format!("{}/token", a.origin))
        .form(&code_form)
        .send()
        .await
        .unwrap();
    assert_unavailable(response, "token (code)").await;
    redis.restart();
    let (status, tokens) = token(&a.origin, &code_form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}\n{}", a.process.stderr());

    // Restarted again: the refresh token's state was written, it rotates on the other
    // replica, and the grant can be ended.
    redis.restart();
    let refreshed = refresh(
        &b.origin,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let newest = refreshed["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&a.origin, &client_id, newest).await, StatusCode::OK);
    let (status, refused) = token(&b.origin, &refresh_form(&client_id, newest)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    // Neither replica panicked on the way.
    for broker in [&a, &b] {
        let logged = broker.process.stderr();
        assert!(!logged.contains("panicked"), "{logged}");
    }
}
