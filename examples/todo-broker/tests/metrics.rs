//! `METRICS_BIND`: `todo-broker` serves its metrics in Prometheus's text format, and after a
//! scripted set of requests each counter moved by exactly what the script did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;
use support::github_like::GitHubLike;
use support::{
    BrokerConfig, Browser, Login, TempDir, http_client, refresh, register, start_broker, token,
};

/// One scrape: every sample as (name, labels, value), read from the text format.
struct Samples(Vec<(String, BTreeMap<String, String>, f64)>);

impl Samples {
    async fn scrape(url: &str) -> Self {
        let response = http_client().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap();
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            samples.push((name.to_owned(), labels, value.parse().unwrap()));
        }
        Self(samples)
    }

    /// The value of the series `name` with exactly `labels` (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map_or(0.0, |(_, _, value)| *value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_a_scripted_session_did() {
    let github = GitHubLike::start().await;
    let dir = TempDir::new("metrics");
    let config = BrokerConfig::new(&dir.path().join("broker-store"))
        .at_github_like(&github)
        .env("METRICS_BIND", "127.0.0.1:0");
    let broker = start_broker(&config, 0).await;
    github.set_callback(&broker.callback);
    let metrics_url = broker
        .process
        .stdout_lines()
        .iter()
        .find_map(|line| line.strip_prefix("todo-broker: metrics at "))
        .unwrap_or_else(|| panic!("no metrics line: {:?}", broker.process.stdout_lines()))
        .to_owned();
    assert!(
        metrics_url.starts_with("http://127.0.0.1:"),
        "{metrics_url}"
    );
    let (origin, mcp) = (broker.origin.clone(), broker.mcp.clone());
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "metrics-test", "version": "1"}}});
    let post_mcp = |token: Option<String>| {
        let mut request = http_client()
            .post(&mcp)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let before = Samples::scrape(&metrics_url).await;

    // Refused by the bearer layer: no token, then a token that is not a JWT.
    assert_eq!(post_mcp(None).await.unwrap().status(), 401);
    let garbage = post_mcp(Some("not-a-jwt".into())).await.unwrap();
    assert_eq!(garbage.status(), 401);

    // One sign-in, approved; another, denied.
    let redirect_uri = "http://127.0.0.1:53682/callback";
    let client_id = register(&origin, redirect_uri).await;
    let login = Login::new(&client_id, redirect_uri, "read:todos");
    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(&origin, &mcp))
        .await;
    let page = browser.load_consent(&consent).await;
    let upstream = browser.approve(&page).await;
    let callback = browser.through_upstream(&upstream, &broker.callback).await;
    let answer = browser.open_callback(&callback, redirect_uri).await;
    let form = login.code_form(&answer["code"], &mcp);
    let (status, tokens) = token(&origin, &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let denied = Login::new(&client_id, redirect_uri, "read:todos");
    let consent = browser
        .authorize(&denied.authorization_url(&origin, &mcp))
        .await;
    let page = browser.load_consent(&consent).await;
    let mut form_fields: Vec<(String, String)> = page.hidden.clone().into_iter().collect();
    form_fields.push(("decision".into(), "deny".into()));
    let response = browser.post_form(&page.action, &form_fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // Accepted twice by the bearer layer (the second from the verified-token cache).
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let response = post_mcp(Some(access.clone())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    // One refresh; then the code again: refused, and its grant ended.
    refresh(
        &origin,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let (status, replay) = token(&origin, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{replay}");

    let after = Samples::scrape(&metrics_url).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "mcpauth_requests_total";
    let refused = |reason| [("outcome", "refused"), ("reason", reason)];
    assert_eq!(moved(requests, &refused("missing_credentials")), 1.0);
    assert_eq!(moved(requests, &refused("malformed_token")), 1.0);
    assert_eq!(
        moved(requests, &[("outcome", "accepted"), ("reason", "none")]),
        2.0
    );
    // Verified in full: the token that is not a JWT, and the first use of the real one.
    assert_eq!(moved("mcpauth_token_cache_misses_total", &[]), 2.0);
    assert_eq!(moved("mcpauth_token_cache_hits_total", &[]), 1.0);
    assert_eq!(
        after.value("mcpauth_token_cache_entries", &[("resource", &mcp)]),
        1.0
    );
    let token_requests = "mcpauth_broker_token_requests_total";
    let grant = |grant_type, outcome| [("grant_type", grant_type), ("outcome", outcome)];
    assert_eq!(
        moved(token_requests, &grant("authorization_code", "issued")),
        1.0
    );
    assert_eq!(
        moved(token_requests, &grant("refresh_token", "issued")),
        1.0
    );
    assert_eq!(
        moved(
            token_requests,
            &grant("authorization_code", "invalid_grant")
        ),
        1.0
    );
    assert_eq!(moved("mcpauth_broker_grants_issued_total", &[]), 1.0);
    assert_eq!(moved("mcpauth_broker_grants_refreshed_total", &[]), 1.0);
    assert_eq!(
        moved(
            "mcpauth_broker_grants_revoked_total",
            &[("cause", "replay")]
        ),
        1.0
    );
    let consents = "mcpauth_broker_consents_total";
    assert_eq!(moved(consents, &[("answer", "approved")]), 1.0);
    assert_eq!(moved(consents, &[("answer", "denied")]), 1.0);
    let upstream_calls = "mcpauth_broker_upstream_calls_total";
    assert_eq!(
        moved(upstream_calls, &[("kind", "token"), ("result", "ok")]),
        1.0
    );
    // The sign-in's, and the refresh's re-check of the user (this provider's tokens never
    // expire, so the user is asked for again when the client refreshes).
    assert_eq!(
        moved(upstream_calls, &[("kind", "userinfo"), ("result", "ok")]),
        2.0
    );
    assert!(
        moved(
            "mcpauth_broker_store_seconds_count",
            &[("operation", "take")]
        ) >= 2.0
    );
    assert!(
        moved(
            "mcpauth_verification_seconds_count",
            &[("outcome", "accepted")]
        ) >= 1.0
    );
    // Nothing secret in a label: no token, no client id.
    let text: Vec<String> = after.0.iter().map(|(_, l, _)| format!("{l:?}")).collect();
    let labels = text.join(" ");
    assert!(!labels.contains(&access));
    assert!(!labels.contains(&client_id));
}
