//! The caches of this crate (verified JWTs, answers of the authorization server): keyed by the
//! whole token (no hash an attacker could collide, no prefix), bounded in entries and in
//! estimated bytes, evicting the least useful entries past either bound (S3-FIFO, by
//! `quick_cache`: no sweep, no cliff). `quick_cache` has no expiry: each entry carries its own
//! deadline and its owner treats an entry past it as a miss.

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::auth_info::Identity;

/// An estimate of the memory a cache entry takes, its key (the token) included: what the byte
/// bounds of this crate's caches count.
pub(crate) trait EstimatedSize {
    /// The estimated bytes of this value kept under `token`.
    fn estimated_bytes(&self, token: &str) -> u64;
}

/// Weighs each entry by its [`EstimatedSize`], and at least by the share of the byte bound that
/// each entry takes (so that the byte bound also bounds the number of entries).
#[derive(Debug, Clone)]
pub(crate) struct EntryWeight {
    floor: u64,
}

impl<V: EstimatedSize> Weighter<String, V> for EntryWeight {
    fn weight(&self, token: &String, value: &V) -> u64 {
        value.estimated_bytes(token).max(self.floor)
    }
}

/// A cache keyed by whole tokens, bounded in entries and in estimated bytes; past either bound
/// the least useful entries are evicted (S3-FIFO, by `quick_cache`), a few at a time: a new
/// entry is on probation (evicted first unless used again), and an entry heavier than nearly a
/// whole shard's share of the bytes is not admitted (its waiting readers still get it).
pub(crate) type BoundedCache<V> = Cache<String, V, EntryWeight>;

/// A [`BoundedCache`] of at most `max_entries` (at least 1) and `max_bytes`, its table sized for
/// entries of about `typical_bytes`. (The table grows when more fit; small caches get fewer
/// shards: `quick_cache` keeps about 32 estimated entries per shard.)
pub(crate) fn bounded_cache<V: EstimatedSize + Clone>(
    max_entries: usize,
    max_bytes: usize,
    typical_bytes: usize,
) -> BoundedCache<V> {
    let max_entries = max_entries.max(1);
    let floor = (max_bytes as u64).div_ceil(max_entries as u64).max(1);
    let estimated = (max_bytes / typical_bytes.max(1)).max(16).min(max_entries);
    Cache::with_weighter(estimated, max_bytes as u64, EntryWeight { floor })
}

/// What a remembered identity takes besides its token and claims: the identity's fixed parts,
/// the allocator's overhead, and the cache's own slot.
pub(crate) const IDENTITY_FIXED_BYTES: usize = 680;

/// A remembered identity's variable memory: the token (the key), and the claims' JSON plus the
/// identity's copies of some of them (issuer, subject, audience, scopes). With the fixed parts,
/// measured: 1.8 KiB for an RS256 token of 663 bytes (the development server's), and so
/// estimated.
pub(crate) fn identity_bytes(token: &str, identity: &Identity) -> usize {
    token.len() + 2 * identity.claims_json_len()
}
