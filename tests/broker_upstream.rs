//! The signed-in user's upstream token for tools (`Broker::upstream_token`, the `UpstreamToken`
//! extractor): handed out while fresh, renewed once under any concurrency when near expiry and
//! kept, the grant ended by a provider that refuses the refresh token, kept when the provider
//! is down; the provider quirks of renewal (GitHub Apps rotate, Entra ID wants the scopes
//! again, Google keeps its refresh token) and the check of a GitHub OAuth App's user at each
//! refresh of the broker's tokens. Real providers' stand-ins on loopback throughout.

use std::sync::Arc;
use std::time::Duration;

use mcpauth::AuthInfo;
use mcpauth::broker::{Broker, BrokerStore, MemoryStore, Upstream, UpstreamTokenError};
use mcpauth::dev::TokenFailure;
use mcpauth_tests::broker::{
    BrokerFixture, FixtureOptions, SCOPES, bind_issuer, fingerprint, jwt_part,
};
use mcpauth_tests::entra_like::EntraLike;
use mcpauth_tests::github_like::{GitHubLike, USER_ID};
use mcpauth_tests::google_like::GoogleLike;
use mcpauth_tests::logs::CapturedLogs;
use reqwest::StatusCode;
use serde_json::{Map, Value};

/// A provider token that expires within the broker's renewal margin (a minute).
const NEAR_EXPIRY: Duration = Duration::from_secs(30);

fn access_token(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// The payload of a JWT, unverified (the test reads what the broker wrote).
fn claims(jwt: &str) -> Map<String, Value> {
    match jwt_part(jwt, 1) {
        Value::Object(claims) => claims,
        other => panic!("claims that are not an object: {other}"),
    }
}

/// A fixture at the development provider whose first tokens expire soon; from the login on,
/// the provider's tokens live an hour.
async fn near_expiry_login(options: FixtureOptions) -> (BrokerFixture, String, Value) {
    let fixture = BrokerFixture::start_with(options).await;
    fixture.upstream.set_token_lifetime(NEAR_EXPIRY);
    let (client_id, tokens) = fixture.login("read:todos").await;
    fixture
        .upstream
        .set_token_lifetime(Duration::from_secs(3600));
    (fixture, client_id, tokens)
}

#[tokio::test]
async fn a_fresh_upstream_token_is_handed_out_without_calling_the_provider() {
    let fixture = BrokerFixture::start().await;
    let (_, tokens) = fixture.login("read:todos").await;
    // The access token names its grant by an opaque id, and carries nothing of the provider's.
    let token_claims = claims(access_token(&tokens));
    assert_eq!(token_claims["sid"].as_str().unwrap().len(), 22);
    let calls = fixture.upstream.token_requests();

    let first = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    // The provider's token reaches the tool, never the client: not in the token answer, not in
    // the access token's claims.
    let upstream_token = fixture
        .broker
        .upstream_token(&fixture.auth_info(access_token(&tokens)))
        .await
        .unwrap();
    let secret = upstream_token.expose_secret();
    assert!(!tokens.to_string().contains(secret));
    assert!(
        !Value::Object(token_claims.clone())
            .to_string()
            .contains(secret)
    );
    assert_eq!(first.body["userinfo"]["status"], 200, "a live token");
    assert_eq!(first.body["userinfo"]["body"]["sub"], "dev-user");
    assert_eq!(
        first.body["scopes"],
        serde_json::json!(["openid", "email", "offline_access"])
    );
    let second = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(second.body["fingerprint"], first.body["fingerprint"]);
    assert_eq!(fixture.upstream.token_requests(), calls, "no provider call");

    // Straight from the broker, for a tool that holds the `AuthInfo`.
    let token = fixture
        .broker
        .upstream_token(&fixture.auth_info(access_token(&tokens)))
        .await
        .unwrap();
    assert_eq!(
        fingerprint(token.expose_secret()),
        first.body["fingerprint"].as_str().unwrap()
    );
    let debug = format!("{token:?}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(!debug.contains(token.expose_secret()), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_expiry_fifty_concurrent_callers_cause_one_renewal_whose_set_is_kept() {
    let (fixture, _, tokens) = near_expiry_login(FixtureOptions::default()).await;
    let fixture = Arc::new(fixture);
    let calls = fixture.upstream.token_requests();

    let answers = futures_util::future::join_all((0..50).map(|_| {
        let fixture = fixture.clone();
        let token = access_token(&tokens).to_owned();
        tokio::spawn(async move { fixture.upstream_tool(&token).await })
    }))
    .await;
    assert_eq!(
        fixture.upstream.token_requests(),
        calls + 1,
        "one renewal at the provider"
    );
    let mut fingerprints = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["userinfo"]["status"], 200, "{:?}", answer.body);
        fingerprints.push(answer.body["fingerprint"].clone());
    }
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 1, "every caller got the renewed token");

    // The renewed set was stored: a later call uses it as it is.
    let later = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(later.body["fingerprint"], fingerprints[0]);
    let lifetime = later.body["expires_at"].as_u64().unwrap()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
    assert!(lifetime > 3000, "{lifetime}");
    assert_eq!(fixture.upstream.token_requests(), calls + 1);
}

#[tokio::test]
async fn a_provider_refusing_the_refresh_token_ends_the_grant() {
    let (fixture, client_id, tokens) = near_expiry_login(FixtureOptions::default()).await;
    // The user removed the application's access at the provider.
    assert_eq!(fixture.upstream.revoke_upstream_refresh_tokens(), 1);

    fixture
        .upstream_tool(access_token(&tokens))
        .await
        .assert_sign_in_ended();

    // The client's next refresh is refused: it signs in again.
    let (status, body) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // And the tool keeps refusing for the rest of the access token's life.
    fixture
        .upstream_tool(access_token(&tokens))
        .await
        .assert_sign_in_ended();
}

#[tokio::test]
async fn a_provider_that_fails_keeps_the_grant_and_answers_a_retryable_error() {
    let (fixture, client_id, tokens) = near_expiry_login(FixtureOptions::default()).await;
    for failure in [
        TokenFailure::ServerError,
        TokenFailure::Status(502),
        TokenFailure::Html,
    ] {
        fixture.upstream.fail_token_endpoint(Some(failure));
        let answer = fixture.upstream_tool(access_token(&tokens)).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{failure:?}"
        );
        answer.assert_unavailable();
    }
    // The broker's own refresh goes on while the provider is down: the grant is kept.
    let (status, refreshed) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // Once the provider is back, the renewal happens and the token works.
    fixture.upstream.fail_token_endpoint(None);
    let calls = fixture.upstream.token_requests();
    let answer = fixture.upstream_tool(access_token(&refreshed)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["userinfo"]["status"], 200);
    assert_eq!(fixture.upstream.token_requests(), calls + 1);
}

#[tokio::test]
async fn a_token_of_another_authorization_server_has_no_upstream_token() {
    let fixture = BrokerFixture::start().await;
    let (_, tokens) = fixture.login("read:todos").await;
    let mut forged = fixture.auth_info(access_token(&tokens));
    forged = AuthInfo::builder(forged.token(), "https://other.example", forged.subject())
        .claims(forged.claims().clone())
        .build();
    let error = fixture.broker.upstream_token(&forged).await.unwrap_err();
    assert!(
        matches!(error, UpstreamTokenError::NotBrokered),
        "{error:?}"
    );
    let mut no_sid = claims(access_token(&tokens));
    no_sid.remove("sid");
    let without = AuthInfo::builder("t", fixture.issuer.clone(), "s")
        .claims(no_sid)
        .build();
    let error = fixture.broker.upstream_token(&without).await.unwrap_err();
    assert!(
        matches!(error, UpstreamTokenError::NotBrokered),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_revoked_grant_has_no_upstream_token() {
    let fixture = BrokerFixture::start().await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(fixture.broker.revoke_client(&client_id).await.unwrap(), 1);
    fixture
        .upstream_tool(access_token(&tokens))
        .await
        .assert_sign_in_ended();
    let error = fixture
        .broker
        .upstream_token(&fixture.auth_info(access_token(&tokens)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamTokenError::SignInEnded(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn upstream_tokens_never_reach_the_logs() {
    let logs = CapturedLogs::start(tracing::Level::TRACE);
    let (fixture, client_id, tokens) = near_expiry_login(FixtureOptions::default()).await;
    let auth = fixture.auth_info(access_token(&tokens));
    // A renewal, a token handed out, a failed renewal, and a grant ended by the provider.
    fixture.upstream.set_token_lifetime(NEAR_EXPIRY);
    let renewed = fixture.broker.upstream_token(&auth).await.unwrap();
    fixture
        .upstream
        .fail_token_endpoint(Some(TokenFailure::ServerError));
    let failed = fixture.broker.upstream_token(&auth).await.unwrap_err();
    assert!(matches!(failed, UpstreamTokenError::Unavailable { .. }));
    fixture.upstream.fail_token_endpoint(None);
    fixture.upstream.revoke_upstream_refresh_tokens();
    let ended = fixture.broker.upstream_token(&auth).await.unwrap_err();
    assert!(matches!(ended, UpstreamTokenError::SignInEnded(_)));
    let (status, _) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let logged = logs.text();
    assert!(logged.contains("the grant ends"), "{logged}");
    let secret = renewed.expose_secret();
    assert!(!logged.contains(secret), "the upstream token was logged");
    for shown in [format!("{failed} {failed:?}"), format!("{ended} {ended:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

// The providers' quirks

/// The broker's view of a GitHub App stand-in.
fn github_app_upstream(github: &GitHubLike) -> Upstream {
    Upstream::github_app(&github.client_id)
        .client_secret(&github.client_secret)
        .github_base_urls(github.base_url(), github.base_url())
}

/// A broker in front of a GitHub App with expiring user tokens.
async fn github_app() -> (GitHubLike, BrokerFixture) {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_app(&format!("{issuer}/callback/github")).await;
    let fixture =
        BrokerFixture::at(listener, github_app_upstream(&github), &github.base_url()).await;
    (github, fixture)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_store_spend_a_rotating_refresh_token_once() {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_app(&format!("{issuer}/callback/github")).await;
    let store: Arc<dyn BrokerStore> = Arc::new(MemoryStore::new());
    let fixture = BrokerFixture::start_with(FixtureOptions {
        listener: Some(listener),
        store: store.clone(),
        custom_upstream: Some(mcpauth_tests::broker::CustomUpstream {
            upstream: github_app_upstream(&github),
            origin: github.base_url(),
        }),
        ..FixtureOptions::default()
    })
    .await;
    // A second replica: the same issuer, configuration and store, a process of its own (its
    // own locks).
    let replica = Broker::builder(fixture.issuer.clone())
        .resource(fixture.resource.clone(), SCOPES)
        .upstream(github_app_upstream(&github))
        .shared_store(store)
        .build()
        .await
        .unwrap();
    github.set_expires_in(30);
    let (_, tokens) = fixture.login("read:todos").await;
    github.set_expires_in(28800);
    let auth = fixture.auth_info(access_token(&tokens));

    let calls = (0..20).map(|n| {
        let broker = if n % 2 == 0 {
            fixture.broker.clone()
        } else {
            replica.clone()
        };
        let auth = auth.clone();
        tokio::spawn(async move {
            broker
                .upstream_token(&auth)
                .await
                .map(|t| fingerprint(t.expose_secret()))
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    for answer in &answers {
        assert!(answer.as_ref().unwrap().is_ok(), "{answer:?}");
    }
    // One replica renewed; the other waited for its set or used the still-valid token. A
    // second renewal would have spent the rotated refresh token and ended the grant.
    assert_eq!(github.refresh_requests(), 1);
    let renewed = fixture.broker.upstream_token(&auth).await.unwrap();
    let seen = replica.upstream_token(&auth).await.unwrap();
    assert_eq!(renewed.expose_secret(), seen.expose_secret());
    assert!(
        answers.iter().any(|a| a.as_ref().unwrap().as_deref().ok()
            == Some(fingerprint(renewed.expose_secret()).as_str())),
        "the renewed token was handed out"
    );
    assert_eq!(github.refresh_requests(), 1);
}

/// A broker in front of a GitHub OAuth App (tokens that never expire).
async fn github_oauth_app() -> (GitHubLike, BrokerFixture) {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_with_callback(&format!("{issuer}/callback/github")).await;
    let upstream = Upstream::github(&github.client_id)
        .client_secret(&github.client_secret)
        .github_base_urls(github.base_url(), github.base_url());
    let fixture = BrokerFixture::at(listener, upstream, &github.base_url()).await;
    (github, fixture)
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_the_grant_without_asking_the_provider() {
    let (github, fixture) = github_oauth_app().await;
    let (client_id, first) = fixture.login("read:todos").await;
    let (status, second) = fixture.refresh(&client_id, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, third) = fixture.refresh(&client_id, &second["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    // The first token is now an older generation: a stolen copy, judged before GitHub is asked.
    let calls = (github.token_requests(), github.user_requests());
    let (status, body) = fixture.refresh(&client_id, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!((github.token_requests(), github.user_requests()), calls);
    // The grant ended: its newest token is refused too, still without a call to GitHub.
    let (status, body) = fixture.refresh(&client_id, &third["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!((github.token_requests(), github.user_requests()), calls);
}

#[tokio::test]
async fn a_github_oauth_app_user_is_checked_again_at_each_refresh() {
    let (github, fixture) = github_oauth_app().await;
    let (client_id, tokens) = fixture.login("read:todos").await;

    // The token never expires: tools get it as it is, without a call to GitHub.
    let calls = (github.token_requests(), github.user_requests());
    let answer = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert!(answer.body["expires_at"].is_null());
    assert_eq!((github.token_requests(), github.user_requests()), calls);

    // Each refresh asks GitHub who the token's user is.
    let (status, refreshed) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(github.user_requests(), calls.1 + 1);
    assert_eq!(github.token_requests(), calls.0);

    // The user revoked the OAuth App: the next refresh is refused, the grant ends.
    assert_eq!(github.revoke_tokens(), 1);
    let (status, body) = fixture
        .refresh(&client_id, &refreshed["refresh_token"])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    fixture
        .upstream_tool(access_token(&refreshed))
        .await
        .assert_sign_in_ended();
}

#[tokio::test]
async fn a_github_app_renewal_rotates_the_refresh_token() {
    let (github, fixture) = github_app().await;
    github.set_expires_in(30);
    let (_, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        claims(access_token(&tokens))["sub"],
        format!("github|{USER_ID}")
    );

    // Two renewals in a row: the second spends the refresh token the first one received (the
    // first one's is refused by then).
    let first = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let second = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert_ne!(first.body["fingerprint"], second.body["fingerprint"]);
    assert_eq!(github.refresh_requests(), 2);

    github.set_expires_in(28800);
    let third = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(third.status, StatusCode::OK);
    let kept = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(kept.body["fingerprint"], third.body["fingerprint"]);
    assert_eq!(github.refresh_requests(), 3);
}

#[tokio::test]
async fn an_entra_renewal_sends_the_scopes_again() {
    let (listener, issuer) = bind_issuer().await;
    let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
    let upstream = Upstream::entra(mcpauth_tests::entra_like::HOME_TENANT, &entra.client_id)
        .client_secret(&entra.client_secret)
        .entra_base_url(entra.base_url())
        .scopes(["api://todo-api/todos.read"]);
    let fixture = BrokerFixture::at(listener, upstream, entra.base_url()).await;
    entra.set_expires_in(30);
    let (_, tokens) = fixture.login("read:todos").await;
    let answer = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let form = entra.last_refresh_form().unwrap();
    assert_eq!(
        form["scope"],
        "openid profile offline_access api://todo-api/todos.read"
    );
    assert_eq!(form["grant_type"], "refresh_token");
    // Entra ID rotated the refresh token: the next renewal works only with the new one.
    let again = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_ne!(again.body["fingerprint"], answer.body["fingerprint"]);
}

#[tokio::test]
async fn a_google_renewal_without_a_new_refresh_token_keeps_the_old_one() {
    let (listener, issuer) = bind_issuer().await;
    let google = GoogleLike::start(&format!("{issuer}/callback/google")).await;
    let upstream = Upstream::google(&google.client_id)
        .client_secret(&google.client_secret)
        .google_base_url(google.issuer());
    let fixture = BrokerFixture::at(listener, upstream, google.issuer()).await;
    google.set_expires_in(30);
    let (_, tokens) = fixture.login("read:todos").await;
    let calls = google.token_requests();
    let first = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let answer = google.last_token_answer().unwrap();
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    // The second renewal spends the refresh token of the sign-in, kept.
    let second = fixture.upstream_tool(access_token(&tokens)).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert_ne!(first.body["fingerprint"], second.body["fingerprint"]);
    assert_eq!(google.token_requests(), calls + 2);
}

#[tokio::test]
async fn an_unreachable_provider_keeps_the_grant() {
    let (github, fixture) = github_app().await;
    github.set_expires_in(30);
    let (client_id, tokens) = fixture.login("read:todos").await;
    drop(github);
    fixture
        .upstream_tool(access_token(&tokens))
        .await
        .assert_unavailable();
    let (status, body) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "the grant is kept: {body}");
}
