//! Verifying tokens the server cannot check locally (opaque tokens) by asking the
//! authorization server: RFC 7662 introspection, or the OpenID Connect userinfo endpoint.
//!
//! Each token costs bounded work on the authorization server, whatever the requests send:
//!
//! - One call per token at a time: concurrent requests with a token that has no answer yet
//!   wait for the first one's call and share its outcome (`quick_cache`'s per-key guard, as
//!   for verified JWTs).
//! - An accepted answer serves until the token's expiry, never longer than a ceiling (so a
//!   revocation is seen within it).
//! - A definite refusal (inactive, not an access token, userinfo 401/403, an answer without a
//!   subject or from another issuer…) is remembered for a few seconds, so a bogus token
//!   repeated costs one call. A failure to get an answer (connection, timeout, another status,
//!   a body that is not a JSON object, this server's introspection credentials refused) is
//!   shared only with the requests that waited for that call, never remembered.
//! - Calls are rate-limited (a token bucket). A request whose token has no answer when the
//!   bucket is empty is answered 503 with `Retry-After`, and the server is not asked.
//! - Accepted answers and refusals are kept in two caches, each bounded in entries and in
//!   estimated bytes and evicting the least useful entries (S3-FIFO); refusals never evict
//!   accepted answers. Every call is bounded like every other fetch of this crate (timeouts,
//!   response size).

use std::fmt;
use std::future::Future;
use std::mem::size_of;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use url::Url;

use crate::auth_error::CustomVerifyError;
use crate::auth_info::{AuthInfo, Identity, system_time};
use crate::bounded_cache::{
    BoundedCache, EstimatedSize, IDENTITY_FIXED_BYTES, bounded_cache, identity_bytes,
};
use crate::claims;
use crate::discovery::MetadataFetcher;
use crate::http_client::FetchError;
use crate::layer::VerifyToken;
use crate::mcp_auth::ConfigError;
use crate::rate_limit::TokenBucket;

/// The default ceiling on how long an accepted answer is cached (it serves until the token's
/// expiry, never longer than this).
pub(crate) const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// The default bound on accepted answers cached.
pub(crate) const DEFAULT_MAX_CACHED_TOKENS: usize = 10_000;
/// The default bound on the estimated memory of the accepted answers cached (16 MiB: about
/// 7,000 answers of 500 bytes of JSON; an entry weighs its token, twice its answer's JSON, and
/// about 700 bytes).
pub(crate) const DEFAULT_MAX_CACHE_BYTES: usize = 16 << 20;
/// The default time a refusal is remembered: a refused token repeated within it costs no call.
pub(crate) const DEFAULT_REFUSAL_TTL: Duration = Duration::from_secs(10);
/// The default bound on refusals remembered (each counts at least 1 KiB, more for longer
/// tokens: 1,000 refusals, 1 MiB).
pub(crate) const DEFAULT_MAX_REFUSED_TOKENS: usize = 1_000;
/// The default sustained rate of calls to the authorization server, a second.
pub(crate) const DEFAULT_MAX_CALLS_PER_SECOND: u32 = 50;
/// The default number of calls that may be made at once after a quiet period.
pub(crate) const DEFAULT_MAX_CALL_BURST: u32 = 100;

/// The share of the refusal cache's byte bound that one refusal takes at least.
const REFUSAL_BYTES: usize = 1024;

/// The `token_type` values of an introspection answer that name a bearer access token, compared
/// case-insensitively: `Bearer` (RFC 7662 §2.2 means the RFC 6749 §7.1 token type), the RFC 7009
/// hint `access_token` (which some servers answer with), and the RFC 8693 §3 identifier.
const ACCESS_TOKEN_TYPES: [&str; 3] = [
    "Bearer",
    "access_token",
    "urn:ietf:params:oauth:token-type:access_token",
];

#[derive(Clone)]
enum Endpoint {
    Introspection {
        url: Url,
        client_id: String,
        client_secret: String,
    },
    Userinfo {
        url: Url,
    },
}

/// What a verifier is configured with; changing it starts a verifier afresh.
#[derive(Clone)]
struct Settings {
    issuer: String,
    endpoint: Endpoint,
    fetcher: MetadataFetcher,
    scopes_member: Option<String>,
    max_ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    refusal_ttl: Duration,
    max_refusals: usize,
    calls_per_second: u32,
    call_burst: u32,
}

/// An accepted answer.
struct Accepted {
    identity: Identity,
    /// When the call answered: the requests that waited for it take it whatever `until` is.
    answered: Instant,
    /// Until when it serves later requests.
    until: Instant,
}

/// A refusal, or a failure to get an answer (its `until` is `answered`: it serves only the
/// requests that waited for the call).
struct Refused {
    error: CustomVerifyError,
    answered: Instant,
    until: Instant,
}

impl Accepted {
    /// Whether it serves a request that started at `asked`.
    fn serves(&self, asked: Instant) -> bool {
        asked <= self.answered || Instant::now() < self.until
    }
}

impl Refused {
    /// Whether it serves a request that started at `asked`.
    fn serves(&self, asked: Instant) -> bool {
        asked <= self.answered || Instant::now() < self.until
    }
}

impl EstimatedSize for Arc<Accepted> {
    fn estimated_bytes(&self, token: &str) -> u64 {
        let fixed = size_of::<Accepted>() + IDENTITY_FIXED_BYTES;
        (identity_bytes(token, &self.identity) + fixed) as u64
    }
}

impl EstimatedSize for Arc<Refused> {
    fn estimated_bytes(&self, token: &str) -> u64 {
        let detail = match &self.error {
            CustomVerifyError::InvalidToken(detail) | CustomVerifyError::Unavailable(detail) => {
                detail.len()
            }
            CustomVerifyError::UnavailableFor { detail, .. } => detail.len(),
        };
        // The allocations' and the cache slot's overhead.
        (token.len() + detail + size_of::<Refused>() + 128) as u64
    }
}

/// Why a call gave no accepted answer.
enum Failure {
    /// A definite refusal of the token: remembered for the refusal time.
    Refused(String),
    /// No usable answer: shared with the requests that waited for the call, never remembered.
    Unavailable(String),
    /// Over the rate limit, so not asked; the wait until the next call may be made.
    Throttled(Duration),
}

struct Inner {
    settings: Settings,
    accepted: BoundedCache<Arc<Accepted>>,
    refused: BoundedCache<Arc<Refused>>,
    bucket: TokenBucket,
    calls: AtomicU64,
    throttled: AtomicU64,
}

impl Inner {
    fn new(settings: Settings) -> Self {
        Self {
            // Sized for answers of about 2.5 KiB, and refusals of less than 1 KiB.
            accepted: bounded_cache(settings.max_entries, settings.max_bytes, 2560),
            refused: bounded_cache(
                settings.max_refusals,
                settings.max_refusals.saturating_mul(REFUSAL_BYTES),
                REFUSAL_BYTES,
            ),
            bucket: TokenBucket::new(settings.calls_per_second, settings.call_burst),
            calls: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            settings,
        }
    }
}

/// What a [`RemoteVerifier`] holds, and how often it asked the authorization server (see
/// [`RemoteVerifier::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteVerifierStats {
    /// Accepted answers cached now (some may be past their time, until evicted or asked again).
    pub answers: usize,
    /// Their estimated size in bytes (at most the configured byte bound).
    pub answer_bytes: u64,
    /// Refusals remembered now (with the failures kept for the requests that waited for them).
    pub refusals: usize,
    /// Their estimated size in bytes.
    pub refusal_bytes: u64,
    /// Calls made to the authorization server since the verifier was made.
    pub calls: u64,
    /// Requests answered "unavailable" by the rate limit, without a call.
    pub throttled: u64,
}

/// A [`VerifyToken`] for opaque tokens: it asks the authorization server about each token, by
/// RFC 7662 introspection ([`RemoteVerifier::introspection`]) or the OpenID Connect userinfo
/// endpoint ([`RemoteVerifier::userinfo`]), at most once per token while its answer is
/// cached, and at a bounded rate.
///
/// Bounds, all configurable (the defaults are the `DEFAULT_*` constants of this crate):
///
/// | what | default | builder |
/// |---|---|---|
/// | an accepted answer serves until the token's `exp`, at most | 5 min | [`max_cache_ttl`](Self::max_cache_ttl) |
/// | accepted answers cached | 10,000 and 16 MiB | [`max_cached_tokens`](Self::max_cached_tokens), [`max_cache_bytes`](Self::max_cache_bytes) |
/// | a refusal is remembered for | 10 s | [`refusal_ttl`](Self::refusal_ttl) |
/// | refusals remembered | 1,000 (1 MiB) | [`max_refused_tokens`](Self::max_refused_tokens) |
/// | calls to the server | 50 a second, bursts of 100 | [`max_calls_per_second`](Self::max_calls_per_second), [`max_call_burst`](Self::max_call_burst) |
/// | each call | 10 s, 256 KiB | [`fetcher`](Self::fetcher) |
///
/// Concurrent requests with one token make one call. Beyond the call rate, a request whose
/// token has no cached answer gets 503 with `Retry-After` (the time until the next call may be
/// made) without a call, while cached tokens keep working: size the rate for the new tokens a
/// second the server sees, and the refusal bound for rate × refusal time.
///
/// The layer checks what the verifier returns like any token: the issuer among the resource's
/// authorization servers, the audience (unless skipped), the expiry with leeway, the scopes.
///
/// ```
/// use std::time::Duration;
/// use mcpauth::RemoteVerifier;
///
/// let verifier = RemoteVerifier::introspection(
///     "https://auth.example.com",
///     "https://auth.example.com/oauth2/introspect",
///     "my-resource-server",
///     "its-secret",
/// )
/// .unwrap()
/// .refusal_ttl(Duration::from_secs(30))
/// .max_calls_per_second(20);
/// assert_eq!(verifier.stats().calls, 0);
/// ```
#[derive(Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for RemoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner.settings;
        let endpoint = match &settings.endpoint {
            Endpoint::Introspection { url, .. } => ("introspection", url.as_str()),
            Endpoint::Userinfo { url } => ("userinfo", url.as_str()),
        };
        f.debug_struct("RemoteVerifier")
            .field("issuer", &settings.issuer)
            .field("endpoint", &endpoint)
            .field("scopes_member", &settings.scopes_member)
            .field("max_ttl", &settings.max_ttl)
            .field("max_entries", &settings.max_entries)
            .field("max_bytes", &settings.max_bytes)
            .field("refusal_ttl", &settings.refusal_ttl)
            .field("max_refusals", &settings.max_refusals)
            .field("calls_per_second", &settings.calls_per_second)
            .field("call_burst", &settings.call_burst)
            .finish_non_exhaustive()
    }
}

fn endpoint_url(url: &str) -> Result<Url, ConfigError> {
    mcpauth_rules::url::parse_secure_url(url).map_err(ConfigError::InvalidUrl)
}

impl RemoteVerifier {
    /// The default ceiling on how long an accepted answer is cached (it serves until the
    /// token's expiry, never longer than this): 5 minutes.
    pub const DEFAULT_MAX_CACHE_TTL: Duration = DEFAULT_MAX_CACHE_TTL;
    /// The default bound on accepted answers cached: 10,000.
    pub const DEFAULT_MAX_CACHED_TOKENS: usize = DEFAULT_MAX_CACHED_TOKENS;
    /// The default bound on the estimated memory of the accepted answers cached: 16 MiB (about
    /// 7,000 answers of 500 bytes of JSON).
    pub const DEFAULT_MAX_CACHE_BYTES: usize = DEFAULT_MAX_CACHE_BYTES;
    /// The default time a refusal is remembered: 10 s.
    pub const DEFAULT_REFUSAL_TTL: Duration = DEFAULT_REFUSAL_TTL;
    /// The default bound on refusals remembered: 1,000.
    pub const DEFAULT_MAX_REFUSED_TOKENS: usize = DEFAULT_MAX_REFUSED_TOKENS;
    /// The default sustained rate of calls to the authorization server: 50 a second.
    pub const DEFAULT_MAX_CALLS_PER_SECOND: u32 = DEFAULT_MAX_CALLS_PER_SECOND;
    /// The default number of calls that may be made at once after a quiet period: 100.
    pub const DEFAULT_MAX_CALL_BURST: u32 = DEFAULT_MAX_CALL_BURST;

    fn new(issuer: String, endpoint: Endpoint) -> Result<Self, ConfigError> {
        mcpauth_rules::url::parse_issuer(&issuer).map_err(ConfigError::InvalidIssuer)?;
        Ok(Self {
            inner: Arc::new(Inner::new(Settings {
                issuer,
                endpoint,
                fetcher: MetadataFetcher::new(),
                scopes_member: None,
                max_ttl: DEFAULT_MAX_CACHE_TTL,
                max_entries: DEFAULT_MAX_CACHED_TOKENS,
                max_bytes: DEFAULT_MAX_CACHE_BYTES,
                refusal_ttl: DEFAULT_REFUSAL_TTL,
                max_refusals: DEFAULT_MAX_REFUSED_TOKENS,
                calls_per_second: DEFAULT_MAX_CALLS_PER_SECOND,
                call_burst: DEFAULT_MAX_CALL_BURST,
            })),
        })
    }

    /// Verifies tokens with RFC 7662 introspection at `endpoint`, authenticating as
    /// `client_id` / `client_secret` (HTTP Basic) and sending `token_type_hint=access_token`.
    ///
    /// A token is accepted when the answer has `"active": true`, a `sub`, an `iss` that is
    /// `issuer` (or none), and a `token_type` that names a bearer access token or none:
    /// `Bearer`, `access_token` or `urn:ietf:params:oauth:token-type:access_token`, in any
    /// case. Any other type is refused (`refresh_token`, `id_token`, and `DPoP`, since a
    /// DPoP-bound token needs a proof this layer does not check). The audience (`aud`), expiry
    /// (`exp`), client (`client_id`) and scopes (`scope`, `scp`, `scopes`; see
    /// [`scopes_member`](Self::scopes_member)) are read from the answer. A 401 or 403 from the
    /// endpoint means this server's credentials were refused: every request is then answered
    /// 503 and nothing is remembered.
    pub fn introspection(
        issuer: impl Into<String>,
        endpoint: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::Introspection {
            url: endpoint_url(endpoint)?,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        };
        Self::new(issuer.into(), endpoint)
    }

    /// Verifies tokens by calling the OpenID Connect userinfo `endpoint` with them: a token is
    /// accepted when the endpoint answers a JSON object with a `sub` (and an `iss` that is
    /// `issuer`, or none); a 401 or 403 refuses it.
    ///
    /// Userinfo describes the user, not the token, so this mode cannot check:
    ///
    /// - the audience: whether the token was issued for this resource. Nothing is read from the
    ///   document as the audience, so the layer's audience check must be skipped explicitly
    ///   ([`BearerAuthLayer::skip_audience_check`](crate::BearerAuthLayer::skip_audience_check))
    ///   or every token is refused. Any token the provider accepts for userinfo is then
    ///   accepted here, including one issued to another resource of the same provider.
    /// - the expiry, unless the document has an `exp`: an answer is otherwise cached for the
    ///   ceiling ([`max_cache_ttl`](Self::max_cache_ttl)), so a revoked or expired token is
    ///   accepted until its answer ends.
    /// - the scopes, unless [`scopes_member`](Self::scopes_member) names the member that holds
    ///   them: by default a token has no scopes here (profile attributes may be edited by the
    ///   user), so routes that require scopes answer 403.
    pub fn userinfo(issuer: impl Into<String>, endpoint: &str) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::Userinfo {
            url: endpoint_url(endpoint)?,
        };
        Self::new(issuer.into(), endpoint)
    }

    fn with(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        // A reconfigured verifier starts afresh: empty caches, a full bucket.
        Self {
            inner: Arc::new(Inner::new(settings)),
        }
    }

    /// The longest an accepted answer is cached (default [`Self::DEFAULT_MAX_CACHE_TTL`], 5 minutes),
    /// whatever the token's expiry: a revoked token is accepted for at most this long.
    #[must_use]
    pub fn max_cache_ttl(self, ttl: Duration) -> Self {
        self.with(|settings| settings.max_ttl = ttl)
    }

    /// The most accepted answers cached at once (default [`Self::DEFAULT_MAX_CACHED_TOKENS`],
    /// 10,000; at least 1); beyond it, the least useful are evicted.
    #[must_use]
    pub fn max_cached_tokens(self, entries: usize) -> Self {
        self.with(|settings| settings.max_entries = entries)
    }

    /// The most memory the accepted answers may take, by estimate (default
    /// [`Self::DEFAULT_MAX_CACHE_BYTES`], 16 MiB): an answer weighs its token, twice its JSON, and
    /// about 700 bytes. Beyond it, the least useful are evicted; an answer larger than a
    /// fraction of the bound is not cached. 0 caches nothing (concurrent requests with one
    /// token still share one call).
    #[must_use]
    pub fn max_cache_bytes(self, bytes: usize) -> Self {
        self.with(|settings| settings.max_bytes = bytes)
    }

    /// How long a refusal is remembered (default [`Self::DEFAULT_REFUSAL_TTL`], 10 s): the same
    /// token is refused again within it without a call. Only definite refusals are remembered
    /// (inactive, not an access token, userinfo 401/403, an unusable answer), never a failure
    /// to get an answer. `Duration::ZERO` remembers none (concurrent requests with one token
    /// still share one call).
    #[must_use]
    pub fn refusal_ttl(self, ttl: Duration) -> Self {
        self.with(|settings| settings.refusal_ttl = ttl)
    }

    /// The most refusals remembered at once (default [`Self::DEFAULT_MAX_REFUSED_TOKENS`], 1,000;
    /// at least 1); each counts at least 1 KiB against a bound of that many KiB, more for
    /// tokens longer than about 800 bytes. Beyond it, the least useful are evicted; refusals
    /// never evict accepted answers. To remember every refusal, allow the call rate × the
    /// refusal time, plus the burst.
    #[must_use]
    pub fn max_refused_tokens(self, entries: usize) -> Self {
        self.with(|settings| settings.max_refusals = entries.max(1))
    }

    /// The sustained rate of calls to the authorization server, a second (default
    /// [`Self::DEFAULT_MAX_CALLS_PER_SECOND`], 50; at least 1). Only tokens without a cached answer
    /// or refusal cause calls; beyond the rate, their requests are answered 503 with
    /// `Retry-After` without a call.
    #[must_use]
    pub fn max_calls_per_second(self, calls: u32) -> Self {
        self.with(|settings| settings.calls_per_second = calls)
    }

    /// How many calls may be made at once after a quiet period (default
    /// [`Self::DEFAULT_MAX_CALL_BURST`], 100; at least 1).
    #[must_use]
    pub fn max_call_burst(self, calls: u32) -> Self {
        self.with(|settings| settings.call_burst = calls)
    }

    /// Reads the granted scopes from this member of the answer only: a space-delimited string
    /// or an array of strings.
    ///
    /// Without it, introspection reads `scope` (RFC 7662 §2.2), then `scp` and `scopes`;
    /// userinfo reads none, because a userinfo document holds profile attributes, some of
    /// which the user may edit. Name the member only if users cannot change it.
    #[must_use]
    pub fn scopes_member(self, member: impl Into<String>) -> Self {
        let member = member.into();
        self.with(|settings| settings.scopes_member = Some(member))
    }

    /// Bounds for the calls (timeouts, response size).
    #[must_use]
    pub fn fetcher(self, fetcher: MetadataFetcher) -> Self {
        self.with(|settings| settings.fetcher = fetcher)
    }

    /// What the verifier holds now, and how often it asked.
    pub fn stats(&self) -> RemoteVerifierStats {
        let inner = &*self.inner;
        RemoteVerifierStats {
            answers: inner.accepted.len(),
            answer_bytes: inner.accepted.weight(),
            refusals: inner.refused.len(),
            refusal_bytes: inner.refused.weight(),
            calls: inner.calls.load(Ordering::Relaxed),
            throttled: inner.throttled.load(Ordering::Relaxed),
        }
    }

    /// The verification: a cached answer or refusal, else one call for all the requests with
    /// `token` that arrive while it runs.
    async fn verify_token(&self, token: &str) -> Result<AuthInfo, CustomVerifyError> {
        let inner = &*self.inner;
        let asked = Instant::now();
        if let Some(answer) = inner.accepted.get(token)
            && answer.serves(asked)
        {
            return Ok(AuthInfo::new(&answer.identity, token));
        }
        if let Some(refusal) = inner.refused.get(token)
            && refusal.serves(asked)
        {
            return Err(refusal.error.clone());
        }
        // Two rounds: an answer past its time is removed in the first (only that one, not an
        // answer another request just got), and the second asks afresh, still one call for
        // concurrent requests.
        for round in 0..2 {
            match inner.accepted.get_value_or_guard_async(token).await {
                Ok(answer) if answer.serves(asked) => {
                    return Ok(AuthInfo::new(&answer.identity, token));
                }
                Ok(stale) if round == 0 => {
                    inner
                        .accepted
                        .remove_if(token, |entry| Arc::ptr_eq(entry, &stale));
                }
                Ok(_) => break,
                Err(guard) => {
                    // The call this request waited for may have ended in a refusal or a
                    // failure: the guard is passed on, one waiting request at a time. (If the
                    // request that called gave up, the next one calls, within the rate limit.)
                    if let Some(refusal) = inner.refused.get(token)
                        && refusal.serves(asked)
                    {
                        return Err(refusal.error.clone());
                    }
                    return match self.call(token).await {
                        Ok(answer) => {
                            let info = AuthInfo::new(&answer.identity, token);
                            // Waiting requests take the answer even when the cache cannot.
                            let _ = guard.insert(answer);
                            Ok(info)
                        }
                        Err(failure) => {
                            let error = self.remember(token, failure);
                            drop(guard);
                            Err(error)
                        }
                    };
                }
            }
        }
        match self.call(token).await {
            Ok(answer) => Ok(AuthInfo::new(&answer.identity, token)),
            Err(failure) => Err(self.remember(token, failure)),
        }
    }

    /// Keeps a refusal for the refusal time, and a failure for the requests that waited for
    /// it; returns the error to answer with.
    fn remember(&self, token: &str, failure: Failure) -> CustomVerifyError {
        let answered = Instant::now();
        let (error, kept_for) = match failure {
            Failure::Refused(detail) => (
                CustomVerifyError::InvalidToken(detail),
                self.inner.settings.refusal_ttl,
            ),
            Failure::Unavailable(detail) => {
                (CustomVerifyError::Unavailable(detail), Duration::ZERO)
            }
            Failure::Throttled(retry_after) => {
                return CustomVerifyError::UnavailableFor {
                    detail: "too many calls to the authorization server for tokens without a \
                             cached answer"
                        .into(),
                    retry_after,
                };
            }
        };
        let refusal = Refused {
            error: error.clone(),
            answered,
            until: answered.checked_add(kept_for).unwrap_or(answered),
        };
        self.inner
            .refused
            .insert(token.to_owned(), Arc::new(refusal));
        error
    }

    /// Asks the authorization server about `token`, within the rate limit.
    async fn call(&self, token: &str) -> Result<Arc<Accepted>, Failure> {
        let inner = &*self.inner;
        if let Err(wait) = inner.bucket.try_take(Instant::now()) {
            inner.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::Throttled(wait));
        }
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let claims = self.ask(token).await?;
        let info = self.auth_info(token, claims).map_err(Failure::Refused)?;
        let answered = Instant::now();
        let max_ttl = inner.settings.max_ttl;
        let lifetime = info
            .expires_at()
            .map(|exp| exp.duration_since(SystemTime::now()).unwrap_or_default())
            .map_or(max_ttl, |left| left.min(max_ttl));
        Ok(Arc::new(Accepted {
            identity: info.identity(),
            answered,
            until: answered.checked_add(lifetime).unwrap_or(answered),
        }))
    }

    /// The answer's members, or why there is no usable answer.
    async fn ask(&self, token: &str) -> Result<Map<String, Value>, Failure> {
        let client = self.inner.settings.fetcher.client();
        let answer = match &self.inner.settings.endpoint {
            Endpoint::Introspection {
                url,
                client_id,
                client_secret,
            } => {
                let form = [("token", token), ("token_type_hint", "access_token")];
                client
                    .json_object(http::Method::POST, url, |request| {
                        request
                            .basic_auth(client_id, Some(client_secret))
                            .form(&form)
                    })
                    .await
            }
            Endpoint::Userinfo { url } => {
                client
                    .json_object(http::Method::GET, url, |request| request.bearer_auth(token))
                    .await
            }
        };
        let introspection = matches!(self.inner.settings.endpoint, Endpoint::Introspection { .. });
        let claims = match answer {
            Ok(fetched) => match fetched.value {
                Value::Object(claims) => claims,
                // `json_object` answers objects only.
                _ => return Err(Failure::Unavailable("not a JSON object".into())),
            },
            Err(FetchError::Status { status, .. })
                if status == http::StatusCode::UNAUTHORIZED
                    || status == http::StatusCode::FORBIDDEN =>
            {
                return Err(if introspection {
                    // RFC 7662 §2.3: the protected resource's own credentials were refused.
                    Failure::Unavailable(format!(
                        "the introspection endpoint refused this server's client credentials \
                         (HTTP {status})"
                    ))
                } else {
                    Failure::Refused("the authorization server refused the token".into())
                });
            }
            Err(error) => return Err(Failure::Unavailable(error.to_string())),
        };
        if introspection {
            if claims.get("active") != Some(&Value::Bool(true)) {
                return Err(Failure::Refused("the token is not active".into()));
            }
            match claims.get("token_type") {
                None => {}
                Some(Value::String(kind))
                    if ACCESS_TOKEN_TYPES
                        .iter()
                        .any(|known| kind.eq_ignore_ascii_case(known)) => {}
                Some(other) => {
                    return Err(Failure::Refused(format!(
                        "the token is not a bearer access token (token_type {other})"
                    )));
                }
            }
        }
        Ok(claims)
    }

    fn auth_info(&self, token: &str, claims: Map<String, Value>) -> Result<AuthInfo, String> {
        let settings = &self.inner.settings;
        let invalid = |error: crate::AuthError| error.to_string();
        let issuer = match claims::string_claim(&claims, "iss").map_err(invalid)? {
            Some(iss) if iss != settings.issuer => {
                return Err(format!(
                    "the token was issued by {iss:?}, not {:?}",
                    settings.issuer
                ));
            }
            _ => settings.issuer.clone(),
        };
        let subject = match claims::string_claim(&claims, "sub").map_err(invalid)? {
            Some(sub) if !sub.is_empty() => sub.to_owned(),
            _ => return Err("the answer has no sub".into()),
        };
        let userinfo = matches!(settings.endpoint, Endpoint::Userinfo { .. });
        let scopes = match &settings.scopes_member {
            Some(member) => {
                claims::scopes(&claims, std::slice::from_ref(member)).map_err(invalid)?
            }
            None if userinfo => Vec::new(),
            None => claims::scopes(&claims, &claims::DEFAULT_SCOPE_CLAIMS).map_err(invalid)?,
        };
        let mut info = AuthInfo::builder(token, issuer, subject).scopes(scopes);
        if !userinfo {
            info = info.audience(claims::audiences(&claims).map_err(invalid)?);
        }
        if let Some(client_id) = claims::client_id(&claims).map_err(invalid)? {
            info = info.client_id(client_id);
        }
        if let Some(exp) = claims::numeric_date(&claims, "exp").map_err(invalid)?
            && let Some(expires_at) = system_time(exp)
        {
            info = info.expires_at(expires_at);
        }
        // Kept as JSON, as for verified JWTs: a fraction of the memory, and a known size.
        let info = match serde_json::to_vec(&claims) {
            Ok(json) => info.claims_json(json),
            Err(_) => info.claims(claims),
        };
        Ok(info.build())
    }
}

impl VerifyToken for RemoteVerifier {
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<AuthInfo, CustomVerifyError>> + Send + 'a>> {
        Box::pin(self.verify_token(token))
    }
}
