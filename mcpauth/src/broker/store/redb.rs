//! The embedded durable store, on `redb`.
//!
//! # Layout
//!
//! - One table per namespace, `entries/<namespace>`, from key to `(expires_at, value)`, where
//!   `expires_at` is the absolute expiry in unix milliseconds (`0`: none) so a time to live
//!   survives a restart. A table of its own per namespace (rather than one table keyed by
//!   `(namespace, key)`) makes [`count`](BrokerStore::count) a constant-time table length
//!   instead of a range scan, and keeps each key space's B-tree small.
//! - `expiry`, keyed by `(expires_at, namespace, key)`, one row per entry that has an expiry:
//!   the expired entries are the first rows, so a purge finds them without scanning the live
//!   ones, and `count` subtracts the expired rows not purged yet by reading only those.
//! - `index`, a multimap table from an index name to its members (a set per key, so a member
//!   added twice is kept once).
//!
//! # Purge
//!
//! Opening the store purges every expired entry; after that each write transaction also
//! removes up to [`PURGE_PER_WRITE`] of them. A write adds at most one row with an expiry and
//! removes up to several, so expired rows never pile up under load, and the work added to any
//! one write stays bounded.
//!
//! # Durability
//!
//! Every write is one write transaction committed with [`Durability::Immediate`]: once a write
//! returns, its effect survives a crash or restart. A compare-and-swap with its companion write
//! ([`compare_and_swap_and_put`](BrokerStore::compare_and_swap_and_put)) is one transaction, and
//! so is a batch ([`write_all`](BrokerStore::write_all)). A write that changed nothing (a `take`
//! of a missing key, a failed compare-and-swap) is aborted instead, which costs no `fsync`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, MultimapTableDefinition, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, TableError, WriteTransaction,
};

use super::{BrokerStore, Namespace, Put, StoreError, StoreFuture, Write};

/// A namespace's table: key → (absolute expiry in unix milliseconds, `0` for none; value).
type EntryTable<'n> = TableDefinition<'n, &'static str, (u64, &'static [u8])>;

/// Entries with an expiry, by `(expires_at, namespace, key)`.
const EXPIRY: TableDefinition<'static, (u64, &'static str, &'static str), ()> =
    TableDefinition::new("expiry");

/// Index name → its members.
const INDEX: MultimapTableDefinition<'static, &'static str, &'static str> =
    MultimapTableDefinition::new("index");

/// Expired entries removed by each write transaction, at most.
const PURGE_PER_WRITE: usize = 16;

/// Expired entries removed by each transaction of the purge at open.
const PURGE_AT_OPEN: usize = 4096;

/// The bytes of the file `redb` keeps in process memory (its default, 1 GiB, would let the
/// process grow with the file: every refresh token is kept until it expires, a month by
/// default). Past this the operating system's page cache serves the reads.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// A [`BrokerStore`] in a `redb` database file: durable, embedded, for a single process (the
/// file is locked while open).
///
/// Cloning is cheap and shares the open database, whose in-process page cache is bounded (8 MiB;
/// the operating system caches the rest of the file). Each operation runs on Tokio's blocking
/// pool, so it needs a Tokio runtime; an operation whose future is dropped still runs to
/// completion (a dropped `take` still removes its value, which errs on the side of single use).
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: Arc<Path>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating it (and any missing parent directory) when it
    /// does not exist, and removes the entries that expired while it was closed.
    ///
    /// This blocks on file I/O: call it at startup, or from
    /// [`spawn_blocking`](tokio::task::spawn_blocking).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be created, opened or locked (another
    /// process has it open); [`StoreError::Corrupt`] when it is not a database this version can
    /// read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!(
                    "cannot create the directory of {}: {error}",
                    parent.display()
                ))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db_error)?;
        create_tables(&db)?;
        // Expired rows left from the last run are cleared now rather than a few per write.
        while purge_once(&db, PURGE_AT_OPEN)? == PURGE_AT_OPEN {}
        Ok(Self {
            db: Arc::new(db),
            path: Arc::from(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A compare-and-swap, with `put` written too when it swaps, in one transaction.
    fn swap<'a>(
        &self,
        namespace: Namespace,
        key: &str,
        expected: &[u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
        put: Option<Put<'_>>,
    ) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        let expected = expected.to_vec();
        let put = put.map(|put| (put.namespace, put.key.to_owned(), put.value, put.ttl));
        self.run(move |db| {
            write(db, |txn, now| {
                if read_live(txn, namespace, &key, now)?.as_deref() != Some(expected.as_slice()) {
                    return Ok((false, false));
                }
                match &new {
                    Some(value) => insert(txn, namespace, &key, value, expiry(now, ttl))?,
                    None => {
                        remove(txn, namespace, &key)?;
                    }
                }
                if let Some((put_namespace, put_key, put_value, put_ttl)) = &put {
                    insert(
                        txn,
                        *put_namespace,
                        put_key,
                        put_value,
                        expiry(now, *put_ttl),
                    )?;
                }
                Ok((true, true))
            })
        })
    }

    /// Runs `operation` on the blocking pool; redb's calls block on file I/O and `fsync`.
    fn run<'a, T, F>(&self, operation: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || operation(&db))
                .await
                .map_err(|error| {
                    StoreError::Unavailable(format!("a store operation did not complete: {error}"))
                })?
        })
    }
}

impl BrokerStore for RedbStore {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.run(move |db| {
            write(db, |txn, now| {
                insert(txn, namespace, &key, &value, expiry(now, ttl))?;
                Ok(((), true))
            })
        })
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        self.run(move |db| {
            write(db, |txn, now| {
                if read_live(txn, namespace, &key, now)?.is_some() {
                    return Ok((false, false));
                }
                insert(txn, namespace, &key, &value, expiry(now, ttl))?;
                Ok((true, true))
            })
        })
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let Some(table) = open_read(&txn, entries_definition(&table_name(namespace)))? else {
                return Ok(None);
            };
            let Some(guard) = table.get(key.as_str()).map_err(db_error)? else {
                return Ok(None);
            };
            let (expires_at, value) = guard.value();
            Ok(is_live(expires_at, now_millis()).then(|| value.to_vec()))
        })
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |db| {
            write(db, |txn, now| {
                let Some((expires_at, value)) = remove(txn, namespace, &key)? else {
                    return Ok((None, false));
                };
                // An expired entry is removed all the same: it is dead weight.
                Ok((is_live(expires_at, now).then_some(value), true))
            })
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.swap(namespace, key, expected, new, ttl, None)
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
        self.swap(namespace, key, expected, new, ttl, Some(put))
    }

    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        /// A write with owned keys, to run on the blocking pool.
        enum Owned {
            Put(Namespace, String, Vec<u8>, Option<Duration>),
            IndexAdd(String, String),
        }
        let writes: Vec<Owned> = writes
            .into_iter()
            .map(|write| match write {
                Write::Put(put) => {
                    Owned::Put(put.namespace, put.key.to_owned(), put.value, put.ttl)
                }
                Write::IndexAdd { index, member } => {
                    Owned::IndexAdd(index.to_owned(), member.to_owned())
                }
            })
            .collect();
        self.run(move |db| {
            write(db, |txn, now| {
                let mut changed = false;
                for write in &writes {
                    match write {
                        Owned::Put(namespace, key, value, ttl) => {
                            insert(txn, *namespace, key, value, expiry(now, *ttl))?;
                            changed = true;
                        }
                        Owned::IndexAdd(index, member) => {
                            let mut table = txn.open_multimap_table(INDEX).map_err(db_error)?;
                            // `insert` is `true` when the member was already there.
                            let present = table
                                .insert(index.as_str(), member.as_str())
                                .map_err(db_error)?;
                            changed |= !present;
                        }
                    }
                }
                Ok(((), changed))
            })
        })
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.run(move |db| {
            write(db, |txn, _| {
                let removed = remove(txn, namespace, &key)?.is_some();
                Ok(((), removed))
            })
        })
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let name = table_name(namespace);
            let Some(table) = open_read(&txn, entries_definition(&name))? else {
                return Ok(0);
            };
            let stored = table.len().map_err(db_error)?;
            // Expired rows not purged yet are the first rows of the expiry table.
            let mut expired = 0u64;
            if let Some(expiry) = open_read(&txn, EXPIRY)? {
                for row in expiry
                    .range(..expired_bound(now_millis()))
                    .map_err(db_error)?
                {
                    let (key, _) = row.map_err(db_error)?;
                    if key.value().1 == name {
                        expired += 1;
                    }
                }
            }
            Ok(stored.saturating_sub(expired))
        })
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let (index, member) = (index.to_owned(), member.to_owned());
        self.run(move |db| {
            write(db, |txn, _| {
                let mut table = txn.open_multimap_table(INDEX).map_err(db_error)?;
                // `insert` is `true` when the member was already there.
                let present = table
                    .insert(index.as_str(), member.as_str())
                    .map_err(db_error)?;
                Ok(((), !present))
            })
        })
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let (index, member) = (index.to_owned(), member.to_owned());
        self.run(move |db| {
            write(db, |txn, _| {
                let mut table = txn.open_multimap_table(INDEX).map_err(db_error)?;
                let removed = table
                    .remove(index.as_str(), member.as_str())
                    .map_err(db_error)?;
                Ok(((), removed))
            })
        })
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        let index = index.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let table = match txn.open_multimap_table(INDEX) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(db_error(error)),
            };
            table
                .get(index.as_str())
                .map_err(db_error)?
                .map(|member| Ok(member.map_err(db_error)?.value().to_owned()))
                .collect()
        })
    }
}

/// The name of a namespace's table.
fn table_name(namespace: Namespace) -> String {
    format!("entries/{}", namespace.as_str())
}

fn entries_definition(name: &str) -> EntryTable<'_> {
    TableDefinition::new(name)
}

/// Creates every table, so readers never meet a missing one on a fresh file.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = begin_write(db)?;
    for namespace in Namespace::ALL {
        txn.open_table(entries_definition(&table_name(namespace)))
            .map_err(db_error)?;
    }
    txn.open_table(EXPIRY).map_err(db_error)?;
    txn.open_multimap_table(INDEX).map_err(db_error)?;
    txn.commit().map_err(db_error)
}

fn begin_write(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(db_error)?;
    // Immediate is redb's default; it is set explicitly because the broker issues tokens on
    // the strength of a write having returned.
    txn.set_durability(Durability::Immediate)
        .map_err(db_error)?;
    Ok(txn)
}

/// One write transaction: `operation` answers its result and whether it changed anything, then
/// a few expired entries are purged, and the transaction commits (or, when nothing changed,
/// aborts, which costs no `fsync`). An error drops the transaction, which aborts it.
fn write<T>(
    db: &Database,
    operation: impl FnOnce(&WriteTransaction, u64) -> Result<(T, bool), StoreError>,
) -> Result<T, StoreError> {
    let txn = begin_write(db)?;
    let now = now_millis();
    let (answer, changed) = operation(&txn, now)?;
    let purged = purge(&txn, now, PURGE_PER_WRITE)?;
    if changed || purged > 0 {
        txn.commit().map_err(db_error)?;
    } else {
        txn.abort().map_err(db_error)?;
    }
    Ok(answer)
}

/// One transaction purging up to `limit` expired entries; how many it removed.
fn purge_once(db: &Database, limit: usize) -> Result<usize, StoreError> {
    let txn = begin_write(db)?;
    let purged = purge(&txn, now_millis(), limit)?;
    if purged > 0 {
        txn.commit().map_err(db_error)?;
    } else {
        txn.abort().map_err(db_error)?;
    }
    Ok(purged)
}

/// Removes up to `limit` expired entries, the longest expired first; how many it removed.
fn purge(txn: &WriteTransaction, now: u64, limit: usize) -> Result<usize, StoreError> {
    let mut expiry = txn.open_table(EXPIRY).map_err(db_error)?;
    let mut due = Vec::new();
    for row in expiry
        .range(..expired_bound(now))
        .map_err(db_error)?
        .take(limit)
    {
        let (key, _) = row.map_err(db_error)?;
        let (at, table, key) = key.value();
        due.push((at, table.to_owned(), key.to_owned()));
    }
    for (at, table, key) in &due {
        expiry
            .remove((*at, table.as_str(), key.as_str()))
            .map_err(db_error)?;
        let mut entries = txn
            .open_table(entries_definition(table))
            .map_err(db_error)?;
        // Only the entry this row was written for: a key rewritten since has a row of its own.
        let current = entries
            .get(key.as_str())
            .map_err(db_error)?
            .map(|guard| guard.value().0);
        if current == Some(*at) {
            entries.remove(key.as_str()).map_err(db_error)?;
        }
    }
    Ok(due.len())
}

/// Writes `value` under `key` with its expiry, keeping the expiry table in step.
fn insert(
    txn: &WriteTransaction,
    namespace: Namespace,
    key: &str,
    value: &[u8],
    expires_at: u64,
) -> Result<(), StoreError> {
    let name = table_name(namespace);
    let old_expiry = {
        let mut table = txn
            .open_table(entries_definition(&name))
            .map_err(db_error)?;
        table
            .insert(key, (expires_at, value))
            .map_err(db_error)?
            .map(|old| old.value().0)
    };
    let mut expiry = txn.open_table(EXPIRY).map_err(db_error)?;
    if let Some(at) = old_expiry.filter(|at| *at != 0) {
        expiry.remove((at, name.as_str(), key)).map_err(db_error)?;
    }
    if expires_at != 0 {
        expiry
            .insert((expires_at, name.as_str(), key), ())
            .map_err(db_error)?;
    }
    Ok(())
}

/// Removes `key`, with its expiry row; what it held (expired or not).
fn remove(
    txn: &WriteTransaction,
    namespace: Namespace,
    key: &str,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let name = table_name(namespace);
    let old = {
        let mut table = txn
            .open_table(entries_definition(&name))
            .map_err(db_error)?;
        table.remove(key).map_err(db_error)?.map(|old| {
            let (at, value) = old.value();
            (at, value.to_vec())
        })
    };
    if let Some((at, _)) = old.as_ref().filter(|(at, _)| *at != 0) {
        let mut expiry = txn.open_table(EXPIRY).map_err(db_error)?;
        expiry.remove((*at, name.as_str(), key)).map_err(db_error)?;
    }
    Ok(old)
}

/// The live value under `key`, read inside a write transaction.
fn read_live(
    txn: &WriteTransaction,
    namespace: Namespace,
    key: &str,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let table = txn
        .open_table(entries_definition(&table_name(namespace)))
        .map_err(db_error)?;
    let value = table.get(key).map_err(db_error)?.and_then(|guard| {
        let (at, value) = guard.value();
        is_live(at, now).then(|| value.to_vec())
    });
    Ok(value)
}

/// A table in a read transaction; `None` when it was never created.
fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    definition: TableDefinition<'_, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(db_error(error)),
    }
}

/// The first expiry row key after every row expired at `now`.
fn expired_bound(now: u64) -> (u64, &'static str, &'static str) {
    // "" is the smallest string, so this sorts after every `(at <= now, _, _)`.
    (now.saturating_add(1), "", "")
}

fn is_live(expires_at: u64, now: u64) -> bool {
    expires_at == 0 || now < expires_at
}

/// The absolute expiry of a write made at `now` (`0`: none). A time to live is rounded up to
/// the millisecond, so a short one never expires early.
fn expiry(now: u64, ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| {
        let millis = u64::try_from(ttl.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
        now.saturating_add(millis).max(1)
    })
}

/// Wall-clock time in unix milliseconds: expiries are absolute so they hold across restarts,
/// which a monotonic clock cannot.
fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Data that cannot be read back is [`StoreError::Corrupt`]; everything else (I/O, locks, a
/// closed database) may pass and is [`StoreError::Unavailable`].
fn db_error(error: impl Into<redb::Error>) -> StoreError {
    let error = error.into();
    match error {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
impl RedbStore {
    /// Rows in a namespace's table and in the expiry table, expired ones not purged yet
    /// included.
    pub(super) fn stored_rows(&self, namespace: Namespace) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let entries = open_read(&txn, entries_definition(&table_name(namespace)))?
            .map_or(Ok(0), |table| table.len())
            .map_err(db_error)?;
        let expiry = open_read(&txn, EXPIRY)?
            .map_or(Ok(0), |table| table.len())
            .map_err(db_error)?;
        Ok((entries, expiry))
    }
}
