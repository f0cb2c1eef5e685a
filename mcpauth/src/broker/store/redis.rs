//! The shared store, on Redis: one state for several replicas of the broker (see
//! [`RedisStore`]).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, Cmd, ConnectionAddr, FromRedisValue, IntoConnectionInfo, Pipeline, ProtocolVersion,
    RedisError, Script, ScriptInvocation,
};

use super::{BrokerStore, Namespace, Put, StoreError, StoreFuture, Write};

/// How long one operation may take unless [`RedisStore::timeout`] says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one attempt to connect may take (a request waiting for a connection has time for
/// a second attempt).
const CONNECTION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long [`RedisStore::connect`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Operations in a row that ran out of time before the connection is replaced: one slow
/// answer is no reason to reconnect, a run of them is.
const REPLACE_AFTER_TIMEOUTS: u32 = 3;

/// Times to live longer than this (about 285 years) are as good as none: Redis refuses an
/// expiry that overflows its clock.
const MAX_TTL_MILLIS: u64 = 1 << 53;

/// The current time in milliseconds on the server's clock, shared by the scripts.
const NOW: &str = "local time = redis.call('TIME')\n\
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)\n";

/// `put` and `put_new`. KEYS: the value, the namespace's expiry set. ARGV: the value, the time
/// to live in milliseconds (`''`: none), the key (the set's member), `nx` for put-if-absent.
/// Answers 1 when written.
const PUT: &str = "local ttl = tonumber(ARGV[2])\n\
local written\n\
if ttl and ARGV[4] == 'nx' then\n\
  written = redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl, 'NX')\n\
elseif ttl then\n\
  written = redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n\
elseif ARGV[4] == 'nx' then\n\
  written = redis.call('SET', KEYS[1], ARGV[1], 'NX')\n\
else\n\
  written = redis.call('SET', KEYS[1], ARGV[1])\n\
end\n\
if not written then return 0 end\n\
if ttl then\n\
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])\n\
else\n\
  redis.call('ZADD', KEYS[2], '+inf', ARGV[3])\n\
end\n\
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)\n\
return 1\n";

/// Writes a value and its expiry-set entry: `store(value key, expiry set, value, time to live in
/// milliseconds ('': none), the key as the set's member)`, then drops the set's expired entries.
/// Shared by the scripts that write without a condition of their own.
const STORE: &str = "local function store(value_key, expiry_key, value, ttl, member)\n\
  ttl = tonumber(ttl)\n\
  if ttl then\n\
    redis.call('SET', value_key, value, 'PX', ttl)\n\
    redis.call('ZADD', expiry_key, now + ttl, member)\n\
  else\n\
    redis.call('SET', value_key, value)\n\
    redis.call('ZADD', expiry_key, '+inf', member)\n\
  end\n\
  redis.call('ZREMRANGEBYSCORE', expiry_key, '-inf', '(' .. now)\n\
end\n";

/// `compare_and_swap`, and `compare_and_swap_and_put` when given the other write. KEYS: the
/// value, the namespace's expiry set[, the other write's value and expiry set]. ARGV: the
/// expected bytes, `set` or `del`, the new value, its time to live in milliseconds (`''`:
/// none), the key[, the other value, its time to live, its key]. Answers 1 when swapped (and
/// the other value written). A missing key reads as `false`, which equals no string, so nothing
/// stored never matches.
const COMPARE_AND_SWAP: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n\
if ARGV[2] == 'del' then\n\
  redis.call('DEL', KEYS[1])\n\
  redis.call('ZREM', KEYS[2], ARGV[5])\n\
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)\n\
else\n\
  store(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[5])\n\
end\n\
if KEYS[3] then store(KEYS[3], KEYS[4], ARGV[6], ARGV[7], ARGV[8]) end\n\
return 1\n";

/// `write_all`. Each write takes its KEYS and ARGV in turn: a put `put`, value, time to live in
/// milliseconds (`''`: none), key (KEYS: the value, the namespace's expiry set); an index
/// addition `sadd`, member (KEYS: the index). Answers 1.
const WRITE_ALL: &str = "local k = 1\n\
local a = 1\n\
while a <= #ARGV do\n\
  if ARGV[a] == 'put' then\n\
    store(KEYS[k], KEYS[k + 1], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])\n\
    k = k + 2\n\
    a = a + 4\n\
  else\n\
    redis.call('SADD', KEYS[k], ARGV[a + 1])\n\
    k = k + 1\n\
    a = a + 2\n\
  end\n\
end\n\
return 1\n";

/// `count`. KEYS: the namespace's expiry set. Entries expire when the server's clock passes
/// their score, as the values do.
const COUNT: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)\n\
return redis.call('ZCARD', KEYS[1])\n";

/// A [`BrokerStore`] on a Redis server, shared by every replica that connects to it with the
/// same prefix.
///
/// Cloning is cheap and shares the connection. Operations need a Tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), mcpauth::broker::StoreError> {
/// use mcpauth::broker::RedisStore;
///
/// let store = RedisStore::connect("rediss://broker:secret@redis.internal:6380/0", "my-mcp").await?;
/// # let _ = store; Ok(()) }
/// ```
///
/// # Layout
///
/// Every key starts with the prefix given to [`RedisStore::connect`], so several brokers (or
/// other applications) can share one database:
///
/// - `<prefix>:<namespace>:<key>`: a value, a plain Redis string. Its time to live is Redis's
///   own (`SET … PX`), so an expired value is never returned, whichever replica asks.
/// - `<prefix>:expiry:<namespace>`: a sorted set of the namespace's keys, each scored by its
///   absolute expiry in milliseconds of the Redis server's clock (`+inf`: none). It is what
///   [`count`](BrokerStore::count) reads (below).
/// - `<prefix>:index:<name>`: an index, a Redis set (`SADD`, `SREM`, `SMEMBERS`); Redis drops a
///   set once its last member is removed.
///
/// No namespace is named `expiry` or `index`, so the three kinds of key never meet.
///
/// # Atomicity
///
/// Every operation is one atomic step on the server, so replicas racing on one key see one
/// winner: [`put`](BrokerStore::put), [`put_new`](BrokerStore::put_new) (`SET … NX`) and
/// [`compare_and_swap`](BrokerStore::compare_and_swap) are small Lua scripts (sent as
/// `EVALSHA`, loaded again when the server answers `NOSCRIPT`, as after a restart) that write
/// the value and its sorted-set entry together; [`take`](BrokerStore::take) is `GETDEL` and
/// [`delete`](BrokerStore::delete) `DEL`, each with the sorted-set removal in one
/// `MULTI`/`EXEC`. The compare-and-swap script compares the stored bytes with the expected
/// ones exactly (Lua strings are byte strings), then sets the new value with its `PX` or
/// deletes the key; with a companion write
/// ([`compare_and_swap_and_put`](BrokerStore::compare_and_swap_and_put)) the same script writes
/// that value too, only after a swap. A batch ([`write_all`](BrokerStore::write_all)) is one
/// script as well, so no replica ever sees part of it.
///
/// # Count
///
/// `SCAN`ning a namespace would take time in proportion to the whole database. The sorted set
/// gives the count instead: `ZREMRANGEBYSCORE` drops the entries whose expiry has passed on the
/// server's clock, and `ZCARD` counts the rest. The set is written in the same script or
/// transaction as the value, so the count is exact as long as only this store writes these
/// keys; a key removed behind its back (`DEL` by hand, eviction) is counted until its expiry,
/// so the count errs high, never low — it bounds dynamic registration. Every put and swap (and
/// every count) also drops its namespace's expired entries, so the sets stay as large as the live keys. Expiries use
/// the server's clock (`TIME`), so replicas whose clocks differ count alike.
///
/// # Failures and time limits
///
/// Every failure — no connection, an error reply, an answer of an unexpected shape, no answer
/// in time — is [`StoreError::Unavailable`], which the broker answers with `503` and
/// `Retry-After`. Each operation is bounded by the store's time limit (2 s unless
/// [`RedisStore::timeout`] sets another), so a hung server delays requests by that much at
/// most. A [`ConnectionManager`] reconnects by itself the moment the connection closes (the
/// store speaks RESP3, whose connections report their closing), and a request that found no
/// connection (never sent) or, when running it twice is harmless, a dropped one is sent once
/// more on the new one, so the first request after a restart of Redis is served.
/// A connection whose peer falls silent without closing it (a network partition, a failover
/// that moved the address) never breaks, so after a few operations in a row run out of time
/// the store opens a new connection.
///
/// An operation that ran out of time may still have been done by the server: a `take` may have
/// removed the value, a compare-and-swap may have rotated it. Both err on the side of single
/// use, and the broker tolerates the rest (a client that retries a refresh whose answer it lost
/// presents the previous token, which stays valid until its successor is used).
///
/// # Deployment
///
/// Redis 6.2 or later (`GETDEL`), or Valkey, standalone or as a replicated primary; not Redis
/// Cluster (the keys of one script are not in one hash slot). Redis keeps the state: configure
/// persistence (`appendonly yes`; with the default `appendfsync everysec` a crash of Redis can
/// lose the last second or two of writes — a redeemed code could be redeemable again, a
/// refresh token issued just before could be forgotten — which `appendfsync always` prevents
/// at the cost of a disk flush per write; a shutdown loses nothing either way) and
/// `maxmemory-policy noeviction` (an evicting server would drop grants and codes silently; a
/// full one refuses writes, which the broker turns into `503`).
#[cfg_attr(docsrs, doc(cfg(feature = "broker-redis")))]
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    client: Client,
    config: ConnectionManagerConfig,
    /// The connection in use; replaced after a run of operations that ran out of time.
    connection: Mutex<ConnectionManager>,
    /// Operations in a row that ran out of time.
    timeouts: AtomicU32,
    prefix: String,
    put: Script,
    compare_and_swap: Script,
    write_all: Script,
    count: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` — `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS (verified against the system's certificate authorities) — and
    /// keeps its keys under `prefix` (`<prefix>:<namespace>:<key>`).
    ///
    /// The connection is made before this returns, so a wrong address or password shows at
    /// start-up; afterwards it is re-established by itself whenever it breaks.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the URL cannot be used or the server cannot be reached
    /// or refuses the credentials within 5 seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let info = url
            .into_connection_info()
            .map_err(|error| unavailable("the Redis URL cannot be used", &error))?;
        // RESP3: the connection then tells the manager the moment it closes, and the manager
        // reconnects at once instead of on the next request, which would otherwise fail.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|error| unavailable("the Redis URL cannot be used", &error))?;
        if matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ) {
            install_tls_provider();
        }
        let config = manager_config();
        let manager = ConnectionManager::new_with_config(client.clone(), config.clone());
        let connection = match tokio::time::timeout(CONNECT_TIMEOUT, manager).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(unavailable("cannot connect to Redis", &error)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to Redis: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                connection: Mutex::new(connection),
                timeouts: AtomicU32::new(0),
                prefix: prefix.to_owned(),
                put: Script::new(&format!("{NOW}{PUT}")),
                compare_and_swap: Script::new(&format!("{NOW}{STORE}{COMPARE_AND_SWAP}")),
                write_all: Script::new(&format!("{NOW}{STORE}{WRITE_ALL}")),
                count: Script::new(&format!("{NOW}{COUNT}")),
            }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long each operation may take before it fails as [`StoreError::Unavailable`]
    /// (default 2 s). The store returned shares the connection; clones made before keep their
    /// own limit.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn value_key(&self, namespace: Namespace, key: &str) -> String {
        format!("{}:{}:{key}", self.inner.prefix, namespace.as_str())
    }

    fn expiry_key(&self, namespace: Namespace) -> String {
        format!("{}:expiry:{}", self.inner.prefix, namespace.as_str())
    }

    fn index_key(&self, index: &str) -> String {
        format!("{}:index:{index}", self.inner.prefix)
    }

    /// The connection to use now (a cheap handle onto the shared one).
    fn connection(&self) -> ConnectionManager {
        // The lock only guards swapping one handle for another; a panic cannot leave it half
        // done, so a poisoned lock still holds a usable handle.
        self.inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts an operation that ran out of time; after a run of them, replaces the connection.
    fn timed_out(&self) {
        let run = self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if run < REPLACE_AFTER_TIMEOUTS {
            return;
        }
        self.inner.timeouts.store(0, Ordering::Relaxed);
        match ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            self.inner.config.clone(),
        ) {
            Ok(fresh) => {
                tracing::warn!("Redis stopped answering; opening a new connection");
                *self
                    .inner
                    .connection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            Err(error) => tracing::warn!(%error, "cannot open a new Redis connection"),
        }
    }

    /// Sends `request` and reads its answer, within the time limit.
    ///
    /// A request is sent once more, at once, when the first try shows it never reached the
    /// server — the connection could not be made (refused, or not in time: the manager sets no
    /// time limit on answers, so a timeout is always the connection's) and the manager is
    /// making a new one — and, when it is idempotent, also when the connection dropped (it may
    /// or may not have run; running it twice does no harm). That way the first request after
    /// the server comes back is served rather than answered `503`. A `take`, a
    /// compare-and-swap or a put-if-absent that may have run is never sent again: its second
    /// answer would contradict the first.
    fn send<'a, T>(&'a self, request: Request<'a>) -> StoreFuture<'a, T>
    where
        T: FromRedisValue + Send + 'a,
    {
        Box::pin(async move {
            let tries = async {
                let first = request.send(self.connection()).await;
                match first {
                    Err(error)
                        if error.is_connection_refusal()
                            || error.is_timeout()
                            || (request.idempotent() && error.is_connection_dropped()) =>
                    {
                        request.send(self.connection()).await
                    }
                    answer => answer,
                }
            };
            match tokio::time::timeout(self.timeout, tries).await {
                Ok(answer) => {
                    // An answer, even an error, shows the connection is not silent.
                    self.inner.timeouts.store(0, Ordering::Relaxed);
                    answer.map_err(|error| unavailable("Redis failed", &error))
                }
                Err(_) => {
                    self.timed_out();
                    Err(StoreError::Unavailable(format!(
                        "Redis did not answer within {} ms",
                        self.timeout.as_millis()
                    )))
                }
            }
        })
    }

    /// The `put` script's invocation (`put_new` with `nx`).
    fn put_script(
        &self,
        namespace: Namespace,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        nx: bool,
    ) -> ScriptInvocation<'_> {
        let mut invocation = self.inner.put.prepare_invoke();
        invocation
            .key(self.value_key(namespace, key))
            .key(self.expiry_key(namespace))
            .arg(value)
            .arg(ttl_arg(ttl))
            .arg(key)
            .arg(if nx { "nx" } else { "" });
        invocation
    }

    /// The compare-and-swap script's invocation, without the companion write.
    fn swap_script(
        &self,
        namespace: Namespace,
        key: &str,
        expected: &[u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> ScriptInvocation<'_> {
        let mode = if new.is_some() { "set" } else { "del" };
        let mut invocation = self.inner.compare_and_swap.prepare_invoke();
        invocation
            .key(self.value_key(namespace, key))
            .key(self.expiry_key(namespace))
            .arg(expected)
            .arg(mode)
            .arg(new.unwrap_or_default())
            .arg(ttl_arg(ttl))
            .arg(key);
        invocation
    }
}

/// One request to the server, kept whole so it can be sent again.
enum Request<'a> {
    /// A single command; `true` when sending it twice does what sending it once does.
    Command(Cmd, bool),
    /// Commands in one `MULTI`/`EXEC`; the same flag.
    Transaction(Pipeline, bool),
    /// A script's invocation (`EVALSHA`, loaded first if the server lacks it); the same flag.
    Script(ScriptInvocation<'a>, bool),
}

impl Request<'_> {
    fn idempotent(&self) -> bool {
        match self {
            Self::Command(_, idempotent)
            | Self::Transaction(_, idempotent)
            | Self::Script(_, idempotent) => *idempotent,
        }
    }

    async fn send<T: FromRedisValue>(
        &self,
        mut connection: ConnectionManager,
    ) -> Result<T, RedisError> {
        match self {
            Self::Command(command, _) => command.query_async(&mut connection).await,
            Self::Transaction(pipeline, _) => pipeline.query_async(&mut connection).await,
            Self::Script(invocation, _) => invocation.invoke_async(&mut connection).await,
        }
    }
}

impl BrokerStore for RedisStore {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        // Writing the same value twice leaves what writing it once does (the time to live
        // counts from the second write: later by a moment).
        let script = self.put_script(namespace, key, value, ttl, false);
        let written = self.send::<u8>(Request::Script(script, true));
        Box::pin(async move { written.await.map(|_| ()) })
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        // Not idempotent: a second try after a first that wrote would answer "already there".
        let script = self.put_script(namespace, key, value, ttl, true);
        let written = self.send::<u8>(Request::Script(script, false));
        Box::pin(async move { written.await.map(|written| written == 1) })
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let mut command = redis::cmd("GET");
        command.arg(self.value_key(namespace, key));
        self.send(Request::Command(command, true))
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("GETDEL")
            .arg(self.value_key(namespace, key))
            .cmd("ZREM")
            .arg(self.expiry_key(namespace))
            .arg(key)
            .ignore();
        let taken = self.send::<(Option<Vec<u8>>,)>(Request::Transaction(pipeline, false));
        Box::pin(async move { taken.await.map(|(value,)| value) })
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let invocation = self.swap_script(namespace, key, expected, new, ttl);
        let swapped = self.send::<u8>(Request::Script(invocation, false));
        Box::pin(async move { swapped.await.map(|swapped| swapped == 1) })
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
        let mut invocation = self.swap_script(namespace, key, expected, new, ttl);
        invocation
            .key(self.value_key(put.namespace, put.key))
            .key(self.expiry_key(put.namespace))
            .arg(put.value)
            .arg(ttl_arg(put.ttl))
            .arg(put.key);
        let swapped = self.send::<u8>(Request::Script(invocation, false));
        Box::pin(async move { swapped.await.map(|swapped| swapped == 1) })
    }

    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        if writes.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        let mut invocation = self.inner.write_all.prepare_invoke();
        for write in writes {
            match write {
                Write::Put(put) => {
                    invocation
                        .key(self.value_key(put.namespace, put.key))
                        .key(self.expiry_key(put.namespace))
                        .arg("put")
                        .arg(put.value)
                        .arg(ttl_arg(put.ttl))
                        .arg(put.key);
                }
                Write::IndexAdd { index, member } => {
                    invocation
                        .key(self.index_key(index))
                        .arg("sadd")
                        .arg(member);
                }
            }
        }
        // Puts and set additions: running the batch twice leaves what running it once does.
        let written = self.send::<u8>(Request::Script(invocation, true));
        Box::pin(async move { written.await.map(|_| ()) })
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("DEL")
            .arg(self.value_key(namespace, key))
            .ignore()
            .cmd("ZREM")
            .arg(self.expiry_key(namespace))
            .arg(key)
            .ignore();
        self.send(Request::Transaction(pipeline, true))
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        let mut invocation = self.inner.count.prepare_invoke();
        invocation.key(self.expiry_key(namespace));
        self.send(Request::Script(invocation, true))
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let mut command = redis::cmd("SADD");
        command.arg(self.index_key(index)).arg(member);
        self.send(Request::Command(command, true))
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let mut command = redis::cmd("SREM");
        command.arg(self.index_key(index)).arg(member);
        self.send(Request::Command(command, true))
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        let mut command = redis::cmd("SMEMBERS");
        command.arg(self.index_key(index));
        self.send(Request::Command(command, true))
    }
}

/// The connection manager's settings: no time limit on answers (the store bounds each
/// operation as a whole, and an answer that comes late must not be taken for a request never
/// sent), a bounded attempt to connect, and reconnection retried quickly (an operation waiting
/// for it fails at its own time limit anyway, and the next one starts a new attempt).
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(CONNECTION_ATTEMPT_TIMEOUT))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_millis(500))
}

/// A time to live as the scripts take it: whole milliseconds, rounded up so a short one never
/// expires early; `""` for none.
fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map(super::ttl_millis)
        .filter(|millis| *millis <= MAX_TTL_MILLIS)
        .map_or_else(String::new, |millis| millis.max(1).to_string())
}

/// Redis's TLS client builds its configuration from the process's default rustls provider,
/// and cannot choose one by itself when more than one is compiled in: this installs aws-lc's
/// (the one the rest of the crate uses) unless the application installed one already.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile; either is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn unavailable(context: &str, error: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("{context}: {error}"))
}
