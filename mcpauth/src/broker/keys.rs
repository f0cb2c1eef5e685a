//! The broker's keys: the access-token signing keys (ES256 or EdDSA, several for rotation, all
//! published), the storage key that seals upstream tokens at rest, and the cookie key that MACs
//! the consent page's CSRF token and the browser binding. Three independent secrets: a leak or a
//! rotation of one leaves the others intact.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::BrokerError;
use super::secrets::{CryptoFailure, MacKey, SealingKey, token_hash};
use super::store::{BrokerStore, Namespace};

/// A private key the broker signs its access tokens with: ECDSA P-256 (`ES256`) or Ed25519
/// (`EdDSA`), given as PKCS#8. Its key id is the RFC 7638 thumbprint of its public key, so the
/// same key has the same `kid` on every replica.
///
/// ```
/// use mcpauth::broker::SigningKey;
///
/// let key = SigningKey::generate_es256()?;
/// let again = SigningKey::from_pkcs8_der(&key.to_pkcs8_der())?;
/// assert_eq!(key.key_id(), again.key_id());
/// # Ok::<(), mcpauth::broker::BrokerError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    signer: Signer,
    /// The access tokens' JOSE header (`typ` `at+jwt`, `alg`, `kid`), base64url: the same for
    /// every token, so encoded once.
    header: Arc<str>,
    public_jwk: Value,
    pkcs8: Vec<u8>,
}

/// The private key parsed once, ready to sign (parsing PKCS#8 checks the key pair, which costs
/// about as much as a signature).
#[derive(Clone)]
enum Signer {
    Es256(Arc<EcdsaKeyPair>),
    EdDsa(Arc<Ed25519KeyPair>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn key_error(detail: impl Into<String>) -> BrokerError {
    BrokerError::Keys(detail.into())
}

impl SigningKey {
    /// A key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`) holding a P-256 or an
    /// Ed25519 private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, BrokerError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("-----"))
            .collect();
        let begins = pem.trim_start().starts_with("-----BEGIN PRIVATE KEY-----");
        if !begins {
            return Err(key_error(
                "a signing key must be a PKCS#8 PEM document (-----BEGIN PRIVATE KEY-----)",
            ));
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| key_error("the signing key's PEM body is not base64"))?;
        Self::from_pkcs8_der(&der)
    }

    /// A key from PKCS#8 DER bytes holding a P-256 or an Ed25519 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, BrokerError> {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            // An uncompressed point: 0x04 ‖ x ‖ y.
            let point = pair.public_key().as_ref();
            let (x, y) = match point {
                [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => return Err(key_error("unexpected P-256 public key encoding")),
            };
            let public_jwk = json!({
                "crv": "P-256",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            });
            return Self::assemble(
                Algorithm::ES256,
                Signer::Es256(Arc::new(pair)),
                public_jwk,
                der,
            );
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            let public_jwk = json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            return Self::assemble(
                Algorithm::EdDSA,
                Signer::EdDsa(Arc::new(pair)),
                public_jwk,
                der,
            );
        }
        Err(key_error(
            "the signing key is neither a P-256 (ES256) nor an Ed25519 (EdDSA) PKCS#8 private key",
        ))
    }

    /// A new random P-256 key (`ES256`).
    pub fn generate_es256() -> Result<Self, BrokerError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| key_error("cannot generate a P-256 key"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| key_error("cannot encode a P-256 key"))?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// A new random Ed25519 key (`EdDSA`).
    pub fn generate_ed25519() -> Result<Self, BrokerError> {
        let pair =
            Ed25519KeyPair::generate().map_err(|_| key_error("cannot generate an Ed25519 key"))?;
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
            .map_err(|_| key_error("cannot encode an Ed25519 key"))?;
        Self::from_pkcs8_der(der.as_ref())
    }

    fn assemble(
        algorithm: Algorithm,
        signer: Signer,
        mut public_jwk: Value,
        der: &[u8],
    ) -> Result<Self, BrokerError> {
        // RFC 7638: the thumbprint hashes the required members in lexicographic order, which
        // `json!` above already wrote them in (serde_json keeps insertion order here).
        let canonical = serde_json::to_string(&public_jwk)
            .map_err(|_| key_error("cannot serialise the public key"))?;
        let kid = token_hash(&canonical);
        if let Value::Object(members) = &mut public_jwk {
            members.insert("kid".into(), kid.clone().into());
            members.insert("use".into(), "sig".into());
            members.insert("alg".into(), format!("{algorithm:?}").into());
        }
        let mut header = Header::new(algorithm);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.clone());
        let header = serde_json::to_vec(&header)
            .map_err(|_| key_error("cannot serialise the token header"))?;
        Ok(Self {
            kid,
            algorithm,
            signer,
            header: URL_SAFE_NO_PAD.encode(header).into(),
            public_jwk,
            pkcs8: der.to_vec(),
        })
    }

    /// The key id (`kid`) its tokens carry.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The PKCS#8 DER encoding of the private key (to keep it somewhere safe).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.pkcs8.clone()
    }

    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// An access token: the JWS compact serialisation of `claims` under this key's header
    /// (`typ` `at+jwt`, `alg`, `kid`), as `jsonwebtoken::encode` would write it.
    pub(crate) fn sign_access_token<T: Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, CryptoFailure> {
        let payload = serde_json::to_vec(claims).map_err(|_| CryptoFailure)?;
        // header . payload . signature (at most 86 characters for ES256 and EdDSA)
        let mut token =
            String::with_capacity(self.header.len() + payload.len().div_ceil(3) * 4 + 90);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|_| CryptoFailure)?,
            Signer::EdDsa(pair) => pair.sign(token.as_bytes()),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    pub(crate) fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }
}

/// All the broker's keys. Supply them from configuration (identical on every replica); a
/// broker on a loopback issuer without configured keys generates them once and keeps them in
/// its store, so a restart logs no one out.
///
/// Each key rotates without logging anyone out:
/// - **signing key**: publish the next key first ([`also_publish`](Self::also_publish)) on
///   every replica, then make it the signing key and publish the old one for at least one
///   access-token lifetime — tokens it signed keep verifying until they expire; refresh tokens
///   do not depend on it;
/// - **storage key** (seals the upstream tokens of each grant): pass the old one to
///   [`previous_storage_key`](Self::previous_storage_key); each grant's tokens are sealed again
///   with the new key the next time they are written (the grant's next refresh), after which
///   the old key can go;
/// - **cookie key** (the consent form's CSRF token, the sign-in binding cookie): pass the old
///   one to [`previous_cookie_key`](Self::previous_cookie_key) for as long as a sign-in may
///   take (minutes): one begun before the rotation completes after it.
///
/// ```
/// use mcpauth::broker::{BrokerKeys, SigningKey};
///
/// let old = SigningKey::generate_es256()?;
/// let new = SigningKey::generate_es256()?;
/// let keys = BrokerKeys::new(new, [3u8; 32], [4u8; 32])
///     .also_publish(old)
///     .previous_storage_key([1u8; 32])
///     .previous_cookie_key([2u8; 32]);
/// # let _ = keys;
/// # Ok::<(), mcpauth::broker::BrokerError>(())
/// ```
#[derive(Clone)]
pub struct BrokerKeys {
    signing: Vec<SigningKey>,
    storage: [u8; 32],
    previous_storage: Vec<[u8; 32]>,
    cookie: [u8; 32],
    previous_cookie: Vec<[u8; 32]>,
}

impl fmt::Debug for BrokerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerKeys")
            .field("signing", &self.signing)
            .field("previous_storage_keys", &self.previous_storage.len())
            .field("previous_cookie_keys", &self.previous_cookie.len())
            .finish_non_exhaustive()
    }
}

impl BrokerKeys {
    /// Keys from their parts: the signing key, the 32-byte storage encryption key and the
    /// 32-byte cookie MAC key.
    pub fn new(signing: SigningKey, storage_key: [u8; 32], cookie_key: [u8; 32]) -> Self {
        Self {
            signing: vec![signing],
            storage: storage_key,
            previous_storage: Vec::new(),
            cookie: cookie_key,
            previous_cookie: Vec::new(),
        }
    }

    /// Also publishes `key` in the JWKS and accepts the tokens it signed: an older signing key
    /// while its tokens may still be presented, or the next one before it signs. The first key
    /// signs; every key is published.
    #[must_use]
    pub fn also_publish(mut self, key: SigningKey) -> Self {
        self.signing.push(key);
        self
    }

    /// Also opens upstream tokens sealed with `key`, a storage key this one replaces; they are
    /// sealed again with the current key when their grant is next refreshed.
    #[must_use]
    pub fn previous_storage_key(mut self, key: [u8; 32]) -> Self {
        self.previous_storage.push(key);
        self
    }

    /// Also accepts consent forms and sign-in cookies made with `key`, a cookie key this one
    /// replaces, so sign-ins in flight during a rotation complete.
    #[must_use]
    pub fn previous_cookie_key(mut self, key: [u8; 32]) -> Self {
        self.previous_cookie.push(key);
        self
    }

    pub(crate) fn active(&self) -> &SigningKey {
        // `new` always puts one key first.
        &self.signing[0]
    }

    /// The JWKS document of every published key.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": self.signing.iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
    }

    pub(crate) fn sealing_key(&self) -> Result<SealingKey, BrokerError> {
        let invalid = |_| key_error("invalid storage key");
        self.previous_storage.iter().try_fold(
            SealingKey::new(&self.storage).map_err(invalid)?,
            |key, old| key.with_previous(old).map_err(invalid),
        )
    }

    /// The MAC key of refresh tokens, derived from the storage key (and from each previous
    /// one, so tokens issued before a rotation are still recognised as the broker's).
    pub(crate) fn refresh_token_key(&self) -> MacKey {
        let derive = |storage: &[u8]| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, storage);
            aws_lc_rs::hmac::sign(&key, b"mcpauth broker refresh-token key")
        };
        self.previous_storage
            .iter()
            .fold(MacKey::new(derive(&self.storage).as_ref()), |key, old| {
                key.with_previous(derive(old).as_ref())
            })
    }

    pub(crate) fn mac_key(&self) -> MacKey {
        self.previous_cookie
            .iter()
            .fold(MacKey::new(&self.cookie), |key, old| key.with_previous(old))
    }

    /// The development keys kept in the store: read when present, else generated and written
    /// (only the first writer's keys are kept when several processes start at once).
    pub(crate) async fn development(store: &dyn BrokerStore) -> Result<Self, BrokerError> {
        const KEY: &str = "development";
        if let Some(stored) = store.get(Namespace::Key, KEY).await? {
            return StoredKeys::decode(&stored);
        }
        let mut storage = [0u8; 32];
        let mut cookie = [0u8; 32];
        aws_lc_rs::rand::fill(&mut storage).map_err(|_| key_error("no randomness"))?;
        aws_lc_rs::rand::fill(&mut cookie).map_err(|_| key_error("no randomness"))?;
        let generated = StoredKeys {
            signing_pkcs8: URL_SAFE_NO_PAD.encode(SigningKey::generate_es256()?.to_pkcs8_der()),
            storage: URL_SAFE_NO_PAD.encode(storage),
            cookie: URL_SAFE_NO_PAD.encode(cookie),
        };
        let bytes =
            serde_json::to_vec(&generated).map_err(|_| key_error("cannot serialise keys"))?;
        if store
            .put_new(Namespace::Key, KEY, bytes.clone(), None)
            .await?
        {
            return StoredKeys::decode(&bytes);
        }
        match store.get(Namespace::Key, KEY).await? {
            Some(stored) => StoredKeys::decode(&stored),
            None => Err(key_error("the development keys vanished from the store")),
        }
    }
}

/// The keys of every broker built in this process, by issuer: what a declared broker's
/// `auth_server()` verifies with, whether it was made before or after the broker was built.
static PUBLISHED: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<String, BrokerKeys>>,
> = std::sync::LazyLock::new(Default::default);

/// Makes `keys` the ones tokens of `issuer` are verified with in this process (a broker built
/// again with the same issuer replaces them).
pub(crate) fn publish(issuer: &str, keys: &BrokerKeys) {
    PUBLISHED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(issuer.to_owned(), keys.clone());
}

/// The JWKS of the broker of `issuer` in this process; empty before it is built.
pub(crate) fn published_jwks(issuer: &str) -> Value {
    PUBLISHED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(issuer)
        .map_or_else(|| json!({ "keys": [] }), BrokerKeys::jwks)
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    signing_pkcs8: String,
    storage: String,
    cookie: String,
}

impl StoredKeys {
    fn decode(bytes: &[u8]) -> Result<BrokerKeys, BrokerError> {
        let stored: StoredKeys = serde_json::from_slice(bytes)
            .map_err(|_| key_error("the development keys in the store are unreadable"))?;
        let bytes32 = |value: &str| -> Result<[u8; 32], BrokerError> {
            URL_SAFE_NO_PAD
                .decode(value)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| key_error("a development key in the store is unreadable"))
        };
        let der = URL_SAFE_NO_PAD
            .decode(&stored.signing_pkcs8)
            .map_err(|_| key_error("the development signing key in the store is unreadable"))?;
        Ok(BrokerKeys::new(
            SigningKey::from_pkcs8_der(&der)?,
            bytes32(&stored.storage)?,
            bytes32(&stored.cookie)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_with_stable_ids() {
        for key in [
            SigningKey::generate_es256().unwrap(),
            SigningKey::generate_ed25519().unwrap(),
        ] {
            let again = SigningKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
            assert_eq!(again.key_id(), key.key_id());
            assert_eq!(again.algorithm(), key.algorithm());
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(key.to_pkcs8_der())
            );
            assert_eq!(
                SigningKey::from_pkcs8_pem(&pem).unwrap().key_id(),
                key.key_id()
            );
        }
        assert!(SigningKey::from_pkcs8_der(b"not a key").is_err());
        assert!(SigningKey::from_pkcs8_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n").is_err());
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1 hashes {"crv","kty","x","y"} for EC keys, no whitespace.
        let key = SigningKey::generate_es256().unwrap();
        let jwk = key.public_jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(key.key_id(), token_hash(&canonical));
    }
}
