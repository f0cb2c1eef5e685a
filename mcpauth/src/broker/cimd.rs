//! Fetching client ID metadata documents (CIMD) without letting a client id reach into the
//! server's own network.
//!
//! A client id that is a URL makes the broker issue a GET to wherever it points, on behalf of
//! anyone who can send an authorization request. So the fetch is held to: https only; every
//! address the host resolves to must be a public one (no loopback, private, link-local —
//! `169.254.169.254` is cloud metadata —, CGNAT, multicast, documentation or reserved range, nor
//! an IPv6 address embedding an IPv4 one); the connection goes to an address that was checked
//! (the check happens in the client's own resolver, so a second DNS answer cannot swap in
//! another address); no redirects, no proxy; a small body, a timeout. Valid documents are
//! cached within bounds as their HTTP headers allow; errors and invalid documents never are.
//! Concurrent resolutions of one URL share one fetch, and fetches per host are rate-limited.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use url::{Host, Url};

use super::client::{ClientRecord, parse_document_url, validate_metadata_document};
use crate::bounded_cache::{BoundedCache, EstimatedSize, bounded_cache};
use crate::http_client::find_source;
use crate::rate_limit::TokenBucket;
use crate::single_flight::SingleFlight;

/// Why a client metadata document gave no client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CimdError {
    /// The URL or the document is not acceptable: the client's fault, the same on retry.
    #[error("invalid client metadata document: {0}")]
    Invalid(String),
    /// The document could not be fetched now (network, timeout, 5xx, rate limit): retry later.
    #[error("client metadata document unavailable: {0}")]
    Unavailable(String),
}

impl CimdError {
    /// Whether a later attempt may succeed (the authorization endpoint answers 503 before
    /// consent, rather than calling the client invalid).
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// How the broker fetches and caches client ID metadata documents: the documents MCP clients
/// publish at the URL they use as their `client_id`.
///
/// | what | default | builder |
/// |---|---|---|
/// | time for a whole fetch | 10 s | [`timeout`](Self::timeout) |
/// | largest document | 5 KiB | [`max_document_bytes`](Self::max_document_bytes) |
/// | cache time, from `Cache-Control: max-age` or `Expires`, clamped | 5 min – 24 h | [`ttl_bounds`](Self::ttl_bounds) |
/// | cache time without either header | 1 h | [`default_ttl`](Self::default_ttl) |
/// | documents cached | 1,000 | [`max_entries`](Self::max_entries) |
/// | fetches per host | 2 a second, bursts of 10 | [`host_fetch_rate`](Self::host_fetch_rate) |
///
/// Documents are fetched over https from public addresses only. For development and tests,
/// [`trust_host`](Self::trust_host) names a host to fetch from a fixed address instead, even a
/// loopback or private one, and over plain http too.
///
/// ```
/// use std::time::Duration;
/// use mcpauth::broker::CimdOptions;
///
/// # fn main() -> Result<(), std::net::AddrParseError> {
/// let options = CimdOptions::default()
///     .timeout(Duration::from_secs(5))
///     .ttl_bounds(Duration::from_secs(60), Duration::from_secs(3600))
///     // A development client served by `cargo run` on this machine:
///     .trust_host("client.localdev", "127.0.0.1:8080".parse()?);
/// assert_eq!(options.trusted_hosts().count(), 1);
/// assert_eq!(CimdOptions::DEFAULT_MAX_DOCUMENT_BYTES, 5 * 1024);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct CimdOptions {
    timeout: Duration,
    max_document_bytes: usize,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    max_entries: usize,
    fetches_per_second: u32,
    fetch_burst: u32,
    trusted: Vec<(String, SocketAddr)>,
}

impl Default for CimdOptions {
    fn default() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            max_document_bytes: Self::DEFAULT_MAX_DOCUMENT_BYTES,
            min_ttl: Self::DEFAULT_MIN_TTL,
            max_ttl: Self::DEFAULT_MAX_TTL,
            default_ttl: Self::DEFAULT_TTL,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            fetches_per_second: Self::DEFAULT_FETCHES_PER_SECOND,
            fetch_burst: Self::DEFAULT_FETCH_BURST,
            trusted: Vec::new(),
        }
    }
}

impl CimdOptions {
    /// The default time for a whole fetch, connection and body included: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default largest document: 5 KiB (the size CIMD recommends).
    pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 5 * 1024;
    /// The default shortest cache time: 5 minutes.
    pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(5 * 60);
    /// The default longest cache time: 24 hours.
    pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
    /// The default cache time of a response with neither `Cache-Control: max-age` nor
    /// `Expires`: 1 hour.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
    /// The default bound on documents cached: 1,000.
    pub const DEFAULT_MAX_ENTRIES: usize = 1000;
    /// The default sustained rate of fetches from one host: 2 a second.
    pub const DEFAULT_FETCHES_PER_SECOND: u32 = 2;
    /// The default number of fetches from one host at once after a quiet period: 10.
    pub const DEFAULT_FETCH_BURST: u32 = 10;

    /// The time allowed for a whole fetch, connection and body included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest document accepted, in bytes (default 5 KiB); a larger one is refused.
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// The bounds on how long a document is cached (default 5 min to 24 h): the time its
    /// `Cache-Control: max-age` or `Expires` gives is clamped to them. A response marked
    /// `no-store`, `no-cache` or `max-age=0`, or already expired, is not cached at all.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max.max(min);
        self
    }

    /// How long a document is cached when its response says nothing (default 1 h; within the
    /// bounds).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The most documents cached at once (default 1,000; at least 1); beyond it, the least
    /// useful are evicted.
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// How often documents may be fetched from one host: `per_second` sustained, `burst` at
    /// once (default 2 and 10; each at least 1). Beyond it a resolution fails as temporarily
    /// unavailable, so client ids cannot make the broker hammer a site.
    pub fn host_fetch_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.fetches_per_second = per_second;
        self.fetch_burst = burst;
        self
    }

    /// Fetches documents whose URL names `host` from `addr`, whatever `host` resolves to, and
    /// allows plain http for it: for development and tests, where clients are served on
    /// loopback or a private network. A port written in the URL replaces `addr`'s; a host that
    /// is an IP address is connected to as written. Only hosts named here escape the
    /// public-address rule.
    pub fn trust_host(mut self, host: &str, addr: SocketAddr) -> Self {
        let host = host.to_ascii_lowercase();
        self.trusted.retain(|(known, _)| *known != host);
        self.trusted.push((host, addr));
        self
    }

    /// The hosts named with [`trust_host`](Self::trust_host), with their addresses.
    pub fn trusted_hosts(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.trusted
            .iter()
            .map(|(host, addr)| (host.as_str(), *addr))
    }

    /// How long a response may be cached, from its headers at `now`; `None` when it may not be.
    /// A `Cache-Control` field that is not visible ASCII cannot be read, so whether it forbids
    /// caching is unknown: the response is not cached.
    pub(super) fn ttl(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        let fields = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Option<Vec<_>>>()?;
        let directives = fields.into_iter().flat_map(|v| v.split(',')).map(str::trim);
        let mut max_age = None;
        for directive in directives {
            let (name, value) = directive
                .split_once('=')
                .map_or((directive, None), |(n, v)| (n.trim(), Some(v.trim())));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return None;
            }
            if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
                // Digits, bare or in one pair of quotes (RFC 9111 §1.2.2, §5.2); an unreadable
                // max-age makes the response stale (§4.2.1), and so does one past 64 bits.
                let value = value?;
                let digits = value
                    .strip_prefix('"')
                    .and_then(|quoted| quoted.strip_suffix('"'))
                    .unwrap_or(value);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                max_age = Some(Duration::from_secs(digits.parse().ok()?));
            }
        }
        let ttl = match (max_age, headers.get(header::EXPIRES)) {
            (Some(max_age), _) => max_age,
            (None, Some(expires)) => {
                // An unreadable date (such as `0`) is in the past (RFC 9111 §5.3).
                let expires = http_date(expires)?;
                let date = headers.get(header::DATE).and_then(http_date).unwrap_or(now);
                expires.duration_since(date).ok()?
            }
            (None, None) => self.default_ttl,
        };
        (!ttl.is_zero()).then(|| ttl.clamp(self.min_ttl, self.max_ttl))
    }
}

fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

/// Whether `ip` is a public unicast address, one a client id may make the broker connect to.
///
/// IPv4: not `0/8`, `10/8`, `100.64/10` (CGNAT), `127/8`, `169.254/16` (link-local, cloud
/// metadata), `172.16/12`, `192.0.0/24`, `192.0.2/24`, `192.88.99/24` (6to4 relays),
/// `192.168/16`, `198.18/15` (benchmarking), `198.51.100/24`, `203.0.113/24`, nor `224/4` and
/// above (multicast, reserved, broadcast). IPv6: inside `2000::/3` (global unicast) — which
/// leaves out `::/8` (unspecified, loopback, IPv4-mapped and -compatible), `64:ff9b::/96` and
/// `64:ff9b:1::/48` (NAT64), `100::/64` (discard), `fc00::/7`, `fe80::/10`, `ff00::/8` — and
/// not `2001::/23` (protocol assignments, Teredo `2001::/32` among them), `2001:db8::/32`,
/// `2002::/16` (6to4) nor `3fff::/20` (documentation). Embedded IPv4 addresses are refused
/// rather than unwrapped: they reach a network through a translator the broker cannot see.
pub(crate) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => is_global_v6(ip),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0
        || a == 10
        || (a == 100 && (64..128).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224;
    !special
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    let global_unicast = first & 0xe000 == 0x2000;
    // 2001::/23 (protocol assignments) and 2001:db8::/32 (documentation); 2002::/16 (6to4);
    // 3fff::/20 (documentation).
    let special = (first == 0x2001 && (second < 0x0200 || second == 0x0db8))
        || first == 0x2002
        || (first == 0x3fff && second < 0x1000);
    global_unicast && !special
}

/// A host resolved to an address the broker must not connect to.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address")]
struct RefusedAddress {
    host: String,
    address: IpAddr,
}

/// The HTTP client's resolver: trusted hosts map to their fixed address; any other name is
/// resolved and refused unless every address is public. Connections go only to the addresses
/// returned here, so what was checked is what is connected to.
#[derive(Debug)]
struct CheckedResolver {
    trusted: Arc<HashMap<String, SocketAddr>>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.trusted.get(&host).copied();
        Box::pin(checked_addresses(host, trusted))
    }
}

type ResolveError = Box<dyn std::error::Error + Send + Sync>;

async fn checked_addresses(
    host: String,
    trusted: Option<SocketAddr>,
) -> Result<reqwest::dns::Addrs, ResolveError> {
    if let Some(addr) = trusted {
        return Ok(Box::new(std::iter::once(addr)));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    // Any non-public address refuses the host: connecting to "the public one" would still let
    // a name that also points inside decide where a retry lands.
    if let Some(bad) = addrs.iter().find(|addr| !is_global(addr.ip())) {
        tracing::debug!(%host, address = %bad.ip(), "refusing a client metadata host");
        return Err(Box::new(RefusedAddress {
            address: bad.ip(),
            host,
        }));
    }
    if addrs.is_empty() {
        return Err(format!("{host} has no address").into());
    }
    Ok(Box::new(addrs.into_iter()))
}

/// A valid document, and until when it serves.
struct CachedDocument {
    record: Arc<ClientRecord>,
    until: Instant,
}

/// What a cached document is estimated to take: its URL (the key), the record's strings, the
/// allocations' and the cache slot's overhead.
impl EstimatedSize for Arc<CachedDocument> {
    fn estimated_bytes(&self, url: &str) -> u64 {
        let record = &self.record;
        let strings = record.client_id.len()
            + record.client_name.as_ref().map_or(0, String::len)
            + record
                .redirect_uris
                .iter()
                .map(|u| u.len() + 24)
                .sum::<usize>()
            + record.client_uri.as_ref().map_or(0, String::len)
            + record.logo_uri.as_ref().map_or(0, String::len)
            + record.scope.as_ref().map_or(0, String::len);
        (url.len() + strings + 320) as u64
    }
}

/// One host's fetch budget.
struct HostBucket(TokenBucket);

impl EstimatedSize for Arc<HostBucket> {
    fn estimated_bytes(&self, host: &str) -> u64 {
        (host.len() + 160) as u64
    }
}

type Outcome = Result<Arc<ClientRecord>, CimdError>;

struct Inner {
    options: CimdOptions,
    trusted: Arc<HashMap<String, SocketAddr>>,
    client: Result<reqwest::Client, String>,
    documents: BoundedCache<Arc<CachedDocument>>,
    hosts: BoundedCache<Arc<HostBucket>>,
    /// The fetches under way, by URL; each removes itself when it ends.
    flights: Mutex<HashMap<String, Arc<SingleFlight<Outcome>>>>,
}

/// Resolves metadata document client ids to client records: cached, or fetched under the
/// rules of this module.
#[derive(Clone)]
pub(crate) struct CimdFetcher {
    inner: Arc<Inner>,
}

impl fmt::Debug for CimdFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CimdFetcher")
            .field("options", &self.inner.options)
            .field("cached", &self.inner.documents.len())
            .finish_non_exhaustive()
    }
}

impl CimdFetcher {
    pub(crate) fn new(options: CimdOptions) -> Self {
        let trusted: Arc<HashMap<String, SocketAddr>> =
            Arc::new(options.trusted.iter().cloned().collect());
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect by itself, past the address checks.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                trusted: trusted.clone(),
            }))
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {}", error_chain(&error)));
        let max_entries = options.max_entries.max(1);
        let entry_bytes = options.max_document_bytes.saturating_add(512);
        Self {
            inner: Arc::new(Inner {
                documents: bounded_cache(
                    max_entries,
                    max_entries.saturating_mul(entry_bytes),
                    1024,
                ),
                hosts: bounded_cache(max_entries, max_entries.saturating_mul(256), 256),
                flights: Mutex::new(HashMap::new()),
                trusted,
                client,
                options,
            }),
        }
    }

    /// Whether `client_id` is one this fetcher resolves: an https URL (see
    /// [`is_metadata_document_url`](super::client::is_metadata_document_url)), or an http URL
    /// on a trusted host.
    pub(crate) fn handles(&self, client_id: &str) -> bool {
        if super::client::is_metadata_document_url(client_id) {
            return true;
        }
        client_id
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
            && Url::parse(client_id)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .is_some_and(|host| self.inner.trusted.contains_key(&host))
    }

    /// The client whose metadata document is at `client_id`: from the cache while it is fresh,
    /// else fetched and validated (one fetch for all concurrent callers).
    pub(crate) async fn resolve(&self, client_id: &str) -> Result<Arc<ClientRecord>, CimdError> {
        if let Some(record) = self.inner.cached(client_id) {
            return Ok(record);
        }
        let url = self.inner.check_url(client_id)?;
        let flight = self.inner.flight(client_id);
        let this = Arc::downgrade(&flight);
        let inner = self.inner.clone();
        let key = client_id.to_owned();
        flight
            .run(move || {
                // Checked again with the flight's slot locked: a fetch that just ended has
                // cached its document.
                let cached = inner.cached(&key);
                async move {
                    let outcome = match cached {
                        Some(record) => Ok(record),
                        None => inner.fetch(&key, &url).await,
                    };
                    if let Err(CimdError::Invalid(_)) = &outcome {
                        // An expired copy of a document that is now invalid goes at once.
                        inner.documents.remove(&key);
                    }
                    inner.land(&key, &this);
                    outcome
                }
            })
            .await
    }
}

impl Inner {
    fn cached(&self, client_id: &str) -> Option<Arc<ClientRecord>> {
        self.documents
            .get(client_id)
            .filter(|cached| cached.until > Instant::now())
            .map(|cached| cached.record.clone())
    }

    /// The URL to fetch: a valid metadata document URL, https unless the host is trusted, and
    /// not an IP address outside the public ranges (those never reach the resolver).
    fn check_url(&self, client_id: &str) -> Result<Url, CimdError> {
        let url = parse_document_url(client_id)?;
        let host = url.host_str().unwrap_or_default();
        let trusted = self.trusted.contains_key(host);
        if url.scheme() != "https" && !trusted {
            return Err(CimdError::Invalid(format!(
                "client id {client_id:?} is not an https URL"
            )));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !trusted
            && !is_global(ip)
        {
            return Err(CimdError::Invalid(format!(
                "client id {client_id:?} points at {ip}, which is not a public address"
            )));
        }
        Ok(url)
    }

    fn flight(&self, client_id: &str) -> Arc<SingleFlight<Outcome>> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.entry(client_id.to_owned()).or_default().clone()
    }

    /// Removes the ended flight `flight` from the table (unless another took its place).
    fn land(&self, client_id: &str, flight: &Weak<SingleFlight<Outcome>>) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(client_id)
            .is_some_and(|current| std::ptr::eq(Arc::as_ptr(current), flight.as_ptr()))
        {
            flights.remove(client_id);
        }
    }

    fn take_host_budget(&self, host: &str) -> Result<(), CimdError> {
        let options = &self.options;
        let Ok(bucket) = self.hosts.get_or_insert_with(host, || {
            Ok::<_, std::convert::Infallible>(Arc::new(HostBucket(TokenBucket::new(
                options.fetches_per_second,
                options.fetch_burst,
            ))))
        });
        bucket.0.try_take(Instant::now()).map_err(|wait| {
            CimdError::Unavailable(format!(
                "too many client metadata fetches from {host}; retry in {} ms",
                wait.as_millis().max(1)
            ))
        })
    }

    async fn fetch(&self, client_id: &str, url: &Url) -> Outcome {
        let host = url.host_str().unwrap_or_default();
        self.take_host_budget(host)?;
        let client = self
            .client
            .as_ref()
            .map_err(|error| CimdError::Unavailable(error.clone()))?;
        tracing::debug!(client_id, "fetching a client metadata document");
        let mut response = client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| self.transport_error(client_id, &error))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(status_error(client_id, status));
        }
        let content_type = response.headers().get(header::CONTENT_TYPE);
        if !is_json(content_type) {
            let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("none");
            return Err(CimdError::Invalid(format!(
                "{client_id} answered with content type {content_type:?}, not JSON"
            )));
        }
        let limit = self.options.max_document_bytes;
        let too_large = || {
            CimdError::Invalid(format!(
                "{client_id} answered with more than the {limit}-byte limit"
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let ttl = self.options.ttl(response.headers(), SystemTime::now());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(client_id, &error))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let record = Arc::new(validate_metadata_document(client_id, &body)?);
        match ttl {
            Some(ttl) => {
                let now = Instant::now();
                let cached = CachedDocument {
                    record: record.clone(),
                    until: now.checked_add(ttl).unwrap_or(now),
                };
                self.documents
                    .insert(client_id.to_owned(), Arc::new(cached));
                tracing::debug!(
                    client_id,
                    ttl_seconds = ttl.as_secs(),
                    "client metadata document cached"
                );
            }
            None => tracing::debug!(client_id, "client metadata document not cacheable"),
        }
        Ok(record)
    }

    fn transport_error(&self, client_id: &str, error: &reqwest::Error) -> CimdError {
        if let Some(refused) = find_source::<RefusedAddress>(error) {
            return CimdError::Invalid(format!("{client_id} cannot be fetched: {refused}"));
        }
        if error.is_timeout() {
            return CimdError::Unavailable(format!(
                "{client_id} gave no complete answer within {:?}",
                self.options.timeout
            ));
        }
        CimdError::Unavailable(format!("{client_id} failed: {}", error_chain(error)))
    }
}

/// A status other than 200: a redirect or another client error is the document's fault;
/// server errors, `408` and `429` pass.
fn status_error(client_id: &str, status: StatusCode) -> CimdError {
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return CimdError::Unavailable(format!("{client_id} answered HTTP {status}"));
    }
    if status.is_redirection() {
        return CimdError::Invalid(format!(
            "{client_id} answered HTTP {status}: redirects are not followed; publish the \
             document at its client id"
        ));
    }
    CimdError::Invalid(format!("{client_id} answered HTTP {status}, not 200"))
}

/// `application/json`, or any `application/…+json`, with or without parameters.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `error` and its sources joined by `: `, skipping repeats (reqwest's message often repeats
/// its source's).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::response::{IntoResponse, Response};
    use serde_json::json;

    const HOST: &str = "client.test";
    const URL: &str = "http://client.test/client.json";

    fn document(client_id: &str) -> serde_json::Value {
        json!({
            "client_id": client_id,
            "client_name": "Test Client",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none"
        })
    }

    fn json_response(cache_control: Option<&str>, body: String) -> Response {
        let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(value) = cache_control {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        response
    }

    /// A loopback server answering every request with `respond()` after `delay`, and the
    /// number of requests it received.
    async fn server<F>(delay: Duration, respond: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn() -> Response + Clone + Send + Sync + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().fallback(move || {
            let respond = respond.clone();
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                respond()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, hits)
    }

    async fn serving<F>(respond: F) -> (CimdFetcher, Arc<AtomicUsize>)
    where
        F: Fn() -> Response + Clone + Send + Sync + 'static,
    {
        let (addr, hits) = server(Duration::ZERO, respond).await;
        let fetcher = CimdFetcher::new(CimdOptions::default().trust_host(HOST, addr));
        (fetcher, hits)
    }

    fn valid_document(cache_control: Option<&'static str>) -> impl Fn() -> Response + Clone {
        move || json_response(cache_control, document(URL).to_string())
    }

    fn invalid_reason(outcome: Outcome) -> String {
        match outcome {
            Err(CimdError::Invalid(reason)) => reason,
            other => panic!("expected an invalid-document error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_valid_document_resolves_and_is_cached() {
        let (fetcher, hits) = serving(valid_document(Some("public, max-age=600"))).await;
        let first = fetcher.resolve(URL).await.unwrap();
        assert_eq!(first.client_id, URL);
        assert_eq!(first.client_name.as_deref(), Some("Test Client"));
        let second = fetcher.resolve(URL).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the second resolve is a cache hit"
        );
        assert!(fetcher.inner.flights.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_documents_are_fetched_again_and_dropped_once_invalid() {
        let valid = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let serving_valid = valid.clone();
        let (addr, hits) = server(Duration::ZERO, move || {
            let client_id = if serving_valid.load(Ordering::SeqCst) {
                URL
            } else {
                "http://client.test/other.json"
            };
            json_response(Some("max-age=600"), document(client_id).to_string())
        })
        .await;
        let fetcher = CimdFetcher::new(
            CimdOptions::default()
                .ttl_bounds(Duration::from_millis(50), Duration::from_millis(100))
                .trust_host(HOST, addr),
        );
        fetcher.resolve(URL).await.unwrap();
        fetcher.resolve(URL).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        fetcher.resolve(URL).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "max-age clamped to 100 ms");

        tokio::time::sleep(Duration::from_millis(150)).await;
        valid.store(false, Ordering::SeqCst);
        invalid_reason(fetcher.resolve(URL).await);
        assert!(fetcher.inner.documents.get(URL).is_none());
        invalid_reason(fetcher.resolve(URL).await);
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_document_without_cache_headers_is_cached_for_the_default_time() {
        let (fetcher, hits) = serving(valid_document(None)).await;
        fetcher.resolve(URL).await.unwrap();
        fetcher.resolve(URL).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_store_and_no_cache_documents_are_fetched_each_time() {
        for directive in ["no-store", "no-cache", "max-age=0"] {
            let (fetcher, hits) = serving(valid_document(Some(directive))).await;
            fetcher.resolve(URL).await.unwrap();
            fetcher.resolve(URL).await.unwrap();
            assert_eq!(hits.load(Ordering::SeqCst), 2, "{directive}");
        }
    }

    #[tokio::test]
    async fn private_addresses_are_refused_before_any_connection() {
        let (addr, hits) = server(Duration::ZERO, valid_document(None)).await;
        let fetcher = CimdFetcher::new(CimdOptions::default());
        let port = addr.port();
        for url in [
            format!("https://127.0.0.1:{port}/client.json"),
            format!("https://[::1]:{port}/client.json"),
            format!("https://[::ffff:7f00:1]:{port}/client.json"),
            format!("https://169.254.169.254:{port}/latest/meta-data"),
            format!("https://10.1.2.3:{port}/client.json"),
        ] {
            let reason = invalid_reason(fetcher.resolve(&url).await);
            assert!(reason.contains("not a public address"), "{url}: {reason}");
        }
        // A name resolving to loopback is refused by the resolver, before connecting.
        let url = format!("https://localhost:{port}/client.json");
        let reason = invalid_reason(fetcher.resolve(&url).await);
        assert!(reason.contains("not a public address"), "{reason}");
        // Plain http on an untrusted host is refused outright.
        let url = format!("http://127.0.0.1:{port}/client.json");
        assert!(invalid_reason(fetcher.resolve(&url).await).contains("https"));
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_with_any_private_address() {
        use reqwest::dns::Resolve as _;
        let resolver = CheckedResolver {
            trusted: Arc::new(HashMap::from([(
                "dev.test".to_owned(),
                "127.0.0.1:9".parse().unwrap(),
            )])),
        };
        let error = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(error.downcast_ref::<RefusedAddress>().is_some(), "{error}");
        let trusted: Vec<SocketAddr> = resolver
            .resolve("DEV.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(trusted, ["127.0.0.1:9".parse().unwrap()]);
    }

    #[tokio::test]
    async fn redirects_are_refused() {
        let (fetcher, hits) = serving(|| {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "http://client.test/elsewhere.json")],
            )
                .into_response()
        })
        .await;
        let reason = invalid_reason(fetcher.resolve(URL).await);
        assert!(reason.contains("redirects are not followed"), "{reason}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the target was not fetched");
    }

    #[tokio::test]
    async fn documents_over_the_size_limit_are_refused() {
        // Declared: refused from Content-Length.
        let padded = format!("{}{}", " ".repeat(6000), document(URL));
        let (fetcher, _) = serving(move || json_response(None, padded.clone())).await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("5120-byte limit"));

        // Chunked, without a length: refused while reading.
        let (fetcher, _) = serving(|| {
            let chunks =
                (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 2000])));
            let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        })
        .await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("5120-byte limit"));

        // Just under the limit is fine.
        let body = document(URL).to_string();
        let padded = format!("{body}{}", " ".repeat(5120 - body.len()));
        let (fetcher, _) = serving(move || json_response(None, padded.clone())).await;
        fetcher.resolve(URL).await.unwrap();
    }

    #[tokio::test]
    async fn documents_must_be_json() {
        let (fetcher, _) = serving(|| {
            (
                [(header::CONTENT_TYPE, "text/html")],
                document(URL).to_string(),
            )
                .into_response()
        })
        .await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("not JSON"));

        let (fetcher, _) = serving(|| json_response(None, "<html>".to_owned())).await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("not valid JSON"));

        let (fetcher, _) = serving(|| {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/client-metadata+json; charset=utf-8",
                )],
                document(URL).to_string(),
            )
                .into_response()
        })
        .await;
        fetcher.resolve(URL).await.unwrap();
    }

    #[tokio::test]
    async fn invalid_documents_are_refused_and_never_cached() {
        let (fetcher, hits) =
            serving(|| json_response(None, document("http://client.test/other.json").to_string()))
                .await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("not the URL"));
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("not the URL"));
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let (fetcher, _) = serving(|| {
            let mut document = document(URL);
            document["client_secret"] = json!("s3cret");
            json_response(None, document.to_string())
        })
        .await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("client_secret"));

        let (fetcher, _) = serving(|| {
            let mut document = document(URL);
            document["redirect_uris"] = json!(["javascript:alert(1)"]);
            json_response(None, document.to_string())
        })
        .await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("javascript"));

        let (fetcher, _) = serving(|| StatusCode::NOT_FOUND.into_response()).await;
        assert!(invalid_reason(fetcher.resolve(URL).await).contains("404"));
    }

    #[tokio::test]
    async fn server_errors_and_timeouts_are_temporary() {
        let (fetcher, hits) = serving(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()).await;
        let error = fetcher.resolve(URL).await.unwrap_err();
        assert!(error.is_temporary(), "{error}");
        fetcher.resolve(URL).await.unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "failures are not cached");

        let (addr, _) = server(Duration::from_secs(3), valid_document(None)).await;
        let fetcher = CimdFetcher::new(
            CimdOptions::default()
                .timeout(Duration::from_millis(200))
                .trust_host(HOST, addr),
        );
        let started = Instant::now();
        let error = fetcher.resolve(URL).await.unwrap_err();
        assert!(error.is_temporary(), "{error}");
        assert!(error.to_string().contains("within"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));

        // Nothing listens on a reserved port of a trusted host: also temporary.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let fetcher = CimdFetcher::new(CimdOptions::default().trust_host(HOST, closed_addr));
        assert!(fetcher.resolve(URL).await.unwrap_err().is_temporary());
    }

    #[tokio::test]
    async fn concurrent_resolves_share_one_fetch() {
        let (addr, hits) = server(Duration::from_millis(100), valid_document(None)).await;
        let fetcher = CimdFetcher::new(CimdOptions::default().trust_host(HOST, addr));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let fetcher = fetcher.clone();
                tokio::spawn(async move { fetcher.resolve(URL).await })
            })
            .collect();
        let mut records = Vec::new();
        for task in tasks {
            records.push(task.await.unwrap().unwrap());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(records.iter().all(|r| Arc::ptr_eq(r, &records[0])));
        assert!(fetcher.inner.flights.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn fetches_per_host_are_rate_limited() {
        let (addr, hits) = server(Duration::ZERO, || {
            json_response(Some("no-store"), document(URL).to_string())
        })
        .await;
        let fetcher = CimdFetcher::new(
            CimdOptions::default()
                .host_fetch_rate(1, 1)
                .trust_host(HOST, addr),
        );
        fetcher.resolve(URL).await.unwrap();
        let error = fetcher.resolve(URL).await.unwrap_err();
        assert!(
            error.is_temporary() && error.to_string().contains("too many"),
            "{error}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bad_urls_are_refused_without_a_fetch() {
        let (fetcher, hits) = serving(valid_document(None)).await;
        for url in [
            "http://client.test/",
            "http://client.test/client.json#x",
            "http://user@client.test/client.json",
            "http://client.test/a/../client.json",
            "http://other.test/client.json",
            "ftp://client.test/client.json",
        ] {
            invalid_reason(fetcher.resolve(url).await);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert!(fetcher.handles(URL));
        assert!(fetcher.handles("https://claude.ai/oauth/claude-code-client-metadata"));
        assert!(!fetcher.handles("http://other.test/client.json"));
        assert!(!fetcher.handles("k3Qz-registered-client"));
    }

    #[test]
    fn cache_times_follow_the_headers_within_bounds() {
        let options = CimdOptions::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let ttl = |pairs: &[(header::HeaderName, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
            }
            options.ttl(&headers, now)
        };
        let secs = |s| Some(Duration::from_secs(s));
        let cc = header::CACHE_CONTROL;
        assert_eq!(ttl(&[]), secs(3600));
        assert_eq!(ttl(&[(cc.clone(), "public, max-age=600")]), secs(600));
        assert_eq!(ttl(&[(cc.clone(), "max-age=\"900\"")]), secs(900));
        assert_eq!(ttl(&[(cc.clone(), "max-age=1")]), secs(300));
        assert_eq!(ttl(&[(cc.clone(), "max-age=99999999")]), secs(86400));
        assert_eq!(ttl(&[(cc.clone(), "max-age=0")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age=abc")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age=+600")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age=\"600")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age=\"\"600\"\"")]), None);
        assert_eq!(ttl(&[(cc.clone(), "no-store")]), None);
        assert_eq!(ttl(&[(cc.clone(), "max-age=600, No-Cache")]), None);
        assert_eq!(
            ttl(&[(cc.clone(), "public"), (cc.clone(), "no-store")]),
            None
        );
        // A field that is not visible ASCII might say no-store: not cached.
        let mut unreadable = HeaderMap::new();
        unreadable.append(cc.clone(), HeaderValue::from_static("max-age=600"));
        unreadable.append(
            cc.clone(),
            HeaderValue::from_bytes(b"no-store, \xe2\x80\x8b").unwrap(),
        );
        assert_eq!(options.ttl(&unreadable, now), None);

        let date = httpdate::fmt_http_date(now);
        let in_two_hours = httpdate::fmt_http_date(now + Duration::from_secs(7200));
        let an_hour_ago = httpdate::fmt_http_date(now - Duration::from_secs(3600));
        let exp = header::EXPIRES;
        assert_eq!(ttl(&[(exp.clone(), &in_two_hours)]), secs(7200));
        assert_eq!(
            ttl(&[(exp.clone(), &in_two_hours), (header::DATE, &date)]),
            secs(7200)
        );
        assert_eq!(ttl(&[(exp.clone(), &an_hour_ago)]), None);
        assert_eq!(ttl(&[(exp.clone(), "0")]), None);
        assert_eq!(
            ttl(&[(exp.clone(), &an_hour_ago), (cc.clone(), "max-age=600")]),
            secs(600),
            "max-age wins over Expires"
        );

        let bounded = CimdOptions::default()
            .ttl_bounds(Duration::from_secs(10), Duration::from_secs(5))
            .default_ttl(Duration::from_secs(60));
        assert_eq!(bounded.ttl(&HeaderMap::new(), now), secs(10));
    }

    #[test]
    fn global_addresses() {
        let global = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "2001:200::1",
            "3fff:1000::1",
        ];
        let special = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
            "64:ff9b:1::808:808",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2002:c0a8:101::1",
            "2002:808:808::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "5f00::1",
        ];
        for ip in global {
            assert!(is_global(ip.parse().unwrap()), "{ip} is global");
        }
        for ip in special {
            assert!(!is_global(ip.parse().unwrap()), "{ip} is not global");
        }
    }

    #[test]
    fn json_content_types() {
        let check = |v: &str| is_json(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/foo+json"));
        assert!(!check("text/json"));
        assert!(!check("text/html"));
        assert!(!check("application/jsonp"));
        assert!(!is_json(None));
    }

    #[test]
    fn errors_say_whether_to_retry() {
        assert!(CimdError::Unavailable("x".into()).is_temporary());
        assert!(!CimdError::Invalid("x".into()).is_temporary());
        assert!(status_error(URL, StatusCode::SERVICE_UNAVAILABLE).is_temporary());
        assert!(status_error(URL, StatusCode::TOO_MANY_REQUESTS).is_temporary());
        assert!(!status_error(URL, StatusCode::GONE).is_temporary());
        assert!(!status_error(URL, StatusCode::MOVED_PERMANENTLY).is_temporary());
        assert!(!status_error(URL, StatusCode::NO_CONTENT).is_temporary());
    }
}
