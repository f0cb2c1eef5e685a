//! `todo-broker` killed (no graceful shutdown, as in a crash or a redeploy) and started again on
//! the same port and the same embedded store between every step of a login: everything a
//! sign-in needs between two requests (the registration, the pending authorization, the consent
//! form's CSRF binding, the pending upstream sign-in and its browser binding, the code, the
//! grant, the keys) is in the store or in the browser's cookies, never only in the process.
//! The identity provider (GitHub-like, in this test's process) outlives every broker process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::github_like::{GitHubLike, USER_ID};
use support::{
    BrokerConfig, Browser, Login, TempDir, TodoBroker, broker_at_github_like, call_tool, claims,
    kill, refresh, register, token,
};

/// Kills `broker` and starts it again on its port and store.
async fn restart(broker: TodoBroker, config: &BrokerConfig) -> TodoBroker {
    let port = broker.port;
    kill(broker).await;
    let restarted = support::start_broker(config, port).await;
    assert_eq!(restarted.port, port);
    restarted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_survives_a_restart_between_every_step_and_refresh_tokens_keep_working() {
    let github = GitHubLike::start().await;
    let dir = TempDir::new("restart");
    let (config, broker) = broker_at_github_like(&github, &dir).await;
    let origin = broker.origin.clone();
    let mcp = broker.mcp.clone();
    let callback_prefix = broker.callback.clone();
    let redirect_uri = "http://127.0.0.1:53682/callback";

    let client_id = register(&origin, redirect_uri).await;
    let broker = restart(broker, &config).await;

    let login = Login::new(&client_id, redirect_uri, "read:todos create:todos");
    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(&origin, &mcp))
        .await;
    let broker = restart(broker, &config).await;

    let page = browser.load_consent(&consent).await;
    let broker = restart(broker, &config).await;

    let upstream = browser.approve(&page).await;
    let broker = restart(broker, &config).await;

    // The user at the provider while the broker restarted; back at the broker's callback.
    let callback = browser.through_upstream(&upstream, &callback_prefix).await;
    let answer = browser.open_callback(&callback, redirect_uri).await;
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], origin);
    let broker = restart(broker, &config).await;

    let form = login.code_form(&answer["code"], &mcp);
    let (status, tokens) = token(&origin, &form).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{tokens}\n{}",
        broker.process.stderr()
    );
    let broker = restart(broker, &config).await;

    // The keys are the store's: the access token issued before the restart still verifies.
    let subject = format!("127.0.0.1|{USER_ID}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["sub"], subject.as_str());
    let created = call_tool(&mcp, access, "create_todo", json!({"content": "restarted"}))
        .await
        .unwrap();
    assert_eq!(created["ownerId"], subject.as_str());

    // Refresh tokens keep rotating across restarts.
    let first = refresh(
        &origin,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let broker = restart(broker, &config).await;
    let second = refresh(
        &origin,
        &client_id,
        first["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["scope"], "read:todos create:todos");
    let renewed = second["access_token"].as_str().unwrap();
    assert_eq!(claims(renewed)["sub"], subject.as_str());
    let listed = call_tool(&mcp, renewed, "get_todos", json!({}))
        .await
        .unwrap();
    // The todos live in the process: the restart emptied them.
    assert_eq!(listed, json!({"todos": []}));

    // One upstream sign-in for the whole login, whatever the restarts.
    assert_eq!(github.authorizations().len(), 1);
    assert_eq!(github.token_requests().len(), 1);

    // The code stayed redeemed across the restarts: replayed, it is refused and ends the grant
    // it issued (stolen codes are replayed), the newest refresh token included.
    let _broker = restart(broker, &config).await;
    let (status, replay) = token(&origin, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{replay}");
    assert_eq!(replay["error"], "invalid_grant");
    let ended: Vec<(String, String)> = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", second["refresh_token"].as_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (status, refused) = token(&origin, &ended).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
}
