//! The GitHub-like provider of the test support library, checked against what GitHub does:
//! form-encoded token answers unless JSON is asked for, comma-separated scopes, errors with
//! status 200, no refresh token, no discovery, and `/user` behind a `User-Agent`.

use std::collections::HashMap;

use mcpauth_tests::github_like::{GitHubLike, USER_ID, USER_LOGIN, USER_NAME};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const CALLBACK: &str = "http://127.0.0.1:3000/oauth/callback";
// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The query parameters of the redirect `/login/oauth/authorize` answered with, and where it
/// pointed (without its query).
async fn authorize(
    github: &GitHubLike,
    params: &[(&str, &str)],
) -> (String, HashMap<String, String>) {
    let response = browser()
        .get(github.authorize_url())
        .query(params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let params = location.query_pairs().into_owned().collect();
    (location[..url::Position::AfterPath].to_owned(), params)
}

async fn code(github: &GitHubLike, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("client_id", github.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "repo user"),
        ("state", "st"),
    ];
    params.extend_from_slice(extra);
    authorize(github, &params).await.1["code"].clone()
}

#[tokio::test]
async fn the_code_flow_answers_form_encoded_then_json_and_user_identifies_the_token_holder() {
    let github = GitHubLike::start().await;
    let (target, params) = authorize(
        &github,
        &[
            ("client_id", &github.client_id),
            ("redirect_uri", CALLBACK),
            ("scope", "repo user"),
            ("state", "csrf-7"),
        ],
    )
    .await;
    assert_eq!(target, CALLBACK);
    assert_eq!(params["state"], "csrf-7");
    assert!(!params.contains_key("iss"), "{params:?}");

    // Default: form-encoded, scopes comma-separated, nothing that expires or refreshes.
    let http = reqwest::Client::new();
    let response = http
        .post(github.token_url())
        .form(&[
            ("client_id", github.client_id.as_str()),
            ("client_secret", github.client_secret.as_str()),
            ("code", params["code"].as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let body = response.text().await.unwrap();
    let answer: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(answer["scope"], "repo,user", "{body}");
    assert_eq!(answer["token_type"], "bearer");
    assert!(answer["access_token"].starts_with("gho_"), "{body}");
    assert_eq!(answer["access_token"].len(), 40);
    assert_eq!(answer.len(), 3, "no expires_in, no refresh_token: {body}");
    let form_token = answer["access_token"].clone();

    // With `Accept: application/json`, and client credentials by Basic.
    let code = code(&github, &[]).await;
    let json_answer: Value = http
        .post(github.token_url())
        .basic_auth(&github.client_id, Some(&github.client_secret))
        .header("accept", "application/json")
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_answer["scope"], "repo,user");
    assert_eq!(json_answer["token_type"], "bearer");
    assert!(json_answer.get("refresh_token").is_none());
    assert!(json_answer.get("expires_in").is_none());
    let json_token = json_answer["access_token"].as_str().unwrap();
    assert_ne!(json_token, form_token);

    // `/user`: Bearer or `token`, with a User-Agent.
    let user = |token: String, scheme: &'static str, agent: bool| {
        let mut request = http
            .get(github.user_url())
            .header("authorization", format!("{scheme} {token}"));
        if agent {
            request = request.header("user-agent", "mcpauth-tests");
        }
        request.send()
    };
    for (token, scheme) in [
        (form_token.clone(), "Bearer"),
        (json_token.to_owned(), "token"),
    ] {
        let response = user(token, scheme, true).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"id": USER_ID, "login": USER_LOGIN, "name": USER_NAME})
        );
    }
    let unknown = user("gho_unknown".into(), "Bearer", true).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["message"],
        "Bad credentials"
    );
    let anonymous = user(form_token.clone(), "Bearer", false).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);

    assert_eq!(github.revoke_tokens(), 2);
    let revoked = user(form_token, "Bearer", true).await.unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(github.authorize_requests(), 2);
    assert_eq!(github.token_requests(), 2);
    assert_eq!(github.user_requests(), 5);

    // No discovery of any kind.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = http
            .get(format!("{}{path}", github.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn token_errors_come_back_with_status_200() {
    let github = GitHubLike::start().await;
    let http = reqwest::Client::new();
    let exchange = |secret: &str, code: &str, verifier: Option<&str>| {
        let mut form = vec![
            ("client_id", github.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("code", code.to_owned()),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v.to_owned())));
        http.post(github.token_url())
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    let error_of = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["error"].as_str().unwrap().to_owned()
    };

    let code = code(&github, &[]).await;
    let wrong_secret = exchange("wrong", &code, None).await.unwrap();
    assert_eq!(error_of(wrong_secret).await, "incorrect_client_credentials");
    let ok = exchange(&github.client_secret, &code, None).await.unwrap();
    assert!(ok.json::<Value>().await.unwrap()["access_token"].is_string());
    let reused = exchange(&github.client_secret, &code, None).await.unwrap();
    assert_eq!(error_of(reused).await, "bad_verification_code");

    // PKCE, when a challenge was sent.
    let pkce = [
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let code = self::code(&github, &pkce).await;
    let missing = exchange(&github.client_secret, &code, None).await.unwrap();
    assert_eq!(error_of(missing).await, "bad_verification_code");
    let code = self::code(&github, &pkce).await;
    let ok = exchange(&github.client_secret, &code, Some(VERIFIER))
        .await
        .unwrap();
    assert!(ok.json::<Value>().await.unwrap()["access_token"].is_string());
}

#[tokio::test]
async fn a_registered_callback_bounds_the_redirect_uri() {
    let github = GitHubLike::start_with_callback(CALLBACK).await;
    let with_redirect = |redirect_uri: &'static str| {
        let github = &github;
        async move {
            let mut params = vec![("client_id", github.client_id.as_str()), ("state", "s")];
            if !redirect_uri.is_empty() {
                params.push(("redirect_uri", redirect_uri));
            }
            authorize(github, &params).await
        }
    };

    let (target, params) = with_redirect("").await;
    assert_eq!(target, CALLBACK);
    assert!(params.contains_key("code"));
    let (target, params) = with_redirect("http://127.0.0.1:3000/oauth/callback/deeper").await;
    assert_eq!(target, "http://127.0.0.1:3000/oauth/callback/deeper");
    assert!(params.contains_key("code"));
    for outside in [
        "http://127.0.0.1:3001/oauth/callback",
        "http://127.0.0.1:3000/oauth/callbackx",
        "http://127.0.0.1:3000/other",
    ] {
        let (target, params) = with_redirect(outside).await;
        assert_eq!(target, CALLBACK, "{outside}");
        assert_eq!(params["error"], "redirect_uri_mismatch");
        assert_eq!(params["state"], "s");
    }

    let unknown_client = browser()
        .get(github.authorize_url())
        .query(&[("client_id", "someone-else")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_client.status(), StatusCode::NOT_FOUND);
}
