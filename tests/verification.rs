//! Bad input against a real protected server and a real local authorization server: one row
//! per case, each asserting the status, every `WWW-Authenticate` parameter and the body's codes,
//! and each followed by a valid request that must still succeed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth::dev::{DevAlgorithm, DevAuthServer, TokenBuilder};
use mcpauth::{AuthServer, KeyCacheOptions};
use mcpauth_tests::protected::Protected;
use mcpauth_tests::{StubServer, parse_challenge};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The `Authorization` headers one request carries.
enum Headers {
    /// The values, as raw bytes (none: no header).
    Authorization(Vec<Vec<u8>>),
}

fn bearer(token: &str) -> Headers {
    Headers::Authorization(vec![format!("Bearer {token}").into_bytes()])
}

fn raw(value: &str) -> Headers {
    Headers::Authorization(vec![value.as_bytes().to_vec()])
}

/// What must come back.
struct Expect {
    status: StatusCode,
    /// The `error` code, in the challenge and the body.
    error: Option<&'static str>,
    /// The body's `reason`.
    reason: &'static str,
    /// The challenge's `scope`, when there is one.
    scope: Option<&'static str>,
}

const OK: StatusCode = StatusCode::OK;

fn no_credentials() -> Expect {
    Expect {
        status: StatusCode::UNAUTHORIZED,
        error: None,
        reason: "missing_credentials",
        scope: Some("read:notes"),
    }
}

fn bad_request(reason: &'static str) -> Expect {
    Expect {
        status: StatusCode::BAD_REQUEST,
        error: Some("invalid_request"),
        reason,
        scope: None,
    }
}

fn invalid(reason: &'static str) -> Expect {
    Expect {
        status: StatusCode::UNAUTHORIZED,
        error: Some("invalid_token"),
        reason,
        scope: Some("read:notes"),
    }
}

fn forbidden() -> Expect {
    Expect {
        status: StatusCode::FORBIDDEN,
        error: Some("insufficient_scope"),
        reason: "insufficient_scope",
        scope: Some("read:notes"),
    }
}

fn accepted() -> Expect {
    Expect {
        status: OK,
        error: None,
        reason: "",
        scope: None,
    }
}

async fn send(app: &Protected, request: &Headers) -> reqwest::Response {
    let Headers::Authorization(values) = request;
    let mut builder = reqwest::Client::new().get(app.notes());
    for value in values {
        builder = builder.header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    builder.send().await.unwrap()
}

async fn check(app: &Protected, name: &str, request: &Headers, expect: &Expect, valid: &str) {
    let response = send(app, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, expect.status, "{name}: {body}");
    if status == OK {
        assert!(headers.get("www-authenticate").is_none(), "{name}");
        assert_eq!(body["issuer"], app_issuer(app), "{name}");
    } else {
        let challenge = headers
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{name}: no challenge"))
            .to_str()
            .unwrap();
        let (scheme, params) = parse_challenge(challenge);
        assert_eq!(scheme, "Bearer", "{name}");
        let mut expected = BTreeMap::new();
        expected.insert("resource_metadata".to_owned(), app.metadata_url());
        if let Some(scope) = expect.scope {
            expected.insert("scope".to_owned(), scope.to_owned());
        }
        if let Some(error) = expect.error {
            expected.insert("error".to_owned(), error.to_owned());
            let description = params
                .get("error_description")
                .unwrap_or_else(|| panic!("{name}: no error_description in {challenge}"));
            // The challenge carries the body's description within RFC 6750's characters:
            // `"` as `'`, `\` as `/`.
            let in_body = body["error_description"].as_str().unwrap();
            assert_eq!(
                in_body.replace('"', "'").replace('\\', "/"),
                description.as_str(),
                "{name}"
            );
            expected.insert("error_description".to_owned(), description.clone());
        }
        assert_eq!(params, expected, "{name}: {challenge}");
        assert_eq!(
            headers["access-control-expose-headers"], "WWW-Authenticate",
            "{name}"
        );
        assert_eq!(headers["content-type"], "application/json", "{name}");
        assert_eq!(
            body.get("error").and_then(Value::as_str),
            expect.error,
            "{name}: {body}"
        );
        assert_eq!(body["reason"], expect.reason, "{name}: {body}");
        assert!(body["error_description"].is_string(), "{name}: {body}");
    }
    // The server keeps serving valid requests.
    let after = app.get_with(valid).await;
    assert_eq!(
        after.status(),
        OK,
        "{name}: the valid request after it failed"
    );
}

fn app_issuer(app: &Protected) -> String {
    app.auth
        .resource_metadata(&app.resource)
        .unwrap()
        .authorization_servers
        .as_ref()
        .unwrap()[0]
        .clone()
}

#[tokio::test]
async fn bad_input_table() {
    let dev = DevAuthServer::start().await.unwrap();
    let attacker = DevAuthServer::start().await.unwrap();
    let jku_target = StubServer::start().await;
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default().min_refresh_interval(Duration::from_millis(50)),
        // Details shown: each row checks the precise reason.
        |layer| layer.show_error_details(true),
    )
    .await;
    let resource = app.resource.clone();
    let token = || -> TokenBuilder { dev.token().audience(&resource).scopes(["read:notes"]) };
    let valid = token().sign().unwrap();
    let sign = |builder: TokenBuilder| builder.sign().unwrap();

    let keys = dev.key_ids();
    let (rsa_kid, ec_kid) = (keys[0].clone(), keys[1].clone());
    let parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();

    // HS256 signed with the RSA public key's bytes as the HMAC secret (algorithm confusion).
    let jwks: Value = reqwest::get(dev.jwks_uri())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let modulus = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(rsa_kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&modulus),
    )
    .unwrap();

    let mut flipped = parts[2].clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let bad_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(flipped).unwrap()
    );
    let other_resource_signature = sign(token().subject("mallory"));
    let spliced = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other_resource_signature.split('.').nth(2).unwrap()
    );

    let cases: Vec<(&str, Headers, Expect)> = vec![
        (
            "missing header",
            Headers::Authorization(vec![]),
            no_credentials(),
        ),
        ("basic scheme", raw("Basic dXNlcjpwYXNz"), no_credentials()),
        ("digest scheme alone", raw("Digest"), no_credentials()),
        (
            "token in another scheme",
            raw(&format!("Token {valid}")),
            no_credentials(),
        ),
        (
            "bearer in lower case",
            raw(&format!("bearer {valid}")),
            accepted(),
        ),
        (
            "bearer in upper case",
            raw(&format!("BEARER {valid}")),
            accepted(),
        ),
        (
            "several spaces before the token",
            raw(&format!("Bearer   {valid}")),
            accepted(),
        ),
        (
            "Bearer without token",
            raw("Bearer"),
            bad_request("empty_token"),
        ),
        (
            "Bearer with only spaces",
            raw("Bearer    "),
            bad_request("empty_token"),
        ),
        (
            "extra parts",
            raw(&format!("Bearer {valid} extra")),
            bad_request("malformed_authorization_header"),
        ),
        (
            "comma in token",
            raw("Bearer abc,def"),
            bad_request("invalid_token_characters"),
        ),
        (
            "quote in token",
            raw("Bearer abc\"def"),
            bad_request("invalid_token_characters"),
        ),
        (
            "only padding",
            raw("Bearer ===="),
            bad_request("invalid_token_characters"),
        ),
        (
            "non-ASCII byte",
            Headers::Authorization(vec![b"Bearer abc\xff".to_vec()]),
            bad_request("malformed_authorization_header"),
        ),
        (
            "two Authorization headers",
            Headers::Authorization(vec![
                format!("Bearer {valid}").into_bytes(),
                format!("Bearer {valid}").into_bytes(),
            ]),
            bad_request("multiple_authorization_headers"),
        ),
        (
            "8 KiB+ header",
            raw(&format!("Bearer {}", "a".repeat(8 * 1024))),
            bad_request("authorization_header_too_large"),
        ),
        ("not a JWT", bearer("abc"), invalid("malformed_token")),
        (
            "four parts",
            bearer(&format!("{valid}.x")),
            invalid("malformed_token"),
        ),
        (
            "bad base64 in header",
            bearer(&format!("*{}", &valid[1..]).replace('*', "~")),
            invalid("malformed_token"),
        ),
        (
            "bad JSON in header",
            bearer(&format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("{alg"),
                parts[1],
                parts[2]
            )),
            invalid("malformed_token"),
        ),
        (
            "bad JSON in payload",
            bearer(&format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode("{\"iss\""),
                parts[2]
            )),
            invalid("malformed_token"),
        ),
        (
            "payload not an object",
            bearer(&format!("{}.{}.{}", parts[0], b64(&json!(["x"])), parts[2])),
            invalid("malformed_token"),
        ),
        (
            "alg none",
            bearer(&format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt"})),
                parts[1]
            )),
            invalid("unsupported_algorithm"),
        ),
        (
            "alg none with a signature",
            bearer(&format!(
                "{}.{}.{}",
                b64(&json!({"alg": "none"})),
                parts[1],
                parts[2]
            )),
            invalid("unsupported_algorithm"),
        ),
        (
            "HS256 signed with the public key",
            bearer(&hs256),
            invalid("unsupported_algorithm"),
        ),
        (
            "unknown alg",
            bearer(&format!(
                "{}.{}.{}",
                b64(&json!({"alg": "XS999", "kid": rsa_kid})),
                parts[1],
                parts[2]
            )),
            invalid("unsupported_algorithm"),
        ),
        (
            "RS256 token with the ES256 key id",
            bearer(&sign(token().key_id(&ec_kid))),
            invalid("unsupported_algorithm"),
        ),
        (
            "unknown kid",
            bearer(&sign(token().key_id("no-such-key"))),
            invalid("unknown_key"),
        ),
        (
            "no kid with several keys",
            bearer(&sign(token().header_param("kid", Value::Null))),
            invalid("unknown_key"),
        ),
        (
            "bad signature",
            bearer(&bad_signature),
            invalid("invalid_signature"),
        ),
        (
            "payload of one token, signature of another",
            bearer(&spliced),
            invalid("invalid_signature"),
        ),
        (
            "signed by another server's key under our kid",
            bearer(&sign(
                attacker
                    .token()
                    .issuer(dev.issuer())
                    .audience(&resource)
                    .scopes(["read:notes"])
                    .key_id(&rsa_kid),
            )),
            invalid("invalid_signature"),
        ),
        (
            "expired",
            bearer(&sign(token().expires_at(now() - 120))),
            invalid("expired"),
        ),
        (
            "expired within the leeway",
            bearer(&sign(token().expires_at(now() - 30))),
            accepted(),
        ),
        (
            "nbf in the future",
            bearer(&sign(token().not_before(now() + 300))),
            invalid("not_yet_valid"),
        ),
        (
            "nbf within the leeway",
            bearer(&sign(token().not_before(now() + 30))),
            accepted(),
        ),
        (
            "missing exp",
            bearer(&sign(token().without_claim("exp"))),
            invalid("missing_expiry"),
        ),
        (
            "exp not a number",
            bearer(&sign(token().claim("exp", "tomorrow"))),
            invalid("invalid_claim"),
        ),
        (
            "exp as a float",
            bearer(&sign(token().claim("exp", now() as f64 + 600.5))),
            accepted(),
        ),
        (
            "exp beyond any clock",
            bearer(&sign(token().claim("exp", 1e300))),
            accepted(),
        ),
        (
            "wrong iss",
            bearer(&sign(token().issuer("https://evil.example"))),
            invalid("untrusted_issuer"),
        ),
        (
            "iss with a trailing slash",
            bearer(&sign(token().issuer(format!("{}/", dev.issuer())))),
            invalid("untrusted_issuer"),
        ),
        (
            "absent iss",
            bearer(&sign(token().without_claim("iss"))),
            invalid("missing_issuer"),
        ),
        (
            "untrusted issuer with real keys",
            bearer(&sign(
                attacker.token().audience(&resource).scopes(["read:notes"]),
            )),
            invalid("untrusted_issuer"),
        ),
        (
            "wrong audience",
            bearer(&sign(token().audience("https://other.example/notes"))),
            invalid("invalid_audience"),
        ),
        (
            "no audience",
            bearer(&sign(token().without_claim("aud"))),
            invalid("invalid_audience"),
        ),
        (
            "audience array with the resource",
            bearer(&sign(
                token().audiences(["https://other.example", &resource]),
            )),
            accepted(),
        ),
        (
            "audience array without the resource",
            bearer(&sign(
                token().audiences(["https://other.example", "https://x.example"]),
            )),
            invalid("invalid_audience"),
        ),
        (
            "audience with a trailing slash",
            bearer(&sign(token().audience(format!("{resource}/")))),
            accepted(),
        ),
        (
            "audience with an upper-case scheme and host",
            bearer(&sign(token().audience(
                resource.replace("http://127.0.0.1", "HTTP://127.0.0.1"),
            ))),
            accepted(),
        ),
        (
            "audience is a prefix of the resource",
            bearer(&sign(token().audience(resource.trim_end_matches("/notes")))),
            invalid("invalid_audience"),
        ),
        (
            "audience extends the resource",
            bearer(&sign(token().audience(format!("{resource}/more")))),
            invalid("invalid_audience"),
        ),
        (
            "audience path in another case",
            bearer(&sign(
                token().audience(resource.replace("/notes", "/Notes")),
            )),
            invalid("invalid_audience"),
        ),
        (
            "audience not a string",
            bearer(&sign(token().claim("aud", 7))),
            invalid("invalid_claim"),
        ),
        (
            "missing scope",
            bearer(&sign(token().scopes(["write:notes"]))),
            forbidden(),
        ),
        (
            "no scope claim",
            bearer(&sign(token().without_claim("scope"))),
            forbidden(),
        ),
        (
            "scope as a prefix",
            bearer(&sign(token().scopes(["read:note"]))),
            forbidden(),
        ),
        (
            "scopes via scp",
            bearer(&sign(
                token()
                    .without_claim("scope")
                    .claim("scp", json!(["read:notes"])),
            )),
            accepted(),
        ),
        (
            "scopes via the non-standard scopes claim (not read unless configured)",
            bearer(&sign(
                token()
                    .without_claim("scope")
                    .claim("scopes", json!(["read:notes"])),
            )),
            forbidden(),
        ),
        (
            "missing sub",
            bearer(&sign(token().without_claim("sub"))),
            invalid("missing_subject"),
        ),
        (
            "crit header",
            bearer(&sign(token().header_param("crit", json!(["exp"])))),
            invalid("unsupported_critical_header"),
        ),
        (
            "jku pointing elsewhere",
            bearer(&sign(
                attacker
                    .token()
                    .issuer(dev.issuer())
                    .audience(&resource)
                    .scopes(["read:notes"])
                    .header_param("jku", jku_target.url("/jwks")),
            )),
            invalid("unknown_key"),
        ),
        (
            "x5u pointing elsewhere",
            bearer(&sign(
                attacker
                    .token()
                    .issuer(dev.issuer())
                    .audience(&resource)
                    .scopes(["read:notes"])
                    .header_param("x5u", jku_target.url("/cert")),
            )),
            invalid("unknown_key"),
        ),
        (
            "embedded jwk",
            bearer(&sign(
                attacker
                    .token()
                    .issuer(dev.issuer())
                    .audience(&resource)
                    .scopes(["read:notes"])
                    .header_param("jwk", jwks["keys"][0].clone()),
            )),
            invalid("unknown_key"),
        ),
        (
            "typ JWT",
            bearer(&sign(token().header_type(Some("JWT")))),
            accepted(),
        ),
        (
            "no typ",
            bearer(&sign(token().header_type(None))),
            accepted(),
        ),
        (
            "typ application/at+jwt",
            bearer(&sign(token().header_type(Some("application/at+jwt")))),
            accepted(),
        ),
        (
            "typ of a DPoP proof",
            bearer(&sign(token().header_type(Some("dpop+jwt")))),
            invalid("invalid_token_type"),
        ),
        (
            "ES256",
            bearer(&sign(token().algorithm(DevAlgorithm::Es256))),
            accepted(),
        ),
        (
            "EdDSA",
            bearer(&sign(token().algorithm(DevAlgorithm::EdDsa))),
            accepted(),
        ),
        (
            "azp instead of client_id",
            bearer(&sign(
                token().without_claim("client_id").claim("azp", "web"),
            )),
            accepted(),
        ),
    ];
    assert!(cases.len() >= 40, "{}", cases.len());
    assert_eq!(header["typ"], "at+jwt");
    for (name, request, expect) in &cases {
        check(&app, name, request, expect, &valid).await;
    }
    assert!(
        jku_target.requests().is_empty(),
        "a URL from a token header was fetched"
    );
    assert_eq!(
        attacker.jwks_requests(),
        0,
        "an untrusted issuer's keys were fetched"
    );
}

#[tokio::test]
async fn the_handler_sees_every_claim_of_the_verified_token() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l,
    )
    .await;
    let exp = now() + 600;
    let token = dev
        .token()
        .subject("alice")
        .audiences([app.resource.as_str(), "https://other.example"])
        .scopes(["read:notes", "write:notes"])
        .client_id("cli")
        .expires_at(exp)
        .sign()
        .unwrap();
    let response = app.get_with(&token).await;
    assert_eq!(response.status(), OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "issuer": dev.issuer(),
            "subject": "alice",
            "client_id": "cli",
            "audience": [app.resource, "https://other.example"],
            "scopes": ["read:notes", "write:notes"],
            "expires_at": exp,
            "token_length": token.len(),
        })
    );
}

#[tokio::test]
async fn error_details_are_shown_only_when_enabled_and_stay_escaped() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.show_error_details(true),
    )
    .await;
    let token = dev
        .token()
        .audience("https://other.example/\"quoted\"\\path")
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    let response = app.get_with(&token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, params) = parse_challenge(&challenge);
    let description = &params["error_description"];
    assert!(
        description.contains("does not include this resource"),
        "{description}"
    );
    assert!(
        !description.contains('"') && !description.contains('\\'),
        "{description}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "invalid_audience");

    let missing = dev
        .token()
        .audience(&app.resource)
        .scopes(["write:notes"])
        .sign()
        .unwrap();
    let response = app.get_with(&missing).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, params) = parse_challenge(response.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(params["scope"], "read:notes");
    assert_eq!(
        params["error_description"],
        "The access token lacks the scopes: read:notes."
    );

    // Without details: a generic description, and no reason code for a token verdict or a
    // malformed header (it would say what the description hides); other refusals keep theirs.
    let quiet = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l,
    )
    .await;
    let foreign = dev
        .token()
        .audience("https://other.example")
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    let expired = dev
        .token()
        .audience(&quiet.resource)
        .scopes(["read:notes"])
        .expires_at(1_000_000)
        .sign()
        .unwrap();
    for (token, what) in [
        (foreign.as_str(), "foreign audience"),
        (expired.as_str(), "expired"),
        ("a b", "malformed header"),
    ] {
        let response = quiet.get_with(token).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
            "{what}"
        );
        assert!(body.get("reason").is_none(), "{what}: {body}");
        assert!(
            body["error_description"] == "The access token is invalid."
                || body["error_description"]
                    == "The request carries a malformed bearer credential.",
            "{what}: {body}"
        );
    }
    let anonymous: Value = reqwest::get(quiet.notes())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anonymous["reason"], "missing_credentials");
    let writer = dev
        .token()
        .audience(&quiet.resource)
        .scopes(["write:notes"])
        .sign()
        .unwrap();
    let refused: Value = quiet.get_with(&writer).await.json().await.unwrap();
    assert_eq!(refused["reason"], "insufficient_scope");
}

#[tokio::test]
async fn several_required_scopes_are_all_named_in_the_challenge() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.required_scopes(["write:notes", "admin:notes"]).unwrap(),
    )
    .await;
    let token = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes", "write:notes"])
        .sign()
        .unwrap();
    let response = app.get_with(&token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, params) = parse_challenge(response.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(params["scope"], "read:notes write:notes admin:notes");
    assert_eq!(params["error"], "insufficient_scope");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read:notes write:notes admin:notes");
    assert_eq!(body["missing_scopes"], json!(["admin:notes"]));

    // Without credentials the challenge names the same scopes.
    let response = reqwest::get(app.notes()).await.unwrap();
    let (_, params) = parse_challenge(response.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(params["scope"], "read:notes write:notes admin:notes");
    assert!(!params.contains_key("error"));
}

#[tokio::test]
async fn strict_token_type_accepts_only_rfc_9068_types() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.strict_token_type().show_error_details(true),
    )
    .await;
    let token = || dev.token().audience(&app.resource).scopes(["read:notes"]);
    assert_eq!(app.get_with(&token().sign().unwrap()).await.status(), OK);
    for typ in [Some("JWT"), None] {
        let response = app
            .get_with(&token().header_type(typ).sign().unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{typ:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["reason"], "invalid_token_type");
    }
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_still_verifies_tokens() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.optional(),
    )
    .await;
    let anonymous = reqwest::get(app.notes()).await.unwrap();
    assert_eq!(anonymous.status(), OK);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap(),
        json!({"anonymous": true})
    );

    let valid = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    let known: Value = app.get_with(&valid).await.json().await.unwrap();
    assert_eq!(known["subject"], "dev-user");

    let expired = dev
        .token()
        .audience(&app.resource)
        .scopes(["read:notes"])
        .expires_at(now() - 3600)
        .sign()
        .unwrap();
    assert_eq!(
        app.get_with(&expired).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get_with("a b").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_request_reaches_a_handler_without_a_valid_token() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dev = DevAuthServer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/any", listener.local_addr().unwrap());
    let auth = mcpauth::McpAuth::resource_server([
        mcpauth::ProtectedResource::new(&resource).authorization_server(dev.config())
    ])
    .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let app = axum::Router::new()
        .route(
            "/any",
            axum::routing::any(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "handled"
            }),
        )
        .route_layer(auth.bearer_auth(&resource).unwrap());
    let server = mcpauth_tests::TestServer::serve(listener, app);
    let client = reqwest::Client::new();
    let valid = dev.token().audience(&resource).sign().unwrap();
    let other_audience = dev
        .token()
        .audience("http://127.0.0.1:9/any")
        .sign()
        .unwrap();

    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND",
    ];
    let header_sets: [&[(&str, &str)]; 5] = [
        &[],
        &[("origin", "https://inspector.example")],
        &[
            ("origin", "https://inspector.example"),
            ("access-control-request-method", "POST"),
        ],
        &[
            ("origin", "https://inspector.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        &[("access-control-request-method", "GET")],
    ];
    for method in methods {
        for headers in header_sets {
            for token in [None, Some("not-a-token"), Some(other_audience.as_str())] {
                let mut request = client.request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    server.url("/any"),
                );
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {headers:?} token {token:?}"
                );
                assert!(response.headers().contains_key("www-authenticate"));
            }
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no handler ran");

    // With a valid token, every method reaches it.
    for method in methods {
        let response = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                server.url("/any"),
            )
            .header("origin", "https://inspector.example")
            .header("access-control-request-method", "POST")
            .bearer_auth(&valid)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), OK, "{method}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), methods.len());
}

#[tokio::test]
async fn audience_checking_is_on_unless_explicitly_skipped() {
    let dev = DevAuthServer::start().await.unwrap();
    let app = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.skip_audience_check(),
    )
    .await;
    let foreign = dev
        .token()
        .audience("https://other.example")
        .scopes(["read:notes"])
        .sign()
        .unwrap();
    assert_eq!(app.get_with(&foreign).await.status(), OK);
}

#[tokio::test]
async fn the_layer_also_protects_a_whole_router() {
    let dev = DevAuthServer::start().await.unwrap();
    let auth = mcpauth::McpAuth::resource_server([mcpauth::ProtectedResource::new(
        "http://127.0.0.1:9/api",
    )
    .authorization_server(dev.config())])
    .unwrap();
    let layer = auth.bearer_auth("http://127.0.0.1:9/api").unwrap();
    let app = axum::Router::new()
        .route(
            "/a",
            axum::routing::get(|auth: mcpauth::AuthInfo| async move { auth.subject().to_owned() }),
        )
        .route("/b", axum::routing::post(|| async { "b" }))
        .layer(layer);
    let server = mcpauth_tests::TestServer::start(app).await;
    let token = dev
        .token()
        .audience("http://127.0.0.1:9/api")
        .sign()
        .unwrap();
    let client = reqwest::Client::new();
    let a = client
        .get(server.url("/a"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), OK);
    assert_eq!(a.text().await.unwrap(), "dev-user");
    let b = client.post(server.url("/b")).send().await.unwrap();
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
    let (_, params) = parse_challenge(b.headers()["www-authenticate"].to_str().unwrap());
    // No required scopes: no `scope` parameter.
    assert_eq!(params.keys().collect::<Vec<_>>(), ["resource_metadata"]);
}

#[tokio::test]
async fn a_broader_scope_satisfies_the_scopes_it_implies() {
    let dev = DevAuthServer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/notes", listener.local_addr().unwrap());
    let auth = mcpauth::McpAuth::resource_server([mcpauth::ProtectedResource::new(&resource)
        .authorization_server(dev.config())
        .scopes(["read:notes", "write:notes", "admin:notes"])
        .scope_implies("admin:notes", ["write:notes"])
        .scope_implies("write:notes", ["read:notes"])])
    .unwrap();
    let layer = auth
        .bearer_auth(&resource)
        .unwrap()
        .required_scopes(["read:notes"])
        .unwrap();
    let app = axum::Router::new()
        .route("/notes", axum::routing::get(|| async { "ok" }))
        .route_layer(layer);
    let server = mcpauth_tests::TestServer::serve(listener, app);
    let client = reqwest::Client::new();
    for (granted, status) in [
        ("admin:notes", OK),
        ("write:notes", OK),
        ("read:notes", OK),
        ("other", StatusCode::FORBIDDEN),
    ] {
        let token = dev
            .token()
            .audience(&resource)
            .claim("scope", granted)
            .sign()
            .unwrap();
        let response = client
            .get(server.url("/notes"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{granted}");
        if status == StatusCode::FORBIDDEN {
            let (_, params) =
                parse_challenge(response.headers()["www-authenticate"].to_str().unwrap());
            assert_eq!(params["scope"], "read:notes");
        }
    }
}

#[tokio::test]
async fn non_standard_scope_claims_are_read_only_when_configured() {
    let dev = DevAuthServer::start().await.unwrap();
    let none: &[&str] = &[];
    for (configured, claim, expected) in [
        (none, "scopes", StatusCode::FORBIDDEN),
        (none, "permissions", StatusCode::FORBIDDEN),
        (none, "scp", OK),
        (&["scope", "scopes"][..], "scopes", OK),
        (&["scope", "scopes"][..], "scp", StatusCode::FORBIDDEN),
        (&["permissions"][..], "permissions", OK),
        (&["permissions"][..], "scope", StatusCode::FORBIDDEN),
    ] {
        let mut server = AuthServer::new(dev.config());
        if !configured.is_empty() {
            server = server.scope_claims(configured.iter().copied());
        }
        let app = Protected::start(server, KeyCacheOptions::default(), |l| l).await;
        let token = dev
            .token()
            .audience(&app.resource)
            .without_claim("scope")
            .claim(claim, json!(["read:notes"]))
            .sign()
            .unwrap();
        assert_eq!(
            app.get_with(&token).await.status(),
            expected,
            "{claim} read from {configured:?}"
        );
    }
}

/// With the lenient `typ` policy (the default: several providers send `JWT` or nothing on
/// access tokens), an OpenID Connect ID token is kept out by its audience: it is issued to the
/// client (`aud` = the client id), never to this resource. The strict policy refuses it by type.
#[tokio::test]
async fn id_tokens_do_not_pass_as_access_tokens() {
    let dev = DevAuthServer::start().await.unwrap();
    let id_token = || {
        dev.token()
            .audience("mcp-client")
            .claim("azp", "mcp-client")
            .claim("nonce", "n-0S6_WzA2Mj")
            .claim("auth_time", now() - 60)
            .claim("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")
            .scopes(["read:notes"])
            .header_type(Some("JWT"))
            .sign()
            .unwrap()
    };
    let lenient = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.show_error_details(true),
    )
    .await;
    let response = lenient.get_with(&id_token()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["reason"],
        "invalid_audience"
    );

    let strict = Protected::start(
        AuthServer::new(dev.config()),
        KeyCacheOptions::default(),
        |l| l.strict_token_type().show_error_details(true),
    )
    .await;
    let response = strict.get_with(&id_token()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["reason"],
        "invalid_token_type"
    );
}
