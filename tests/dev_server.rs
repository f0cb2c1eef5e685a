//! The development authorization server, used the way clients and resource servers use a real
//! one: discovery, JWKS, signed tokens, key rotation, and the token, authorize and register
//! endpoints; and its upstream mode, an identity provider in the manner of Google.

mod upstream;

use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use mcpauth::AuthServerType;
use mcpauth::dev::{DevAlgorithm, DevAuthServer, KeyRotation};
use mcpauth::discovery::{
    discover_server_config, fetch_server_config, validate_server_config_verbose,
};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const RESOURCE: &str = "http://127.0.0.1:3001/notes";

async fn jwks(dev: &DevAuthServer) -> JwkSet {
    let response = reqwest::get(dev.jwks_uri()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=300"
    );
    response.json().await.unwrap()
}

/// Verifies `token` against the published JWKS, as a resource server would.
async fn verify(dev: &DevAuthServer, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = decode_header(token).unwrap();
    let set = jwks(dev).await;
    let Some(jwk) = set.find(header.kid.as_deref().unwrap()) else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[RESOURCE]);
    validation.set_issuer(&[dev.issuer()]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).map(|d| d.claims)
}

#[tokio::test]
async fn it_is_discoverable_in_every_form_and_fully_mcp_compatible() {
    let dev = DevAuthServer::start().await.unwrap();
    assert!(dev.issuer().starts_with("http://127.0.0.1:"));
    for config in [
        fetch_server_config(dev.issuer(), AuthServerType::OAuth)
            .await
            .unwrap(),
        fetch_server_config(dev.issuer(), AuthServerType::Oidc)
            .await
            .unwrap(),
        discover_server_config(dev.issuer()).await.unwrap(),
    ] {
        assert_eq!(&config.metadata, dev.metadata());
        let validation = validate_server_config_verbose(&config);
        assert!(validation.errors.is_empty(), "{validation}");
        assert!(validation.warnings.is_empty(), "{validation}");
        assert_eq!(validation.successes.len(), 6);
    }
    assert_eq!(
        dev.metadata().jwks_uri.as_deref(),
        Some(dev.jwks_uri().as_str())
    );

    let under_path = DevAuthServer::builder()
        .issuer_path("/tenant")
        .start()
        .await
        .unwrap();
    assert!(under_path.issuer().ends_with("/tenant"));
    for server_type in [AuthServerType::OAuth, AuthServerType::Oidc] {
        let config = fetch_server_config(under_path.issuer(), server_type)
            .await
            .unwrap();
        assert_eq!(config.metadata.issuer, under_path.issuer());
    }
    assert!(
        DevAuthServer::builder()
            .issuer_path("tenant")
            .start()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_jwks_has_an_rsa_a_p256_and_an_ed25519_signing_key() {
    let dev = DevAuthServer::start().await.unwrap();
    let set = jwks(&dev).await;
    assert_eq!(set.keys.len(), 3);
    let kids: Vec<String> = set
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, dev.key_ids());
    assert!(matches!(set.keys[0].algorithm, AlgorithmParameters::RSA(_)));
    assert!(matches!(
        set.keys[1].algorithm,
        AlgorithmParameters::EllipticCurve(_)
    ));
    let raw: Value = reqwest::get(dev.jwks_uri())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["keys"][0]["alg"], "RS256");
    assert_eq!(raw["keys"][0]["use"], "sig");
    assert_eq!(raw["keys"][1]["alg"], "ES256");
    assert_eq!(raw["keys"][1]["crv"], "P-256");
    assert!(
        raw["keys"][0].get("d").is_none(),
        "private parts must not be published"
    );
    assert!(
        raw["keys"][1].get("d").is_none(),
        "private parts must not be published"
    );
}

#[tokio::test]
async fn minted_tokens_verify_with_the_published_keys_and_carry_the_chosen_claims() {
    let dev = DevAuthServer::start().await.unwrap();
    for (algorithm, alg) in [
        (DevAlgorithm::Rs256, Algorithm::RS256),
        (DevAlgorithm::Es256, Algorithm::ES256),
        (DevAlgorithm::EdDsa, Algorithm::EdDSA),
    ] {
        let token = dev
            .token()
            .subject("alice")
            .audience(RESOURCE)
            .scopes(["read:notes", "write:notes"])
            .client_id("cli")
            .expires_in(Duration::from_secs(120))
            .algorithm(algorithm)
            .claim("tenant", "t1")
            .sign()
            .unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, alg);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let claims = verify(&dev, &token).await.unwrap();
        assert_eq!(claims["iss"], dev.issuer());
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], RESOURCE);
        assert_eq!(claims["scope"], "read:notes write:notes");
        assert_eq!(claims["client_id"], "cli");
        assert_eq!(claims["tenant"], "t1");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!((119..=121).contains(&lifetime), "{lifetime}");
    }

    // Broken tokens for tests: expired, other audience, no typ.
    let expired = dev
        .token()
        .audience(RESOURCE)
        .expires_at(1_000)
        .sign()
        .unwrap();
    assert!(verify(&dev, &expired).await.is_err());
    let foreign = dev
        .token()
        .audience("https://other.example")
        .sign()
        .unwrap();
    assert!(verify(&dev, &foreign).await.is_err());
    let untyped = dev
        .token()
        .audience(RESOURCE)
        .header_type(None)
        .sign()
        .unwrap();
    assert_eq!(decode_header(&untyped).unwrap().typ, None);
    let two_audiences = dev
        .token()
        .audiences([RESOURCE, "https://x"])
        .sign()
        .unwrap();
    assert_eq!(
        verify(&dev, &two_audiences).await.unwrap()["aud"],
        json!([RESOURCE, "https://x"])
    );
}

#[tokio::test]
async fn rotation_replaces_the_keys_with_new_or_reused_key_ids() {
    let dev = DevAuthServer::start().await.unwrap();
    let before = dev.key_ids();
    let old_token = dev.token().audience(RESOURCE).sign().unwrap();

    dev.rotate_keys(KeyRotation::NewKeyIds).await.unwrap();
    let after = dev.key_ids();
    assert!(
        after.iter().all(|kid| !before.contains(kid)),
        "{before:?} → {after:?}"
    );
    assert!(
        verify(&dev, &old_token).await.is_err(),
        "the old key must be gone"
    );
    let new_token = dev.token().audience(RESOURCE).sign().unwrap();
    verify(&dev, &new_token).await.unwrap();

    dev.rotate_keys(KeyRotation::ReuseKeyIds).await.unwrap();
    assert_eq!(dev.key_ids(), after);
    // Same kid, new key: the previous token no longer verifies.
    let error = verify(&dev, &new_token).await.unwrap_err();
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[tokio::test]
async fn the_token_endpoint_issues_client_credentials_tokens_for_a_resource() {
    let dev = DevAuthServer::start().await.unwrap();
    let token_endpoint = &dev.metadata().token_endpoint;
    let response = reqwest::Client::new()
        .post(token_endpoint)
        .basic_auth("my-client", Some("any-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read:notes"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read:notes");
    let claims = verify(&dev, body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["sub"], "my-client");
    assert_eq!(claims["client_id"], "my-client");
    assert_eq!(claims["aud"], RESOURCE);

    let unsupported = reqwest::Client::new()
        .post(token_endpoint)
        .form(&[("grant_type", "password"), ("client_id", "c")])
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), StatusCode::BAD_REQUEST);
    let body: Value = unsupported.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn authorization_code_with_pkce_runs_end_to_end() {
    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let dev = DevAuthServer::builder()
        .default_subject("bob")
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();

    let registration: Value = client
        .post(dev.metadata().registration_endpoint.clone().unwrap())
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/callback"], "client_name": "test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registration["client_id"].as_str().unwrap().to_owned();
    assert_eq!(registration["client_name"], "test");
    assert_eq!(registration["token_endpoint_auth_method"], "none");

    let authorize = |challenge_method: &'static str| {
        client
            .get(&dev.metadata().authorization_endpoint)
            .query(&[
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/callback"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", challenge_method),
                ("scope", "read:notes"),
                ("resource", RESOURCE),
                ("state", "xyz"),
            ])
            .send()
    };
    let redirect = authorize("S256").await.unwrap();
    assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/callback");
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], dev.issuer());
    let code = params["code"].clone();

    let exchange = |verifier: &'static str| {
        client
            .post(&dev.metadata().token_endpoint)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier),
                ("redirect_uri", "http://127.0.0.1:9/callback"),
                ("client_id", client_id.as_str()),
            ])
            .send()
    };
    let wrong = exchange("wrong-verifier-wrong-verifier-wrong-verifier")
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // The failed attempt consumed the code (single use): authorize again.
    let redirect = authorize("S256").await.unwrap();
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code2 = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let response = client
        .post(&dev.metadata().token_endpoint)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code2.as_str()),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify(&dev, body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["scope"], "read:notes");
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["client_id"], client_id);

    // Plain PKCE is refused with an error sent back to the client.
    let refused = authorize("plain").await.unwrap();
    let location = refused.headers()["location"].to_str().unwrap();
    assert!(location.contains("error=invalid_request"), "{location}");
}
