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
//! removes up to [`PURGE_PER_WRITE`] of them for each write it applies, more than any write adds
//! (a sign-in's `write_all` adds two rows with an expiry), so expired rows never pile up under load,
//! and the work added to any one write stays bounded.
//!
//! # Durability and group commit
//!
//! Every write is applied in a write transaction committed with [`Durability::Immediate`]: once
//! a write returns, its effect survives a crash or restart. A compare-and-swap with its
//! companion write ([`compare_and_swap_and_put`](BrokerStore::compare_and_swap_and_put)) is
//! applied at once, and so is a batch ([`write_all`](BrokerStore::write_all)).
//!
//! A durable commit costs far more than the writes it makes durable (redb's page writes and the
//! file system's `fdatasync`), so writes share commits: one thread, the writer, takes every
//! write waiting at that moment (up to [`MAX_BATCH`]), applies each in the order they arrived
//! in one transaction — each write sees the ones before it, exactly as if they had been made one
//! at a time — commits once, and only then answers each caller with its own result. A write
//! that finds nothing to change (a failed compare-and-swap, a `take` of a missing key) changes
//! nothing for the others; a write that fails (an I/O or corruption error) is answered with its
//! error and the others are applied again in a new transaction without it; a commit that fails
//! fails every write of its batch, none of which took effect. One request alone pays a whole
//! commit; concurrent requests share them. A batch that changed nothing is aborted, which costs
//! no `fsync`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

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

/// Expired entries removed for each write a transaction applies, at most.
const PURGE_PER_WRITE: usize = 16;

/// Expired entries removed by each transaction of the purge at open.
const PURGE_AT_OPEN: usize = 4096;

/// Writes applied in one transaction and made durable by one commit, at most: enough to share
/// a commit between every request a busy server has in flight, few enough that the first of
/// them does not wait long for the last.
const MAX_BATCH: usize = 128;

/// The bytes of the file `redb` keeps in process memory (its default, 1 GiB, would let the
/// process grow with the file: every refresh token is kept until it expires, a month by
/// default). Past this the operating system's page cache serves the reads.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// A [`BrokerStore`] in a `redb` database file: durable, embedded, for a single process (the
/// file is locked while open).
///
/// Cloning is cheap and shares the open database, whose in-process page cache is bounded (8 MiB;
/// the operating system caches the rest of the file). Writes are made by a thread of the store's
/// own, which commits together the writes of concurrent requests (see the module's
/// documentation). A [`get`](BrokerStore::get) reads on the calling thread (a lookup in a
/// cached file: it blocks only when the operating system must read the disk); `count` and
/// `index_members`, which read ranges, run on Tokio's blocking pool, so they need a Tokio
/// runtime. An
/// operation whose future is dropped still runs to completion (a dropped `take` still removes
/// its value, which errs on the side of single use). Dropping the last clone waits for the
/// writer to finish the writes already sent, then closes the file.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
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
    /// process has it open), or the writer thread cannot be started; [`StoreError::Corrupt`]
    /// when it is not a database this version can read.
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
        let db = Arc::new(db);
        Ok(Self {
            writer: Arc::new(Writer::start(Arc::clone(&db))?),
            db,
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
        self.write(move |txn, now| {
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
    }

    /// Runs a read on the blocking pool; redb's calls block on file I/O.
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

    /// Has the writer apply `operation` — which answers its result and whether it changed
    /// anything — in the transaction of its batch; its result once that batch is committed.
    /// `operation` may run more than once, in a new transaction each time, when another write
    /// of its batch fails.
    fn write<'a, T, F>(&self, operation: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction, u64) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sent = self.writer.send(Box::new(Op {
            operation,
            answer: None,
            reply,
        }));
        Box::pin(async move {
            sent?;
            answer.await.unwrap_or_else(|_| Err(writer_stopped()))
        })
    }
}

/// The thread that makes every write (see the module's documentation), and the channel to it.
struct Writer {
    /// `None` once the store is being dropped: closing the channel ends the thread.
    sender: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(db: Arc<Database>) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mcpauth-redb-writer".into())
            .spawn(move || write_batches(&db, &receiver))
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the store's writer: {error}"))
            })?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    fn send(&self, write: Box<dyn Pending>) -> Result<(), StoreError> {
        self.sender
            .as_ref()
            .and_then(|sender| sender.send(write).ok())
            .ok_or_else(writer_stopped)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The writer drains what was sent, sees the channel closed and ends, releasing its
        // handle on the database: once this returns, the file can be opened again.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has nothing left to finish.
            let _ = thread.join();
        }
    }
}

/// A write waiting for its batch.
trait Pending: Send {
    /// Applies the write in `txn`; `true` when it changed anything. Its result is kept for
    /// [`answer`](Self::answer).
    fn apply(&mut self, txn: &WriteTransaction, now: u64) -> Result<bool, StoreError>;

    /// Answers the caller once the batch is settled: its result when `committed` is `Ok`.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Op<T, F> {
    operation: F,
    answer: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending for Op<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction, u64) -> Result<(T, bool), StoreError> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction, now: u64) -> Result<bool, StoreError> {
        let (answer, changed) = (self.operation)(txn, now)?;
        self.answer = Some(answer);
        Ok(changed)
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let Self { answer, reply, .. } = *self;
        let answer = committed.and_then(|()| answer.ok_or_else(writer_stopped));
        // A caller that stopped waiting (its future dropped) gets no answer; the write stands.
        let _ = reply.send(answer);
    }
}

/// The writer thread: a batch of every write waiting, until the store is dropped.
fn write_batches(db: &Database, receiver: &mpsc::Receiver<Box<dyn Pending>>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter().take(MAX_BATCH - 1));
        // A panic (a bug) fails its batch: the callers' answers are dropped with it, which
        // they read as the store being unavailable, and the writer goes on with the next.
        let _ = catch_unwind(AssertUnwindSafe(|| commit_batch(db, batch)));
    }
}

/// Applies a batch in one transaction and commits it (see the module's documentation), then
/// answers every write of it.
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Pending>>) {
    while !batch.is_empty() {
        let txn = match begin_write(db) {
            Ok(txn) => txn,
            Err(error) => return answer_all(batch, &error),
        };
        let now = now_millis();
        let mut changed = false;
        let mut failed = None;
        for (position, write) in batch.iter_mut().enumerate() {
            match write.apply(&txn, now) {
                Ok(write_changed) => changed |= write_changed,
                Err(error) => {
                    failed = Some((position, error));
                    break;
                }
            }
        }
        if let Some((position, error)) = failed {
            // Dropping the transaction aborts it; the others are applied again without the
            // failed write.
            drop(txn);
            batch.remove(position).answer(Err(error));
            continue;
        }
        let settled =
            purge(&txn, now, PURGE_PER_WRITE.saturating_mul(batch.len())).and_then(|purged| {
                if changed || purged > 0 {
                    txn.commit().map_err(db_error)
                } else {
                    txn.abort().map_err(db_error)
                }
            });
        match settled {
            Ok(()) => {
                for write in batch {
                    write.answer(Ok(()));
                }
            }
            Err(error) => answer_all(batch, &error),
        }
        return;
    }
}

/// Fails every write of a batch with `error`.
fn answer_all(batch: Vec<Box<dyn Pending>>, error: &StoreError) {
    for write in batch {
        write.answer(Err(same_error(error)));
    }
}

/// A copy of `error`, for each write of a failed batch.
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::Corrupt(message) => StoreError::Corrupt(message.clone()),
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
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
        self.write(move |txn, now| {
            insert(txn, namespace, &key, &value, expiry(now, ttl))?;
            Ok(((), true))
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
        self.write(move |txn, now| {
            if read_live(txn, namespace, &key, now)?.is_some() {
                return Ok((false, false));
            }
            insert(txn, namespace, &key, &value, expiry(now, ttl))?;
            Ok((true, true))
        })
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        // On the calling thread: one key's lookup, served from redb's page cache or the
        // operating system's, takes microseconds — less than a hand-off to the blocking pool
        // and back, which every grant would pay several times.
        Box::pin(async move {
            let txn = self.db.begin_read().map_err(db_error)?;
            let Some(table) = open_read(&txn, entries_definition(&table_name(namespace)))? else {
                return Ok(None);
            };
            let Some(guard) = table.get(key).map_err(db_error)? else {
                return Ok(None);
            };
            let (expires_at, value) = guard.value();
            Ok(is_live(expires_at, now_millis()).then(|| value.to_vec()))
        })
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.write(move |txn, now| {
            let Some((expires_at, value)) = remove(txn, namespace, &key)? else {
                return Ok((None, false));
            };
            // An expired entry is removed all the same: it is dead weight.
            Ok((is_live(expires_at, now).then_some(value), true))
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
        /// A write with owned keys, for the writer thread.
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
        self.write(move |txn, now| {
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
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.write(move |txn, _| {
            let removed = remove(txn, namespace, &key)?.is_some();
            Ok(((), removed))
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
        self.write(move |txn, _| {
            let mut table = txn.open_multimap_table(INDEX).map_err(db_error)?;
            // `insert` is `true` when the member was already there.
            let present = table
                .insert(index.as_str(), member.as_str())
                .map_err(db_error)?;
            Ok(((), !present))
        })
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let (index, member) = (index.to_owned(), member.to_owned());
        self.write(move |txn, _| {
            let mut table = txn.open_multimap_table(INDEX).map_err(db_error)?;
            let removed = table
                .remove(index.as_str(), member.as_str())
                .map_err(db_error)?;
            Ok(((), removed))
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
    ttl.map_or(0, |ttl| now.saturating_add(super::ttl_millis(ttl)).max(1))
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

#[cfg(test)]
mod batch_tests {
    use super::*;

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A write of `key` that then succeeds or fails, and where its answer arrives.
    fn write_of(key: &'static str, fails: bool) -> (Box<dyn Pending>, Answer) {
        let (reply, answer) = oneshot::channel();
        let operation = move |txn: &WriteTransaction, _| {
            insert(txn, Namespace::Grant, key, b"value", 0)?;
            if fails {
                return Err(StoreError::Unavailable("injected".into()));
            }
            Ok(((), true))
        };
        let op = Op {
            operation,
            answer: None,
            reply,
        };
        (Box::new(op), answer)
    }

    #[test]
    fn a_failed_write_fails_alone_and_the_rest_of_its_batch_commits() {
        let path = std::env::temp_dir().join(format!(
            "mcpauth-redb-batch-{}-{}.redb",
            std::process::id(),
            now_millis()
        ));
        let db = Database::create(&path).unwrap();
        create_tables(&db).unwrap();
        let (first, first_answer) = write_of("first", false);
        let (failing, failing_answer) = write_of("failing", true);
        let (last, last_answer) = write_of("last", false);
        commit_batch(&db, vec![first, failing, last]);
        assert!(first_answer.blocking_recv().unwrap().is_ok());
        assert!(failing_answer.blocking_recv().unwrap().is_err());
        assert!(last_answer.blocking_recv().unwrap().is_ok());
        let txn = db.begin_read().unwrap();
        let table = open_read(&txn, entries_definition(&table_name(Namespace::Grant)))
            .unwrap()
            .unwrap();
        for (key, kept) in [("first", true), ("failing", false), ("last", true)] {
            assert_eq!(table.get(key).unwrap().is_some(), kept, "{key}");
        }
        drop((table, txn, db));
        std::fs::remove_file(&path).unwrap();
    }
}
