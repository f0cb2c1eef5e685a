//! Upstream mode, used over HTTP the way a broker uses Google: discovery, the code flow with
//! PKCE and a nonce, client authentication, ID tokens checked against the JWKS, userinfo with
//! opaque access tokens, refresh without rotation, revocation and injected failures.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use mcpauth::dev::{DevAuthServer, TokenFailure};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;

const CLIENT_ID: &str = "broker-client";
const SECRET: &str = "broker-secret";
const CALLBACK: &str = "http://127.0.0.1:3000/oauth/callback";
// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// How the test client authenticates at the token endpoint.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    None,
}

/// An upstream-mode server and a client that does not follow redirects, as a broker is.
struct Idp {
    dev: DevAuthServer,
    http: reqwest::Client,
}

impl Idp {
    async fn start() -> Self {
        Self::with(|builder| builder).await
    }

    async fn with(
        configure: impl FnOnce(mcpauth::dev::DevAuthServerBuilder) -> mcpauth::dev::DevAuthServerBuilder,
    ) -> Self {
        let builder = DevAuthServer::builder()
            .default_subject("carol")
            .upstream_client(CLIENT_ID, SECRET);
        let dev = configure(builder).start().await.unwrap();
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self { dev, http }
    }

    async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(&self.dev.metadata().authorization_endpoint)
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// The parameters of the redirect `/authorize` answered with.
    async fn redirect(&self, params: &[(&str, &str)]) -> HashMap<String, String> {
        let response = self.authorize(params).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(
            &location[..url::Position::AfterPath],
            CALLBACK,
            "{location}"
        );
        location.query_pairs().into_owned().collect()
    }

    /// A code for `scope`, with PKCE and a nonce.
    async fn code(&self, scope: &str) -> String {
        let params = self
            .redirect(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", CALLBACK),
                ("scope", scope),
                ("state", "st"),
                ("nonce", "n-0S6_WzA2Mj"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ])
            .await;
        params["code"].clone()
    }

    async fn token(&self, auth: Auth<'_>, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self.token_response(auth, form).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn token_response(&self, auth: Auth<'_>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(&self.dev.metadata().token_endpoint);
        match auth {
            Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
            Auth::None => form.push(("client_id", CLIENT_ID)),
        }
        request.form(&form).send().await.unwrap()
    }

    async fn redeem(&self, code: &str) -> (StatusCode, Value) {
        self.token(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(
            Auth::Post(CLIENT_ID, SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn userinfo(&self, access_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.dev.metadata().userinfo_endpoint.clone().unwrap())
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// The claims of an ID token, verified against the published JWKS as a relying party would:
    /// signature, `iss`, `aud` = the client ID, expiry.
    async fn verify_id_token(&self, id_token: &str) -> Value {
        let header = decode_header(id_token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let jwks: JwkSet = self
            .http
            .get(self.dev.metadata().jwks_uri.clone().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[self.dev.issuer()]);
        validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
        decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims
    }
}

#[tokio::test]
async fn the_metadata_is_a_google_like_openid_configuration_without_mcp_registration() {
    let idp = Idp::start().await;
    let issuer = idp.dev.issuer();
    let response = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{issuer}/authorize")
    );
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(metadata["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    let scopes = metadata["scopes_supported"].as_array().unwrap();
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(scopes.contains(&Value::from(scope)), "{scope} missing");
    }
    for absent in [
        "registration_endpoint",
        "client_id_metadata_document_supported",
        "introspection_endpoint",
    ] {
        assert!(metadata.get(absent).is_none(), "{absent} in {metadata}");
    }
    assert_eq!(
        &serde_json::from_value::<mcpauth::AuthorizationServerMetadata>(metadata).unwrap(),
        idp.dev.metadata()
    );

    // Like Google: no RFC 8414 document, no registration, no introspection.
    let http = reqwest::Client::new();
    let rfc8414 = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(rfc8414.status(), StatusCode::NOT_FOUND);
    for path in ["/register", "/introspect"] {
        let response = http
            .post(format!("{issuer}{path}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_code_flow_with_pkce_and_a_nonce_yields_an_id_token_that_verifies_against_the_jwks() {
    let idp = Idp::start().await;
    let params = idp
        .redirect(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("scope", "openid email profile offline_access"),
            ("state", "csrf-1"),
            ("nonce", "nonce-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("access_type", "offline"),
            ("prompt", "consent"),
        ])
        .await;
    assert_eq!(params["state"], "csrf-1");
    assert_eq!(params["iss"], idp.dev.issuer());
    let code = &params["code"];

    let (status, body) = idp.redeem(code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid email profile offline_access");
    let access_token = body["access_token"].as_str().unwrap();
    assert!(
        access_token.len() >= 32 && !access_token.contains('.'),
        "an opaque token, not a JWT: {access_token}"
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32)
    );

    let id_token = body["id_token"].as_str().unwrap();
    let header = decode_header(id_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(idp.dev.key_ids()[0].as_str()));
    let claims = idp.verify_id_token(id_token).await;
    assert_eq!(claims["iss"], idp.dev.issuer());
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["email"], "carol@example.com");
    assert_eq!(claims["name"], "carol");
    assert!(claims.get("client_id").is_none(), "{claims}");
    assert!(claims["iat"].as_i64().unwrap() <= claims["exp"].as_i64().unwrap());

    // Single use.
    let (status, again) = idp.redeem(code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");

    // The opaque access token opens userinfo; anything else does not.
    let before = idp.dev.userinfo_requests();
    let (status, user) = idp.userinfo(access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        user,
        serde_json::json!({"sub": "carol", "email": "carol@example.com", "name": "carol"})
    );
    let (status, refused) = idp.userinfo("not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["error"], "invalid_token");
    let minted = idp.dev.token().sign().unwrap();
    assert_eq!(idp.userinfo(&minted).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(idp.dev.userinfo_requests(), before + 3);
    assert_eq!(idp.dev.token_requests(), 2);
}

#[tokio::test]
async fn without_openid_or_offline_access_there_is_no_id_token_and_no_refresh_token() {
    let idp = Idp::start().await;
    let code = idp.code("email").await;
    let (status, body) = idp.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "email");
    assert!(body.get("id_token").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn the_token_endpoint_requires_the_client_secret_by_basic_or_post() {
    let idp = &Idp::start().await;
    let code = &idp.code("openid").await;
    let redeem = |auth| async move {
        idp.token_response(
            auth,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
    };
    for auth in [
        Auth::Basic(CLIENT_ID, "wrong"),
        Auth::Basic("someone-else", SECRET),
        Auth::Post(CLIENT_ID, "wrong"),
        Auth::Post("someone-else", SECRET),
        Auth::None,
    ] {
        let response = redeem(auth).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenged = response.headers().contains_key("www-authenticate");
        assert_eq!(challenged, matches!(auth, Auth::Basic(..)));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    // Failed client authentication does not use the code up.
    let response = redeem(Auth::Post(CLIENT_ID, SECRET)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(idp.dev.token_requests(), 6);
}

#[tokio::test]
async fn authorize_knows_only_the_client_and_its_redirect_uris() {
    let idp = &Idp::with(|b| b.upstream_redirect_uri(CALLBACK)).await;
    let authorize = |client_id: &'static str, redirect_uri: &'static str| async move {
        idp.authorize(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", "s"),
        ])
        .await
    };
    let unknown = authorize("other-client", CALLBACK).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(!unknown.headers().contains_key("location"));
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    for near_miss in [
        "http://127.0.0.1:3000/oauth/callback/",
        "http://localhost:3000/oauth/callback",
        "http://127.0.0.1:3001/oauth/callback",
    ] {
        let refused = authorize(CLIENT_ID, near_miss).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{near_miss}");
        assert!(!refused.headers().contains_key("location"));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "redirect_uri_mismatch");
    }
    assert_eq!(
        authorize(CLIENT_ID, CALLBACK).await.status(),
        StatusCode::SEE_OTHER
    );

    // Without registered redirect URIs, only loopback http.
    let open = Idp::start().await;
    let refused = open
        .authorize(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://broker.example/callback"),
        ])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let accepted = open
        .authorize(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://localhost:8080/cb"),
        ])
        .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_resource_parameter_is_refused_at_authorize_and_at_token() {
    let idp = Idp::start().await;
    let params = idp
        .redirect(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("state", "s2"),
            ("resource", "http://127.0.0.1:3001/mcp"),
        ])
        .await;
    assert_eq!(params["error"], "invalid_target");
    assert_eq!(params["state"], "s2");
    assert_eq!(params["iss"], idp.dev.issuer());
    assert!(!params.contains_key("code"));

    let code = idp.code("openid").await;
    let (status, body) = idp
        .token(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
                ("resource", "http://127.0.0.1:3001/mcp"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_target");
}

#[tokio::test]
async fn pkce_is_optional_but_enforced_once_a_challenge_is_sent() {
    let idp = &Idp::start().await;
    let code_without_pkce = || async {
        idp.redirect(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
        ])
        .await["code"]
            .clone()
    };
    let exchange = |code: String, verifier: Option<&'static str>| async move {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        idp.token(Auth::Basic(CLIENT_ID, SECRET), &form).await
    };

    let (status, body) = exchange(code_without_pkce().await, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A verifier for a code that had no challenge is refused.
    let (status, body) = exchange(code_without_pkce().await, Some(VERIFIER)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );

    // With a challenge: no verifier, or a wrong one, is refused.
    let (status, body) = exchange(idp.code("openid").await, None).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );
    let wrong = "wrong-verifier-wrong-verifier-wrong-verifier";
    let (status, body) = exchange(idp.code("openid").await, Some(wrong)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );

    // A redirect URI other than the authorization request's is refused.
    let code = idp.code("openid").await;
    let (status, body) = idp
        .token(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:3000/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );

    // Only S256.
    let plain = idp
        .redirect(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ])
        .await;
    assert_eq!(plain["error"], "invalid_request");
}

#[tokio::test]
async fn refresh_returns_new_access_tokens_without_rotating_until_revoked() {
    let idp = Idp::start().await;
    let code = idp.code("openid email offline_access").await;
    let (_, first) = idp.redeem(&code).await;
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();

    let mut access_tokens = vec![first["access_token"].as_str().unwrap().to_owned()];
    for _ in 0..2 {
        let (status, body) = idp.refresh(&refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "not rotated: {body}");
        assert_eq!(body["scope"], "openid email offline_access");
        let claims = idp
            .verify_id_token(body["id_token"].as_str().unwrap())
            .await;
        assert_eq!(claims["aud"], CLIENT_ID);
        assert!(claims.get("nonce").is_none(), "{claims}");
        let access_token = body["access_token"].as_str().unwrap().to_owned();
        assert!(!access_tokens.contains(&access_token));
        assert_eq!(idp.userinfo(&access_token).await.0, StatusCode::OK);
        access_tokens.push(access_token);
    }

    // The scope may narrow, not widen.
    let (status, narrowed) = idp
        .token(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("scope", "email"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(narrowed["scope"], "email");
    assert!(narrowed.get("id_token").is_none());
    let (status, widened) = idp
        .token(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("scope", "email profile"),
            ],
        )
        .await;
    assert_eq!(
        (status, &widened["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_scope".into())
    );

    // A wrong secret is refused before the refresh token is looked at.
    let (status, body) = idp
        .token(
            Auth::Post(CLIENT_ID, "wrong"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &"invalid_client".into())
    );

    // Revoking one token, then all of them.
    let (_, second) = idp.redeem(&idp.code("openid offline_access").await).await;
    let other_refresh_token = second["refresh_token"].as_str().unwrap().to_owned();
    assert!(idp.dev.revoke_upstream_refresh_token(&other_refresh_token));
    assert!(!idp.dev.revoke_upstream_refresh_token(&other_refresh_token));
    let (status, body) = idp.refresh(&other_refresh_token).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );
    assert_eq!(idp.refresh(&refresh_token).await.0, StatusCode::OK);

    assert_eq!(idp.dev.revoke_upstream_refresh_tokens(), 1);
    let (status, body) = idp.refresh(&refresh_token).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_grant".into())
    );
    // Access tokens already issued live on until they expire.
    assert_eq!(idp.userinfo(&access_tokens[0]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_token_endpoint_fails_on_demand_and_recovers() {
    let idp = &Idp::start().await;
    let code = &idp.code("openid offline_access").await;
    let redeem = || async move {
        idp.token_response(
            Auth::Basic(CLIENT_ID, SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
    };

    idp.dev.fail_token_endpoint(Some(TokenFailure::ServerError));
    let response = redeem().await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "server_error"
    );

    idp.dev.fail_token_endpoint(Some(TokenFailure::Html));
    let response = redeem().await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.json::<Value>().await.is_err());

    idp.dev.fail_token_endpoint(Some(TokenFailure::Status(429)));
    assert_eq!(redeem().await.status(), StatusCode::TOO_MANY_REQUESTS);
    idp.dev.fail_token_endpoint(Some(TokenFailure::Status(42)));
    assert_eq!(redeem().await.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // The failures did not look at the request: the code is still good.
    idp.dev.fail_token_endpoint(None);
    let response = redeem().await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(idp.dev.token_requests(), 5);

    // Refreshes fail the same way.
    idp.dev.fail_token_endpoint(Some(TokenFailure::Status(503)));
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let response = idp
        .token_response(
            Auth::Post(CLIENT_ID, SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(idp.dev.token_requests(), 6);
}

#[tokio::test]
async fn the_default_mode_fails_on_demand_too() {
    let dev = DevAuthServer::start().await.unwrap();
    dev.fail_token_endpoint(Some(TokenFailure::ServerError));
    let token = || {
        reqwest::Client::new()
            .post(&dev.metadata().token_endpoint)
            .form(&[("grant_type", "client_credentials"), ("client_id", "c")])
            .send()
    };
    assert_eq!(
        token().await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    dev.fail_token_endpoint(None);
    assert_eq!(token().await.unwrap().status(), StatusCode::OK);
    assert_eq!(dev.token_requests(), 2);
    assert_eq!(dev.revoke_upstream_refresh_tokens(), 0);
}

#[tokio::test]
async fn misconfigured_upstream_mode_does_not_start() {
    let no_client = DevAuthServer::builder()
        .upstream_redirect_uri(CALLBACK)
        .start()
        .await;
    assert!(matches!(
        no_client,
        Err(mcpauth::dev::DevServerError::InvalidUpstream(_))
    ));
    let relative = DevAuthServer::builder()
        .upstream_client(CLIENT_ID, SECRET)
        .upstream_redirect_uri("/callback")
        .start()
        .await;
    assert!(relative.is_err());
}
