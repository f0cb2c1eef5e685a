//! Minting tokens: valid ones of the current keys for the load and the checker, and the invalid
//! kinds the checker sends. Every token names the proxy's issuer (the one notes trusts).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpauth::dev::{DevAlgorithm, DevAuthServer, KeyRotation, TokenBuilder};
use tokio::sync::RwLock;

use crate::BoxError;
use crate::timeline::Timeline;

/// The scope `GET /notes` needs.
const READ_SCOPE: &str = "read:notes";

/// An audience that is not notes'.
pub(crate) const FOREIGN_AUDIENCE: &str = "http://127.0.0.1:9/not-notes";

/// How many tokens of each epoch are kept to be sent again (cache hits while current, retired
/// tokens after the next rotation).
const CARRY_TOKENS: usize = 32;

/// Mints tokens against the development server's current keys.
#[derive(Debug)]
pub(crate) struct Minter {
    dev: Arc<DevAuthServer>,
    /// Another development server: its RSA key signs the forged tokens.
    forger: DevAuthServer,
    issuer: String,
    resource: String,
    /// Shared while minting (the epoch read and the signing key agree), exclusive while rotating.
    pub(crate) keys_lock: Arc<RwLock<()>>,
    timeline: Arc<Timeline>,
    /// Per epoch: tokens minted at its start and reused.
    carry: Mutex<Vec<Vec<String>>>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Minter {
    pub(crate) async fn new(
        dev: Arc<DevAuthServer>,
        issuer: String,
        resource: String,
        keys_lock: Arc<RwLock<()>>,
        timeline: Arc<Timeline>,
    ) -> Result<Arc<Self>, BoxError> {
        let forger = DevAuthServer::start().await?;
        let minter = Arc::new(Self {
            dev,
            forger,
            issuer,
            resource,
            keys_lock,
            timeline,
            carry: Mutex::new(Vec::new()),
        });
        minter.mint_carry().await?;
        Ok(minter)
    }

    fn base(&self, subject: &str) -> TokenBuilder {
        self.signed_by(&self.dev, subject)
    }

    /// A token for notes from `server`, as notes' issuer names it; valid for a day, so that
    /// the carried tokens outlive any run (the default hour would not, with long phases).
    fn signed_by(&self, server: &DevAuthServer, subject: &str) -> TokenBuilder {
        server
            .token()
            .expires_in(Duration::from_secs(24 * 3600))
            .issuer(&self.issuer)
            .audience(&self.resource)
            .scopes([READ_SCOPE])
            .client_id("soak")
            .subject(subject)
    }

    /// A valid token of the current keys (the caller holds `keys_lock`).
    fn valid_now(&self, algorithm: DevAlgorithm, subject: &str) -> Result<String, BoxError> {
        Ok(self.base(subject).algorithm(algorithm).sign()?)
    }

    /// `count` valid RS256 tokens of the current keys, and their epoch (minted off the runtime).
    pub(crate) async fn batch(
        self: &Arc<Self>,
        count: usize,
    ) -> Result<(usize, Vec<String>), BoxError> {
        let guard = self.keys_lock.clone().read_owned().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let epoch = this.timeline.current_epoch();
            let tokens = (0..count)
                .map(|_| this.valid_now(DevAlgorithm::Rs256, "soak-load"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((epoch, tokens))
        })
        .await?
    }

    async fn mint_carry(self: &Arc<Self>) -> Result<(), BoxError> {
        let (epoch, tokens) = self.batch(CARRY_TOKENS).await?;
        let mut carry = self.carry.lock().unwrap_or_else(PoisonError::into_inner);
        carry.resize(epoch + 1, Vec::new());
        carry[epoch] = tokens;
        Ok(())
    }

    /// Rotates the development server's keys; the new epoch's number.
    pub(crate) async fn rotate(self: &Arc<Self>, rotation: KeyRotation) -> Result<usize, BoxError> {
        let epoch = {
            let _exclusive = self.keys_lock.write().await;
            self.dev.rotate_keys(rotation).await?;
            self.timeline.new_epoch()
        };
        self.mint_carry().await?;
        Ok(epoch)
    }

    /// One checker token of `kind` and the epoch of the key that signed it; `None` when the
    /// kind has nothing to send yet (no retired keys before the first rotation).
    pub(crate) async fn check_token(
        &self,
        kind: CheckKind,
        sequence: usize,
    ) -> Result<Option<(usize, Option<String>)>, BoxError> {
        let _shared = self.keys_lock.read().await;
        let epoch = self.timeline.current_epoch();
        // Each kind comes round every cycle; the rounds vary the algorithm and the old epoch.
        let round = sequence / CheckKind::CYCLE.len();
        let algorithm = [
            DevAlgorithm::Rs256,
            DevAlgorithm::Es256,
            DevAlgorithm::EdDsa,
        ][(round + sequence) % 3];
        let token = match kind {
            CheckKind::ValidFresh => self.valid_now(algorithm, "soak-check")?,
            CheckKind::ValidReused => {
                let carry = self.carry.lock().unwrap_or_else(PoisonError::into_inner);
                let tokens = carry.get(epoch).filter(|t| !t.is_empty());
                let Some(tokens) = tokens else {
                    return Ok(None);
                };
                tokens[(sequence + round) % tokens.len()].clone()
            }
            CheckKind::Retired => {
                let carry = self.carry.lock().unwrap_or_else(PoisonError::into_inner);
                if epoch == 0 {
                    return Ok(None);
                }
                // Mostly the last epoch's tokens (in notes' cache when it rotated), sometimes older.
                let old = if round.is_multiple_of(4) {
                    round % epoch
                } else {
                    epoch - 1
                };
                let Some(tokens) = carry.get(old).filter(|t| !t.is_empty()) else {
                    return Ok(None);
                };
                return Ok(Some((old, Some(tokens[round % tokens.len()].clone()))));
            }
            CheckKind::Expired => self
                .base("soak-check")
                .algorithm(algorithm)
                .issued_at(now_unix() - 7200)
                .expires_at(now_unix() - 600)
                .sign()?,
            CheckKind::ForeignAudience => self
                .base("soak-check")
                .algorithm(algorithm)
                .audience(FOREIGN_AUDIENCE)
                .sign()?,
            CheckKind::Tampered => {
                let token = self.valid_now(algorithm, "soak-check")?;
                tamper(&token)
            }
            CheckKind::Forged => {
                let kid = self.dev.key_ids().into_iter().next().unwrap_or_default();
                self.signed_by(&self.forger, "soak-check")
                    .key_id(kid)
                    .sign()?
            }
            CheckKind::NoToken => return Ok(Some((epoch, None))),
        };
        Ok(Some((epoch, Some(token))))
    }
}

/// The same token with the first character of its signature changed: it still decodes and
/// names a known key; only the signature check fails.
fn tamper(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut chars = signature.chars();
    let first = chars.next().unwrap_or('A');
    let replaced = if first == 'A' { 'B' } else { 'A' };
    format!("{signed}.{replaced}{}", chars.as_str())
}

/// What the checker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CheckKind {
    /// A valid token minted just now (RS256, ES256 or EdDSA in turn): a cache miss.
    ValidFresh,
    /// One of the current epoch's valid tokens, sent again: mostly a cache hit.
    ValidReused,
    /// Valid but expired ten minutes ago.
    Expired,
    /// A valid token with one signature character changed.
    Tampered,
    /// Signed by another key under the current RSA key's `kid`.
    Forged,
    /// Valid but for another audience.
    ForeignAudience,
    /// Signed by a key the server has rotated away (one of an earlier epoch's reused tokens).
    Retired,
    /// No `Authorization` header.
    NoToken,
}

impl CheckKind {
    /// The order the checker sends them in: half of them valid.
    pub(crate) const CYCLE: [Self; 12] = [
        Self::ValidFresh,
        Self::Expired,
        Self::ValidReused,
        Self::Tampered,
        Self::ValidFresh,
        Self::Forged,
        Self::ValidReused,
        Self::ForeignAudience,
        Self::ValidFresh,
        Self::Retired,
        Self::ValidReused,
        Self::NoToken,
    ];

    pub(crate) const ALL: [Self; 8] = [
        Self::ValidFresh,
        Self::ValidReused,
        Self::Expired,
        Self::Tampered,
        Self::Forged,
        Self::ForeignAudience,
        Self::Retired,
        Self::NoToken,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::ValidFresh => "valid, fresh",
            Self::ValidReused => "valid, reused",
            Self::Expired => "expired",
            Self::Tampered => "altered signature",
            Self::Forged => "other key, same kid",
            Self::ForeignAudience => "foreign audience",
            Self::Retired => "rotated-away key",
            Self::NoToken => "no token",
        }
    }
}
