//! The whole verification path with real keys: `BearerAuthLayer::authenticate` against the
//! development authorization server (RS256, ES256 and EdDSA keys, served over loopback HTTP,
//! fetched and cached as in production), then `BearerAuthLayer::error_response` for refusals.
//!
//! Once per process: a tokio runtime, a `DevAuthServer`, an `McpAuth` trusting it, three
//! layers (no required scopes with generic descriptions; `read:notes` required; details shown),
//! and minted tokens: valid ones in each algorithm with various claims, and validly signed ones
//! that must be refused (expired, another audience, no `sub`).
//!
//! The first input byte picks how the rest makes a token:
//! - 0: the bytes are the token (`Bearer <bytes>`);
//! - 1: a minted token with byte flips and deletions (3 bytes each: position LE, XOR value, 0 = delete);
//! - 2: a minted token with one segment (header, payload or signature) replaced by the bytes,
//!   raw or base64url-encoded (so forged JSON goes with a real signature);
//! - 3: a splice of the header, payload and signature of three minted tokens, then flips;
//! - 4: a token *signed by the development server* over fuzzed claims and header parameters
//!   (a flags byte, then a JSON object; its member `"!header"` holds header parameters, which
//!   may override `alg`, `kid`, `crit`, `typ`…), so the claim checks after the signature are
//!   reached. Flags: bits 0–1 the key (ES256, EdDSA, RS256, EdDSA); bit 2: the resource as
//!   `aud` and `read:notes` as `scope` before the fuzzed claims; bit 3: no default `exp`;
//!   bit 4: no `typ`; bit 5: the development server's `iss` after the fuzzed claims; bit 6:
//!   the resource as `aud` after them (so claims of real tokens from other servers apply).
//!
//! Invariants:
//! - an accepted token made by modes 0–3 is byte-identical to a minted token that is valid.
//!   Any other accepted token would be a forgery: every segment is checked as canonical
//!   base64url (no padding, no stray trailing bits) and the signature covers the header and
//!   payload text, so no byte of a valid token can change and still verify. The one change
//!   that keeps a signature valid without the key is ECDSA's (r, s) → (r, n − s), which
//!   byte mutations cannot compute; it would be reported (same signing input, same `r`) and
//!   allowed, as it forges nothing;
//! - for every accepted token (all modes) the `AuthInfo` matches its payload, decoded here
//!   independently: issuer = the development server's (the token's `iss`), subject = `sub`
//!   (non-empty string), scopes = `scope` split on spaces then `scp`, without
//!   repeats, client id = `client_id` else `azp`, audience contains the resource (the scheme in
//!   any case, one trailing `/` allowed, nothing else differing), `exp` not passed and `nbf` reached (with the 60 s leeway), the claims are
//!   the payload, the raw token is the token; the header's `alg` and `kid` are those of the key
//!   that signed, no `crit`, an access-token `typ`;
//! - the layer requiring `read:notes` accepts exactly the accepted tokens granting it and
//!   refuses the others with 403 `insufficient_scope`;
//! - a refusal's `WWW-Authenticate` (details hidden) is one of the fixed challenges and its
//!   body's `error_description` one of the fixed sentences: nothing from the token is echoed;
//!   its `reason` is absent for a verdict on the credential (`invalid_token`, malformed
//!   header) and the refusal's reason otherwise, and always the refusal's with details shown;
//!   with details shown, the header is still a valid RFC 7235 / RFC 6750 challenge whose
//!   `error` matches the refusal.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{
    AuthError, AuthErrorReason, AuthInfo, AuthServer, BearerAuthLayer, McpAuth, ProtectedResource,
};
use mcpauth_fuzz::{PRM_URL, RESOURCE, SEED_TOKEN_LIFETIME, body_json, parse_challenge};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

const LEEWAY: f64 = 60.0;

struct Setup {
    runtime: Runtime,
    dev: DevAuthServer,
    quiet: BearerAuthLayer,
    scoped: BearerAuthLayer,
    loud: BearerAuthLayer,
    /// Valid tokens (accepted as they are).
    valid: Vec<String>,
    /// Every minted token: the valid ones, then validly signed ones that must be refused.
    minted: Vec<String>,
    /// The `kid` of each algorithm's key.
    kids: Vec<(&'static str, String)>,
    /// Every challenge and description the quiet layers may send.
    challenges: Vec<HeaderValue>,
    descriptions: Vec<String>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dev = runtime
            .block_on(DevAuthServer::start())
            .expect("dev server");
        let auth = McpAuth::builder()
            .protected_resource(
                ProtectedResource::new(RESOURCE)
                    .authorization_server(AuthServer::new(dev.config()))
                    .scopes(["read:notes", "write:notes"]),
            )
            .build()
            .expect("config");
        let quiet = auth.bearer_auth(RESOURCE).expect("layer");
        let scoped = quiet
            .clone()
            .required_scopes(["read:notes"])
            .expect("scoped layer");
        let loud = quiet.clone().show_error_details(true);

        let long = |algorithm| {
            dev.token()
                .algorithm(algorithm)
                .expires_in(SEED_TOKEN_LIFETIME)
        };
        let sign = |builder: mcpauth::dev::TokenBuilder| builder.sign().expect("sign");
        let mut valid = Vec::new();
        for algorithm in [
            DevAlgorithm::Rs256,
            DevAlgorithm::Es256,
            DevAlgorithm::EdDsa,
        ] {
            valid.push(sign(
                long(algorithm).audience(RESOURCE).scopes(["read:notes"]),
            ));
            valid.push(sign(
                long(algorithm)
                    .audiences([RESOURCE, "https://other.example/api"])
                    .claim("scp", json!(["write:notes", "read:notes"]))
                    .without_claim("client_id")
                    .claim("azp", "azp-client")
                    .header_type(Some("JWT")),
            ));
        }
        // Canonical-form audience, no typ, a space-separated scope list with repeats.
        valid.push(sign(
            long(DevAlgorithm::EdDsa)
                .audience("HTTP://127.0.0.1:3001/notes/")
                .claim("scope", "write:notes  write:notes read:notes")
                .header_type(None),
        ));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let mut minted = valid.clone();
        minted.push(sign(dev.token().audience(RESOURCE).expires_at(now - 3600)));
        minted.push(sign(
            long(DevAlgorithm::Es256).audience("http://127.0.0.1:3001/notes2"),
        ));
        minted.push(sign(
            long(DevAlgorithm::EdDsa)
                .audience(RESOURCE)
                .without_claim("sub"),
        ));
        minted.push(sign(
            long(DevAlgorithm::Es256)
                .audience(RESOURCE)
                .not_before(now + 3600),
        ));
        minted.push(sign(
            long(DevAlgorithm::Rs256)
                .audience(RESOURCE)
                .header_type(Some("id+jwt")),
        ));

        // `key_ids` lists the RSA, P-256 and Ed25519 keys, in that order.
        let kids = ["RS256", "ES256", "EdDSA"]
            .into_iter()
            .zip(dev.key_ids())
            .collect();

        // Warm the key cache, and check the seeds are what they claim to be.
        for token in &valid {
            let info =
                runtime.block_on(quiet.authenticate(&bearer(token.as_bytes()).expect("header")));
            assert!(
                matches!(info, Ok(Some(_))),
                "a valid seed was refused: {info:?}"
            );
        }
        for token in &minted[valid.len()..] {
            let refused =
                runtime.block_on(quiet.authenticate(&bearer(token.as_bytes()).expect("header")));
            assert!(refused.is_err(), "an invalid seed was accepted");
        }

        let detail = |reason| AuthError::InvalidToken {
            reason,
            detail: "x".into(),
        };
        let samples = [
            AuthError::MissingCredentials,
            AuthError::InvalidRequest {
                reason: AuthErrorReason::EmptyToken,
                detail: "x".into(),
            },
            detail(AuthErrorReason::InvalidSignature),
            AuthError::InsufficientScope {
                required: vec!["read:notes".into()],
                missing: vec!["read:notes".into()],
            },
            AuthError::Unavailable {
                reason: AuthErrorReason::KeysUnavailable,
                detail: "x".into(),
                retry_after: Duration::from_secs(1),
            },
            AuthError::ServerError {
                reason: AuthErrorReason::MissingJwksUri,
                detail: "x".into(),
            },
        ];
        let mut challenges = Vec::new();
        let mut descriptions = Vec::new();
        for layer in [&quiet, &scoped] {
            for error in &samples {
                let response = layer.error_response(error);
                challenges.extend(response.headers().get(WWW_AUTHENTICATE).cloned());
                descriptions.push(
                    body_json(response)["error_description"]
                        .as_str()
                        .expect("description")
                        .to_owned(),
                );
            }
        }
        Setup {
            runtime,
            dev,
            quiet,
            scoped,
            loud,
            valid,
            minted,
            kids,
            challenges,
            descriptions,
        }
    })
}

fn bearer(token: &[u8]) -> Option<HeaderMap> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_bytes(&value).ok()?);
    Some(headers)
}

fn segment_json(token: &str, index: usize) -> Option<Map<String, Value>> {
    let segment = token.split('.').nth(index)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether `aud` names the resource `http://127.0.0.1:3001/notes` by MCP's rule, stated here
/// without any URL parser: the scheme in any case, then exactly this host, port and path, with
/// at most one trailing `/`. (The host has no letters and the port is not the default, so the
/// rule allows nothing else; a dot segment, an escape, whitespace, userinfo, another spelling
/// of the address never match.)
fn names_the_resource(aud: &str) -> bool {
    let Some((scheme, rest)) = aud.split_at_checked(4) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("http")
        && matches!(
            rest,
            "://127.0.0.1:3001/notes" | "://127.0.0.1:3001/notes/"
        )
}

/// Scopes as RFC 8693 / RFC 9068 tokens carry them: `scope` space-delimited, then `scp` (an
/// array or a string), without repeats or empties; nothing else is read by default.
fn expected_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        let items: Vec<&str> = match claims.get(name) {
            None => continue,
            Some(Value::String(list)) => list.split(' ').collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .expect("a token with a non-string scope was accepted")
                })
                .collect(),
            Some(other) => panic!("a token with {name} = {other} was accepted"),
        };
        for scope in items {
            if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
    }
    scopes
}

/// Checks an accepted token's `AuthInfo` against its payload and header, decoded here.
fn check_accepted(setup: &Setup, token: &str, info: &AuthInfo, started: f64) {
    let header = segment_json(token, 0).expect("an accepted token's header is JSON");
    let claims = segment_json(token, 1).expect("an accepted token's payload is a JSON object");
    assert_eq!(info.token(), token);
    assert_eq!(info.claims(), &claims, "the claims are not the payload");
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(setup.dev.issuer())
    );
    assert_eq!(info.issuer(), setup.dev.issuer());
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .expect("accepted without a string sub");
    assert!(!sub.is_empty(), "accepted with an empty sub");
    assert_eq!(info.subject(), sub);
    assert_eq!(info.scopes(), expected_scopes(&claims).as_slice());
    let client_id = match claims.get("client_id") {
        Some(id) => Some(id.as_str().expect("accepted with a non-string client_id")),
        None => claims
            .get("azp")
            .map(|azp| azp.as_str().expect("accepted with a non-string azp")),
    };
    assert_eq!(info.client_id(), client_id);
    let audience: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().expect("a non-string aud"))
            .collect(),
        other => panic!("accepted with aud {other:?}"),
    };
    assert_eq!(info.audience(), audience.as_slice());
    assert_eq!(RESOURCE, "http://127.0.0.1:3001/notes", "the rule below is stated for it");
    assert!(
        audience.iter().any(|a| names_the_resource(a)),
        "accepted for another audience: {audience:?}"
    );
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("accepted without a numeric exp");
    assert!(started <= exp + LEEWAY, "accepted after exp");
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("accepted with a non-numeric nbf");
        assert!(now() + LEEWAY >= nbf, "accepted before nbf");
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .expect("accepted without alg");
    let kid = setup
        .kids
        .iter()
        .find(|(name, _)| *name == alg)
        .map(|(_, kid)| kid.as_str());
    assert!(kid.is_some(), "accepted with alg {alg}");
    assert_eq!(
        header.get("kid").and_then(Value::as_str),
        kid,
        "accepted under another key"
    );
    assert!(!header.contains_key("crit"), "accepted with crit");
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) => assert!(
            ["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(typ)),
            "accepted with typ {typ}"
        ),
        Some(other) => panic!("accepted with typ {other}"),
    }
}

/// Checks that an accepted token made without the key is one that was minted.
fn check_not_forged(setup: &Setup, token: &str) {
    if setup.valid.iter().any(|v| v == token) {
        return;
    }
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let Some(original) = setup
        .valid
        .iter()
        .find(|v| v.rsplit_once('.').map(|(i, _)| i) == Some(input))
    else {
        panic!("FORGERY: accepted a token whose signing input no minted token has: {token}");
    };
    // ECDSA: the same r with another s (only n - s verifies) forges nothing.
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap_or_default();
    let (ours, theirs) = (
        decode(signature),
        decode(original.rsplit_once('.').map_or("", |(_, s)| s)),
    );
    let header = segment_json(token, 0).unwrap_or_default();
    assert!(
        header.get("alg") == Some(&json!("ES256"))
            && ours.len() == 64
            && theirs.len() == 64
            && ours[..32] == theirs[..32]
            && ours[32..] == p256_negate(&theirs[32..]),
        "FORGERY: a minted token's signing input accepted with another signature: {token}"
    );
    eprintln!("note: ECDSA signature malleability (r, n - s) accepted: {token}");
}

/// The order n of P-256's group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n − s` for a P-256 scalar `s` (32 bytes, big-endian, below n): the other `s` that makes the
/// same `r` a valid ECDSA signature.
fn p256_negate(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    out
}

/// Checks a refusal's responses: no echo with details hidden, a valid challenge with them shown.
fn check_refusal(setup: &Setup, layer: &BearerAuthLayer, error: &AuthError) {
    let response = layer.error_response(error);
    assert_eq!(response.status(), error.status());
    if let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) {
        assert!(
            setup.challenges.contains(challenge),
            "a challenge not among the fixed ones: {challenge:?}"
        );
    } else {
        assert!(
            matches!(
                error,
                AuthError::Unavailable { .. } | AuthError::ServerError { .. }
            ),
            "{error:?} without a challenge"
        );
    }
    let body = body_json(response);
    let description = body["error_description"].as_str().expect("description");
    assert!(
        setup.descriptions.iter().any(|d| d == description),
        "a description not among the fixed ones: {description}"
    );
    // With details hidden, the reason code of a verdict on the credential is not shown (it
    // would say what the generic description hides); every other refusal names its reason.
    let verdict = matches!(
        error,
        AuthError::InvalidToken { .. } | AuthError::InvalidRequest { .. }
    );
    if verdict {
        assert!(body.get("reason").is_none(), "a hidden reason shown: {body}");
    } else {
        assert_eq!(body["reason"], error.reason().as_str());
    }
    let loud_body = body_json(setup.loud.error_response(error));
    assert_eq!(loud_body["reason"], error.reason().as_str());

    let response = setup.loud.error_response(error);
    if let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) {
        let params = parse_challenge(challenge.as_bytes())
            .unwrap_or_else(|why| panic!("an invalid challenge ({why}): {challenge:?}"));
        for param in &params {
            assert!(
                ["error", "error_description", "resource_metadata", "scope"]
                    .contains(&param.name.as_str())
            );
        }
        let value = |name: &str| {
            params
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.as_str())
        };
        assert_eq!(value("error"), error.error_code());
        assert_eq!(value("resource_metadata"), Some(PRM_URL));
    }
}

/// Authenticates `token` on the layers and checks every invariant; `minted_by_key` for tokens the
/// development server signed itself (mode 4).
fn run(setup: &Setup, token: &[u8], minted_by_key: bool) {
    let Some(headers) = bearer(token) else { return };
    let started = now();
    let quiet = setup.runtime.block_on(setup.quiet.authenticate(&headers));
    let scoped = setup.runtime.block_on(setup.scoped.authenticate(&headers));
    match &quiet {
        Ok(Some(info)) => {
            let token = std::str::from_utf8(token).expect("an accepted token is ASCII");
            if !minted_by_key {
                check_not_forged(setup, token);
            }
            check_accepted(setup, token, info, started);
            let grants = info.scopes().iter().any(|s| s == "read:notes");
            match &scoped {
                Ok(Some(_)) => assert!(
                    grants,
                    "the scoped layer accepted a token without read:notes"
                ),
                Err(error @ AuthError::InsufficientScope { .. }) => {
                    assert!(!grants, "the scoped layer refused a token with read:notes");
                    assert_eq!(error.status(), StatusCode::FORBIDDEN);
                    check_refusal(setup, &setup.scoped, error);
                }
                other => panic!("the layers disagree: {other:?}"),
            }
        }
        Ok(None) => panic!("no credentials from a Bearer header"),
        Err(error) => {
            assert!(
                scoped.is_err(),
                "the scoped layer accepted what the other refused"
            );
            check_refusal(setup, &setup.quiet, error);
            if let Err(error) = &scoped {
                check_refusal(setup, &setup.scoped, error);
            }
        }
    }
}

/// Flips and deletes bytes: 3 input bytes per edit (position LE, XOR value; 0 deletes).
fn mutate(mut token: Vec<u8>, edits: &[u8]) -> Vec<u8> {
    for edit in edits.chunks_exact(3).take(8) {
        if token.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % token.len();
        match edit[2] {
            0 => {
                token.remove(at);
            }
            x => token[at] ^= x,
        }
    }
    token
}

/// Signs fuzzed claims and header parameters with the development server's keys.
fn sign_fuzzed(setup: &Setup, flags: u8, json: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut claims)) = serde_json::from_slice::<Value>(json) else {
        return None;
    };
    let algorithm = match flags & 3 {
        0 => DevAlgorithm::Es256,
        1 | 3 => DevAlgorithm::EdDsa,
        _ => DevAlgorithm::Rs256,
    };
    let mut builder = setup.dev.token().algorithm(algorithm);
    if flags & 4 != 0 {
        builder = builder.audience(RESOURCE).scopes(["read:notes"]);
    }
    if flags & 8 != 0 {
        builder = builder.without_claim("exp");
    }
    if flags & 16 != 0 {
        builder = builder.header_type(None);
    }
    if let Some(Value::Object(header)) = claims.remove("!header") {
        for (name, value) in header {
            builder = builder.header_param(name, value);
        }
    }
    for (name, value) in claims {
        builder = builder.claim(name, value);
    }
    if flags & 32 != 0 {
        builder = builder.issuer(setup.dev.issuer());
    }
    if flags & 64 != 0 {
        builder = builder.audience(RESOURCE);
    }
    builder.sign().ok()
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let pick = |byte: Option<&u8>| {
        setup.minted[usize::from(byte.copied().unwrap_or(0)) % setup.minted.len()].as_bytes()
    };
    match mode % 5 {
        0 => run(setup, rest, false),
        1 => run(
            setup,
            &mutate(
                pick(rest.first()).to_vec(),
                rest.get(1..).unwrap_or_default(),
            ),
            false,
        ),
        2 => {
            let (Some(&which), Some(&segment), Some(&encode)) =
                (rest.first(), rest.get(1), rest.get(2))
            else {
                return;
            };
            let bytes = &rest[3..];
            let replacement = if encode & 1 == 1 {
                URL_SAFE_NO_PAD.encode(bytes).into_bytes()
            } else {
                bytes.to_vec()
            };
            let token = pick(Some(&which));
            let mut parts: Vec<&[u8]> = token.split(|&b| b == b'.').collect();
            parts[usize::from(segment) % 3] = &replacement;
            run(setup, &parts.join(&b'.'), false);
        }
        3 => {
            let part = |i: usize, n: usize| {
                pick(rest.get(i))
                    .split(|&b| b == b'.')
                    .nth(n)
                    .unwrap_or_default()
                    .to_vec()
            };
            let token = [part(0, 0), part(1, 1), part(2, 2)].join(&b'.');
            run(
                setup,
                &mutate(token, rest.get(3..).unwrap_or_default()),
                false,
            );
        }
        _ => {
            let Some((&flags, json)) = rest.split_first() else {
                return;
            };
            if let Some(token) = sign_fuzzed(setup, flags, json) {
                run(setup, token.as_bytes(), true);
            }
        }
    }
});
