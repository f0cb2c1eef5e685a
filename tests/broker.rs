//! The broker over real HTTP: a development identity provider without registration, metadata
//! documents or resource indicators upstream; the broker's endpoints, consent page and tokens;
//! the protected resource verifying them. Each refusal asserts the status, the error code and
//! that nothing was issued.

use std::sync::Arc;
use std::time::Duration;

use mcpauth::broker::{
    BrokerStore, FjallStore, MemoryStore, Namespace, Put, StoreError, StoreFuture, Write,
};
use mcpauth_tests::broker::{
    AuthorizeRequest, BrokerFixture, FixtureOptions, Jar, SCOPES, pkce, query,
};
use mcpauth_tests::logs::CapturedLogs;
use mcpauth_tests::parse_challenge;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

#[tokio::test]
async fn metadata_advertises_exactly_what_is_implemented() {
    let fixture = BrokerFixture::start().await;
    let response = fixture
        .http
        .get(fixture.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let metadata: Value = response.json().await.unwrap();
    let issuer = &fixture.issuer;
    assert_eq!(
        metadata,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "registration_endpoint": format!("{issuer}/register"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint": format!("{issuer}/revoke"),
            "revocation_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true,
        })
    );
    let prm: Value = fixture
        .get_json(&fixture.url("/.well-known/oauth-protected-resource/mcp"))
        .await;
    assert_eq!(prm["authorization_servers"], json!([issuer]));
    let jwks: Value = fixture.get_json(&fixture.url("/jwks")).await;
    // Browser-based clients: preflights of the JSON endpoints pass, any origin.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/register",
        "/token",
        "/revoke",
    ] {
        let response = fixture
            .http
            .request(reqwest::Method::OPTIONS, fixture.url(path))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,mcp-protocol-version",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
        let allowed = response.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap();
        assert!(allowed.contains("mcp-protocol-version"), "{path}");
    }
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert!(key.get("d").is_none(), "no private member is published");
}

#[tokio::test]
async fn a_client_signs_in_calls_a_tool_steps_up_and_refreshes() {
    let fixture = BrokerFixture::start().await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "read:todos");
    assert!(tokens["expires_in"].as_u64().unwrap() <= 600);
    let access = tokens["access_token"].as_str().unwrap();

    // The access token: an RFC 9068 JWT for the resource, the user namespaced by provider.
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let response = fixture.call_tool(access, "get_todos").await;
    assert_eq!(response.status(), StatusCode::OK);
    let who: Value = response.json().await.unwrap();
    assert_eq!(who["subject"], "dev|dev-user");
    assert_eq!(who["client_id"], client_id);
    assert_eq!(who["issuer"], fixture.issuer);
    assert_eq!(who["scopes"], json!(["read:todos"]));

    // Step-up: create_todo needs create:todos.
    let response = fixture.call_tool(access, "create_todo").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, params) = parse_challenge(response.headers()[WWW_AUTHENTICATE].to_str().unwrap());
    assert_eq!(params["error"], "insufficient_scope");
    let needed = params["scope"].clone();
    assert!(needed.contains("create:todos"), "{needed}");
    let (verifier, challenge) = pkce();
    let mut request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    request.scope = Some(needed.clone());
    let answer = fixture.authorize_code(&request).await;
    assert_eq!(answer["iss"], fixture.issuer);
    assert_eq!(answer["state"], "client-state-1");
    let (status, stepped) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &answer["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let stepped_access = stepped["access_token"].as_str().unwrap();
    let response = fixture.call_tool(stepped_access, "create_todo").await;
    assert_eq!(response.status(), StatusCode::OK);

    // Refresh: a new pair, the scopes kept.
    let (status, refreshed) = fixture.refresh(&client_id, &stepped["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], stepped["refresh_token"]);
    assert_eq!(refreshed["scope"], stepped["scope"]);
    let response = fixture
        .call_tool(refreshed["access_token"].as_str().unwrap(), "create_todo")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_rotate_with_one_retry_and_theft_ends_the_grant() {
    let fixture = BrokerFixture::start().await;
    let (client_id, first) = fixture.login("read:todos").await;
    let (status, second) = fixture.refresh(&client_id, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK);
    // The previous token again before its successor is used (a lost answer): allowed.
    let (status, second_again) = fixture.refresh(&client_id, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{second_again}");
    // The successor is used: the first token is now an older generation.
    let (status, third) = fixture.refresh(&client_id, &second["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let (status, error) = fixture.refresh(&client_id, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    assert!(error.get("access_token").is_none());
    // …and the whole grant is gone, the newest token included.
    let (status, error) = fixture.refresh(&client_id, &third["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
}

/// Whoever knows a grant's id (every access token names it, as `sid`) can make up tokens that
/// name it; the broker refuses them without ending the grant, at the token endpoint and at the
/// revocation endpoint.
#[tokio::test]
async fn made_up_refresh_tokens_naming_a_grant_end_nothing() {
    let fixture = BrokerFixture::start().await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let parts: Vec<&str> = refresh_token.split('.').collect();
    assert_eq!(parts.len(), 3, "{refresh_token}");
    let grant_id = parts[0];
    let claims = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sid"], grant_id, "the access token names the grant");
    let made_up = [
        format!("{grant_id}.{}.{}", "A".repeat(43), "B".repeat(43)),
        // The real nonce with another MAC, and the real MAC over another nonce.
        format!("{grant_id}.{}.{}", parts[1], "B".repeat(43)),
        format!("{grant_id}.{}.{}", "A".repeat(43), parts[2]),
        format!("{grant_id}.{}", parts[1]),
        grant_id.to_owned(),
    ];
    for token in &made_up {
        let (status, body) = fixture
            .refresh(&client_id, &Value::from(token.as_str()))
            .await;
        assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
        let response = fixture
            .http
            .post(fixture.url("/revoke"))
            .form(&[("token", token.as_str()), ("client_id", client_id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The grant lives on: its real token still refreshes, and its successor too.
    let (status, refreshed) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, again) = fixture
        .refresh(&client_id, &refreshed["refresh_token"])
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
}

#[tokio::test]
async fn scope_may_only_narrow_on_refresh_and_other_clients_cannot_refresh() {
    let fixture = BrokerFixture::start().await;
    let (client_id, tokens) = fixture.login("read:todos create:todos").await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, narrowed) = fixture
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", refresh_token),
            ("scope", "read:todos"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["scope"], "read:todos");
    let (status, error) = fixture
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", narrowed["refresh_token"].as_str().unwrap()),
            ("scope", "read:todos delete:todos"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_scope");
    let other = fixture.register(&[REDIRECT]).await;
    let (status, error) = fixture
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &other),
            ("refresh_token", narrowed["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    assert!(error.get("access_token").is_none());
}

/// Signs in up to the code; returns (client id, verifier, code).
async fn code_for(fixture: &BrokerFixture) -> (String, String, String) {
    let client_id = fixture.register(&[REDIRECT]).await;
    let (verifier, challenge) = pkce();
    let answer = fixture
        .authorize_code(&AuthorizeRequest::new(&client_id, REDIRECT, &challenge))
        .await;
    (client_id, verifier, answer["code"].clone())
}

fn assert_refused(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(body.get("access_token").is_none(), "nothing issued: {body}");
    assert!(
        body.get("refresh_token").is_none(),
        "nothing issued: {body}"
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let fixture = BrokerFixture::start().await;
    let (client_id, verifier, code) = code_for(&fixture).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, tokens) = fixture.token_request(&form).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = fixture.token_request(&form).await;
    assert_refused(status, &error, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, error) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_refused(status, &error, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_code_redemptions() {
    let fixture = BrokerFixture::start().await;
    // Each case gets a fresh code: a refused attempt consumes it.
    type Tamper = fn(&mut Vec<(String, String)>, &str);
    let cases: Vec<(&str, Tamper, StatusCode, &str)> = vec![
        (
            "wrong verifier",
            |f, _| set(f, "code_verifier", &"x".repeat(43)),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "malformed verifier",
            |f, _| set(f, "code_verifier", "short"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "missing verifier",
            |f, _| unset(f, "code_verifier"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "other redirect_uri",
            |f, _| set(f, "redirect_uri", "http://127.0.0.1:9/other"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "missing redirect_uri",
            |f, _| unset(f, "redirect_uri"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "resource of another server",
            |f, _| set(f, "resource", "http://127.0.0.1:1/mcp"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            "unknown code",
            |f, _| set(f, "code", "not-a-code"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "unknown client",
            |f, _| set(f, "client_id", "nobody"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "missing client",
            |f, _| unset(f, "client_id"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "unsupported grant",
            |f, _| set(f, "grant_type", "password"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "repeated parameter",
            |f, code| f.push(("code".into(), code.into())),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (name, tamper, expected, code_expected) in cases {
        let (client_id, verifier, code) = code_for(&fixture).await;
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("client_id".into(), client_id),
            ("code".into(), code.clone()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), verifier),
        ];
        tamper(&mut form, &code);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, body) = fixture.token_request(&form).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert_refused(status, &body, expected, code_expected);
    }
}

fn set(form: &mut Vec<(String, String)>, name: &str, value: &str) {
    unset(form, name);
    form.push((name.into(), value.into()));
}

fn unset(form: &mut Vec<(String, String)>, name: &str) {
    form.retain(|(k, _)| k != name);
}

#[tokio::test]
async fn a_code_from_another_client_is_refused() {
    let fixture = BrokerFixture::start().await;
    let (_, verifier, code) = code_for(&fixture).await;
    let other = fixture.register(&[REDIRECT]).await;
    let (status, body) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &other),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let fixture = BrokerFixture::start_with(FixtureOptions::configured(|b| {
        b.code_lifetime(Duration::from_secs(1))
    }))
    .await;
    let (client_id, verifier, code) = code_for(&fixture).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

/// What `GET /authorize` answered: a page (no redirect) or a redirect to the client.
async fn authorize_answer(
    fixture: &BrokerFixture,
    request: &AuthorizeRequest,
) -> reqwest::Response {
    fixture
        .http
        .get(request.url(&fixture.issuer))
        .send()
        .await
        .unwrap()
}

async fn assert_page_not_redirect(response: reqwest::Response, status: StatusCode) {
    assert_eq!(response.status(), status);
    assert!(
        response.headers().get(LOCATION).is_none(),
        "never redirected"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "an HTML page"
    );
}

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

#[tokio::test]
async fn authorization_requests_are_validated_before_any_redirect() {
    let fixture = BrokerFixture::start().await;
    let client_id = fixture
        .register(&[REDIRECT, "https://app.example/cb"])
        .await;
    let (_, challenge) = pkce();
    let good = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);

    // Client or redirect URI not established: a page, never a redirect.
    let pages: Vec<(&str, AuthorizeRequest)> = vec![
        (
            "unknown client",
            AuthorizeRequest {
                client_id: "nobody".into(),
                ..good.clone()
            },
        ),
        (
            "unregistered redirect",
            AuthorizeRequest {
                redirect_uri: Some("https://evil.example/cb".into()),
                ..good.clone()
            },
        ),
        (
            "other port on a non-loopback host",
            AuthorizeRequest {
                redirect_uri: Some("https://app.example:8443/cb".into()),
                ..good.clone()
            },
        ),
        (
            "other path on loopback",
            AuthorizeRequest {
                redirect_uri: Some("http://127.0.0.1:9/other".into()),
                ..good.clone()
            },
        ),
        (
            "javascript: redirect",
            AuthorizeRequest {
                redirect_uri: Some("javascript:alert(1)".into()),
                ..good.clone()
            },
        ),
        (
            "fragment",
            AuthorizeRequest {
                redirect_uri: Some(format!("{REDIRECT}#x")),
                ..good.clone()
            },
        ),
        (
            "userinfo",
            AuthorizeRequest {
                redirect_uri: Some("http://user@127.0.0.1:9/callback".into()),
                ..good.clone()
            },
        ),
        (
            "ambiguous redirect (none sent, two registered)",
            AuthorizeRequest {
                redirect_uri: None,
                ..good.clone()
            },
        ),
    ];
    for (name, request) in pages {
        let response = authorize_answer(&fixture, &request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_page_not_redirect(response, StatusCode::BAD_REQUEST).await;
    }
    // Loopback: any port on the registered host.
    let other_port = AuthorizeRequest {
        redirect_uri: Some("http://127.0.0.1:50123/callback".into()),
        ..good.clone()
    };
    let response = authorize_answer(&fixture, &other_port).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/consent?")
    );

    // Established: errors go back with state and iss.
    let redirects: Vec<(&str, AuthorizeRequest, &str)> = vec![
        (
            "plain PKCE",
            AuthorizeRequest {
                method: Some("plain".into()),
                ..good.clone()
            },
            "invalid_request",
        ),
        (
            "no PKCE",
            AuthorizeRequest {
                challenge: None,
                method: None,
                ..good.clone()
            },
            "invalid_request",
        ),
        (
            "no method",
            AuthorizeRequest {
                method: None,
                ..good.clone()
            },
            "invalid_request",
        ),
        (
            "malformed challenge",
            AuthorizeRequest {
                challenge: Some("abc".into()),
                ..good.clone()
            },
            "invalid_request",
        ),
        (
            "resource of another server",
            AuthorizeRequest {
                resource: Some("https://other.example/mcp".into()),
                ..good.clone()
            },
            "invalid_target",
        ),
        (
            "scope outside the resource's",
            AuthorizeRequest {
                scope: Some("admin:everything".into()),
                ..good.clone()
            },
            "invalid_scope",
        ),
    ];
    for (name, request, code) in redirects {
        let response = authorize_answer(&fixture, &request).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        assert_error_redirect(&response, &fixture.issuer, code);
    }
    let token_flow = AuthorizeRequest {
        extra: vec![],
        ..good.clone()
    };
    let url = token_flow
        .url(&fixture.issuer)
        .replace("response_type=code", "response_type=token");
    let response = fixture.http.get(url).send().await.unwrap();
    assert_error_redirect(&response, &fixture.issuer, "unsupported_response_type");

    // The canonical spellings of the resource, and a client-added query, are the resource.
    for resource in [
        fixture.resource.clone(),
        format!("{}/", fixture.resource),
        fixture.resource.replace("http://", "HTTP://"),
        format!("{}?client=chatgpt", fixture.resource),
    ] {
        let request = AuthorizeRequest {
            resource: Some(resource.clone()),
            ..good.clone()
        };
        let response = authorize_answer(&fixture, &request).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{resource}");
        assert!(
            response.headers()[LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/consent?"),
            "{resource}"
        );
    }
}

#[tokio::test]
async fn denial_returns_access_denied_with_state_and_iss() {
    let fixture = BrokerFixture::start().await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let page = fixture
        .open_consent(
            &AuthorizeRequest::new(&client_id, REDIRECT, &challenge),
            &mut jar,
        )
        .await;
    assert!(page.html.contains("Test client"));
    assert!(page.html.contains("unverified"));
    assert!(page.html.contains("127.0.0.1"));
    let response = fixture.answer_consent(&page, "deny", &mut jar).await;
    assert_error_redirect(&response, &fixture.issuer, "access_denied");
}

#[tokio::test]
async fn the_consent_form_is_bound_to_its_browser_and_answered_once() {
    let fixture = BrokerFixture::start().await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;

    // Loading it again keeps the token: the first copy can still be approved.
    let again = fixture.load_consent(&page.url, &mut jar).await;
    assert_eq!(again.hidden["csrf"], page.hidden["csrf"]);

    let post = |form: Vec<(&'static str, String)>, cookies: String| {
        let http = fixture.http.clone();
        let url = fixture.url("/consent");
        async move {
            http.post(url)
                .header(COOKIE, cookies)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let transaction = page.hidden["transaction"].clone();
    let csrf = page.hidden["csrf"].clone();
    type Case = (&'static str, Vec<(&'static str, String)>, String);
    let cases: Vec<Case> = vec![
        (
            "no CSRF token",
            vec![
                ("transaction", transaction.clone()),
                ("decision", "approve".into()),
            ],
            jar.header(),
        ),
        (
            "wrong CSRF token",
            vec![
                ("transaction", transaction.clone()),
                ("csrf", "AAAA".into()),
                ("decision", "approve".into()),
            ],
            jar.header(),
        ),
        (
            "another browser",
            vec![
                ("transaction", transaction.clone()),
                ("csrf", csrf.clone()),
                ("decision", "approve".into()),
            ],
            "mcpauth-browser=someone-elses-nonce-0123".into(),
        ),
        (
            "no cookie",
            vec![
                ("transaction", transaction.clone()),
                ("csrf", csrf.clone()),
                ("decision", "approve".into()),
            ],
            String::new(),
        ),
        (
            "no transaction",
            vec![("csrf", csrf.clone()), ("decision", "approve".into())],
            jar.header(),
        ),
    ];
    for (name, form, cookies) in cases {
        let response = post(form, cookies).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
        assert!(response.headers().get(LOCATION).is_none(), "{name}");
    }
    // The first copy is approved; a second answer finds nothing.
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    assert_eq!(approval.status(), StatusCode::SEE_OTHER);
    let twice = fixture.answer_consent(&page, "approve", &mut jar).await;
    assert_page_not_redirect(twice, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_callback_needs_the_binding_cookie_and_a_live_state() {
    let fixture = BrokerFixture::start().await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let callback = fixture.through_upstream(approval).await;

    // Another browser (no binding cookie): refused, and the sign-in is not consumed.
    let response = fixture.open_callback(&callback, &mut Jar::default()).await;
    assert_page_not_redirect(response, StatusCode::FORBIDDEN).await;
    // The browser that approved completes it.
    let response = fixture.open_callback(&callback, &mut jar.clone()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(query(response.headers()[LOCATION].to_str().unwrap()).contains_key("code"));
    // Replayed: the state is spent.
    let response = fixture.open_callback(&callback, &mut jar.clone()).await;
    assert!(response.headers().get(LOCATION).is_none());
    assert!(response.status().is_client_error());
    // An unknown state.
    let unknown = format!("{}/callback/dev?state=unknown&code=x", fixture.issuer);
    let response = fixture.open_callback(&unknown, &mut jar.clone()).await;
    assert_page_not_redirect(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn an_upstream_error_reaches_the_client_as_an_oauth_error() {
    let fixture = BrokerFixture::start().await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let page = fixture
        .open_consent(
            &AuthorizeRequest::new(&client_id, REDIRECT, &challenge),
            &mut jar,
        )
        .await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let upstream_url = approval.headers()[LOCATION].to_str().unwrap().to_owned();
    let state = query(&upstream_url)["state"].clone();
    let callback = format!(
        "{}/callback/dev?state={state}&error=access_denied&error_description=no",
        fixture.issuer
    );
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_error_redirect(&response, &fixture.issuer, "access_denied");
}

#[tokio::test]
async fn registration_validates_metadata_and_is_rate_limited() {
    let fixture = BrokerFixture::start().await;
    let bad = [
        json!({ "redirect_uris": ["javascript:alert(1)"] }),
        json!({ "redirect_uris": [] }),
        json!({ "client_name": "x" }),
        json!({ "redirect_uris": ["http://evil.example/cb"] }),
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic" }),
        json!({ "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"] }),
        json!({ "redirect_uris": "http://127.0.0.1/cb" }),
        json!([1, 2]),
    ];
    for body in bad {
        let response = fixture
            .http
            .post(fixture.url("/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        let code = error["error"].as_str().unwrap();
        assert!(
            code == "invalid_redirect_uri" || code == "invalid_client_metadata",
            "{body}: {error}"
        );
        assert!(error.get("client_id").is_none());
    }
    // A thousand registrations at once: the limit answers most of them.
    let mut created = 0;
    let mut limited = 0;
    for _ in 0..1000 {
        let response = fixture
            .http
            .post(fixture.url("/register"))
            .json(&json!({ "redirect_uris": [REDIRECT] }))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created + limited, 1000);
    assert!(created <= 100, "{created} registered");
    assert!(limited >= 900);
}

#[tokio::test]
async fn revoking_ends_the_grant_and_its_access_tokens_within_their_lifetime() {
    let fixture = BrokerFixture::start_with(FixtureOptions::configured(|b| {
        b.access_token_lifetime(Duration::from_secs(2))
    }))
    .await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    let revoke = |token: String, client: String| {
        let http = fixture.http.clone();
        let url = fixture.url("/revoke");
        async move {
            http.post(url)
                .form(&[("token", token.as_str()), ("client_id", client.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let response = revoke("unknown-token".into(), client_id.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = revoke(
        tokens["refresh_token"].as_str().unwrap().into(),
        client_id.clone(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let access = tokens["access_token"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = fixture.call_tool(access, "get_todos").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_restart_on_the_embedded_store_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("mcpauth-broker-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("broker-store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let start = |listener, upstream| {
        let path = path.clone();
        async move {
            BrokerFixture::start_with(FixtureOptions {
                store: Arc::new(FjallStore::open(&path).unwrap()),
                listener: Some(listener),
                upstream,
                ..FixtureOptions::default()
            })
            .await
        }
    };
    let fixture = start(listener, None).await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (listener, upstream) = fixture.stop().await;
    let fixture = start(listener, Some(upstream)).await;
    let (verifier, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;
    let (listener, upstream) = fixture.stop().await;
    let fixture = start(listener, Some(upstream)).await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let callback = fixture.through_upstream(approval).await;
    let (listener, upstream) = fixture.stop().await;
    let fixture = start(listener, Some(upstream)).await;
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let code = query(response.headers()[LOCATION].to_str().unwrap())["code"].clone();
    let (listener, upstream) = fixture.stop().await;
    let fixture = start(listener, Some(upstream)).await;
    let (status, tokens) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (listener, upstream) = fixture.stop().await;
    let fixture = start(listener, Some(upstream)).await;
    // Same keys: the access token issued before the restart still verifies.
    let response = fixture
        .call_tool(tokens["access_token"].as_str().unwrap(), "get_todos")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, refreshed) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    drop(fixture);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn memory_store_fixture_uses_distinct_stores() {
    // Two brokers never share state unless given the same store.
    let a = BrokerFixture::start_with(FixtureOptions {
        store: Arc::new(MemoryStore::new()),
        ..FixtureOptions::default()
    })
    .await;
    let b = BrokerFixture::start().await;
    let client_id = a.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let response =
        authorize_answer(&b, &AuthorizeRequest::new(&client_id, REDIRECT, &challenge)).await;
    assert_page_not_redirect(response, StatusCode::BAD_REQUEST).await;
}

/// Approves a sign-in and opens the callback the provider sends the browser to.
async fn through_to_callback(fixture: &BrokerFixture) -> reqwest::Response {
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let mut jar = Jar::default();
    let page = fixture
        .open_consent(
            &AuthorizeRequest::new(&client_id, REDIRECT, &challenge),
            &mut jar,
        )
        .await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let callback = fixture.through_upstream(approval).await;
    fixture.open_callback(&callback, &mut jar).await
}

#[tokio::test]
async fn upstream_token_endpoint_failures_reach_the_client_as_oauth_errors() {
    use mcpauth::dev::TokenFailure;
    let fixture = BrokerFixture::start().await;
    for (failure, code) in [
        (TokenFailure::ServerError, "temporarily_unavailable"),
        (TokenFailure::Html, "temporarily_unavailable"),
        (TokenFailure::Status(502), "temporarily_unavailable"),
    ] {
        fixture.upstream.fail_token_endpoint(Some(failure));
        let response = through_to_callback(&fixture).await;
        assert_error_redirect(&response, &fixture.issuer, code);
    }
    fixture.upstream.fail_token_endpoint(None);
    let response = through_to_callback(&fixture).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(query(response.headers()[LOCATION].to_str().unwrap()).contains_key("code"));
}

#[tokio::test]
async fn an_unreachable_upstream_token_endpoint_is_temporarily_unavailable() {
    let fixture = BrokerFixture::start_with(FixtureOptions {
        upstream_config: |dev| {
            // The provider's own authorization endpoint, a token endpoint nobody answers at.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let token = format!("http://{}/token", closed.local_addr().unwrap());
            drop(closed);
            mcpauth::broker::Upstream::oauth(
                format!("{}/authorize", dev.issuer()),
                token,
                format!("{}/userinfo", dev.issuer()),
                mcpauth_tests::broker::UPSTREAM_CLIENT,
            )
            .id("dev")
            .client_secret(mcpauth_tests::broker::UPSTREAM_SECRET)
        },
        ..FixtureOptions::default()
    })
    .await;
    let response = through_to_callback(&fixture).await;
    assert_error_redirect(&response, &fixture.issuer, "temporarily_unavailable");
}

/// A loopback server of client ID metadata documents: `/doc/<case>` answers each case.
async fn document_server() -> mcpauth_tests::TestServer {
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://cimd.test:{}", addr.port());
    let document = move |case: &str, patch: Value| {
        let mut doc = json!({
            "client_id": format!("{base}/doc/{case}"),
            "client_name": "Metadata Client",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        if let (Some(doc), Some(patch)) = (doc.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                doc.insert(k.clone(), v.clone());
            }
        }
        doc
    };
    let app = axum::Router::new().route(
        "/doc/{case}",
        get(
            move |axum::extract::Path(case): axum::extract::Path<String>| {
                let document = document.clone();
                async move {
                    let json = |v: Value| {
                        ([(header::CONTENT_TYPE, "application/json")], v.to_string())
                            .into_response()
                    };
                    match case.as_str() {
                        "good" => json(document("good", json!({}))),
                        "redirect" => {
                            (StatusCode::FOUND, [(header::LOCATION, "/doc/good")]).into_response()
                        }
                        "large" => json(document("large", json!({ "padding": "x".repeat(6000) }))),
                        "not-json" => {
                            ([(header::CONTENT_TYPE, "application/json")], "<html>").into_response()
                        }
                        "mismatch" => json(document(
                            "mismatch",
                            json!({ "client_id": "https://other.example/doc" }),
                        )),
                        "secret" => json(document("secret", json!({ "client_secret": "s3cret" }))),
                        "javascript" => json(document(
                            "javascript",
                            json!({ "redirect_uris": ["javascript:alert(1)"] }),
                        )),
                        _ => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        ),
    );
    mcpauth_tests::TestServer::serve(listener, app)
}

#[tokio::test]
async fn client_metadata_documents_are_fetched_safely_and_validated() {
    let documents = document_server().await;
    let addr = documents.addr;
    let fixture = BrokerFixture::start_with(FixtureOptions::configured(move |b| {
        b.client_metadata_documents(
            mcpauth::broker::CimdOptions::default()
                .trust_host("cimd.test", addr)
                // Every refused document is fetched again (errors are never cached).
                .host_fetch_rate(100, 100),
        )
    }))
    .await;
    let base = format!("http://cimd.test:{}", addr.port());

    // A good document: the consent page names the client and its verified host.
    let (verifier, challenge) = pkce();
    let client_id = format!("{base}/doc/good");
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;
    assert!(page.html.contains("Metadata Client"));
    assert!(page.html.contains("verified: cimd.test"), "{}", page.html);
    let answer = fixture.authorize_code(&request).await;
    let (status, tokens) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &answer["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // Each bad document: a page at /authorize (no redirect), invalid_client at /token.
    let mut bad: Vec<String> = [
        "redirect",
        "large",
        "not-json",
        "mismatch",
        "secret",
        "javascript",
    ]
    .iter()
    .map(|case| format!("{base}/doc/{case}"))
    .collect();
    // A host nobody trusted, on a loopback address: refused before any connection.
    bad.push(format!("https://localhost:{}/doc/good", addr.port()));
    bad.push(format!("https://127.0.0.1:{}/doc/good", addr.port()));
    for client_id in bad {
        let (_, challenge) = pkce();
        let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
        let response = authorize_answer(&fixture, &request).await;
        assert!(
            response.status().is_client_error(),
            "{client_id}: {}",
            response.status()
        );
        assert!(response.headers().get(LOCATION).is_none(), "{client_id}");
        let (status, body) = fixture
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", "whatever"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"v".repeat(43)),
            ])
            .await;
        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    }
}

#[tokio::test]
async fn the_identity_provider_is_not_judged_as_an_authorization_server_for_mcp_clients() {
    // The provider lacks registration and metadata documents by design: the broker is there
    // for that. Warning that MCP clients cannot register at it would send operators looking
    // for a problem that is not there.
    let warnings = CapturedLogs::start(tracing::Level::WARN);
    let fixture = BrokerFixture::start().await;
    let (_, tokens) = fixture.login("read:todos").await;
    assert!(tokens["access_token"].is_string());
    let logged = warnings.text();
    for code in [
        "dynamic_registration_not_supported",
        "client_id_metadata_document_not_supported",
    ] {
        assert!(!logged.contains(code), "{logged}");
    }
    assert!(!logged.contains(fixture.upstream.issuer()), "{logged}");
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_path_aware_metadata_and_endpoints() {
    let fixture = BrokerFixture::start_with(FixtureOptions {
        issuer_path: "/auth",
        ..FixtureOptions::default()
    })
    .await;
    assert!(fixture.issuer.ends_with("/auth"));
    // RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
    let metadata: Value = fixture
        .get_json(&fixture.origin_url("/.well-known/oauth-authorization-server/auth"))
        .await;
    assert_eq!(metadata["issuer"], fixture.issuer);
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/token", fixture.issuer)
    );
    let root = fixture
        .http
        .get(fixture.origin_url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::NOT_FOUND, "nothing at the root");
    let prm: Value = fixture
        .get_json(&fixture.origin_url("/.well-known/oauth-protected-resource/mcp"))
        .await;
    assert_eq!(prm["authorization_servers"], json!([fixture.issuer]));
    let (_, tokens) = fixture.login("read:todos").await;
    let response = fixture
        .call_tool(tokens["access_token"].as_str().unwrap(), "get_todos")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let who: Value = response.json().await.unwrap();
    assert_eq!(who["issuer"], fixture.issuer);
}

#[tokio::test]
async fn every_grant_of_a_user_or_a_client_can_be_ended() {
    let fixture = BrokerFixture::start().await;
    let (first_client, first) = fixture.login("read:todos").await;
    let (second_client, second) = fixture.login("read:todos").await;
    let (third_client, third) = fixture.login("read:todos").await;
    assert_eq!(
        fixture.broker.revoke_client(&first_client).await.unwrap(),
        1
    );
    let (status, body) = fixture
        .refresh(&first_client, &first["refresh_token"])
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _) = fixture
        .refresh(&second_client, &second["refresh_token"])
        .await;
    assert_eq!(status, StatusCode::OK, "another client's grant lives on");
    // The development provider signs everyone in as one user: both remaining grants are theirs.
    assert_eq!(fixture.broker.revoke_user("dev|dev-user").await.unwrap(), 2);
    assert_eq!(fixture.broker.revoke_user("dev|dev-user").await.unwrap(), 0);
    let (status, body) = fixture
        .refresh(&third_client, &third["refresh_token"])
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_flood_of_authorization_requests_is_bounded() {
    let fixture =
        BrokerFixture::start_with(FixtureOptions::configured(|b| b.authorization_rate(5))).await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let (mut started, mut refused) = (0, 0);
    let began = std::time::Instant::now();
    for _ in 0..100 {
        let response = authorize_answer(&fixture, &request).await;
        match response.status() {
            StatusCode::SEE_OTHER => started += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                assert!(response.headers().get(LOCATION).is_none());
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // A burst of 10, then 5 a second for as long as the loop took.
    let allowed = 10 + (5.0 * began.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (10..=allowed).contains(&started),
        "{started} started, {allowed} allowed"
    );
    assert_eq!(started + refused, 100);
}

/// A store that can be taken down and brought back: a memory store whose every operation fails
/// as unavailable while it is down, or only its writes while writes are down.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
    writes_down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn set_writes_down(&self, down: bool) {
        self.writes_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self, write: bool) -> Result<(), StoreError> {
        let writes_down = write && self.writes_down.load(std::sync::atomic::Ordering::SeqCst);
        if writes_down || self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the test took the store down".into(),
            ));
        }
        Ok(())
    }

    /// A read, failed when the store is down.
    fn read<'a, T: Send + 'a>(&'a self, operation: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        Box::pin(async move {
            self.check(false)?;
            operation.await
        })
    }

    /// A write, checked before the inner store is touched: a failed write (a take among them)
    /// must change nothing.
    fn write<'a, T: Send + 'a>(
        &'a self,
        operation: impl FnOnce() -> StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        match self.check(true) {
            Ok(()) => operation(),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}

impl BrokerStore for Flaky {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.write(|| self.inner.put(namespace, key, value, ttl))
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.write(|| self.inner.put_new(namespace, key, value, ttl))
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.read(self.inner.get(namespace, key))
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.write(|| self.inner.take(namespace, key))
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.write(|| {
            self.inner
                .compare_and_swap(namespace, key, expected, new, ttl)
        })
    }

    fn compare_and_swap_and_put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
        put: Put<'a>,
    ) -> StoreFuture<'a, bool> {
        // Forwarded, not left to the trait's default: the broker under test makes the same
        // single atomic write it makes on the real store.
        self.write(|| {
            self.inner
                .compare_and_swap_and_put(namespace, key, expected, new, ttl, put)
        })
    }

    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        self.write(|| self.inner.write_all(writes))
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        self.write(|| self.inner.delete(namespace, key))
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        self.read(self.inner.count(namespace))
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.write(|| self.inner.index_add(index, member))
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.write(|| self.inner.index_remove(index, member))
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        self.read(self.inner.index_members(index))
    }
}

/// A 503 with `Retry-After`: an HTML page, or the JSON `temporarily_unavailable`.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(response.headers()["retry-after"], "5", "{what}");
    let html = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
    let body = response.text().await.unwrap();
    if html {
        assert!(body.contains("Try again later"), "{what}: {body}");
    } else {
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{what}");
    }
}

#[tokio::test]
async fn a_store_outage_answers_503_with_retry_after_at_every_step_and_the_flow_resumes() {
    let store = Arc::new(Flaky::default());
    let fixture = BrokerFixture::start_with(FixtureOptions {
        store: store.clone(),
        ..FixtureOptions::default()
    })
    .await;
    let http = &fixture.http;
    let post_token =
        |form: Vec<(&'static str, String)>| http.post(fixture.url("/token")).form(&form).send();

    // Registration.
    store.set_down(true);
    let registration = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let response = http
        .post(fixture.url("/register"))
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_unavailable(response, "register").await;
    store.set_down(false);
    let client_id = fixture.register(&[REDIRECT]).await;

    // The authorization request: a page, nothing redirected to the client.
    let (verifier, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    store.set_down(true);
    let response = http.get(request.url(&fixture.issuer)).send().await.unwrap();
    assert_unavailable(response, "authorize").await;
    store.set_down(false);
    let response = http.get(request.url(&fixture.issuer)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let consent = fixture.origin_url(response.headers()[LOCATION].to_str().unwrap());

    // The consent page and its answer.
    store.set_down(true);
    let response = http.get(&consent).send().await.unwrap();
    assert_unavailable(response, "consent page").await;
    store.set_down(false);
    let mut jar = Jar::default();
    let page = fixture.load_consent(&consent, &mut jar).await;
    store.set_down(true);
    let response = fixture.answer_consent(&page, "approve", &mut jar).await;
    assert_unavailable(response, "consent answer").await;
    store.set_down(false);
    // The transaction was not consumed by the failed answer.
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    let callback = fixture.through_upstream(approval).await;

    // The identity provider's answer.
    store.set_down(true);
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_unavailable(response, "callback").await;
    store.set_down(false);
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let code = query(response.headers()[LOCATION].to_str().unwrap())["code"].clone();

    // The code's redemption: 503, and the code still good afterwards.
    let code_form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("client_id", client_id.clone()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", verifier),
    ];
    store.set_down(true);
    let response = post_token(code_form.clone()).await.unwrap();
    assert_unavailable(response, "token (code)").await;
    store.set_down(false);
    let response = post_token(code_form).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();

    // Refresh and revocation.
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("client_id", client_id.clone()),
        ("refresh_token", refresh_token.clone()),
    ];
    let revoke_form = [("client_id", client_id.as_str()), ("token", &refresh_token)];
    store.set_down(true);
    let response = post_token(refresh_form.clone()).await.unwrap();
    assert_unavailable(response, "token (refresh)").await;
    let response = http
        .post(fixture.url("/revoke"))
        .form(&revoke_form)
        .send()
        .await
        .unwrap();
    assert_unavailable(response, "revoke").await;
    store.set_down(false);
    let response = post_token(refresh_form.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = http
        .post(fixture.url("/revoke"))
        .form(&revoke_form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_consent_answer_that_cannot_be_saved_shows_the_retry_page_and_may_be_given_again() {
    let store = Arc::new(Flaky::default());
    let fixture = BrokerFixture::start_with(FixtureOptions {
        store: store.clone(),
        ..FixtureOptions::default()
    })
    .await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (_verifier, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;

    // The page and the request read fine; only the answer's write fails. Neither answer
    // leaves for the client: the browser is asked to try again.
    store.set_writes_down(true);
    for decision in ["approve", "deny"] {
        let response = fixture.answer_consent(&page, decision, &mut jar).await;
        assert!(response.headers().get(LOCATION).is_none(), "{decision}");
        assert_unavailable(response, decision).await;
    }
    store.set_writes_down(false);

    // Nothing was consumed: the same form approves, and the sign-in completes.
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    assert_eq!(approval.status(), StatusCode::SEE_OTHER);
    let callback = fixture.through_upstream(approval).await;
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let answer = query(location);
    assert!(!answer["code"].is_empty(), "{location}");
    assert_eq!(answer["iss"], fixture.issuer.as_str(), "{location}");
    assert!(!answer.contains_key("error"), "{location}");
}
