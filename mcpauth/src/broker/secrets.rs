//! The broker's secret material: random identifiers and tokens, their stored hashes, MACs and
//! authenticated encryption — all through aws-lc.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{constant_time, digest, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Randomness or a cipher failed; the request fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker's cryptography failed")]
pub(crate) struct CryptoFailure;

/// `bytes` random bytes, base64url without padding (256 bits for tokens, 128 for identifiers).
pub(crate) fn random_token(bytes: usize) -> Result<String, CryptoFailure> {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer).map_err(|_| CryptoFailure)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// What is stored in place of a code or a refresh token: base64url(SHA-256(token)). A leaked
/// store then yields nothing a client could present.
pub(crate) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The RFC 7636 S256 transformation: base64url(SHA-256(verifier)).
pub(crate) fn s256_challenge(verifier: &str) -> String {
    token_hash(verifier)
}

/// Compares two secrets without revealing where they differ.
pub(crate) fn equal_in_constant_time(a: &str, b: &str) -> bool {
    constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The HMAC-SHA-256 keys of cookie and CSRF values: the current key signs; the current and the
/// previous ones verify, so a value made just before a key rotation is still accepted.
#[derive(Clone)]
pub(crate) struct MacKey {
    current: hmac::Key,
    previous: Vec<hmac::Key>,
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            current: hmac::Key::new(hmac::HMAC_SHA256, secret),
            previous: Vec::new(),
        }
    }

    /// Also verifies values signed with `secret`.
    pub(crate) fn with_previous(mut self, secret: &[u8]) -> Self {
        self.previous
            .push(hmac::Key::new(hmac::HMAC_SHA256, secret));
        self
    }

    /// base64url(HMAC(key, purpose ‖ 0x00 ‖ message)): the purpose keeps a MAC made for one use
    /// from being accepted for another.
    pub(crate) fn sign(&self, purpose: &str, message: &str) -> String {
        mac_with(&self.current, purpose, message)
    }

    /// Whether `mac` is `purpose`'s MAC of `message` under any of the keys, in constant time.
    pub(crate) fn verify(&self, purpose: &str, message: &str, mac: &str) -> bool {
        // Every key is tried, so the time taken does not tell which one matched.
        std::iter::once(&self.current)
            .chain(&self.previous)
            .fold(false, |found, key| {
                equal_in_constant_time(&mac_with(key, purpose, message), mac) | found
            })
    }
}

fn mac_with(key: &hmac::Key, purpose: &str, message: &str) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(purpose.as_bytes());
    context.update(&[0]);
    context.update(message.as_bytes());
    URL_SAFE_NO_PAD.encode(context.sign())
}

/// AES-256-GCM for records kept encrypted at rest (upstream token sets). A random 96-bit nonce
/// is stored in front of each ciphertext; the associated data binds a ciphertext to its record
/// so one cannot be moved to another. The current key seals; previous keys still open what they
/// sealed (GCM's tag tells which key fits), so the storage key can rotate without a migration.
#[derive(Clone)]
pub(crate) struct SealingKey {
    current: std::sync::Arc<LessSafeKey>,
    previous: Vec<std::sync::Arc<LessSafeKey>>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// A record opened by a [`SealingKey`], and whether it should be sealed again.
#[derive(Debug)]
pub(crate) struct Opened {
    /// Wiped when dropped: it holds the provider's tokens.
    pub(crate) plaintext: zeroize::Zeroizing<Vec<u8>>,
    /// Opened with a previous key: seal it again with the current one.
    pub(crate) stale: bool,
}

fn aes_key(secret: &[u8]) -> Result<std::sync::Arc<LessSafeKey>, CryptoFailure> {
    let key = UnboundKey::new(&AES_256_GCM, secret).map_err(|_| CryptoFailure)?;
    Ok(std::sync::Arc::new(LessSafeKey::new(key)))
}

impl SealingKey {
    /// A key of exactly 32 bytes.
    pub(crate) fn new(secret: &[u8]) -> Result<Self, CryptoFailure> {
        Ok(Self {
            current: aes_key(secret)?,
            previous: Vec::new(),
        })
    }

    /// Also opens records sealed with `secret` (32 bytes).
    pub(crate) fn with_previous(mut self, secret: &[u8]) -> Result<Self, CryptoFailure> {
        self.previous.push(aes_key(secret)?);
        Ok(self)
    }

    pub(crate) fn seal(
        &self,
        associated: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoFailure> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| CryptoFailure)?;
        let mut sealed = plaintext.to_vec();
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| CryptoFailure)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens `sealed` with the current key, else with a previous one.
    pub(crate) fn open(&self, associated: &str, sealed: &[u8]) -> Result<Opened, CryptoFailure> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or(CryptoFailure)?;
        let keys = std::iter::once(&self.current).chain(&self.previous);
        for (index, key) in keys.enumerate() {
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoFailure)?;
            // Decrypted in place, in a buffer wiped when dropped, and kept: no copy of the
            // plaintext is left behind.
            let mut buffer = zeroize::Zeroizing::new(ciphertext.to_vec());
            if let Ok(plaintext) =
                key.open_in_place(nonce, Aad::from(associated.as_bytes()), &mut buffer)
            {
                let length = plaintext.len();
                buffer.truncate(length);
                return Ok(Opened {
                    plaintext: buffer,
                    stale: index > 0,
                });
            }
        }
        Err(CryptoFailure)
    }

    /// Whether previous keys are configured (without them everything is sealed with the
    /// current key).
    pub(crate) fn has_previous(&self) -> bool {
        !self.previous.is_empty()
    }

    /// `sealed` sealed again with the current key when a previous key sealed it; `None` when
    /// it is current already or no key opens it (nothing better can be written then).
    pub(crate) fn reseal(&self, associated: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        // Without a previous key everything is current: nothing to open (every refresh asks).
        if !self.has_previous() {
            return None;
        }
        match self.open(associated, sealed) {
            Ok(opened) if opened.stale => self.seal(associated, &opened.plaintext).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn sealed_records_open_only_with_their_associated_data() {
        let key = SealingKey::new(&[7; 32]).unwrap();
        let sealed = key.seal("grant-1", b"upstream tokens").unwrap();
        assert_eq!(
            key.open("grant-1", &sealed).unwrap().plaintext.as_slice(),
            b"upstream tokens"
        );
        assert!(key.open("grant-2", &sealed).is_err());
        assert!(key.open("grant-1", &sealed[..10]).is_err());
        assert!(SealingKey::new(&[7; 31]).is_err());
    }

    #[test]
    fn a_rotated_storage_key_still_opens_and_reseals_what_it_sealed() {
        let old = SealingKey::new(&[1; 32]).unwrap();
        let sealed = old.seal("grant-1", b"set").unwrap();
        let rotated = SealingKey::new(&[2; 32])
            .unwrap()
            .with_previous(&[1; 32])
            .unwrap();
        let opened = rotated.open("grant-1", &sealed).unwrap();
        assert_eq!(
            (opened.plaintext.as_slice(), opened.stale),
            (&b"set"[..], true)
        );
        let resealed = rotated.reseal("grant-1", &sealed).unwrap();
        let new_only = SealingKey::new(&[2; 32]).unwrap();
        assert_eq!(
            new_only
                .open("grant-1", &resealed)
                .unwrap()
                .plaintext
                .as_slice(),
            b"set"
        );
        assert!(!rotated.open("grant-1", &resealed).unwrap().stale);
        assert!(rotated.reseal("grant-1", &resealed).is_none());
        assert!(new_only.open("grant-1", &sealed).is_err());
        assert!(rotated.reseal("grant-2", &sealed).is_none());
    }

    #[test]
    fn a_rotated_cookie_key_still_verifies_what_it_signed() {
        let mac = MacKey::new(b"old").sign("csrf", "txn");
        let rotated = MacKey::new(b"new").with_previous(b"old");
        assert!(rotated.verify("csrf", "txn", &mac));
        assert_ne!(rotated.sign("csrf", "txn"), mac);
        assert!(!MacKey::new(b"new").verify("csrf", "txn", &mac));
        assert!(!rotated.verify("cookie", "txn", &mac));
    }

    #[test]
    fn macs_are_bound_to_their_purpose() {
        let key = MacKey::new(b"secret");
        let mac = key.sign("csrf", "txn");
        assert!(key.verify("csrf", "txn", &mac));
        assert!(!key.verify("cookie", "txn", &mac));
        assert!(!MacKey::new(b"other").verify("csrf", "txn", &mac));
    }

    #[test]
    fn random_tokens_have_the_asked_entropy() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32).unwrap());
    }
}
