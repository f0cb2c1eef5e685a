//! The key cache: an authorization server's JWKS, fetched lazily, decoded once, refreshed in the
//! background when its TTL runs out, refetched (rate-limited, single-flight) on an unknown `kid`
//! or a signature failure, and kept while the server is unreachable.
//!
//! The hot path is a lock-free load of the current key set and a lookup by `kid`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwapOption, Guard};
use http::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use url::Url;

use crate::http_client::BoundedClient;
use crate::single_flight::SingleFlight;

/// How the key cache refreshes.
///
/// ```
/// use std::time::Duration;
/// use mcpauth::KeyCacheOptions;
///
/// let options = KeyCacheOptions::default().min_refresh_interval(Duration::from_secs(30));
/// assert_ne!(options, KeyCacheOptions::default());
/// assert_eq!(KeyCacheOptions::DEFAULT_MIN_REFRESH_INTERVAL, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct KeyCacheOptions {
    pub(crate) min_refresh_interval: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    max_keys: usize,
}

impl Default for KeyCacheOptions {
    fn default() -> Self {
        Self {
            min_refresh_interval: Self::DEFAULT_MIN_REFRESH_INTERVAL,
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            max_keys: 64,
        }
    }
}

impl KeyCacheOptions {
    /// The default least time between two fetches of a key set: 10 s.
    pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

    /// The least time between two fetches of a key set (default 10 s): unknown `kid`s and
    /// signature failures cannot make the cache fetch more often than this.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The time keys stay fresh when the response has no `Cache-Control: max-age` (default
    /// 10 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The bounds applied to `max-age` (default 30 s to 24 h).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max.max(min);
        self
    }

    /// The most keys kept from one key set (default 64); the rest are skipped.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    fn ttl(&self, headers: &HeaderMap) -> Duration {
        let directives = headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        let mut ttl = None;
        for directive in directives {
            if directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("no-cache")
            {
                ttl = Some(Duration::ZERO);
                break;
            }
            if let Some((name, value)) = directive.split_once('=')
                && name.trim().eq_ignore_ascii_case("max-age")
            {
                ttl = value
                    .trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
        ttl.unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

/// One verification key, decoded once, with the algorithms it may verify.
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    /// The JWK it was decoded from: a refetched set that still has this exact JWK keeps this
    /// very key (same `Arc`), so verified tokens remembered with it stay usable.
    jwk: Value,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    pub(crate) fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

/// A decoded key set and when it stops being fresh.
#[derive(Debug)]
pub(crate) struct VerificationKeys {
    pub(crate) generation: u64,
    keys: Vec<Arc<VerificationKey>>,
    fresh_until: Instant,
}

/// The result of looking a token's key up in a key set.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Arc<VerificationKey>),
    /// The `kid` names a key that may not verify this algorithm.
    AlgorithmMismatch,
    /// No key has this `kid` (or the token has none and the set has several keys).
    Unknown,
}

impl VerificationKeys {
    /// The key for a token: by `kid`; a token without `kid` only when the set has exactly one
    /// key (never "the first key that fits").
    pub(crate) fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup {
        let candidates = self.keys.iter().filter(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => true,
        });
        let mut seen = false;
        for key in candidates {
            if kid.is_none() && self.keys.len() != 1 {
                return Lookup::Unknown;
            }
            seen = true;
            if key.allows(algorithm) {
                return Lookup::Found(key.clone());
            }
        }
        if seen {
            Lookup::AlgorithmMismatch
        } else {
            Lookup::Unknown
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `key` (this very key, not an equal one) is in the set.
    fn holds(&self, key: &Arc<VerificationKey>) -> bool {
        self.keys.iter().any(|k| Arc::ptr_eq(k, key))
    }

    fn find_same(&self, jwk: &Value) -> Option<Arc<VerificationKey>> {
        self.keys.iter().find(|k| k.jwk == *jwk).cloned()
    }
}

/// The algorithms a JWK may verify: its `alg` when it has one (and it fits the key type), else
/// what its type and curve allow. `None` for keys that cannot verify access tokens.
fn allowed_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, String> {
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) key".into()),
        _ => return Err("unsupported key type".into()),
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(declared) => {
            let algorithm = Algorithm::try_from(declared)
                .map_err(|_| format!("unsupported alg {declared:?}"))?;
            if algorithm.family() == AlgorithmFamily::Hmac || !by_type.contains(&algorithm) {
                return Err(format!("alg {declared:?} does not fit the key type"));
            }
            Ok(vec![algorithm])
        }
    }
}

fn decode_key(value: &Value) -> Result<VerificationKey, String> {
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (use)".into());
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("key_ops does not include verify".into());
    }
    let algorithms = allowed_algorithms(&jwk)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("cannot decode: {e}"))?;
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
        jwk: value.clone(),
    })
}

/// What asking the key cache for keys gave: the keys, or why there are none now.
#[derive(Debug, Clone)]
pub(crate) enum KeysAnswer {
    /// The current key set.
    Keys(Arc<VerificationKeys>),
    /// No fetch now: the last one was too recent. `last_failed` says whether it failed.
    NotNow {
        last_failed: bool,
        retry_after: Duration,
    },
    /// The fetch failed.
    Failed(Arc<String>),
}

#[derive(Debug, Default)]
struct Attempts {
    last_started: Option<Instant>,
    last_failed: bool,
}

/// A key set held by this process (the broker's own keys): read directly, never over HTTP.
#[derive(Clone)]
pub(crate) struct LocalKeySet(Arc<dyn Fn() -> Value + Send + Sync>);

impl LocalKeySet {
    /// `jwks` returns the current JWKS document each time it is called.
    #[cfg_attr(not(feature = "broker"), allow(dead_code))]
    pub(crate) fn new(jwks: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        Self(Arc::new(jwks))
    }
}

impl fmt::Debug for LocalKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKeySet(..)")
    }
}

/// One authorization server's keys.
pub(crate) struct KeyCache {
    jwks_uri: Url,
    client: BoundedClient,
    /// Keys held in this process: read instead of fetching `jwks_uri`.
    local: Option<LocalKeySet>,
    options: KeyCacheOptions,
    current: ArcSwapOption<VerificationKeys>,
    attempts: Mutex<Attempts>,
    flight: SingleFlight<KeysAnswer>,
    background: AtomicBool,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("jwks_uri", &self.jwks_uri.as_str())
            .field("keys", &self.current.load().as_ref().map(|s| s.len()))
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub(crate) fn new(
        jwks_uri: Url,
        client: BoundedClient,
        local: Option<LocalKeySet>,
        options: KeyCacheOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            jwks_uri,
            client,
            local,
            options,
            current: ArcSwapOption::empty(),
            attempts: Mutex::new(Attempts::default()),
            flight: SingleFlight::default(),
            background: AtomicBool::new(false),
        })
    }

    /// The current key set, fetching the first one if there is none yet. A stale set is
    /// returned as is and refreshed in the background.
    pub(crate) async fn keys(self: &Arc<Self>) -> KeysAnswer {
        match Guard::into_inner(self.current_set()) {
            Some(set) => KeysAnswer::Keys(set),
            None => self.refresh(None).await,
        }
    }

    /// Whether `key` is still one of the server's keys: a lock-free read of the current set,
    /// which is refreshed in the background when stale (so a key the server dropped stops
    /// counting within the TTL even when every request is answered from the token cache).
    pub(crate) fn holds(self: &Arc<Self>, key: &Arc<VerificationKey>) -> bool {
        self.current_set()
            .as_ref()
            .is_some_and(|set| set.holds(key))
    }

    /// The current set (a lock-free read), refreshed in the background when it is stale.
    fn current_set(self: &Arc<Self>) -> Guard<Option<Arc<VerificationKeys>>> {
        let current = self.current.load();
        if let Some(set) = current.as_ref()
            && set.fresh_until <= Instant::now()
        {
            self.refresh_in_background(set.generation);
        }
        current
    }

    /// Fetches a newer key set than generation `seen`, unless one already arrived (then that one
    /// is returned), a fetch ran less than the minimum interval ago (`NotNow`), or one is under
    /// way (joined).
    pub(crate) async fn refresh(self: &Arc<Self>, seen: Option<u64>) -> KeysAnswer {
        // A storm of unknown `kid`s or bad signatures mostly ends here, without a flight. Not
        // while a fetch is under way: that one may bring the key, so it is joined below.
        if self.flight.is_idle()
            && let Err(early) = self.may_refresh(seen, false)
        {
            return early;
        }
        let this = self.clone();
        self.flight
            .run(move || {
                // Decided under the single-flight lock, so only one fetch starts.
                let start = this.may_refresh(seen, true);
                async move {
                    match start {
                        Ok(()) => this.fetch().await,
                        Err(early) => early,
                    }
                }
            })
            .await
    }

    /// Whether a fetch may start now: not when a newer set than `seen` is there, nor within
    /// the minimum interval of the last one. `start` records that one starts.
    fn may_refresh(&self, seen: Option<u64>, start: bool) -> Result<(), KeysAnswer> {
        if let Some(current) = self.current.load_full()
            && Some(current.generation) != seen
        {
            return Err(KeysAnswer::Keys(current));
        }
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(last) = attempts.last_started {
            let since = now.saturating_duration_since(last);
            if since < self.options.min_refresh_interval {
                return Err(KeysAnswer::NotNow {
                    last_failed: attempts.last_failed,
                    retry_after: self.options.min_refresh_interval - since,
                });
            }
        }
        if start {
            attempts.last_started = Some(now);
        }
        Ok(())
    }

    fn refresh_in_background(self: &Arc<Self>, seen: u64) {
        // Outside a tokio runtime there is nowhere to refresh; the next request in one will.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        runtime.spawn(async move {
            let _ = this.refresh(Some(seen)).await;
            this.background.store(false, Ordering::Release);
        });
    }

    async fn fetch(&self) -> KeysAnswer {
        let outcome = match &self.local {
            Some(local) => self.decode(&(local.0)(), &HeaderMap::new()),
            None => match self.client.get_json_object(&self.jwks_uri).await {
                Ok(fetched) => self.decode(&fetched.value, &fetched.headers),
                Err(error) => Err(error.to_string()),
            },
        };
        crate::metrics::key_set_fetch(outcome.is_ok());
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(set) => {
                attempts.last_failed = false;
                let set = Arc::new(set);
                tracing::debug!(jwks_uri = %self.jwks_uri, keys = set.len(), generation = set.generation, "key set fetched");
                self.current.store(Some(set.clone()));
                KeysAnswer::Keys(set)
            }
            Err(error) => {
                attempts.last_failed = true;
                let stale = self.current.load().is_some();
                tracing::warn!(jwks_uri = %self.jwks_uri, %error, keeping_previous_keys = stale, "key set unavailable");
                KeysAnswer::Failed(Arc::new(error))
            }
        }
    }

    pub(crate) fn decode(
        &self,
        document: &Value,
        headers: &HeaderMap,
    ) -> Result<VerificationKeys, String> {
        let Some(values) = document.get("keys").and_then(Value::as_array) else {
            return Err(format!(
                "{} is not a JWKS (no \"keys\" array)",
                self.jwks_uri
            ));
        };
        let previous = self.current.load_full();
        let mut keys = Vec::new();
        for (index, value) in values.iter().enumerate() {
            if keys.len() == self.options.max_keys {
                tracing::warn!(jwks_uri = %self.jwks_uri, max = self.options.max_keys, "key set has too many keys; the rest are skipped");
                break;
            }
            if let Some(same) = previous.as_ref().and_then(|set| set.find_same(value)) {
                keys.push(same);
                continue;
            }
            match decode_key(value) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(why) => {
                    let kid = value.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::warn!(jwks_uri = %self.jwks_uri, index, kid, "key skipped: {why}");
                }
            }
        }
        let generation = previous.as_ref().map_or(1, |s| s.generation + 1);
        Ok(VerificationKeys {
            generation,
            keys,
            // A TTL too large for the clock counts as already stale: refresh rather than panic.
            fresh_until: {
                let now = Instant::now();
                now.checked_add(self.options.ttl(headers)).unwrap_or(now)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    #[test]
    fn ttl_follows_cache_control_within_bounds() {
        let options = KeyCacheOptions::default();
        let ttl = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            options.ttl(&headers)
        };
        assert_eq!(ttl(None), Duration::from_secs(600));
        assert_eq!(ttl(Some("public, max-age=300")), Duration::from_secs(300));
        assert_eq!(ttl(Some("max-age=1")), Duration::from_secs(30));
        assert_eq!(ttl(Some("max-age=99999999")), Duration::from_secs(86400));
        assert_eq!(ttl(Some("no-store")), Duration::from_secs(30));
        assert_eq!(ttl(Some("max-age=abc")), Duration::from_secs(600));
    }

    #[test]
    fn keys_that_cannot_verify_access_tokens_are_skipped() {
        let rsa = json!({"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"});
        let mut with_alg = rsa.clone();
        with_alg["alg"] = json!("PS256");
        let key = decode_key(&with_alg).unwrap();
        assert!(key.allows(Algorithm::PS256) && !key.allows(Algorithm::RS256));
        let key = decode_key(&rsa).unwrap();
        assert!(
            key.allows(Algorithm::RS256)
                && key.allows(Algorithm::PS512)
                && !key.allows(Algorithm::ES256)
        );

        let mut enc = rsa.clone();
        enc["use"] = json!("enc");
        assert!(decode_key(&enc).unwrap_err().contains("use"));
        let mut mismatched = rsa.clone();
        mismatched["alg"] = json!("ES256");
        assert!(decode_key(&mismatched).is_err());
        let mut hmac_alg = rsa.clone();
        hmac_alg["alg"] = json!("HS256");
        assert!(decode_key(&hmac_alg).is_err());
        let mut wrap = rsa.clone();
        wrap["key_ops"] = json!(["wrapKey"]);
        assert!(decode_key(&wrap).is_err());
        assert!(decode_key(&json!({"kty":"oct","k":"c2VjcmV0"})).is_err());
        assert!(decode_key(&json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"})).is_err());
        assert!(decode_key(&json!({"kty":"XYZ"})).is_err());
    }
}
