//! The renewal of a grant's upstream tokens across two brokers sharing one Redis: two `Broker`
//! values, each on a `RedisStore` connection of its own (two processes' worth of state: their
//! own grant locks), one `redis-server` started here, and the development identity provider in
//! upstream mode, which counts the requests reaching its token endpoint.
//!
//! What `Broker::upstream_token` documents: a token within a minute of its expiry is renewed
//! under a per-grant lock in each process and a lease written into the grant in the store, so
//! one call to the provider renews it for every replica; a token within 5 s of its expiry is not
//! handed out while another replica renews it, its callers wait for the new set instead; a
//! renewal the provider fails (not a refusal of the refresh token) keeps the grant and releases
//! the lease, so another caller may renew at once. Needs `redis-server`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mcpauth::AuthInfo;
use mcpauth::broker::{Broker, BrokerStore, RedisStore, UpstreamTokenError};
use mcpauth::dev::TokenFailure;
use mcpauth_tests::broker::{BrokerFixture, FixtureOptions, SCOPES, dev_upstream, fingerprint};
use redis_test_server::RedisServer;
use tokio::sync::Barrier;

/// The key prefix every broker of a test shares (one state).
const PREFIX: &str = "upstream-lease";
/// The provider's first token expires this soon after the sign-in: within the 5 s in which it
/// is no longer handed out while another replica renews it, so every caller gets the new set.
const NEAR_EXPIRY: Duration = Duration::from_secs(3);
/// How many callers ask at once, half of them at each broker.
const CALLERS: usize = 50;
/// What the provider's tokens live from the sign-in on: a renewed set is this long-lived.
const RENEWED_LIFETIME: Duration = Duration::from_secs(3600);

async fn store(redis: &RedisServer) -> Arc<dyn BrokerStore> {
    Arc::new(RedisStore::connect(&redis.url(), PREFIX).await.unwrap())
}

/// Another broker of the fixture's issuer on `redis`, with a connection of its own; the keys it
/// signs and seals with are the ones the first broker wrote to the store.
async fn replica(fixture: &BrokerFixture, redis: &RedisServer) -> Broker {
    Broker::builder(fixture.issuer.clone())
        .resource(fixture.resource.clone(), SCOPES)
        .upstream(dev_upstream(&fixture.upstream))
        .shared_store(store(redis).await)
        .build()
        .await
        .unwrap()
}

/// Broker A (the fixture, which serves the sign-in) and broker B on `redis`, and a user signed
/// in at A whose provider token expires within [`NEAR_EXPIRY`].
async fn two_brokers(redis: &RedisServer) -> (BrokerFixture, Broker, AuthInfo) {
    let fixture = BrokerFixture::start_with(FixtureOptions {
        store: store(redis).await,
        ..FixtureOptions::default()
    })
    .await;
    let b = replica(&fixture, redis).await;
    fixture.upstream.set_token_lifetime(NEAR_EXPIRY);
    let (_, tokens) = fixture.login("read:todos").await;
    fixture.upstream.set_token_lifetime(RENEWED_LIFETIME);
    let auth = fixture.auth_info(tokens["access_token"].as_str().unwrap());
    (fixture, b, auth)
}

/// Whether `expires_at` is a renewed set's (an hour away), not the first set's (seconds).
fn renewed(expires_at: Option<SystemTime>) -> bool {
    expires_at.is_some_and(|at| at > SystemTime::now() + RENEWED_LIFETIME / 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_callers_on_two_brokers_renew_once_and_all_get_the_set_the_store_keeps() {
    let redis = support::start_redis();
    let (fixture, b, auth) = two_brokers(&redis).await;
    let brokers = [fixture.broker.clone(), b];
    let calls = fixture.upstream.token_requests();

    // All start together, so both brokers read the near-expiry set before either has renewed.
    let start = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|n| {
            let broker = brokers[n % 2].clone();
            let auth = auth.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let token = broker.upstream_token(&auth).await?;
                Ok::<_, UpstreamTokenError>((
                    fingerprint(token.expose_secret()),
                    token.expires_at(),
                ))
            })
        })
        .collect();
    let mut handed_out = HashSet::new();
    for (n, caller) in callers.into_iter().enumerate() {
        let (token, expires_at) = caller
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("caller {n} (broker {}): {e:?}", ["A", "B"][n % 2]));
        assert!(renewed(expires_at), "caller {n} got the near-expiry token");
        handed_out.insert(token);
    }
    assert_eq!(
        fixture.upstream.token_requests() - calls,
        1,
        "one renewal across both brokers"
    );
    assert_eq!(handed_out.len(), 1, "every caller got the same token");

    // The store holds the new set: a third broker, with nothing of its own in memory, hands it
    // out without asking the provider.
    let c = replica(&fixture, &redis).await;
    let stored = c.upstream_token(&auth).await.unwrap();
    assert!(handed_out.contains(&fingerprint(stored.expose_secret())));
    assert!(renewed(stored.expires_at()));
    assert_eq!(fixture.upstream.token_requests() - calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_the_provider_fails_releases_the_lease_so_the_other_broker_renews_at_once() {
    let redis = support::start_redis();
    let (fixture, b, auth) = two_brokers(&redis).await;
    let calls = fixture.upstream.token_requests();

    // A takes the lease, the provider answers 500: a retryable error, the grant kept.
    fixture
        .upstream
        .fail_token_endpoint(Some(TokenFailure::ServerError));
    let failed = fixture.broker.upstream_token(&auth).await.unwrap_err();
    assert!(
        matches!(failed, UpstreamTokenError::Unavailable { .. }),
        "{failed:?}"
    );
    assert_eq!(fixture.upstream.token_requests() - calls, 1);
    fixture.upstream.fail_token_endpoint(None);

    // B renews at once. Had A kept its lease, B could neither renew nor hand out the
    // near-expiry token until the lease ran out, 30 s on.
    let started = Instant::now();
    let token = b.upstream_token(&auth).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "B waited {:?} for the lease",
        started.elapsed()
    );
    assert!(renewed(token.expires_at()));
    assert_eq!(fixture.upstream.token_requests() - calls, 2);

    // A hands out B's set, from the store.
    let seen = fixture.broker.upstream_token(&auth).await.unwrap();
    assert_eq!(
        fingerprint(seen.expose_secret()),
        fingerprint(token.expose_secret())
    );
    assert_eq!(fixture.upstream.token_requests() - calls, 2);
}
