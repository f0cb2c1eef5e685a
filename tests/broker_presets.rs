//! The broker's provider presets, each against a stand-in on loopback that behaves like the
//! provider where brokers go wrong (see `support/{github,google,entra}_like.rs`): a full sign-in
//! through the broker, what the provider was asked, and the answers that must be refused.

use mcpauth::broker::{Broker, EntraTenant, MemoryStore, Upstream};
use mcpauth_tests::broker::{AuthorizeRequest, BrokerFixture, Jar, bind_issuer, pkce, query};
use mcpauth_tests::entra_like::{self, EntraLike, HOME_TENANT, OTHER_TENANT};
use mcpauth_tests::github_like::{GitHubLike, USER_ID};
use mcpauth_tests::google_like::{GOOGLE_SUB, GoogleLike};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use tokio::net::TcpListener;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// Who the broker's access token names, as the protected resource sees it.
async fn subject(fixture: &BrokerFixture, tokens: &Value) -> String {
    let response = fixture
        .call_tool(tokens["access_token"].as_str().unwrap(), "get_todos")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["subject"].as_str().unwrap().to_owned()
}

/// Refreshes the broker's tokens; the answer must be a success.
async fn refresh(fixture: &BrokerFixture, client_id: &str, tokens: &Value) -> Value {
    let (status, refreshed) = fixture.refresh(client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    refreshed
}

/// Approves a sign-in, goes through the provider and opens the callback; returns the redirect
/// to the client.
async fn through_to_callback(fixture: &BrokerFixture) -> reqwest::Response {
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let page = fixture.open_consent(&request, &mut jar).await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let callback = fixture.through_upstream(approval).await;
    fixture.open_callback(&callback, &mut jar).await
}

/// An OAuth error redirect to the client, with its `state` and the broker's `iss`.
fn assert_error_redirect(response: &reqwest::Response, issuer: &str, code: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let params = query(location);
    assert_eq!(params["error"], code, "{location}");
    assert_eq!(params["state"], "client-state-1");
    assert_eq!(params["iss"], issuer);
    assert!(!params.contains_key("code"));
}

// GitHub

async fn github_fixture(github: &GitHubLike, listener: TcpListener, app: bool) -> BrokerFixture {
    let upstream = if app {
        Upstream::github_app(&github.client_id)
    } else {
        Upstream::github(&github.client_id).scopes(["read:user", "repo"])
    };
    let upstream = upstream
        .client_secret(&github.client_secret)
        .github_base_urls(github.base_url(), github.base_url());
    BrokerFixture::at(listener, upstream, &github.base_url()).await
}

#[tokio::test]
async fn github_oauth_app_signs_in_by_its_numeric_id_with_short_lived_broker_tokens() {
    let (listener, issuer) = bind_issuer().await;
    let callback = format!("{issuer}/callback/github");
    let github = GitHubLike::start_with_callback(&callback).await;
    let fixture = github_fixture(&github, listener, false).await;
    assert_eq!(fixture.broker.callback_url(), callback);

    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("github|{USER_ID}")
    );

    let asked = github.last_authorize().unwrap();
    assert_eq!(asked["client_id"], github.client_id);
    assert_eq!(asked["redirect_uri"], callback);
    assert_eq!(asked["scope"], "read:user repo");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["code_challenge"].len(), 43);
    for absent in ["resource", "nonce", "audience"] {
        assert!(!asked.contains_key(absent), "{absent}: {asked:?}");
    }
    // GitHub's API refuses calls without a User-Agent, and documents its media type.
    let user = github.last_user_request().unwrap();
    assert_eq!(user.accept.as_deref(), Some("application/vnd.github+json"));
    assert!(
        user.user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("mcpauth-broker/")),
        "{user:?}"
    );

    // The OAuth App's token never expires; the broker's tokens are short-lived all the same,
    // and refreshing them asks GitHub once whether the user is still there.
    assert_eq!(tokens["expires_in"], 600);
    let calls = (github.token_requests(), github.user_requests());
    let refreshed = refresh(&fixture, &client_id, &tokens).await;
    assert_eq!(
        subject(&fixture, &refreshed).await,
        format!("github|{USER_ID}")
    );
    assert_eq!(
        (github.token_requests(), github.user_requests()),
        (calls.0, calls.1 + 1)
    );
}

#[tokio::test]
async fn github_answers_form_encoded_with_comma_separated_scopes_are_read() {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_with_callback(&format!("{issuer}/callback/github")).await;
    github.answer_form_always();
    let fixture = github_fixture(&github, listener, false).await;
    let (_, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("github|{USER_ID}")
    );
}

#[tokio::test]
async fn a_github_app_with_expiring_tokens_signs_in_without_scopes() {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_app(&format!("{issuer}/callback/github")).await;
    let fixture = github_fixture(&github, listener, true).await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("github|{USER_ID}")
    );
    let asked = github.last_authorize().unwrap();
    assert!(!asked.contains_key("scope"), "{asked:?}");
    assert_eq!(asked["code_challenge_method"], "S256");
    let calls = github.token_requests();
    refresh(&fixture, &client_id, &tokens).await;
    assert_eq!(github.token_requests(), calls);
}

#[tokio::test]
async fn github_errors_answered_with_status_200_reach_the_client_as_oauth_errors() {
    let (listener, issuer) = bind_issuer().await;
    let github = GitHubLike::start_with_callback(&format!("{issuer}/callback/github")).await;
    // A wrong secret: GitHub answers 200 with `error=incorrect_client_credentials`.
    let upstream = Upstream::github(&github.client_id)
        .client_secret("not-the-secret")
        .github_base_urls(github.base_url(), github.base_url());
    let fixture = BrokerFixture::at(listener, upstream, &github.base_url()).await;
    let response = through_to_callback(&fixture).await;
    assert_error_redirect(&response, &fixture.issuer, "server_error");
    assert_eq!(github.token_requests(), 1);
    assert_eq!(github.user_requests(), 0, "no identity without a token");
}

// Google

async fn google_fixture(google: &GoogleLike, listener: TcpListener) -> BrokerFixture {
    google_fixture_with(google, listener, |upstream| upstream).await
}

async fn google_fixture_with(
    google: &GoogleLike,
    listener: TcpListener,
    configure: impl FnOnce(Upstream) -> Upstream,
) -> BrokerFixture {
    let upstream = Upstream::google(&google.client_id)
        .client_secret(&google.client_secret)
        .google_base_url(google.issuer());
    BrokerFixture::at(listener, configure(upstream), google.issuer()).await
}

#[tokio::test]
async fn google_signs_in_by_its_id_token_and_gets_a_refresh_token_at_every_sign_in() {
    let (listener, issuer) = bind_issuer().await;
    let callback = format!("{issuer}/callback/google");
    let google = GoogleLike::start(&callback).await;
    let fixture = google_fixture(&google, listener).await;

    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("google|{GOOGLE_SUB}")
    );
    let asked = google.last_authorize().unwrap();
    assert_eq!(asked["scope"], "openid email profile");
    assert_eq!(asked["access_type"], "offline");
    assert_eq!(asked["prompt"], "consent");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["redirect_uri"], callback);
    assert!(asked.contains_key("nonce"));
    assert!(!asked.contains_key("resource"));
    let answer = google.last_token_answer().unwrap();
    assert!(answer["refresh_token"].is_string(), "{answer}");
    assert!(
        answer["scope"]
            .as_str()
            .unwrap()
            .contains("https://www.googleapis.com/auth/userinfo.email"),
        "{answer}"
    );

    // Google issues a refresh token after the first consent only with `prompt=consent`.
    fixture.login("read:todos").await;
    let answer = google.last_token_answer().unwrap();
    assert!(answer["refresh_token"].is_string(), "{answer}");

    // The broker refreshes its own tokens without Google.
    let calls = google.token_requests();
    refresh(&fixture, &client_id, &tokens).await;
    assert_eq!(google.token_requests(), calls);

    // What Google does on refresh (for a broker that refreshes upstream): no new refresh token.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", answer["refresh_token"].as_str().unwrap()),
        ("client_id", &google.client_id),
        ("client_secret", &google.client_secret),
    ];
    let refreshed: Value = reqwest::Client::new()
        .post(format!("{}/token", google.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(refreshed["access_token"].is_string(), "{refreshed}");
    assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
}

#[tokio::test]
async fn google_without_offline_access_signs_in_without_an_upstream_refresh_token() {
    let (listener, issuer) = bind_issuer().await;
    let google = GoogleLike::start(&format!("{issuer}/callback/google")).await;
    // One value per parameter: this replaces the preset's `access_type=offline`.
    let fixture = google_fixture_with(&google, listener, |upstream| {
        upstream.authorize_param("access_type", "online")
    })
    .await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    let asked = google.last_authorize().unwrap();
    assert_eq!(asked["access_type"], "online");
    let answer = google.last_token_answer().unwrap();
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    // The broker's own refresh token works regardless.
    refresh(&fixture, &client_id, &tokens).await;
}

#[tokio::test]
async fn google_id_tokens_naming_the_issuer_without_its_scheme_are_accepted() {
    let (listener, issuer) = bind_issuer().await;
    let google = GoogleLike::start(&format!("{issuer}/callback/google")).await;
    google.bare_issuer();
    let fixture = google_fixture(&google, listener).await;
    let (_, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("google|{GOOGLE_SUB}")
    );
}

#[tokio::test]
async fn a_google_id_token_from_another_issuer_is_refused() {
    let (listener, issuer) = bind_issuer().await;
    let google = GoogleLike::start(&format!("{issuer}/callback/google")).await;
    google.id_token_issuer("https://accounts.example.com");
    let fixture = google_fixture(&google, listener).await;
    let response = through_to_callback(&fixture).await;
    assert_error_redirect(&response, &fixture.issuer, "server_error");
}

// Microsoft Entra ID

async fn entra_fixture(
    entra: &EntraLike,
    listener: TcpListener,
    tenant: impl Into<EntraTenant>,
    configure: impl FnOnce(Upstream) -> Upstream,
) -> BrokerFixture {
    let upstream = Upstream::entra(tenant, &entra.client_id)
        .client_secret(&entra.client_secret)
        .scopes(["api://todo-api/todos.read"])
        .entra_base_url(entra.base_url());
    BrokerFixture::at(listener, configure(upstream), entra.base_url()).await
}

#[tokio::test]
async fn entra_single_tenant_signs_in_its_own_users_only() {
    let (listener, issuer) = bind_issuer().await;
    let callback = format!("{issuer}/callback/entra");
    let entra = EntraLike::start(&callback).await;
    let fixture = entra_fixture(&entra, listener, HOME_TENANT, |u| u).await;

    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("entra|{}", entra_like::USER_SUB)
    );
    let (tenant, asked) = entra.last_authorize().unwrap();
    assert_eq!(tenant, HOME_TENANT);
    assert_eq!(
        asked["scope"],
        "openid profile offline_access api://todo-api/todos.read"
    );
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["redirect_uri"], callback);
    assert!(asked.contains_key("nonce"));
    assert!(!asked.contains_key("resource"));
    assert!(entra.last_token_answer().unwrap()["refresh_token"].is_string());
    let calls = entra.token_requests();
    refresh(&fixture, &client_id, &tokens).await;
    assert_eq!(entra.token_requests(), calls);

    // A guest signing in from another tenant gets that tenant's issuer: not this broker's.
    entra.user_tenant(OTHER_TENANT);
    let response = through_to_callback(&fixture).await;
    assert_error_redirect(&response, &fixture.issuer, "server_error");
}

#[tokio::test]
async fn entra_multi_tenant_checks_each_id_token_against_its_own_tenant() {
    for tenant in [EntraTenant::Organizations, EntraTenant::Common] {
        let (listener, issuer) = bind_issuer().await;
        let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
        let fixture = entra_fixture(&entra, listener, tenant.clone(), |u| u).await;
        for user_tenant in [HOME_TENANT, OTHER_TENANT] {
            entra.user_tenant(user_tenant);
            let (_, tokens) = fixture.login("read:todos").await;
            assert_eq!(
                subject(&fixture, &tokens).await,
                format!("entra|{}", entra_like::USER_SUB)
            );
            assert_eq!(entra.last_authorize().unwrap().0, tenant.as_str());
        }
    }
}

#[tokio::test]
async fn an_entra_id_token_whose_issuer_is_not_its_tenants_is_refused() {
    let (listener, issuer) = bind_issuer().await;
    let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
    let fixture = entra_fixture(&entra, listener, "organizations", |u| u).await;
    entra.user_tenant(HOME_TENANT);
    for forged in [
        entra.issuer_of(OTHER_TENANT),
        // The discovery document's template is never a token's issuer.
        entra.issuer_of("{tenantid}"),
        format!("https://sts.windows.net/{HOME_TENANT}/"),
    ] {
        entra.id_token_issuer(&forged);
        let response = through_to_callback(&fixture).await;
        assert_error_redirect(&response, &fixture.issuer, "server_error");
    }
}

#[tokio::test]
async fn entra_v1_issuers_are_accepted_only_when_configured() {
    let (listener, issuer) = bind_issuer().await;
    let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
    entra.issue_v1();
    let fixture = entra_fixture(&entra, listener, "organizations", |u| u).await;
    let response = through_to_callback(&fixture).await;
    assert_error_redirect(&response, &fixture.issuer, "server_error");
    drop(fixture);

    let (listener, issuer) = bind_issuer().await;
    let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
    entra.issue_v1();
    let fixture = entra_fixture(&entra, listener, "organizations", |u| {
        u.entra_v1_issuer(true)
    })
    .await;
    let (_, tokens) = fixture.login("read:todos").await;
    assert_eq!(
        subject(&fixture, &tokens).await,
        format!("entra|{}", entra_like::USER_SUB)
    );
}

#[tokio::test]
async fn the_issuer_template_is_accepted_by_the_entra_preset_only() {
    // Generic discovery of a multi-tenant endpoint finds the template, not the issuer it was
    // given: refused, so sign-ins cannot start.
    let (listener, issuer) = bind_issuer().await;
    let entra = EntraLike::start(&format!("{issuer}/callback/entra")).await;
    let upstream = Upstream::oidc(
        format!("{}/common/v2.0", entra.base_url()),
        &entra.client_id,
    )
    .id("entra")
    .client_secret(&entra.client_secret);
    let fixture = BrokerFixture::at(listener, upstream, entra.base_url()).await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let page = fixture.open_consent(&request, &mut jar).await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    assert_error_redirect(&approval, &fixture.issuer, "temporarily_unavailable");
    assert!(
        entra.last_authorize().is_none(),
        "nobody was sent to sign in"
    );
}

// Configuration

#[tokio::test]
async fn preset_mistakes_are_refused_when_the_broker_is_built() {
    let tenant = HOME_TENANT;
    for (upstream, expected) in [
        (Upstream::github("id"), "GitHub requires the client secret"),
        (
            Upstream::github_app("id")
                .client_secret("s")
                .scopes(["repo"]),
            "a GitHub App ignores scopes",
        ),
        (
            Upstream::entra("contoso.onmicrosoft.com", "id").client_secret("s"),
            "is not a tenant id",
        ),
        (
            Upstream::entra(tenant, "id")
                .client_secret("s")
                .scopes(["api://todo-api/todos.read", "api://other-api/read"]),
            "AADSTS28000",
        ),
        (
            Upstream::google("id")
                .client_secret("s")
                .github_base_urls("https://a.example", "https://b.example"),
            "`github_base_urls` is for",
        ),
        (
            Upstream::google("id")
                .client_secret("s")
                .google_base_url("http://accounts.example.com"),
            "Google's issuer",
        ),
    ] {
        let built = Broker::builder("http://127.0.0.1:9")
            .resource("http://127.0.0.1:9/mcp", ["read"])
            .upstream(upstream)
            .store(MemoryStore::new())
            .build()
            .await;
        let error = built.unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }
}
