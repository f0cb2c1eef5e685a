//! Where the broker keeps its state: one small trait of the operations its flows need, so the
//! same flows run on the embedded store, in memory (tests) or on a shared server.
//!
//! Values are opaque bytes the broker serialises itself; every write can carry a time to live,
//! and the single-use operations ([`take`](BrokerStore::take),
//! [`compare_and_swap`](BrokerStore::compare_and_swap)) are atomic, so two requests racing for
//! one authorization code or one refresh token see exactly one winner — across replicas too when
//! the store is shared.

mod fjall;
mod memory;
#[cfg(feature = "broker-redis")]
mod redis;
#[cfg(all(test, feature = "broker-redis"))]
mod redis_server;
#[cfg(test)]
mod tests;
mod timed;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use self::fjall::{Durability, FjallStore};
pub use self::memory::MemoryStore;
#[cfg(feature = "broker-redis")]
pub use self::redis::RedisStore;
pub(crate) use self::timed::TimedStore;

/// The future every store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A time to live in whole milliseconds, rounded up so a short one never expires early.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The kinds of record the broker keeps; each is a key space of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Namespace {
    /// Registered clients (dynamic registration), by client id.
    Client,
    /// Authorization requests waiting for consent, by transaction id.
    Transaction,
    /// Approved requests waiting for the identity provider's answer, by the upstream `state`.
    UpstreamLogin,
    /// One-time authorization codes, by the hash of the code.
    Code,
    /// Codes already redeemed, by the hash of the code (to revoke a grant when one is replayed).
    RedeemedCode,
    /// Grants (a user's authorization of a client for a resource), by grant id.
    Grant,
    /// Refresh tokens, by the hash of the token. The broker's refresh tokens name their grant,
    /// so it keeps no entries here; the namespace stays part of the stores' key formats.
    RefreshToken,
    /// Keys the broker generated for itself in development.
    Key,
}

impl Namespace {
    /// Every namespace, in a fixed order.
    pub const ALL: [Self; 8] = [
        Self::Client,
        Self::Transaction,
        Self::UpstreamLogin,
        Self::Code,
        Self::RedeemedCode,
        Self::Grant,
        Self::RefreshToken,
        Self::Key,
    ];

    /// A short stable name, usable as a key prefix or a table name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Transaction => "txn",
            Self::UpstreamLogin => "upstream",
            Self::Code => "code",
            Self::RedeemedCode => "redeemed",
            Self::Grant => "grant",
            Self::RefreshToken => "refresh",
            Self::Key => "key",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store could not do what was asked; the broker answers `503` with `Retry-After` (never a
/// token issued without its state written).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is unreachable or failed; trying again later may work.
    #[error("the broker's store is unavailable: {0}")]
    Unavailable(String),
    /// The stored data could not be read back (corrupt or written by an incompatible version).
    #[error("the broker's store holds unreadable data: {0}")]
    Corrupt(String),
}

/// A write that goes with another operation
/// ([`compare_and_swap_and_put`](BrokerStore::compare_and_swap_and_put)): `value` under `key`
/// in `namespace`, expiring after `ttl` (`None`: kept until deleted), as
/// [`put`](BrokerStore::put) writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Put<'a> {
    /// The namespace written.
    pub namespace: Namespace,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: Vec<u8>,
    /// Its time to live.
    pub ttl: Option<Duration>,
}

impl<'a> Put<'a> {
    /// `value` under `key` in `namespace`, expiring after `ttl`.
    pub fn new(namespace: Namespace, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> Self {
        Self {
            namespace,
            key,
            value,
            ttl,
        }
    }
}

/// One write of a batch ([`write_all`](BrokerStore::write_all)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Write<'a> {
    /// A [`put`](BrokerStore::put).
    Put(Put<'a>),
    /// An [`index_add`](BrokerStore::index_add): `member` added to the set named `index`.
    IndexAdd {
        /// The set's name.
        index: &'a str,
        /// The member added.
        member: &'a str,
    },
}

/// The operations the broker's flows need of a store.
///
/// Expired entries are never returned. `index_*` keep sets of strings (a user's or a client's
/// grants) so a revocation can find every grant it ends.
pub trait BrokerStore: Send + Sync + fmt::Debug + 'static {
    /// Writes `value` under `key`, replacing what was there; it expires after `ttl` (`None`:
    /// kept until deleted).
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;

    /// Writes `value` only when `key` holds nothing (or only an expired value); `true` when it
    /// was written.
    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// The value under `key`, if any.
    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Removes and returns the value under `key`, atomically: of concurrent takes of one key,
    /// exactly one gets the value.
    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Replaces the value under `key` with `new` (`None`: removes it) only when it is still
    /// byte-for-byte `expected`; `true` when replaced. The new value expires after `ttl`.
    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// [`compare_and_swap`](Self::compare_and_swap), and only when it swaps, `put` written
    /// too; `true` when both were written: a record changed only if it still holds what was
    /// read, with a companion record that must exist exactly when the change does.
    ///
    /// The default writes `put`, then compares and swaps, and removes `put`'s key again when
    /// the swap fails. A store that can write both in one transaction should do so: the pair is
    /// then atomic and costs one durable write instead of two.
    fn compare_and_swap_and_put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
        put: Put<'a>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let Put {
                namespace: put_namespace,
                key: put_key,
                value,
                ttl: put_ttl,
            } = put;
            self.put(put_namespace, put_key, value, put_ttl).await?;
            let swapped = self
                .compare_and_swap(namespace, key, expected, new, ttl)
                .await?;
            if !swapped {
                self.delete(put_namespace, put_key).await?;
            }
            Ok(swapped)
        })
    }

    /// Every write of `writes`, in order; a sign-in's grant, its indexes and its code are one
    /// of these.
    ///
    /// The default makes them one at a time. A store that can make them in one transaction
    /// should do so: they are then atomic and cost one durable write instead of one each.
    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            for write in writes {
                match write {
                    Write::Put(put) => self.put(put.namespace, put.key, put.value, put.ttl).await?,
                    Write::IndexAdd { index, member } => self.index_add(index, member).await?,
                }
            }
            Ok(())
        })
    }

    /// Removes the value under `key` (nothing when there is none).
    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()>;

    /// The number of live entries in a namespace (bounds such as the cap on registered clients).
    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64>;

    /// Adds `member` to the set named `index`.
    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()>;

    /// Removes `member` from the set named `index`.
    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()>;

    /// The members of the set named `index` (empty when there is none).
    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>>;
}
