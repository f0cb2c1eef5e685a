//! The broker's keys rotate without logging anyone out: each test runs a broker, stops it and
//! starts it again on the same store and address with a key changed, and checks that what was
//! issued before keeps working — and that it would not without the old key.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth::broker::{BrokerKeys, BrokerStore, MemoryStore, Namespace, SigningKey};
use mcpauth::dev::DevAuthServer;
use mcpauth_tests::broker::{
    AuthorizeRequest, BrokerFixture, FixtureOptions, Jar, jwt_part, pkce, query,
};
use mcpauth_tests::parse_challenge;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use tokio::net::TcpListener;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const STORAGE: [u8; 32] = [11; 32];
const COOKIE: [u8; 32] = [21; 32];

/// A broker with `keys` on `store`, on `listener` when restarting.
async fn start(
    store: &Arc<MemoryStore>,
    keys: BrokerKeys,
    listener: Option<TcpListener>,
    upstream: Option<DevAuthServer>,
) -> BrokerFixture {
    BrokerFixture::start_with(FixtureOptions {
        store: store.clone(),
        listener,
        upstream,
        ..FixtureOptions::configured(move |builder| builder.keys(keys))
    })
    .await
}

/// The same broker, stopped and started again with `keys`.
async fn restart(
    fixture: BrokerFixture,
    store: &Arc<MemoryStore>,
    keys: BrokerKeys,
) -> BrokerFixture {
    let (listener, upstream) = fixture.stop().await;
    start(store, keys, Some(listener), Some(upstream)).await
}

/// A JWT's header (`part` 0) or claims (1), decoded, not verified.
fn jwt(token: &Value, part: usize) -> Value {
    jwt_part(token.as_str().unwrap(), part)
}

async fn published_kids(fixture: &BrokerFixture) -> Vec<String> {
    let jwks: Value = fixture.get_json(&fixture.url("/jwks")).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn tool_status(fixture: &BrokerFixture, tokens: &Value) -> StatusCode {
    fixture
        .call_tool(tokens["access_token"].as_str().unwrap(), "get_todos")
        .await
        .status()
}

#[tokio::test]
async fn a_signing_key_rotates_in_two_steps_and_old_tokens_live_out_their_lifetime() {
    let store = Arc::new(MemoryStore::new());
    let old = SigningKey::generate_es256().unwrap();
    let new = SigningKey::generate_ed25519().unwrap();
    let keys = |signing: &SigningKey| BrokerKeys::new(signing.clone(), STORAGE, COOKIE);

    let fixture = start(&store, keys(&old), None, None).await;
    let (client_id, before) = fixture.login("read:todos").await;
    assert_eq!(jwt(&before["access_token"], 0)["kid"], old.key_id());

    // Step one: the next key is published everywhere before anything is signed with it.
    let fixture = restart(fixture, &store, keys(&old).also_publish(new.clone())).await;
    assert_eq!(published_kids(&fixture).await, [old.key_id(), new.key_id()]);
    let (status, during) = fixture.refresh(&client_id, &before["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{during}");
    assert_eq!(jwt(&during["access_token"], 0)["kid"], old.key_id());

    // Step two: the new key signs, the old one stays published.
    let fixture = restart(fixture, &store, keys(&new).also_publish(old.clone())).await;
    assert_eq!(published_kids(&fixture).await, [new.key_id(), old.key_id()]);
    assert_eq!(tool_status(&fixture, &before).await, StatusCode::OK);
    assert_eq!(tool_status(&fixture, &during).await, StatusCode::OK);
    let (status, after) = fixture.refresh(&client_id, &during["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    let header = jwt(&after["access_token"], 0);
    assert_eq!(header["kid"], new.key_id());
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(tool_status(&fixture, &after).await, StatusCode::OK);

    // Once the old key's tokens have expired it goes; a token it signed no longer verifies.
    let fixture = restart(fixture, &store, keys(&new)).await;
    assert_eq!(published_kids(&fixture).await, [new.key_id()]);
    let refused = fixture
        .call_tool(during["access_token"].as_str().unwrap(), "get_todos")
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (_, challenge) = parse_challenge(refused.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(challenge["error"], "invalid_token");
    assert_eq!(tool_status(&fixture, &after).await, StatusCode::OK);
    // Refresh tokens never depended on the signing key.
    let (status, last) = fixture.refresh(&client_id, &after["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{last}");
}

/// A sign-in whose consent form was answered after a restart.
struct Answered {
    fixture: BrokerFixture,
    approval: reqwest::Response,
    jar: Jar,
    store: Arc<MemoryStore>,
    client_id: String,
    verifier: String,
}

/// Starts a sign-in under the cookie key `first` and approves it after a restart with `second`.
async fn consent_across_a_cookie_key_change(first: [u8; 32], second: BrokerKeys) -> Answered {
    let store = Arc::new(MemoryStore::new());
    let signing = SigningKey::generate_es256().unwrap();
    let fixture = start(&store, BrokerKeys::new(signing, STORAGE, first), None, None).await;
    let client_id = fixture.register(&[REDIRECT]).await;
    let (verifier, challenge) = pkce();
    let request = AuthorizeRequest::new(&client_id, REDIRECT, &challenge);
    let mut jar = Jar::default();
    let page = fixture.open_consent(&request, &mut jar).await;
    let fixture = restart(fixture, &store, second).await;
    let approval = fixture.answer_consent(&page, "approve", &mut jar).await;
    Answered {
        fixture,
        approval,
        jar,
        store,
        client_id,
        verifier,
    }
}

#[tokio::test]
async fn a_sign_in_begun_before_a_cookie_key_rotation_completes_after_it() {
    let signing = SigningKey::generate_es256().unwrap();
    let first = [31; 32];
    let second = [32; 32];
    let third = [33; 32];
    // The consent form was made under the first key and is posted under the second…
    let Answered {
        fixture,
        approval,
        mut jar,
        store,
        client_id,
        verifier,
    } = consent_across_a_cookie_key_change(
        first,
        BrokerKeys::new(signing.clone(), STORAGE, second).previous_cookie_key(first),
    )
    .await;
    assert_eq!(approval.status(), StatusCode::SEE_OTHER);
    let callback = fixture.through_upstream(approval).await;
    // …and the binding cookie set under the second is read back under the third.
    let fixture = restart(
        fixture,
        &store,
        BrokerKeys::new(signing, STORAGE, third).previous_cookie_key(second),
    )
    .await;
    let response = fixture.open_callback(&callback, &mut jar).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let (status, tokens) = fixture
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &query(&location)["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[tokio::test]
async fn a_consent_form_made_under_a_dropped_cookie_key_is_refused() {
    let signing = SigningKey::generate_es256().unwrap();
    let answered =
        consent_across_a_cookie_key_change([41; 32], BrokerKeys::new(signing, STORAGE, [42; 32]))
            .await;
    assert_eq!(answered.approval.status(), StatusCode::FORBIDDEN);
    assert!(answered.approval.headers().get(LOCATION).is_none());
}

/// The grant's sealed upstream tokens as stored, opened with `key` (AES-256-GCM: a 96-bit
/// nonce, then the ciphertext and its tag; the grant id as associated data).
async fn open_upstream_tokens(
    store: &MemoryStore,
    tokens: &Value,
    key: [u8; 32],
) -> Option<Vec<u8>> {
    let subject = jwt(&tokens["access_token"], 1)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let grants = store
        .index_members(&format!("user:{subject}"))
        .await
        .unwrap();
    let [grant_id] = grants.as_slice() else {
        panic!("one grant expected: {grants:?}");
    };
    let grant: Value = serde_json::from_slice(
        &store
            .get(Namespace::Grant, grant_id)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let sealed = URL_SAFE_NO_PAD
        .decode(grant["upstream"].as_str().unwrap())
        .unwrap();
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let mut buffer = ciphertext.to_vec();
    key.open_in_place(
        Nonce::try_assume_unique_for_key(nonce).unwrap(),
        Aad::from(grant_id.as_bytes()),
        &mut buffer,
    )
    .ok()
    .map(|plaintext| plaintext.to_vec())
}

#[tokio::test]
async fn a_storage_key_rotation_reseals_upstream_tokens_at_the_next_refresh() {
    let store = Arc::new(MemoryStore::new());
    let signing = SigningKey::generate_es256().unwrap();
    let old = [51; 32];
    let new = [52; 32];
    let fixture = start(
        &store,
        BrokerKeys::new(signing.clone(), old, COOKIE),
        None,
        None,
    )
    .await;
    let (client_id, tokens) = fixture.login("read:todos").await;
    let sealed_set = open_upstream_tokens(&store, &tokens, old).await.unwrap();
    assert!(open_upstream_tokens(&store, &tokens, new).await.is_none());

    // Without the old key the sealed set cannot be opened: a tool gets no provider token.
    let fixture = restart(
        fixture,
        &store,
        BrokerKeys::new(signing.clone(), new, COOKIE),
    )
    .await;
    let unreadable = fixture
        .upstream_tool(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(unreadable.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(unreadable.body["error"], "server_error");

    let rotated = BrokerKeys::new(signing.clone(), new, COOKIE).previous_storage_key(old);
    let fixture = restart(fixture, &store, rotated).await;
    let (status, refreshed) = fixture.refresh(&client_id, &tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // Sealed again under the new key, the same upstream tokens inside.
    assert_eq!(
        open_upstream_tokens(&store, &refreshed, new).await.unwrap(),
        sealed_set
    );
    assert!(
        open_upstream_tokens(&store, &refreshed, old)
            .await
            .is_none()
    );

    // The old key can go now.
    let fixture = restart(fixture, &store, BrokerKeys::new(signing, new, COOKIE)).await;
    let (status, again) = fixture
        .refresh(&client_id, &refreshed["refresh_token"])
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        open_upstream_tokens(&store, &again, new).await.unwrap(),
        sealed_set
    );
    let answer = fixture
        .upstream_tool(again["access_token"].as_str().unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}
