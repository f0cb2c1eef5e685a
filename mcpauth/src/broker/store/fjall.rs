//! The embedded durable store, on `fjall` (a log-structured merge tree).
//!
//! # Layout
//!
//! Three keyspaces of one database directory:
//!
//! - `entries`, from a namespace's one-byte code followed by the key, to the absolute expiry in
//!   unix milliseconds (8 bytes, big-endian; `0`: none) followed by the value. The expiry is
//!   absolute so a time to live survives a restart.
//! - `expiry`, one row per entry that has an expiry, keyed by that expiry (big-endian, so the
//!   rows sort by time), the namespace's code and the key: the expired entries are the first
//!   rows, so a purge finds them without scanning the live ones.
//! - `index`, one row per member of a set, keyed by the set's name (its length first, so one
//!   name is never a prefix of another's key) followed by the member.
//!
//! [`count`](BrokerStore::count) reads a counter per namespace, kept by the writer as it adds
//! and removes entries, and subtracts the expired entries not purged yet.
//!
//! # Purge
//!
//! Opening the store purges every expired entry; after that each group of writes also removes
//! up to [`PURGE_PER_WRITE`] of them for each write it applies, more than any write adds (a
//! sign-in's `write_all` adds two entries with an expiry), so expired entries never pile up
//! under load, and the work added to any one write stays bounded. The writer remembers where its
//! last purge stopped and starts the next one there: the rows it removed leave tombstones until
//! the tree compacts them, which a scan from the first row would step over again every time.
//!
//! # Durability
//!
//! How soon a write reaches the disk, and what a crash can take back: see [`Durability`].

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::sync::oneshot;

use super::{BrokerStore, Namespace, Put, StoreError, StoreFuture, Write};

/// Expired entries removed for each write a group applies, at most.
const PURGE_PER_WRITE: usize = 16;

/// Expired entries removed by each batch of the purge at open.
const PURGE_AT_OPEN: usize = 4096;

/// Writes applied together and made durable by one sync, at most: enough to share a sync
/// between every request a busy server has in flight, few enough that the first of them does
/// not wait long for the last.
const MAX_BATCH: usize = 128;

/// The bytes of decompressed blocks `fjall` keeps in memory (its default, 32 MiB, is the whole
/// of the broker's budget). Recent writes are in the memtables, and the operating system's page
/// cache serves the rest of the files.
const CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// The size at which a keyspace's in-memory table is sealed and written out to a file. Its
/// default, 64 MiB, would let the process grow by that much per keyspace under a steady stream
/// of refreshes; at 1 MiB the three keyspaces' tables, a sealed one waiting for its flush
/// included, stay within a few MiB, and a flush is a small file written in the background.
const MEMTABLE_BYTES: u64 = 1024 * 1024;

/// Threads `fjall` runs for flushes and compactions: the broker writes little, and the
/// request path should keep the cores.
const WORKER_THREADS: usize = 1;

/// How long a deferred write may wait for its sync, by default: a tenth of a second bounds what
/// a power loss can take back, and one sync every tenth of a second under load costs a small
/// fraction of one write's sync per request.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How a [`FjallStore`] makes its writes durable.
///
/// Every change goes to `fjall`'s journal, each write as one atomic batch: a compare-and-swap
/// with its companion write ([`compare_and_swap_and_put`](BrokerStore::compare_and_swap_and_put))
/// is one batch, and so is a [`write_all`](BrokerStore::write_all). The journal is replayed when
/// the store opens; after a crash it is read up to its last whole batch, so what survives is
/// always every write up to some point, never a later write without an earlier one. How soon a
/// write reaches the disk is the store's `Durability`:
///
/// - [`Durability::Deferred`] (the default): a write returns once its batch is in the operating
///   system's hands (the journal's buffer written to the file), which survives the process
///   crashing or being killed; the journal is synced to the disk (`fdatasync`) by the store's
///   own thread at most the given interval later, so a crash of the operating system or a power
///   loss can lose the writes of that last interval. Two kinds of write are synced before they
///   return whatever the interval: removing a grant (a revocation, whose loss would let a stolen
///   refresh token work again) and writing a key. Everything else a lost write can take back
///   fails closed, or is bounded by something other than the store:
///   - a registration, which the client makes again on `invalid_client`; a sign-in in progress,
///     started again; a refresh token the client holds that the store no longer knows
///     (`invalid_grant`, the user signs in again);
///   - a code's redemption. After a power loss in the interval the code can be redeemed once
///     more, until it expires (minutes). Redeeming it takes the client's PKCE verifier, which
///     only the client that already redeemed it holds, and the first redemption's refresh token
///     is lost with it. Syncing each redemption would cost a sign-in a disk sync (a quarter
///     to two fifths of its CPU, as measured in `BENCHMARKS.md`) for that window;
///     [`Durability::EveryWrite`] closes it.
/// - [`Durability::EveryWrite`]: a write returns only after the journal has been synced, so
///   once a write returns its effect survives a power loss too. A sync costs more than the
///   writes it makes durable, so writes share them: one thread, the writer, takes every write
///   waiting at that moment (up to 128) and applies each in the order they arrived —
///   each sees the ones before it, exactly as if they had been made one at a time — syncs the
///   journal once, and only then answers each caller with its own result.
///
/// A write that fails (an I/O or corruption error) is answered with its error and changes
/// nothing; other writes are not affected. A sync that fails fails every write waiting for it;
/// `fjall` then refuses every later write, so the store answers [`StoreError::Unavailable`]
/// until it is opened again, and a write that was answered with an error may be found applied
/// after the restart. Nothing that changed nothing costs a sync.
///
/// A write is visible to reads as soon as it is applied, a little before it is synced; a reader
/// cannot have learned the key of a new entry before its write returned, so only a crash in
/// between could tell the difference, and then the write's caller saw it fail (or, deferred,
/// the write was one the last interval may lose).
///
/// ```
/// use std::time::Duration;
/// use mcpauth::broker::{Durability, FjallStore};
///
/// # fn run() -> Result<(), mcpauth::broker::StoreError> {
/// # let dir = std::env::temp_dir().join(format!("mcpauth-doc-durability-{}", std::process::id()));
/// // Every write synced to the disk before it returns.
/// let store = FjallStore::open_with(&dir, Durability::EveryWrite)?;
/// # drop(store);
/// // The default: synced within a tenth of a second (a grant's removal and a key at once).
/// assert_eq!(Durability::default(), Durability::Deferred(Duration::from_millis(100)));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// # run().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// A write returns once the operating system has it: a crash or kill of the process loses
    /// nothing, and the journal is synced within this interval (at least a millisecond), so a
    /// crash of the operating system or a power loss can lose the writes of the last interval.
    /// Removing a grant and writing a key are synced before they return.
    Deferred(Duration),
    /// A write returns once the journal is synced: nothing that returned is ever lost.
    /// Concurrent writes share one sync.
    EveryWrite,
}

impl Default for Durability {
    fn default() -> Self {
        Self::Deferred(DEFAULT_SYNC_INTERVAL)
    }
}

/// A [`BrokerStore`] in a `fjall` database directory: durable, embedded, for a single process
/// (the directory is locked while open).
///
/// Cloning is cheap and shares the open database, whose in-memory parts are bounded (a 2 MiB block
/// cache and a 1 MiB write buffer per keyspace; the operating system caches the files). How soon a
/// write reaches the disk is its [`Durability`]: by default a write returns once the operating
/// system has it and is synced within a tenth of a second, by a thread of the store's own
/// ([`open_with`](Self::open_with) chooses). A deferred write is applied on the calling thread (its
/// batch appended to the journal's file: microseconds; when `fjall`'s background work falls behind
/// it slows writes down); with [`Durability::EveryWrite`] that thread makes every write, so
/// concurrent requests share a sync. A [`get`](BrokerStore::get) reads on the calling thread (a
/// lookup in memory or in cached files: it blocks only when the operating system must read the
/// disk); `count` and `index_members`, which read ranges, run on Tokio's blocking pool, so they
/// need a Tokio runtime. An operation whose future is dropped still runs to completion (a dropped
/// `take` still removes its value, which errs on the side of single use). Dropping the last clone
/// waits for the writer to finish the writes already sent, then closes the database.
#[derive(Clone)]
pub struct FjallStore {
    engine: Arc<Engine>,
    writer: Arc<Writer>,
    path: Arc<Path>,
    durability: Durability,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// Opens the database in the directory `path`, creating it (and any missing parent
    /// directory) when it does not exist, and removes the entries that expired while it was
    /// closed; its writes are [`Durability::default`] (see [`open_with`](Self::open_with)).
    ///
    /// This blocks on file I/O: call it at startup, or from
    /// [`spawn_blocking`](tokio::task::spawn_blocking).
    ///
    /// # Errors
    ///
    /// As [`open_with`](Self::open_with).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::default())
    }

    /// Opens the database in the directory `path` as [`open`](Self::open) does, its writes made
    /// durable as `durability` says.
    ///
    /// This blocks on file I/O: call it at startup, or from
    /// [`spawn_blocking`](tokio::task::spawn_blocking).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the directory cannot be created, opened or locked
    /// (another process has it open), or the writer thread cannot be started;
    /// [`StoreError::Corrupt`] when it holds files this version cannot read.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if path.is_file() {
            return Err(StoreError::Unavailable(format!(
                "{} is a file; the store is a directory",
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|error| {
            StoreError::Unavailable(format!("cannot create {}: {error}", path.display()))
        })?;
        let engine = Arc::new(Engine::open(path)?);
        // Expired entries left from the last run are cleared now rather than a few per write.
        while engine.purge(now_millis(), PURGE_AT_OPEN)? == PURGE_AT_OPEN {}
        engine.sync()?;
        let tick = match durability {
            // A zero interval would make the writer spin.
            Durability::Deferred(interval) => Some(interval.max(Duration::from_millis(1))),
            Durability::EveryWrite => None,
        };
        Ok(Self {
            writer: Arc::new(Writer::start(Arc::clone(&engine), tick)?),
            engine,
            path: Arc::from(path),
            durability,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How its writes are made durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A compare-and-swap, with `put` written too when it swaps, in one batch.
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
        self.write(move |txn| {
            if txn.live(namespace, &key)?.as_deref() != Some(expected.as_slice()) {
                return Ok(false);
            }
            let expires_at = expiry(txn.now, ttl);
            txn.set(
                namespace,
                &key,
                new.as_deref().map(|value| (expires_at, value)),
            )?;
            if let Some((put_namespace, put_key, put_value, put_ttl)) = &put {
                let expires_at = expiry(txn.now, *put_ttl);
                txn.set(*put_namespace, put_key, Some((expires_at, put_value)))?;
            }
            Ok(true)
        })
    }

    /// Runs a read on the blocking pool; range reads may block on file I/O for a while.
    fn run<'a, T, F>(&self, operation: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, StoreError> + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || operation(&engine))
                .await
                .map_err(|error| {
                    StoreError::Unavailable(format!("a store operation did not complete: {error}"))
                })?
        })
    }

    /// Applies `operation` to a [`Txn`] of its own and commits it; its result once the write
    /// is as durable as the store's [`Durability`] says.
    fn write<'a, T, F>(&self, operation: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        if let Durability::Deferred(_) = self.durability {
            let engine = Arc::clone(&self.engine);
            let writer = Arc::clone(&self.writer);
            return Box::pin(async move {
                let (answer, needs_sync) = engine.apply_now(operation)?;
                if needs_sync {
                    writer.sync().await?;
                }
                Ok(answer)
            });
        }
        let (reply, answer) = oneshot::channel();
        let sent = self.writer.send(Box::new(Op {
            operation: Some(operation),
            answer: None,
            reply,
        }));
        Box::pin(async move {
            sent?;
            answer.await.unwrap_or_else(|_| Err(writer_stopped()))
        })
    }
}

/// The open database, its keyspaces and the entry counters.
struct Engine {
    db: Database,
    entries: Keyspace,
    expiry: Keyspace,
    index: Keyspace,
    /// Entries stored per namespace (by [`code`]), expired ones not purged yet included.
    counts: [AtomicU64; CODES],
    /// The last expiry row purged: rows before it are gone, so the next purge and `count`
    /// start after it.
    purged_to: Mutex<Option<Vec<u8>>>,
    /// No expiry row is due before this time (unix milliseconds; `0`: not known), so a purge
    /// before it has nothing to look for. Lowered by every expiry row written.
    next_due: AtomicU64,
    /// Held while a write is applied and committed (with its share of the purge): writes read
    /// what they change, so they are applied one at a time, whichever thread makes them.
    applying: Mutex<()>,
    /// Something was written to the journal since its last sync.
    unsynced: AtomicBool,
    /// Syncs made (tests count them).
    syncs: AtomicU64,
}

impl Engine {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder(path)
            .cache_size(CACHE_BYTES)
            .manual_journal_persist(true)
            .worker_threads(WORKER_THREADS)
            .open()
            .map_err(db_error)?;
        let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let keyspace = |name: &str| db.keyspace(name, options).map_err(db_error);
        let (entries, expiry, index) = (
            keyspace("entries")?,
            keyspace("expiry")?,
            keyspace("index")?,
        );
        let counts: [AtomicU64; CODES] = std::array::from_fn(|_| AtomicU64::new(0));
        for namespace in Namespace::ALL {
            let stored = count_rows(entries.prefix([code(namespace)]))?;
            counts[usize::from(code(namespace))].store(stored, Ordering::Relaxed);
        }
        Ok(Self {
            db,
            entries,
            expiry,
            index,
            counts,
            purged_to: Mutex::new(None),
            next_due: AtomicU64::new(0),
            applying: Mutex::new(()),
            unsynced: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        })
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        match space {
            Space::Entries => &self.entries,
            Space::Expiry => &self.expiry,
            Space::Index => &self.index,
        }
    }

    /// Makes every write applied so far durable.
    fn sync(&self) -> Result<(), StoreError> {
        // Cleared first: a write appended while the sync runs sets it again for the next one.
        self.unsynced.store(false, Ordering::Release);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.db
            .persist(PersistMode::SyncData)
            .inspect_err(|_| self.unsynced.store(true, Ordering::Release))
            .map_err(db_error)
    }

    /// Syncs the journal when anything was written to it since its last sync.
    fn sync_if_needed(&self) -> Result<(), StoreError> {
        if self.unsynced.load(Ordering::Acquire) {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Applies and commits one write on the calling thread, with its share of the purge, and
    /// hands the journal's buffer to the operating system (not synced): its result, and whether
    /// it must be synced before it returns (it ended a grant or wrote a key).
    fn apply_now<T>(
        &self,
        operation: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, bool), StoreError> {
        let now = now_millis();
        let (answer, changed, needs_sync) = {
            let _applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
            let mut txn = Txn::new(self, now);
            let answer = operation(&mut txn)?;
            let needs_sync = txn.needs_sync;
            let changed = txn.commit()?;
            let purged = self.purge(now, PURGE_PER_WRITE)?;
            (answer, changed || purged > 0, needs_sync && changed)
        };
        if changed {
            self.unsynced.store(true, Ordering::Release);
            self.db.persist(PersistMode::Buffer).map_err(db_error)?;
        }
        Ok((answer, needs_sync))
    }

    /// The first expiry row not purged yet: after the last one purged.
    fn purge_start(&self) -> Bound<Vec<u8>> {
        self.purged_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .map_or(Bound::Unbounded, Bound::Excluded)
    }

    /// Removes up to `limit` expired entries, the longest expired first, from where the last
    /// purge stopped; how many it removed. The removals are applied, not synced. Only the writer
    /// (or `open`, before it starts) purges.
    fn purge(&self, now: u64, limit: usize) -> Result<usize, StoreError> {
        if self.next_due.load(Ordering::Relaxed) > now {
            return Ok(0);
        }
        let start = self.purge_start();
        let mut due = Vec::new();
        // Past the due rows, the first row not due yet says when the next purge has work.
        let mut next_due = u64::MAX;
        for row in self
            .expiry
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit.saturating_add(1))
        {
            let row = row.key().map_err(db_error)?;
            let (at, _, _) = split_expiry_row(&row)?;
            if at > now {
                next_due = at;
                break;
            }
            if due.len() == limit {
                // More are due than this purge removes: the next one looks again.
                next_due = 0;
                break;
            }
            due.push(row.to_vec());
        }
        // Only the writer writes, so no row was added since the scan.
        self.next_due.store(next_due, Ordering::Relaxed);
        let Some(last) = due.last().cloned() else {
            return Ok(0);
        };
        let mut txn = Txn::new(self, now);
        for row in &due {
            let (at, namespace, key) = split_expiry_row(row)?;
            // Only the entry this row was written for: a key rewritten since has a row of its
            // own, and this one would have been removed with the old value.
            match txn.stored(namespace, key)? {
                Some((expires_at, _)) if expires_at == at => {
                    txn.remove_entry(namespace, key)?;
                }
                _ => txn.stage(Space::Expiry, row.clone(), None),
            }
        }
        txn.commit()?;
        *self
            .purged_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(last);
        Ok(due.len())
    }

    /// Expiry rows of `namespace` for entries expired at `now` that no purge removed yet.
    fn expired_not_purged(&self, namespace: Namespace, now: u64) -> Result<u64, StoreError> {
        let end = Bound::Excluded(now.saturating_add(1).to_be_bytes().to_vec());
        let mut expired = 0;
        for row in self.expiry.range((self.purge_start(), end)) {
            let row = row.key().map_err(db_error)?;
            if split_expiry_row(&row)?.1 == namespace {
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// The keyspaces a [`Txn`] stages changes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Space {
    Entries,
    Expiry,
    Index,
}

/// A change staged for one key: the value it gets (`None`: removed) and, for an entry, whether
/// it was stored before (for the counters).
struct Staged {
    value: Option<Vec<u8>>,
    stored_before: Option<(Namespace, bool)>,
}

/// The changes of one write, read back by the write itself before they are committed as one
/// atomic batch. Each key is written once per batch: a later change of the same key replaces
/// the staged one.
struct Txn<'e> {
    engine: &'e Engine,
    /// When the write is applied, in unix milliseconds.
    now: u64,
    staged: BTreeMap<(Space, Vec<u8>), Staged>,
    /// What the write read from the store, so a key read twice is looked up once.
    seen: BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>,
    /// The write ends a grant or writes a key: a deferred store syncs it before it returns
    /// (see [`Durability`] for why these two and not a code's redemption).
    needs_sync: bool,
}

impl<'e> Txn<'e> {
    fn new(engine: &'e Engine, now: u64) -> Self {
        Self {
            engine,
            now,
            staged: BTreeMap::new(),
            seen: BTreeMap::new(),
            needs_sync: false,
        }
    }

    /// The value under `key` as this write sees it: staged, or else stored.
    fn read(&mut self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let slot = (space, key.to_vec());
        if let Some(staged) = self.staged.get(&slot) {
            return Ok(staged.value.clone());
        }
        if let Some(seen) = self.seen.get(&slot) {
            return Ok(seen.clone());
        }
        let value = self
            .engine
            .keyspace(space)
            .get(key)
            .map_err(db_error)?
            .map(|value| value.to_vec());
        self.seen.insert(slot, value.clone());
        Ok(value)
    }

    fn stage(&mut self, space: Space, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.stage_counted(space, key, value, None);
    }

    /// Stages `value` for `key`. `stored_before` (an entry's namespace, and whether it was
    /// stored) counts only for a key's first change: later ones keep what the first read.
    fn stage_counted(
        &mut self,
        space: Space,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        stored_before: Option<(Namespace, bool)>,
    ) {
        match self.staged.entry((space, key)) {
            Entry::Occupied(mut staged) => staged.get_mut().value = value,
            Entry::Vacant(vacant) => {
                vacant.insert(Staged {
                    value,
                    stored_before,
                });
            }
        }
    }

    /// The entry under `key` with its expiry, expired or not.
    fn stored(
        &mut self,
        namespace: Namespace,
        key: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.read(Space::Entries, &entry_key(namespace, key))?
            .map(|mut raw| {
                let at = split_entry(&raw)?.0;
                // The value in place, without a second copy.
                raw.drain(..8);
                Ok((at, raw))
            })
            .transpose()
    }

    /// The live value under `key`.
    fn live(&mut self, namespace: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .stored(namespace, key)?
            .and_then(|(at, value)| is_live(at, self.now).then_some(value)))
    }

    /// Writes `key`'s new value with its expiry (`None`: removes it), keeping the expiry rows
    /// in step; what it held (expired or not).
    fn set(
        &mut self,
        namespace: Namespace,
        key: &str,
        new: Option<(u64, &[u8])>,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let old = self.stored(namespace, key)?;
        let ends = new.is_none() && old.is_some();
        self.needs_sync |= match namespace {
            Namespace::Grant => ends,
            Namespace::Key => true,
            _ => false,
        };
        if let Some((at, _)) = old.as_ref().filter(|(at, _)| *at != 0) {
            self.stage(Space::Expiry, expiry_row(*at, namespace, key), None);
        }
        if let Some((at, _)) = new.filter(|(at, _)| *at != 0) {
            self.stage(
                Space::Expiry,
                expiry_row(at, namespace, key),
                Some(Vec::new()),
            );
        }
        let encoded = new.map(|(at, value)| {
            let mut raw = Vec::with_capacity(8 + value.len());
            raw.extend_from_slice(&at.to_be_bytes());
            raw.extend_from_slice(value);
            raw
        });
        // On a first change, `old` was read from the store.
        self.stage_counted(
            Space::Entries,
            entry_key(namespace, key),
            encoded,
            Some((namespace, old.is_some())),
        );
        Ok(old)
    }

    /// Removes `key` with its expiry row; what it held (expired or not).
    fn remove_entry(
        &mut self,
        namespace: Namespace,
        key: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.set(namespace, key, None)
    }

    /// Adds `member` to `index`; `true` when it was not there.
    fn index_add(&mut self, index: &str, member: &str) -> Result<bool, StoreError> {
        let row = index_row(index, member);
        if self.read(Space::Index, &row)?.is_some() {
            return Ok(false);
        }
        self.stage(Space::Index, row, Some(Vec::new()));
        Ok(true)
    }

    /// Writes every staged change in one atomic batch (applied, not synced yet), then updates
    /// the counters; `true` when there was anything to write.
    fn commit(self) -> Result<bool, StoreError> {
        if self.staged.is_empty() {
            return Ok(false);
        }
        let engine = self.engine;
        let mut batch = engine.db.batch();
        let mut deltas = [0i64; CODES];
        for ((space, key), staged) in self.staged {
            let keyspace = engine.keyspace(space);
            if let Some((namespace, before)) = staged.stored_before {
                let delta = i64::from(staged.value.is_some()) - i64::from(before);
                deltas[usize::from(code(namespace))] += delta;
                if !before && staged.value.is_none() {
                    // Nothing stored, nothing left: no tombstone needed.
                    continue;
                }
            }
            match staged.value {
                Some(value) => {
                    if let (Space::Expiry, Some(at)) = (space, key.first_chunk::<8>()) {
                        engine
                            .next_due
                            .fetch_min(u64::from_be_bytes(*at), Ordering::Relaxed);
                    }
                    batch.insert(keyspace, key, value);
                }
                None => batch.remove(keyspace, key),
            }
        }
        batch.commit().map_err(db_error)?;
        for (counter, delta) in engine.counts.iter().zip(deltas) {
            if delta > 0 {
                counter.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
            } else if delta < 0 {
                // Only the writer changes the counters, so this cannot underflow unless the
                // store was changed behind its back; then zero is the closest truth.
                let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    Some(count.saturating_sub(delta.unsigned_abs()))
                });
            }
        }
        Ok(true)
    }
}

/// The store's thread (see the module's documentation), and the channel to it: it makes every
/// write of a store that syncs each one, and the syncs of a deferred one.
struct Writer {
    /// `None` once the store is being dropped: closing the channel ends the thread.
    sender: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; `tick`, for a deferred store, is how long a write may wait for its
    /// sync.
    fn start(engine: Arc<Engine>, tick: Option<Duration>) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mcpauth-store-writer".into())
            .spawn(move || write_groups(&engine, &receiver, tick))
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

    /// Once every write applied so far is synced (with those of the other callers waiting).
    async fn sync(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Box::new(SyncRequest { reply }))?;
        answer.await.unwrap_or_else(|_| Err(writer_stopped()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The writer drains what was sent, sees the channel closed and ends, releasing its
        // handle on the database: once this returns, the directory can be opened again.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has nothing left to finish.
            let _ = thread.join();
        }
    }
}

/// A write waiting for its group.
trait Pending: Send {
    /// Applies the write (not synced yet); `true` when it changed anything. Its result, an
    /// error included (a write that fails changes nothing), is kept for
    /// [`answer`](Self::answer).
    fn apply(&mut self, engine: &Engine, now: u64) -> bool;

    /// Answers the caller once the group is settled: its result when `synced` is `Ok`.
    fn answer(self: Box<Self>, synced: Result<(), StoreError>);
}

struct Op<T, F> {
    /// `None` once applied.
    operation: Option<F>,
    answer: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending for Op<T, F>
where
    T: Send,
    F: FnOnce(&mut Txn<'_>) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, engine: &Engine, now: u64) -> bool {
        let Some(operation) = self.operation.take() else {
            return false;
        };
        let mut txn = Txn::new(engine, now);
        let applied = operation(&mut txn).and_then(|answer| Ok((answer, txn.commit()?)));
        let changed = matches!(applied, Ok((_, true)));
        self.answer = Some(applied.map(|(answer, _)| answer));
        changed
    }

    fn answer(self: Box<Self>, synced: Result<(), StoreError>) {
        let Self { answer, reply, .. } = *self;
        let answer = match (answer, synced) {
            // A write that failed by itself says why, whatever became of the others.
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(answer)), Ok(())) => Ok(answer),
            (_, Err(error)) => Err(error),
            (None, Ok(())) => Err(writer_stopped()),
        };
        // A caller that stopped waiting (its future dropped) gets no answer; the write stands.
        let _ = reply.send(answer);
    }
}

/// A deferred store's caller waiting for the journal's sync: it changes nothing itself, and
/// asks for the sync its group makes.
struct SyncRequest {
    reply: oneshot::Sender<Result<(), StoreError>>,
}

impl Pending for SyncRequest {
    fn apply(&mut self, engine: &Engine, _now: u64) -> bool {
        engine.unsynced.load(Ordering::Acquire)
    }

    fn answer(self: Box<Self>, synced: Result<(), StoreError>) {
        let _ = self.reply.send(synced);
    }
}

/// The writer thread: a group of every write waiting, until the store is dropped; with a
/// `tick` (a deferred store), a sync of what was written once a tick passes without one.
fn write_groups(
    engine: &Engine,
    receiver: &mpsc::Receiver<Box<dyn Pending>>,
    tick: Option<Duration>,
) {
    loop {
        let first = match tick {
            None => receiver.recv().ok(),
            Some(tick) => match receiver.recv_timeout(tick) {
                Ok(first) => Some(first),
                Err(RecvTimeoutError::Timeout) => {
                    // A failure is logged by nobody here: `fjall` then refuses writes, and
                    // every later write reports it.
                    let _ = engine.sync_if_needed();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        group.extend(receiver.try_iter().take(MAX_BATCH - 1));
        // A panic (a bug) fails its group: the callers' answers are dropped with it, which
        // they read as the store being unavailable, and the writer goes on with the next.
        let _ = catch_unwind(AssertUnwindSafe(|| commit_group(engine, group)));
    }
    // The store is closing: what a deferred store wrote since its last sync is made durable
    // now rather than left to the operating system.
    let _ = engine.sync_if_needed();
}

/// Applies a group of writes, purges, syncs once when anything changed, then answers every
/// write of the group.
fn commit_group(engine: &Engine, mut group: Vec<Box<dyn Pending>>) {
    let now = now_millis();
    let mut changed = false;
    let purged = {
        let _applying = engine
            .applying
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for write in &mut group {
            changed |= write.apply(engine, now);
        }
        engine.purge(now, PURGE_PER_WRITE.saturating_mul(group.len()))
    };
    let synced = purged.and_then(|purged| {
        if changed || purged > 0 {
            engine.sync()
        } else {
            Ok(())
        }
    });
    for write in group {
        write.answer(synced.clone());
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

impl BrokerStore for FjallStore {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.write(move |txn| {
            txn.set(namespace, &key, Some((expiry(txn.now, ttl), &value)))?;
            Ok(())
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
        self.write(move |txn| {
            if txn.live(namespace, &key)?.is_some() {
                return Ok(false);
            }
            txn.set(namespace, &key, Some((expiry(txn.now, ttl), &value)))?;
            Ok(true)
        })
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        // On the calling thread: one key's lookup, in the memtables or in cached blocks, takes
        // microseconds — less than a hand-off to the blocking pool and back, which every grant
        // would pay several times.
        Box::pin(async move {
            let Some(raw) = self
                .engine
                .entries
                .get(entry_key(namespace, key))
                .map_err(db_error)?
            else {
                return Ok(None);
            };
            let (expires_at, value) = split_entry(&raw)?;
            Ok(is_live(expires_at, now_millis()).then(|| value.to_vec()))
        })
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.write(move |txn| {
            // An expired entry is removed all the same: it is dead weight.
            let old = txn.remove_entry(namespace, &key)?;
            Ok(old.and_then(|(at, value)| is_live(at, txn.now).then_some(value)))
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
        self.write(move |txn| {
            for write in &writes {
                match write {
                    Owned::Put(namespace, key, value, ttl) => {
                        txn.set(*namespace, key, Some((expiry(txn.now, *ttl), value)))?;
                    }
                    Owned::IndexAdd(index, member) => {
                        txn.index_add(index, member)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.write(move |txn| {
            txn.remove_entry(namespace, &key)?;
            Ok(())
        })
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        self.run(move |engine| {
            let stored = engine.counts[usize::from(code(namespace))].load(Ordering::Relaxed);
            let expired = engine.expired_not_purged(namespace, now_millis())?;
            Ok(stored.saturating_sub(expired))
        })
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let (index, member) = (index.to_owned(), member.to_owned());
        self.write(move |txn| {
            txn.index_add(&index, &member)?;
            Ok(())
        })
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let row = index_row(index, member);
        self.write(move |txn| {
            if txn.read(Space::Index, &row)?.is_some() {
                txn.stage(Space::Index, row, None);
            }
            Ok(())
        })
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        let prefix = index_row(index, "");
        self.run(move |engine| {
            engine
                .index
                .prefix(&prefix)
                .map(|row| {
                    let row = row.key().map_err(db_error)?;
                    let member = row.get(prefix.len()..).unwrap_or_default();
                    String::from_utf8(member.to_vec())
                        .map_err(|_| StoreError::Corrupt("an index member is not UTF-8".into()))
                })
                .collect()
        })
    }
}

/// The counters' length: one past the highest namespace code.
const CODES: usize = Namespace::ALL.len() + 1;

/// The rows an iteration yields, each read (so a row that cannot be read is an error).
fn count_rows(rows: fjall::Iter) -> Result<u64, StoreError> {
    let mut count = 0;
    for row in rows {
        row.key().map_err(db_error)?;
        count += 1;
    }
    Ok(count)
}

/// A namespace's code in the keys: part of the file format, so never reused or renumbered.
const fn code(namespace: Namespace) -> u8 {
    match namespace {
        Namespace::Client => 1,
        Namespace::Transaction => 2,
        Namespace::UpstreamLogin => 3,
        Namespace::Code => 4,
        Namespace::RedeemedCode => 5,
        Namespace::Grant => 6,
        Namespace::RefreshToken => 7,
        Namespace::Key => 8,
    }
}

fn namespace_of(code_byte: u8) -> Result<Namespace, StoreError> {
    Namespace::ALL
        .into_iter()
        .find(|namespace| code(*namespace) == code_byte)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown namespace code {code_byte}")))
}

/// An entry's key in `entries`: the namespace's code, then the key.
fn entry_key(namespace: Namespace, key: &str) -> Vec<u8> {
    let mut raw = Vec::with_capacity(1 + key.len());
    raw.push(code(namespace));
    raw.extend_from_slice(key.as_bytes());
    raw
}

/// An entry's stored bytes, split into its expiry and its value.
fn split_entry(raw: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (at, value) = raw
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("an entry is shorter than its expiry".into()))?;
    Ok((u64::from_be_bytes(*at), value))
}

/// An entry's row in `expiry`: its expiry, the namespace's code, the key.
fn expiry_row(at: u64, namespace: Namespace, key: &str) -> Vec<u8> {
    let mut row = Vec::with_capacity(9 + key.len());
    row.extend_from_slice(&at.to_be_bytes());
    row.push(code(namespace));
    row.extend_from_slice(key.as_bytes());
    row
}

fn split_expiry_row(row: &[u8]) -> Result<(u64, Namespace, &str), StoreError> {
    let corrupt = || StoreError::Corrupt("an expiry row cannot be read".into());
    let (at, rest) = row.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (code_byte, key) = rest.split_first().ok_or_else(corrupt)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
    Ok((u64::from_be_bytes(*at), namespace_of(*code_byte)?, key))
}

/// A member's row in `index`: the set's name, prefixed by its length, then the member.
fn index_row(index: &str, member: &str) -> Vec<u8> {
    let length = u32::try_from(index.len()).unwrap_or(u32::MAX);
    let mut row = Vec::with_capacity(4 + index.len() + member.len());
    row.extend_from_slice(&length.to_be_bytes());
    row.extend_from_slice(index.as_bytes());
    row.extend_from_slice(member.as_bytes());
    row
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

/// Data that cannot be read back is [`StoreError::Corrupt`]; everything else (I/O, a lock held
/// by another process, a database that refuses writes after a failed sync) may pass and is
/// [`StoreError::Unavailable`].
fn db_error(error: fjall::Error) -> StoreError {
    match &error {
        fjall::Error::Locked => StoreError::Unavailable(
            "the store's directory is open in another process (it is locked)".into(),
        ),
        fjall::Error::Io(_) | fjall::Error::Poisoned | fjall::Error::KeyspaceDeleted => {
            StoreError::Unavailable(error.to_string())
        }
        fjall::Error::Storage(fjall::LsmError::Io(_)) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Corrupt(error.to_string()),
    }
}

#[cfg(test)]
impl FjallStore {
    /// Entries stored in a namespace and rows in the expiry keyspace, expired ones not purged
    /// yet included.
    pub(super) fn stored_rows(&self, namespace: Namespace) -> Result<(u64, u64), StoreError> {
        Ok((
            count_rows(self.engine.entries.prefix([code(namespace)]))?,
            count_rows(self.engine.expiry.iter())?,
        ))
    }

    /// Syncs of the journal made so far, and whether anything written waits for one.
    pub(super) fn syncs(&self) -> (u64, bool) {
        (
            self.engine.syncs.load(Ordering::Relaxed),
            self.engine.unsynced.load(Ordering::Acquire),
        )
    }

    /// Closes the store (the last clone), then reads [`syncs`](Self::syncs).
    pub(super) fn close_and_count_syncs(self) -> (u64, bool) {
        let engine = Arc::clone(&self.engine);
        drop(self);
        (
            engine.syncs.load(Ordering::Relaxed),
            engine.unsynced.load(Ordering::Acquire),
        )
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A write of `key` that then succeeds or fails, and where its answer arrives.
    fn write_of(key: &'static str, fails: bool) -> (Box<dyn Pending>, Answer) {
        let (reply, answer) = oneshot::channel();
        let operation = move |txn: &mut Txn<'_>| {
            txn.set(Namespace::Grant, key, Some((0, b"value")))?;
            if fails {
                return Err(StoreError::Unavailable("injected".into()));
            }
            Ok(())
        };
        let op = Op {
            operation: Some(operation),
            answer: None,
            reply,
        };
        (Box::new(op), answer)
    }

    #[test]
    fn a_failed_write_fails_alone_and_the_rest_of_its_group_is_written() {
        let path = std::env::temp_dir().join(format!(
            "mcpauth-fjall-group-{}-{}",
            std::process::id(),
            now_millis()
        ));
        let engine = Engine::open(&path).unwrap();
        let (first, first_answer) = write_of("first", false);
        let (failing, failing_answer) = write_of("failing", true);
        let (last, last_answer) = write_of("last", false);
        commit_group(&engine, vec![first, failing, last]);
        assert!(first_answer.blocking_recv().unwrap().is_ok());
        assert!(failing_answer.blocking_recv().unwrap().is_err());
        assert!(last_answer.blocking_recv().unwrap().is_ok());
        for (key, kept) in [("first", true), ("failing", false), ("last", true)] {
            let stored = engine
                .entries
                .get(entry_key(Namespace::Grant, key))
                .unwrap();
            assert_eq!(stored.is_some(), kept, "{key}");
        }
        assert_eq!(
            engine.counts[usize::from(code(Namespace::Grant))].load(Ordering::Relaxed),
            2
        );
        drop(engine);
        std::fs::remove_dir_all(&path).unwrap();
    }
}
