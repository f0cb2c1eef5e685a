//! One conformance suite, run against every store, and the checks particular to each.
//!
//! The checks take the store as `Arc<dyn BrokerStore>`, not `&dyn BrokerStore`: the concurrent
//! ones spawn tasks, which must own what they use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

#[cfg(feature = "broker-redis")]
use super::redis_server::{RedisServer, inspect, store_on};
use super::{BrokerStore, Durability, FjallStore, MemoryStore, Namespace, Put, StoreFuture, Write};

/// Long enough to outlive any check.
const LONG: Option<Duration> = Some(Duration::from_secs(60));
/// For entries only ever checked after they expired.
const SHORT: Option<Duration> = Some(Duration::from_millis(50));
/// Comfortably past [`SHORT`].
const PAST_SHORT: Duration = Duration::from_millis(150);
/// For entries checked both before and after they expire: the margin covers a few durable
/// writes on a slow, busy disk.
const MEDIUM: Option<Duration> = Some(Duration::from_millis(500));
/// Comfortably past [`MEDIUM`].
const PAST_MEDIUM: Duration = Duration::from_millis(700);

const RACERS: usize = 32;

fn bytes(value: &str) -> Vec<u8> {
    value.as_bytes().to_vec()
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let name = super::super::secrets::random_token(12).unwrap();
        Self(std::env::temp_dir().join(format!("mcpauth-store-{name}")))
    }

    /// A database path one directory down, so opening also has to create the directory.
    fn database(&self) -> PathBuf {
        self.0.join("state").join("broker")
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn put_get_replace(store: Arc<dyn BrokerStore>) {
    assert_eq!(store.get(Namespace::Client, "a").await.unwrap(), None);
    store
        .put(Namespace::Client, "a", bytes("one"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(Namespace::Client, "a").await.unwrap(),
        Some(bytes("one"))
    );
    store
        .put(Namespace::Client, "a", bytes("two"), LONG)
        .await
        .unwrap();
    assert_eq!(
        store.get(Namespace::Client, "a").await.unwrap(),
        Some(bytes("two"))
    );
    // An empty value is a value.
    store
        .put(Namespace::Client, "empty", Vec::new(), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(Namespace::Client, "empty").await.unwrap(),
        Some(Vec::new())
    );
}

async fn namespaces_are_separate(store: Arc<dyn BrokerStore>) {
    store
        .put(Namespace::Code, "k", bytes("code"), None)
        .await
        .unwrap();
    store
        .put(Namespace::Grant, "k", bytes("grant"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(Namespace::Code, "k").await.unwrap(),
        Some(bytes("code"))
    );
    assert_eq!(
        store.get(Namespace::Grant, "k").await.unwrap(),
        Some(bytes("grant"))
    );
    assert_eq!(store.get(Namespace::Client, "k").await.unwrap(), None);
    store.delete(Namespace::Code, "k").await.unwrap();
    assert_eq!(
        store.get(Namespace::Grant, "k").await.unwrap(),
        Some(bytes("grant"))
    );
}

async fn entries_expire(store: Arc<dyn BrokerStore>) {
    store
        .put(Namespace::Transaction, "short", bytes("s"), SHORT)
        .await
        .unwrap();
    store
        .put(Namespace::Transaction, "long", bytes("l"), LONG)
        .await
        .unwrap();
    store
        .put(Namespace::Transaction, "forever", bytes("f"), None)
        .await
        .unwrap();
    // Rewriting without a time to live keeps the value for good.
    store
        .put(Namespace::Transaction, "renewed", bytes("r"), SHORT)
        .await
        .unwrap();
    store
        .put(Namespace::Transaction, "renewed", bytes("r2"), None)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.get(Namespace::Transaction, "short").await.unwrap(),
        None
    );
    assert_eq!(
        store.get(Namespace::Transaction, "long").await.unwrap(),
        Some(bytes("l"))
    );
    assert_eq!(
        store.get(Namespace::Transaction, "forever").await.unwrap(),
        Some(bytes("f"))
    );
    assert_eq!(
        store.get(Namespace::Transaction, "renewed").await.unwrap(),
        Some(bytes("r2"))
    );
    // Nor do the single-use operations see an expired value.
    store
        .put(Namespace::Code, "short", bytes("s"), SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.take(Namespace::Code, "short").await.unwrap(), None);
    store
        .put(Namespace::Code, "short", bytes("s"), SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        !store
            .compare_and_swap(Namespace::Code, "short", b"s", Some(bytes("t")), None)
            .await
            .unwrap()
    );
    assert_eq!(store.get(Namespace::Code, "short").await.unwrap(), None);
}

async fn put_new_only_when_absent_or_expired(store: Arc<dyn BrokerStore>) {
    assert!(
        store
            .put_new(Namespace::Client, "c", bytes("first"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_new(Namespace::Client, "c", bytes("second"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(Namespace::Client, "c").await.unwrap(),
        Some(bytes("first"))
    );

    assert!(
        store
            .put_new(Namespace::UpstreamLogin, "s", bytes("old"), MEDIUM)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_new(Namespace::UpstreamLogin, "s", bytes("early"), None)
            .await
            .unwrap()
    );
    tokio::time::sleep(PAST_MEDIUM).await;
    assert!(
        store
            .put_new(Namespace::UpstreamLogin, "s", bytes("new"), LONG)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(Namespace::UpstreamLogin, "s").await.unwrap(),
        Some(bytes("new"))
    );
}

async fn take_returns_once(store: Arc<dyn BrokerStore>) {
    assert_eq!(store.take(Namespace::Code, "none").await.unwrap(), None);
    store
        .put(Namespace::Code, "x", bytes("code"), LONG)
        .await
        .unwrap();
    assert_eq!(
        store.take(Namespace::Code, "x").await.unwrap(),
        Some(bytes("code"))
    );
    assert_eq!(store.take(Namespace::Code, "x").await.unwrap(), None);
    assert_eq!(store.get(Namespace::Code, "x").await.unwrap(), None);
}

async fn concurrent_takes_have_one_winner(store: Arc<dyn BrokerStore>) {
    store
        .put(Namespace::Code, "race", bytes("code"), LONG)
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.take(Namespace::Code, "race").await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        if let Some(value) = racer.await.unwrap() {
            assert_eq!(value, bytes("code"));
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn compare_and_swap_needs_the_exact_bytes(store: Arc<dyn BrokerStore>) {
    let ns = Namespace::RefreshToken;
    // Nothing stored: nothing to match.
    assert!(
        !store
            .compare_and_swap(ns, "r", b"", Some(bytes("v")), None)
            .await
            .unwrap()
    );
    assert_eq!(store.get(ns, "r").await.unwrap(), None);

    store.put(ns, "r", bytes("v1"), LONG).await.unwrap();
    for wrong in [&b"v"[..], b"v12", b"V1", b""] {
        assert!(
            !store
                .compare_and_swap(ns, "r", wrong, Some(bytes("bad")), None)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.get(ns, "r").await.unwrap(), Some(bytes("v1")));

    assert!(
        store
            .compare_and_swap(ns, "r", b"v1", Some(bytes("v2")), MEDIUM)
            .await
            .unwrap()
    );
    assert_eq!(store.get(ns, "r").await.unwrap(), Some(bytes("v2")));
    // The old value no longer matches.
    assert!(
        !store
            .compare_and_swap(ns, "r", b"v1", Some(bytes("v3")), None)
            .await
            .unwrap()
    );
    // The swapped value took the new time to live.
    tokio::time::sleep(PAST_MEDIUM).await;
    assert_eq!(store.get(ns, "r").await.unwrap(), None);

    store.put(ns, "d", bytes("gone"), None).await.unwrap();
    assert!(
        store
            .compare_and_swap(ns, "d", b"gone", None, None)
            .await
            .unwrap()
    );
    assert_eq!(store.get(ns, "d").await.unwrap(), None);
    assert!(
        !store
            .compare_and_swap(ns, "d", b"gone", None, None)
            .await
            .unwrap()
    );
}

async fn concurrent_swaps_have_one_winner(store: Arc<dyn BrokerStore>) {
    let ns = Namespace::RefreshToken;
    store.put(ns, "rotate", bytes("v0"), LONG).await.unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|racer| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let new = bytes(&format!("v{}", racer + 1));
                let swapped = store
                    .compare_and_swap(ns, "rotate", b"v0", Some(new.clone()), LONG)
                    .await
                    .unwrap();
                swapped.then_some(new)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get(ns, "rotate").await.unwrap(), winners.pop());
}

async fn swap_and_put_write_both_or_neither(store: Arc<dyn BrokerStore>) {
    let (grants, records) = (Namespace::Grant, Namespace::RefreshToken);
    store.put(grants, "g", bytes("v0"), LONG).await.unwrap();
    // A stale expectation writes neither.
    let put = Put::new(records, "r0", bytes("rec0"), LONG);
    assert!(
        !store
            .compare_and_swap_and_put(grants, "g", b"old", Some(bytes("v1")), LONG, put)
            .await
            .unwrap()
    );
    assert_eq!(store.get(grants, "g").await.unwrap(), Some(bytes("v0")));
    assert_eq!(store.get(records, "r0").await.unwrap(), None);
    // The current one writes both, each with its own time to live.
    let put = Put::new(records, "r1", bytes("rec1"), SHORT);
    assert!(
        store
            .compare_and_swap_and_put(grants, "g", b"v0", Some(bytes("v1")), LONG, put)
            .await
            .unwrap()
    );
    assert_eq!(store.get(grants, "g").await.unwrap(), Some(bytes("v1")));
    assert_eq!(store.get(records, "r1").await.unwrap(), Some(bytes("rec1")));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get(records, "r1").await.unwrap(), None);
    assert_eq!(store.get(grants, "g").await.unwrap(), Some(bytes("v1")));
    // A swap to nothing removes the compared value and still writes the other.
    let put = Put::new(records, "r2", bytes("rec2"), None);
    assert!(
        store
            .compare_and_swap_and_put(grants, "g", b"v1", None, None, put)
            .await
            .unwrap()
    );
    assert_eq!(store.get(grants, "g").await.unwrap(), None);
    assert_eq!(store.get(records, "r2").await.unwrap(), Some(bytes("rec2")));
}

async fn concurrent_swaps_and_puts_have_one_winner(store: Arc<dyn BrokerStore>) {
    let (grants, records) = (Namespace::Grant, Namespace::RefreshToken);
    store.put(grants, "g", bytes("v0"), LONG).await.unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|racer| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let key = format!("r{racer}");
                let put = Put::new(records, &key, bytes("rec"), LONG);
                let swapped = store
                    .compare_and_swap_and_put(grants, "g", b"v0", Some(bytes(&key)), LONG, put)
                    .await
                    .unwrap();
                swapped.then_some(key)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
    let winner = winners.pop().unwrap();
    assert_eq!(store.get(grants, "g").await.unwrap(), Some(bytes(&winner)));
    for racer in 0..RACERS {
        let key = format!("r{racer}");
        let expected = (key == winner).then(|| bytes("rec"));
        assert_eq!(store.get(records, &key).await.unwrap(), expected, "{key}");
    }
}

async fn write_all_writes_each(store: Arc<dyn BrokerStore>) {
    store
        .put(Namespace::Grant, "g", bytes("old"), None)
        .await
        .unwrap();
    store.index_add("user:1", "g0").await.unwrap();
    store
        .write_all(vec![
            Write::Put(Put::new(Namespace::Grant, "g", bytes("new"), SHORT)),
            Write::IndexAdd {
                index: "user:1",
                member: "g",
            },
            Write::IndexAdd {
                index: "user:1",
                member: "g0",
            },
            Write::Put(Put::new(Namespace::Code, "c", bytes("code"), LONG)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(Namespace::Grant, "g").await.unwrap(),
        Some(bytes("new"))
    );
    assert_eq!(
        store.get(Namespace::Code, "c").await.unwrap(),
        Some(bytes("code"))
    );
    let mut members = store.index_members("user:1").await.unwrap();
    members.sort();
    assert_eq!(members, ["g", "g0"]);
    // Each put keeps its own time to live.
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get(Namespace::Grant, "g").await.unwrap(), None);
    assert_eq!(
        store.get(Namespace::Code, "c").await.unwrap(),
        Some(bytes("code"))
    );
    // An empty batch writes nothing.
    store.write_all(Vec::new()).await.unwrap();
}

async fn delete_removes(store: Arc<dyn BrokerStore>) {
    store.delete(Namespace::Grant, "none").await.unwrap();
    store
        .put(Namespace::Grant, "g", bytes("grant"), LONG)
        .await
        .unwrap();
    store.delete(Namespace::Grant, "g").await.unwrap();
    assert_eq!(store.get(Namespace::Grant, "g").await.unwrap(), None);
    assert_eq!(store.count(Namespace::Grant).await.unwrap(), 0);
    // A deleted key can be created anew.
    assert!(
        store
            .put_new(Namespace::Grant, "g", bytes("again"), None)
            .await
            .unwrap()
    );
}

async fn count_ignores_expired(store: Arc<dyn BrokerStore>) {
    assert_eq!(store.count(Namespace::Client).await.unwrap(), 0);
    for key in ["a", "b", "c"] {
        store
            .put(Namespace::Client, key, bytes(key), None)
            .await
            .unwrap();
    }
    store
        .put(Namespace::Client, "d", bytes("d"), LONG)
        .await
        .unwrap();
    store
        .put(Namespace::Client, "e", bytes("e"), MEDIUM)
        .await
        .unwrap();
    store
        .put(Namespace::Client, "f", bytes("f"), MEDIUM)
        .await
        .unwrap();
    // Replacing a key does not count it twice.
    store
        .put(Namespace::Client, "a", bytes("a2"), None)
        .await
        .unwrap();
    store
        .put(Namespace::Code, "other", bytes("x"), MEDIUM)
        .await
        .unwrap();
    assert_eq!(store.count(Namespace::Client).await.unwrap(), 6);
    assert_eq!(store.count(Namespace::Code).await.unwrap(), 1);
    tokio::time::sleep(PAST_MEDIUM).await;
    assert_eq!(store.count(Namespace::Client).await.unwrap(), 4);
    assert_eq!(store.count(Namespace::Code).await.unwrap(), 0);
    store.delete(Namespace::Client, "b").await.unwrap();
    assert_eq!(store.count(Namespace::Client).await.unwrap(), 3);
}

async fn indexes_hold_sets(store: Arc<dyn BrokerStore>) {
    assert!(store.index_members("user:1").await.unwrap().is_empty());
    store.index_add("user:1", "g2").await.unwrap();
    store.index_add("user:1", "g1").await.unwrap();
    store.index_add("user:1", "g2").await.unwrap();
    store.index_add("client:9", "g1").await.unwrap();
    let mut members = store.index_members("user:1").await.unwrap();
    members.sort();
    assert_eq!(members, ["g1", "g2"]);
    assert_eq!(store.index_members("client:9").await.unwrap(), ["g1"]);

    store.index_remove("user:1", "g2").await.unwrap();
    store.index_remove("user:1", "missing").await.unwrap();
    store.index_remove("nobody", "g1").await.unwrap();
    assert_eq!(store.index_members("user:1").await.unwrap(), ["g1"]);
    store.index_remove("user:1", "g1").await.unwrap();
    assert!(store.index_members("user:1").await.unwrap().is_empty());
    assert_eq!(store.index_members("client:9").await.unwrap(), ["g1"]);
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::$check(Arc::new(MemoryStore::new())).await;
                }
            )*
        }

        mod fjall {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let dir = TempDir::new();
                    let store = FjallStore::open(dir.database()).unwrap();
                    super::$check(Arc::new(store)).await;
                }
            )*
        }

        mod fjall_every_write {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let dir = TempDir::new();
                    let store =
                        FjallStore::open_with(dir.database(), Durability::EveryWrite).unwrap();
                    super::$check(Arc::new(store)).await;
                }
            )*
        }

        #[cfg(feature = "broker-redis")]
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let server = RedisServer::start();
                    let store = store_on(&server, "conformance").await;
                    super::$check(Arc::new(store)).await;
                }
            )*
        }

        /// The trait's default methods, over the in-memory store's required ones.
        mod defaults {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::$check(Arc::new(RequiredOnly(MemoryStore::new()))).await;
                }
            )*
        }
    };
}

/// A store that implements only the required methods (by the in-memory store's), so the
/// default methods are what runs.
#[derive(Debug)]
struct RequiredOnly(MemoryStore);

impl BrokerStore for RequiredOnly {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.0.put(namespace, key, value, ttl)
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.0.put_new(namespace, key, value, ttl)
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.0.get(namespace, key)
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.0.take(namespace, key)
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.0.compare_and_swap(namespace, key, expected, new, ttl)
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        self.0.delete(namespace, key)
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        self.0.count(namespace)
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.0.index_add(index, member)
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.0.index_remove(index, member)
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        self.0.index_members(index)
    }
}

conformance!(
    put_get_replace,
    namespaces_are_separate,
    entries_expire,
    put_new_only_when_absent_or_expired,
    take_returns_once,
    concurrent_takes_have_one_winner,
    compare_and_swap_needs_the_exact_bytes,
    concurrent_swaps_have_one_winner,
    swap_and_put_write_both_or_neither,
    concurrent_swaps_and_puts_have_one_winner,
    write_all_writes_each,
    delete_removes,
    count_ignores_expired,
    indexes_hold_sets,
);

#[tokio::test]
async fn memory_writes_purge_expired_entries() {
    let store = MemoryStore::new();
    for i in 0..5 {
        store
            .put(Namespace::Code, &format!("k{i}"), bytes("v"), MEDIUM)
            .await
            .unwrap();
    }
    tokio::time::sleep(PAST_MEDIUM).await;
    assert_eq!(store.stored_len(Namespace::Code), 5);
    // One write in any namespace removes a bounded batch of expired entries anywhere.
    store
        .put(Namespace::Client, "trigger", bytes("v"), None)
        .await
        .unwrap();
    assert_eq!(store.stored_len(Namespace::Code), 0);
}

/// A deferred store syncs the writes that end a grant (or write a key) before they return,
/// and leaves the others, a code's redemption among them, to its interval (an hour here, so
/// none comes from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_deferred_syncs_what_ends_a_grant_at_once() {
    let dir = TempDir::new();
    let store = FjallStore::open_with(
        dir.database(),
        Durability::Deferred(Duration::from_secs(3600)),
    )
    .unwrap();
    assert_eq!(
        store.durability(),
        Durability::Deferred(Duration::from_secs(3600))
    );
    let (at_open, _) = store.syncs();
    for namespace in [Namespace::Grant, Namespace::Code, Namespace::Client] {
        store.put(namespace, "k", bytes("v"), None).await.unwrap();
    }
    store
        .compare_and_swap(Namespace::Grant, "k", b"v", Some(bytes("w")), None)
        .await
        .unwrap();
    assert_eq!(
        store.take(Namespace::Client, "k").await.unwrap(),
        Some(bytes("v"))
    );
    // Nothing removed: nothing ended.
    assert_eq!(store.take(Namespace::Grant, "absent").await.unwrap(), None);
    // A code's redemption: bounded by the code's lifetime and its PKCE verifier, not synced.
    let redeemed = Put::new(Namespace::RedeemedCode, "k", bytes("r"), None);
    assert!(
        store
            .compare_and_swap_and_put(Namespace::Code, "k", b"v", None, None, redeemed)
            .await
            .unwrap()
    );
    assert_eq!(store.get(Namespace::Code, "k").await.unwrap(), None);
    assert_eq!(store.syncs(), (at_open, true), "written, none synced");

    // A revocation.
    assert_eq!(
        store.take(Namespace::Grant, "k").await.unwrap(),
        Some(bytes("w"))
    );
    assert_eq!(store.syncs(), (at_open + 1, false));
    // A key.
    assert!(
        store
            .put_new(Namespace::Key, "signing", bytes("key"), None)
            .await
            .unwrap()
    );
    assert_eq!(store.syncs(), (at_open + 2, false));
}

/// A deferred write is synced within the store's interval, and what waits for a sync when the
/// store closes is synced then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_deferred_syncs_within_its_interval_and_when_closed() {
    let dir = TempDir::new();
    let store = FjallStore::open_with(
        dir.database(),
        Durability::Deferred(Duration::from_millis(20)),
    )
    .unwrap();
    let (at_open, _) = store.syncs();
    store
        .put(Namespace::Client, "a", bytes("a"), None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.syncs() != (at_open + 1, false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sync after the interval: {:?}",
            store.syncs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nothing written since: the interval passes without a sync.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.syncs(), (at_open + 1, false));
    drop(store);

    let store = FjallStore::open_with(
        dir.database(),
        Durability::Deferred(Duration::from_secs(3600)),
    )
    .unwrap();
    let (at_open, _) = store.syncs();
    store
        .put(Namespace::Client, "b", bytes("b"), None)
        .await
        .unwrap();
    assert_eq!(store.syncs(), (at_open, true));
    assert_eq!(store.close_and_count_syncs(), (at_open + 1, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_survives_a_restart() {
    let dir = TempDir::new();
    {
        let store = FjallStore::open(dir.database()).unwrap();
        store
            .put(Namespace::Client, "kept", bytes("client"), None)
            .await
            .unwrap();
        store
            .put(Namespace::RefreshToken, "long", bytes("token"), LONG)
            .await
            .unwrap();
        store.index_add("user:1", "g2").await.unwrap();
        store.index_add("user:1", "g1").await.unwrap();
        // The last write, so nothing purges it before the store closes.
        store
            .put(Namespace::Code, "short", bytes("code"), SHORT)
            .await
            .unwrap();
        assert_eq!(store.stored_rows(Namespace::Code).unwrap(), (1, 2));
    }
    // The time to live of "short" runs out while the store is closed.
    tokio::time::sleep(PAST_SHORT).await;

    let store = FjallStore::open(dir.database()).unwrap();
    assert!(dir.database().starts_with(dir.path()));
    assert_eq!(store.path(), dir.database());
    assert_eq!(
        store.get(Namespace::Client, "kept").await.unwrap(),
        Some(bytes("client"))
    );
    assert_eq!(
        store.get(Namespace::RefreshToken, "long").await.unwrap(),
        Some(bytes("token"))
    );
    assert_eq!(store.get(Namespace::Code, "short").await.unwrap(), None);
    assert_eq!(store.index_members("user:1").await.unwrap(), ["g1", "g2"]);
    // The counts are taken again at open.
    assert_eq!(store.count(Namespace::Client).await.unwrap(), 1);
    assert_eq!(store.count(Namespace::RefreshToken).await.unwrap(), 1);
    assert_eq!(store.count(Namespace::Code).await.unwrap(), 0);
    // Opening purged the entry that expired while closed; the long one keeps its expiry row.
    assert_eq!(store.stored_rows(Namespace::Code).unwrap(), (0, 1));
    assert_eq!(store.stored_rows(Namespace::RefreshToken).unwrap(), (1, 1));

    // The time to live restored is the absolute one written before the restart.
    let written = tokio::time::Instant::now();
    store
        .put(Namespace::Transaction, "t", bytes("t"), MEDIUM)
        .await
        .unwrap();
    drop(store);
    let store = FjallStore::open(dir.database()).unwrap();
    assert_eq!(
        store.get(Namespace::Transaction, "t").await.unwrap(),
        Some(bytes("t"))
    );
    tokio::time::sleep_until(written + PAST_MEDIUM).await;
    assert_eq!(store.get(Namespace::Transaction, "t").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_writes_purge_expired_rows() {
    let dir = TempDir::new();
    let store = FjallStore::open(dir.database()).unwrap();
    for i in 0..5 {
        store
            .put(Namespace::Code, &format!("k{i}"), bytes("v"), MEDIUM)
            .await
            .unwrap();
    }
    store
        .put(Namespace::Code, "live", bytes("v"), LONG)
        .await
        .unwrap();
    tokio::time::sleep(PAST_MEDIUM).await;
    // Expired rows are still in the file, but neither read nor counted.
    assert_eq!(store.stored_rows(Namespace::Code).unwrap(), (6, 6));
    assert_eq!(store.count(Namespace::Code).await.unwrap(), 1);
    // One write in any namespace removes a bounded batch of expired entries anywhere, with
    // their expiry rows.
    store
        .put(Namespace::Client, "trigger", bytes("v"), None)
        .await
        .unwrap();
    assert_eq!(store.stored_rows(Namespace::Code).unwrap(), (1, 1));
    assert_eq!(store.count(Namespace::Code).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_directory_is_locked_while_open() {
    let dir = TempDir::new();
    let store = FjallStore::open(dir.database()).unwrap();
    assert!(matches!(
        FjallStore::open(dir.database()),
        Err(super::StoreError::Unavailable(_))
    ));
    drop(store);
    FjallStore::open(dir.database()).unwrap();
}

#[test]
fn fjall_refuses_a_file_and_a_directory_it_cannot_read() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    assert!(matches!(
        FjallStore::open(&file),
        Err(super::StoreError::Unavailable(_))
    ));
    // A directory whose version marker is not one this version writes.
    let unreadable = dir.path().join("unreadable");
    std::fs::create_dir_all(&unreadable).unwrap();
    std::fs::write(
        unreadable.join("version"),
        b"definitely not a fjall version marker",
    )
    .unwrap();
    assert!(matches!(
        FjallStore::open(&unreadable),
        Err(super::StoreError::Corrupt(_))
    ));
}

#[cfg(feature = "broker-redis")]
mod redis_only {
    use std::time::{Duration, Instant};

    use super::super::{RedisStore, StoreError};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_follow_the_documented_layout_and_prefixes_keep_stores_apart() {
        let server = RedisServer::start();
        let store = store_on(&server, "app").await;
        let other = store_on(&server, "other").await;
        store
            .put(Namespace::Client, "c1", bytes("one"), None)
            .await
            .unwrap();
        store
            .put(Namespace::Code, "h", bytes("code"), LONG)
            .await
            .unwrap();
        store.index_add("user:1", "g1").await.unwrap();
        assert_eq!(store.prefix(), "app");
        let mut keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("*")
            .query(&mut inspect(&server))
            .unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                "app:client:c1",
                "app:code:h",
                "app:expiry:client",
                "app:expiry:code",
                "app:index:user:1"
            ]
        );
        // The time to live is Redis's own.
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg("app:code:h")
            .query(&mut inspect(&server))
            .unwrap();
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
        let persistent: i64 = ::redis::cmd("PTTL")
            .arg("app:client:c1")
            .query(&mut inspect(&server))
            .unwrap();
        assert_eq!(persistent, -1);

        // Another prefix sees none of it.
        assert_eq!(other.get(Namespace::Client, "c1").await.unwrap(), None);
        assert_eq!(other.count(Namespace::Client).await.unwrap(), 0);
        assert!(other.index_members("user:1").await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_drop_expired_entries_from_the_count_set() {
        let server = RedisServer::start();
        let store = store_on(&server, "purge").await;
        for i in 0..5 {
            store
                .put(Namespace::Code, &format!("k{i}"), bytes("v"), SHORT)
                .await
                .unwrap();
        }
        store
            .put(Namespace::Code, "live", bytes("v"), LONG)
            .await
            .unwrap();
        let cardinality = || -> u64 {
            ::redis::cmd("ZCARD")
                .arg("purge:expiry:code")
                .query(&mut inspect(&server))
                .unwrap()
        };
        assert_eq!(cardinality(), 6);
        tokio::time::sleep(PAST_SHORT).await;
        // Redis dropped the values; their entries wait for the next write of the namespace.
        assert_eq!(cardinality(), 6);
        store.delete(Namespace::Code, "none").await.unwrap();
        store
            .put(Namespace::Code, "trigger", bytes("v"), None)
            .await
            .unwrap();
        assert_eq!(cardinality(), 2);
        assert_eq!(store.count(Namespace::Code).await.unwrap(), 2);
        // Taking and deleting remove the entry with the value.
        assert!(store.take(Namespace::Code, "live").await.unwrap().is_some());
        store.delete(Namespace::Code, "trigger").await.unwrap();
        assert_eq!(cardinality(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn credentials_and_database_come_from_the_url() {
        let server = RedisServer::start_with(&[
            "--user", "default", "off", "--user", "broker", "on", ">s3cret", "~*", "&*", "+@all",
        ]);
        let port = server.url().rsplit(':').next().unwrap().to_owned();
        let url = format!("redis://broker:s3cret@127.0.0.1:{port}/3");
        let store = RedisStore::connect(&url, "auth").await.unwrap();
        store
            .put(Namespace::Grant, "g", bytes("grant"), None)
            .await
            .unwrap();
        assert_eq!(
            store.get(Namespace::Grant, "g").await.unwrap(),
            Some(bytes("grant"))
        );
        // Database 3 it was: database 0 does not hold the grant.
        let other =
            RedisStore::connect(&format!("redis://broker:s3cret@127.0.0.1:{port}/0"), "auth")
                .await
                .unwrap();
        assert_eq!(other.get(Namespace::Grant, "g").await.unwrap(), None);
        let wrong = format!("redis://broker:wrong@127.0.0.1:{port}/3");
        let refused = RedisStore::connect(&wrong, "auth").await.unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused}");
        // The password is never shown.
        assert!(!format!("{store:?}").contains("s3cret"));
        assert!(!refused.to_string().contains("wrong"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_url_is_accepted_and_a_failed_handshake_is_unavailable() {
        // A plain server does not speak TLS: the handshake fails, as an error, not a panic.
        let server = RedisServer::start();
        let port = server.url().rsplit(':').next().unwrap().to_owned();
        let error = RedisStore::connect(&format!("rediss://127.0.0.1:{port}"), "tls")
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        // The URL was taken: what failed is the connection, not the `rediss` scheme.
        assert!(
            error.to_string().contains("cannot connect to Redis"),
            "{error}"
        );
        let error = RedisStore::connect("http://127.0.0.1:1", "bad")
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    }

    /// Asserts every operation fails as unavailable, each within its time limit (and a margin
    /// for a busy machine).
    async fn all_unavailable(store: &RedisStore, limit: Duration) {
        let bound = limit + Duration::from_millis(700);
        let timed = |result: Option<StoreError>, started: Instant, name: &str| {
            let elapsed = started.elapsed();
            assert!(
                matches!(result, Some(StoreError::Unavailable(_))),
                "{name}: {result:?}"
            );
            assert!(elapsed < bound, "{name} took {elapsed:?}");
        };
        let t = Instant::now();
        let result = store.put(Namespace::Code, "k", bytes("v"), LONG).await;
        timed(result.err(), t, "put");
        let t = Instant::now();
        let result = store.put_new(Namespace::Code, "k", bytes("v"), LONG).await;
        timed(result.err(), t, "put_new");
        let t = Instant::now();
        timed(store.get(Namespace::Code, "k").await.err(), t, "get");
        let t = Instant::now();
        timed(store.take(Namespace::Code, "k").await.err(), t, "take");
        let t = Instant::now();
        let result = store
            .compare_and_swap(Namespace::Code, "k", b"v", None, None)
            .await;
        timed(result.err(), t, "compare_and_swap");
        let t = Instant::now();
        let put = Put::new(Namespace::Code, "p", bytes("v"), LONG);
        let result = store
            .compare_and_swap_and_put(Namespace::Code, "k", b"v", None, None, put)
            .await;
        timed(result.err(), t, "compare_and_swap_and_put");
        let t = Instant::now();
        let writes = vec![Write::IndexAdd {
            index: "i",
            member: "m",
        }];
        timed(store.write_all(writes).await.err(), t, "write_all");
        let t = Instant::now();
        timed(store.delete(Namespace::Code, "k").await.err(), t, "delete");
        let t = Instant::now();
        timed(store.count(Namespace::Code).await.err(), t, "count");
        let t = Instant::now();
        timed(store.index_add("i", "m").await.err(), t, "index_add");
        let t = Instant::now();
        timed(store.index_remove("i", "m").await.err(), t, "index_remove");
        let t = Instant::now();
        timed(store.index_members("i").await.err(), t, "index_members");
    }

    /// Retries `get` until it succeeds (the connection comes back by itself), within 10 s.
    async fn until_available(store: &RedisStore) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store.get(Namespace::Client, "kept").await {
                Ok(_) => return,
                Err(error) => assert!(Instant::now() < deadline, "still unavailable: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_is_unavailable_and_the_store_resumes_by_itself() {
        let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
        let timeout = Duration::from_millis(500);
        let store = store_on(&server, "down").await.timeout(timeout);
        store
            .put(Namespace::Client, "kept", bytes("client"), None)
            .await
            .unwrap();
        server.stop();
        all_unavailable(&store, timeout).await;
        server.restart();
        // The first request after the server is back is served: it finds the connection
        // refused or broken, and is sent again on the one the manager opens meanwhile.
        assert_eq!(
            store.count(Namespace::Client).await.unwrap(),
            1,
            "the first request after the restart"
        );
        // The data persisted (append-only file), and every operation works again.
        assert_eq!(
            store.get(Namespace::Client, "kept").await.unwrap(),
            Some(bytes("client"))
        );
        assert_eq!(store.count(Namespace::Client).await.unwrap(), 1);
        store
            .put(Namespace::Code, "k", bytes("v"), LONG)
            .await
            .unwrap();
        assert_eq!(
            store.take(Namespace::Code, "k").await.unwrap(),
            Some(bytes("v"))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_restarted_between_two_requests_serves_the_next_one() {
        let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
        let store = store_on(&server, "restart").await;
        store
            .put(Namespace::Client, "kept", bytes("client"), None)
            .await
            .unwrap();
        store
            .put(Namespace::Code, "c", bytes("code"), LONG)
            .await
            .unwrap();
        server.restart();
        // The connection closed while idle; the next request, even one never sent twice, is
        // served on the new connection.
        assert_eq!(
            store.take(Namespace::Code, "c").await.unwrap(),
            Some(bytes("code"))
        );
        server.restart();
        assert_eq!(
            store.get(Namespace::Client, "kept").await.unwrap(),
            Some(bytes("client"))
        );
        assert_eq!(store.take(Namespace::Code, "c").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_server_fails_each_operation_in_time_and_the_store_resumes() {
        let server = RedisServer::start();
        let timeout = Duration::from_millis(300);
        let store = store_on(&server, "hung").await.timeout(timeout);
        store
            .put(Namespace::Client, "kept", bytes("client"), None)
            .await
            .unwrap();
        server.signal("STOP");
        // Enough operations in a row to make the store replace its connection too.
        all_unavailable(&store, timeout).await;
        server.signal("CONT");
        until_available(&store).await;
        assert_eq!(
            store.get(Namespace::Client, "kept").await.unwrap(),
            Some(bytes("client"))
        );
        assert!(
            store
                .put_new(Namespace::Client, "new", bytes("v"), None)
                .await
                .unwrap()
        );
    }
}
