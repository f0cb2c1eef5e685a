//! The in-memory store (tests; state is lost when the process ends).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{BrokerStore, Namespace, Put, StoreFuture, Write};

/// Expired entries removed for each entry a write adds, at most: removing more than are added
/// keeps the backlog of expired entries from growing while bounding the time any one write
/// holds the lock.
const PURGE_PER_WRITE: usize = 8;

/// A [`BrokerStore`] in process memory: for tests and single-process deployments that can lose
/// their state (registered clients, grants, refresh tokens) on restart.
///
/// Every operation runs under one lock and completes before its future is returned, so
/// [`take`](BrokerStore::take) and [`compare_and_swap`](BrokerStore::compare_and_swap) are
/// atomic within the process. Expired entries are never returned and are removed a few at a time
/// by later writes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Namespace, HashMap<String, Entry>>,
    /// Every entry that has an expiry, ordered by it, so the expired ones are found at the front
    /// without scanning the live ones.
    expiries: BTreeSet<(Instant, Namespace, String)>,
    indexes: HashMap<String, BTreeSet<String>>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation leaves the maps consistent before anything that could panic, and the
        // purge tolerates an expiry without its entry, so the state behind a poisoned lock is
        // still sound to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn index_add(&mut self, index: &str, member: &str) {
        self.indexes
            .entry(index.to_owned())
            .or_default()
            .insert(member.to_owned());
    }

    fn live(&self, namespace: Namespace, key: &str, now: Instant) -> Option<&Entry> {
        self.entries
            .get(&namespace)?
            .get(key)
            .filter(|entry| entry.is_live(now))
    }

    /// Writes `value` under `key`, keeping the expiry order in step.
    fn insert(
        &mut self,
        namespace: Namespace,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        now: Instant,
    ) {
        // A time to live too long to represent is as good as none.
        let expires_at = ttl.and_then(|ttl| now.checked_add(ttl));
        let entry = Entry { value, expires_at };
        let old = self
            .entries
            .entry(namespace)
            .or_default()
            .insert(key.to_owned(), entry);
        self.forget_expiry(namespace, key, old.as_ref());
        if let Some(at) = expires_at {
            self.expiries.insert((at, namespace, key.to_owned()));
        }
    }

    fn remove(&mut self, namespace: Namespace, key: &str) -> Option<Entry> {
        let old = self.entries.get_mut(&namespace)?.remove(key)?;
        self.forget_expiry(namespace, key, Some(&old));
        Some(old)
    }

    fn forget_expiry(&mut self, namespace: Namespace, key: &str, old: Option<&Entry>) {
        if let Some(at) = old.and_then(|entry| entry.expires_at) {
            self.expiries.remove(&(at, namespace, key.to_owned()));
        }
    }

    /// Removes up to `limit` expired entries, the longest expired first.
    fn purge(&mut self, now: Instant, limit: usize) {
        for _ in 0..limit {
            if self.expiries.first().is_none_or(|(at, _, _)| *at > now) {
                return;
            }
            let Some((at, namespace, key)) = self.expiries.pop_first() else {
                return;
            };
            if let Some(entries) = self.entries.get_mut(&namespace) {
                // Only the entry this expiry was recorded for: a key rewritten since has an
                // expiry of its own.
                if entries
                    .get(&key)
                    .is_some_and(|entry| entry.expires_at == Some(at))
                {
                    entries.remove(&key);
                }
            }
        }
    }

    fn count(&self, namespace: Namespace, now: Instant) -> u64 {
        let stored = self.entries.get(&namespace).map_or(0, HashMap::len);
        // Expired entries not purged yet are all at the front of the expiry order.
        let expired = self
            .expiries
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .filter(|(_, ns, _)| *ns == namespace)
            .count();
        u64::try_from(stored.saturating_sub(expired)).unwrap_or(u64::MAX)
    }
}

impl MemoryStore {
    /// A compare-and-swap, with `put` written too when it swaps, under one lock.
    fn swap(
        &self,
        namespace: Namespace,
        key: &str,
        expected: &[u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
        put: Option<Put<'_>>,
    ) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        let matches = inner
            .live(namespace, key, now)
            .is_some_and(|entry| entry.value == expected);
        if matches {
            match new {
                Some(value) => inner.insert(namespace, key, value, ttl, now),
                None => {
                    inner.remove(namespace, key);
                }
            }
            if let Some(put) = put {
                inner.insert(put.namespace, put.key, put.value, put.ttl, now);
            }
        }
        inner.purge(now, PURGE_PER_WRITE);
        matches
    }
}

impl BrokerStore for MemoryStore {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.insert(namespace, key, value, ttl, now);
        inner.purge(now, PURGE_PER_WRITE);
        Box::pin(std::future::ready(Ok(())))
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut inner = self.lock();
        let written = inner.live(namespace, key, now).is_none();
        if written {
            inner.insert(namespace, key, value, ttl, now);
        }
        inner.purge(now, PURGE_PER_WRITE);
        Box::pin(std::future::ready(Ok(written)))
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let now = Instant::now();
        let value = self
            .lock()
            .live(namespace, key, now)
            .map(|entry| entry.value.clone());
        Box::pin(std::future::ready(Ok(value)))
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let value = inner
            .remove(namespace, key)
            .filter(|entry| entry.is_live(now))
            .map(|entry| entry.value);
        inner.purge(now, PURGE_PER_WRITE);
        Box::pin(std::future::ready(Ok(value)))
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let swapped = self.swap(namespace, key, expected, new, ttl, None);
        Box::pin(std::future::ready(Ok(swapped)))
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
        let swapped = self.swap(namespace, key, expected, new, ttl, Some(put));
        Box::pin(std::future::ready(Ok(swapped)))
    }

    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut added = 0;
        for write in writes {
            match write {
                Write::Put(put) => {
                    inner.insert(put.namespace, put.key, put.value, put.ttl, now);
                    added += 1;
                }
                Write::IndexAdd { index, member } => inner.index_add(index, member),
            }
        }
        inner.purge(now, PURGE_PER_WRITE.saturating_mul(added));
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(namespace, key);
        inner.purge(now, PURGE_PER_WRITE);
        Box::pin(std::future::ready(Ok(())))
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        let now = Instant::now();
        let count = self.lock().count(namespace, now);
        Box::pin(std::future::ready(Ok(count)))
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.lock().index_add(index, member);
        Box::pin(std::future::ready(Ok(())))
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        if let Some(members) = inner.indexes.get_mut(index) {
            members.remove(member);
            // An emptied set is dropped so indexes of ended grants do not pile up.
            if members.is_empty() {
                inner.indexes.remove(index);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        let members = self
            .lock()
            .indexes
            .get(index)
            .map(|members| members.iter().cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(members)))
    }
}

#[cfg(test)]
impl MemoryStore {
    /// Entries held in `namespace`, expired ones not yet purged included.
    pub(super) fn stored_len(&self, namespace: Namespace) -> usize {
        self.lock().entries.get(&namespace).map_or(0, HashMap::len)
    }
}
