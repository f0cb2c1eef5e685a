//! The verified-token cache: a JWT whose signature and claims verified is remembered, so the
//! next request with the same token skips the signature check (about 16 µs for RS256, more
//! than the rest of the request).
//!
//! - The key is the whole token: no hash an attacker could collide, no prefix.
//! - An entry serves until the token's `exp`, never longer (the leeway does not extend it),
//!   and only while the key that verified it is still in its server's current key set: a
//!   rotation that drops the key ends its entries at the next key-set refresh, and the refresh
//!   runs in the background when the set is stale even if every request is a hit.
//! - Every hit checks the route's rules again (issuer among the resource's servers, `typ`
//!   policy, `nbf` with leeway, audience); the layer then checks scopes as for any token.
//! - Concurrent misses for one token verify it once; the others wait for that result.
//! - Only verified tokens are cached: a refusal is never remembered, so nothing an attacker
//!   sends can make a valid token refused later, and invalid tokens cannot fill the cache.
//! - Bounded in entries and in (estimated) bytes; the least useful entries are evicted
//!   (S3-FIFO, by `quick_cache`).

use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::auth_error::AuthError;
use crate::auth_info::AuthInfo;
use crate::auth_server::AuthServerHandle;
use crate::bounded_cache::{
    BoundedCache, EstimatedSize, IDENTITY_FIXED_BYTES, bounded_cache, identity_bytes,
};
use crate::claims;
use crate::metrics;
use crate::verify::{JwtRules, VerifiedToken, verify_jwt};

/// Bounds of the verified-token cache, one per protected resource (see
/// [`McpAuthBuilder::token_cache`](crate::McpAuthBuilder::token_cache)).
///
/// On by default: at most 10,000 tokens and about 4 MiB per resource (about 2,000 typical
/// tokens; raise it for more concurrent clients — each entry saves one signature check per
/// request while the token is in use).
///
/// ```
/// use mcpauth::TokenCacheOptions;
///
/// let options = TokenCacheOptions::default().max_entries(50_000).max_bytes(64 << 20);
/// assert!(options.is_enabled());
/// assert!(!TokenCacheOptions::disabled().is_enabled());
/// assert_eq!(TokenCacheOptions::DEFAULT_MAX_BYTES, 4 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct TokenCacheOptions {
    enabled: bool,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for TokenCacheOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

impl TokenCacheOptions {
    /// The default bound on tokens remembered per resource: 10,000.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    /// The default bound on the estimated memory of one resource's entries: 4 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 4 << 20;

    /// No cache: every request verifies its token's signature.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The most tokens remembered per resource (default 10,000; at least 1).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries.max(1);
        self
    }

    /// The most memory the entries of one resource may take, by estimate (default 4 MiB,
    /// about 2,000 typical tokens): the token, twice its decoded claims, and a fixed part of
    /// about 800 bytes.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Whether tokens are cached.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

/// What the verified-token cache of one resource holds, and how many signatures it checked
/// (see [`McpAuth::token_cache_stats`](crate::McpAuth::token_cache_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheStats {
    /// Tokens remembered now.
    pub entries: usize,
    /// Their estimated size in bytes.
    pub estimated_bytes: u64,
    /// Tokens verified in full (cache misses) since the start.
    pub verifications: u64,
}

impl EstimatedSize for Arc<VerifiedToken> {
    fn estimated_bytes(&self, token: &str) -> u64 {
        let fixed = size_of::<VerifiedToken>() + IDENTITY_FIXED_BYTES;
        (identity_bytes(token, &self.identity) + fixed) as u64
    }
}

/// One resource's verified tokens.
pub(crate) struct TokenCache {
    entries: BoundedCache<Arc<VerifiedToken>>,
    verifications: AtomicU64,
    /// The resource's identifier, the `resource` label of its size.
    resource: ::metrics::SharedString,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.len())
            .field("weight", &self.entries.weight())
            .finish_non_exhaustive()
    }
}

impl VerifiedToken {
    /// Whether the entry may still serve: before `exp`, with its key still the server's.
    fn usable(&self, now: f64) -> bool {
        now < self.exp && self.keys.holds(&self.key)
    }

    /// The `AuthInfo` of a hit, after the route's rules are checked again.
    fn serve(
        &self,
        token: &str,
        servers: &[Arc<AuthServerHandle>],
        rules: &JwtRules,
        now: f64,
    ) -> Result<AuthInfo, AuthError> {
        self.check(servers, rules, now)?;
        Ok(AuthInfo::new(&self.identity, token))
    }
}

impl TokenCache {
    /// A cache with `options`' bounds, or `None` when they disable it.
    pub(crate) fn new(options: TokenCacheOptions, resource: &str) -> Option<Arc<Self>> {
        if !options.enabled {
            return None;
        }
        Some(Arc::new(Self {
            // Sized for typical entries (about 2 KiB).
            entries: bounded_cache(options.max_entries, options.max_bytes, 2048),
            verifications: AtomicU64::new(0),
            resource: ::metrics::SharedString::from_shared(Arc::from(resource)),
        }))
    }

    pub(crate) fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            entries: self.entries.len(),
            estimated_bytes: self.entries.weight(),
            verifications: self.verifications.load(Ordering::Relaxed),
        }
    }

    /// What [`verify`](Self::verify) answers for `token` when the cache holds a usable entry for
    /// it (the rules checked again), without waiting; `None` when it must be verified.
    pub(crate) fn cached(
        &self,
        token: &str,
        servers: &[Arc<AuthServerHandle>],
        rules: &JwtRules,
    ) -> Option<Result<AuthInfo, AuthError>> {
        let now = claims::now_seconds();
        let entry = self.entries.get(token).filter(|entry| entry.usable(now))?;
        metrics::token_cache_hit();
        Some(entry.serve(token, servers, rules, now))
    }

    /// Verifies `token` for a route with `rules`: from the cache when it holds a usable entry
    /// (the rules checked again), else in full, remembering the result.
    pub(crate) async fn verify(
        &self,
        token: &str,
        servers: &[Arc<AuthServerHandle>],
        rules: &JwtRules,
        retry_after: Duration,
    ) -> Result<AuthInfo, AuthError> {
        let now = claims::now_seconds();
        // Two rounds: an unusable entry (expired, or its key dropped) is removed in the first,
        // and the second verifies afresh, still one verification for concurrent callers.
        for round in 0..2 {
            match self.entries.get_value_or_guard_async(token).await {
                Ok(entry) if entry.usable(now) => {
                    metrics::token_cache_hit();
                    return entry.serve(token, servers, rules, now);
                }
                Ok(_) if round == 0 => {
                    self.entries.remove(token);
                }
                Ok(_) => break,
                Err(guard) => {
                    let verified = self.verify_in_full(token, servers, rules, retry_after);
                    let (info, verified) = verified.await?;
                    if verified.exp > now {
                        let _ = guard.insert(Arc::new(verified));
                        metrics::token_cache_size(&self.resource, self.entries.len());
                    }
                    return Ok(info);
                }
            }
        }
        let verified = self.verify_in_full(token, servers, rules, retry_after);
        Ok(verified.await?.0)
    }

    async fn verify_in_full(
        &self,
        token: &str,
        servers: &[Arc<AuthServerHandle>],
        rules: &JwtRules,
        retry_after: Duration,
    ) -> Result<(AuthInfo, VerifiedToken), AuthError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        metrics::token_cache_miss();
        verify_jwt(token, servers, rules, retry_after).await
    }
}
