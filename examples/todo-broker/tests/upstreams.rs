//! Identity providers behind the broker that MCP clients could not use directly:
//!
//! - oidc-provider configured like Google (`interop/upstream_provider.mjs`): OpenID Connect, no
//!   dynamic registration, no resource indicators, one static confidential client whose only
//!   redirect URI is the broker's callback. The official TypeScript SDK signs in through
//!   `todo-broker` in front of it; the provider's own log shows what the broker asked of it.
//! - a GitHub-like plain OAuth 2.0 provider (`support::github_like`): no discovery, no ID token,
//!   form-encoded token answers unless JSON is asked for, no refresh tokens, the user known by a
//!   numeric `id` from `/user`. A client signs in by hand through `todo-broker`.
//!
//! - the development identity provider (OpenID Connect, its userinfo endpoint discovered),
//!   which `whoami_upstream` calls with the user's token there.
//!
//! Needs Node.js and npm for the first (`interop/node_modules` is installed when missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::github_like::{GitHubLike, USER_ID};
use support::{
    BrokerConfig, Browser, Expected, Login, Process, TempDir, broker_at_github_like, call_tool,
    check_sdk_run, claims, free_port, http_client, interop_dir, refresh, register, run_script,
    sign_in, start_broker, token,
};

/// The upstream id of a provider on 127.0.0.1: the broker names it by its host.
const UPSTREAM_ID: &str = "127.0.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_signs_in_through_the_broker_at_a_google_like_oidc_provider() {
    tokio::task::spawn_blocking(support::ensure_node_modules)
        .await
        .unwrap();
    // The provider registers the broker's callback before the broker runs: the broker's port
    // is chosen first.
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/callback/{UPSTREAM_ID}");
    let secret = support::pkce().0;
    let (provider, issuer, subject) = {
        let (callback, secret) = (callback.clone(), secret.clone());
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new("node");
            command
                .args(["upstream_provider.mjs", "--redirect-uri", &callback])
                .args(["--secret", &secret])
                .current_dir(interop_dir());
            let mut provider = Process::spawn("upstream_provider.mjs", command);
            let lines = provider.read_until(|line| line.starts_with("subject "));
            let issuer = lines[0].strip_prefix("issuer ").unwrap().to_owned();
            let subject = lines[1].strip_prefix("subject ").unwrap().to_owned();
            (provider, issuer, subject)
        })
        .await
        .unwrap()
    };
    let dir = TempDir::new("google-like");
    let config = BrokerConfig::new(&dir.path().join("broker-store"))
        .env("UPSTREAM_ISSUER", &issuer)
        .env("UPSTREAM_CLIENT_ID", "todo-broker")
        .env("UPSTREAM_CLIENT_SECRET", &secret)
        .env("UPSTREAM_SCOPES", "openid email offline_access");
    let broker = start_broker(&config, port).await;
    assert_eq!(broker.callback, callback);
    let mcp = broker.mcp.clone();
    let results = tokio::task::spawn_blocking(move || {
        run_script(&PathBuf::from("node"), "ts_broker_client.mjs", &[&mcp])
    })
    .await
    .unwrap();
    let subject = format!("{UPSTREAM_ID}|{subject}");
    check_sdk_run(
        &results,
        &broker,
        &Expected {
            upstream_authorize: &format!("{issuer}/auth"),
            upstream_client: "todo-broker",
            subject: &subject,
            metadata_document: None,
        },
    );

    // What reached the provider, from its own log: one authorization request per login, with
    // the broker's client, callback, scopes, nonce and PKCE challenge; never a `resource`, never
    // a challenge of the MCP client's. The code was redeemed with the client's secret (Basic).
    let events: Vec<Value> = provider
        .stdout_lines()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let authorizations: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "authorization")
        .map(|e| &e["query"])
        .collect();
    let logins = results["logins"].as_array().unwrap();
    assert_eq!(authorizations.len(), logins.len(), "{events:?}");
    let client_challenges: Vec<&Value> = logins
        .iter()
        .map(|login| &login["request"]["code_challenge"])
        .collect();
    for query in &authorizations {
        let mut names: Vec<&String> = query.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "client_id",
                "code_challenge",
                "code_challenge_method",
                "nonce",
                "redirect_uri",
                "response_type",
                "scope",
                "state"
            ],
            "{query}"
        );
        assert_eq!(query["client_id"], "todo-broker");
        assert_eq!(query["redirect_uri"], callback.as_str());
        assert_eq!(query["scope"], "openid email offline_access");
        assert!(
            !client_challenges.contains(&&query["code_challenge"]),
            "{query}"
        );
    }
    let redemptions: Vec<&Value> = events.iter().filter(|e| e["event"] == "token").collect();
    assert_eq!(redemptions.len(), logins.len(), "{events:?}");
    for redemption in redemptions {
        assert_eq!(redemption["grantType"], "authorization_code");
        assert_eq!(redemption["clientId"], "todo-broker");
        assert_eq!(redemption["clientAuthMethod"], "client_secret_basic");
    }
    // The provider lacks registration and metadata documents by design: the broker does not
    // warn that MCP clients could not use it.
    let logged = broker.process.stderr();
    assert!(
        !logged.contains("dynamic_registration_not_supported"),
        "{logged}"
    );
    assert!(!logged.contains(&issuer), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_signs_in_through_the_broker_at_a_github_like_provider() {
    let github = GitHubLike::start().await;
    let dir = TempDir::new("github-like");
    let (_, broker) = broker_at_github_like(&github, &dir).await;
    assert_eq!(
        broker.callback,
        format!("{}/callback/{UPSTREAM_ID}", broker.origin)
    );
    let origin = &broker.origin;
    let redirect_uri = "http://127.0.0.1:53682/callback";
    let client_id = register(origin, redirect_uri).await;
    let login = Login::new(&client_id, redirect_uri, "read:todos create:todos");

    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(origin, &broker.mcp))
        .await;
    let page = browser.load_consent(&consent).await;
    assert!(page.html.contains("unverified"), "a registered client");
    let upstream = browser.approve(&page).await;
    assert!(upstream.starts_with(&github.authorize_url()), "{upstream}");
    let callback = browser.through_upstream(&upstream, &broker.callback).await;
    let answer = browser.open_callback(&callback, redirect_uri).await;
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], *origin);
    let (status, tokens) = token(origin, &login.code_form(&answer["code"], &broker.mcp)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // The provider's numeric user id, prefixed with the provider's id (its host).
    let subject = format!("{UPSTREAM_ID}|{USER_ID}");
    let access = tokens["access_token"].as_str().unwrap();
    let token_claims = claims(access);
    assert_eq!(token_claims["sub"], subject.as_str());
    assert_eq!(token_claims["aud"], broker.mcp.as_str());
    assert_eq!(token_claims["client_id"], client_id.as_str());
    let created = call_tool(
        &broker.mcp,
        access,
        "create_todo",
        json!({"content": "octo"}),
    )
    .await
    .unwrap();
    assert_eq!(created["ownerId"], subject.as_str());
    let listed = call_tool(&broker.mcp, access, "get_todos", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["todos"], json!([created]));

    // A tool calls the provider for the user, with the user's token there: the provider's
    // answer comes back, the token never does.
    let profile = call_tool(&broker.mcp, access, "whoami_upstream", json!({}))
        .await
        .unwrap();
    assert_eq!(profile, json!({"id": USER_ID, "login": "octocat"}));
    assert_eq!(github.user_requests(), 2, "the sign-in's, the tool's");

    // The provider gave no refresh token; the broker's own refresh tokens work regardless,
    // each refresh asking the provider whether its token still names the user.
    let refreshed = refresh(
        origin,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    let renewed = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims(renewed)["sub"], subject.as_str());
    call_tool(&broker.mcp, renewed, "get_todos", json!({}))
        .await
        .unwrap();

    // What the provider got: the broker's client, callback and PKCE challenge, no `resource`;
    // the code redeemed with the secret in the form (GitHub's way), asking for JSON; the user
    // looked up at the sign-in, by the tool, and at the refresh.
    let authorizations = github.authorizations();
    assert_eq!(authorizations.len(), 1);
    let sent = &authorizations[0];
    assert!(!sent.contains_key("resource"), "{sent:?}");
    assert_eq!(sent["client_id"], github.client_id());
    assert_eq!(sent["redirect_uri"], broker.callback);
    assert_eq!(sent["scope"], "read:user");
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_ne!(sent["code_challenge"], login.challenge);
    assert!(!sent.contains_key("nonce"), "no OpenID Connect: {sent:?}");
    let requests = github.token_requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].accept_json && requests[0].credentials_in_form);
    assert_eq!(
        requests[0].params,
        [
            "client_id",
            "client_secret",
            "code",
            "code_verifier",
            "grant_type",
            "redirect_uri"
        ]
    );
    assert_eq!(github.user_requests(), 3);

    // The user revokes the broker's access at the provider: the tool says so, and the next
    // refresh ends the sign-in (the client has to sign in again).
    github.revoke_tokens();
    let refused = call_tool(&broker.mcp, renewed, "whoami_upstream", json!({})).await;
    assert!(refused.is_err(), "{refused:?}");
    let (status, body) = token(
        origin,
        &[
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("client_id".to_owned(), client_id.clone()),
            (
                "refresh_token".to_owned(),
                refreshed["refresh_token"].as_str().unwrap().to_owned(),
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_calls_the_providers_userinfo_endpoint_with_the_users_token() {
    let dir = TempDir::new("whoami-upstream");
    let broker = start_broker(&BrokerConfig::new(&dir.path().join("broker-store")), 0).await;
    assert!(broker.dev_issuer.is_some(), "the development provider runs");
    let (login, tokens) = sign_in(&broker, "read:todos").await;
    let access = tokens["access_token"].as_str().unwrap();
    let profile = call_tool(&broker.mcp, access, "whoami_upstream", json!({}))
        .await
        .unwrap();
    assert_eq!(
        profile,
        json!({"sub": "dev-user", "email": "dev-user@example.com", "name": "dev-user"})
    );

    // After the broker's own refresh the tool still works; once the grant is revoked it
    // refuses, even with an access token that has not expired yet.
    let refreshed = refresh(
        &broker.origin,
        &login.client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let renewed = refreshed["access_token"].as_str().unwrap();
    let again = call_tool(&broker.mcp, renewed, "whoami_upstream", json!({}))
        .await
        .unwrap();
    assert_eq!(again["sub"], "dev-user");
    let revoked = http_client()
        .post(format!("{}/revoke", broker.origin))
        .form(&[
            ("token", refreshed["refresh_token"].as_str().unwrap()),
            ("client_id", login.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = call_tool(&broker.mcp, renewed, "whoami_upstream", json!({})).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("the sign-in has ended")),
        "{refused:?}"
    );
}
