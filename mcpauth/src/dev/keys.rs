//! Signing keys of the development authorization server: generated at start, rotated on demand,
//! published as a JWKS.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};

use super::DevServerError;

/// The algorithms the development authorization server signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DevAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    #[default]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// EdDSA on Ed25519.
    EdDsa,
}

impl DevAlgorithm {
    pub(crate) fn algorithm(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn kid_prefix(self) -> &'static str {
        match self {
            Self::Rs256 => "rs256",
            Self::Es256 => "es256",
            Self::EdDsa => "eddsa",
        }
    }
}

/// How [`DevAuthServer::rotate_keys`](super::DevAuthServer::rotate_keys) replaces the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRotation {
    /// New key pairs under new key IDs; the old keys leave the JWKS.
    NewKeyIds,
    /// New key pairs under the same key IDs (a rotation some servers do, which breaks verifiers
    /// that cache keys by `kid` only).
    ReuseKeyIds,
}

/// One signing key: its private half and its public JWK.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) algorithm: DevAlgorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn random_suffix() -> Result<String, DevServerError> {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| DevServerError::Keys("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn pkcs8_pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

impl SigningKey {
    fn generate(algorithm: DevAlgorithm, kid: String) -> Result<Self, DevServerError> {
        let failed = |what: &str| DevServerError::Keys(format!("cannot generate {what} key"));
        let encoding = match algorithm {
            DevAlgorithm::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| failed("RSA"))?;
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
                    .map_err(|_| failed("RSA"))?;
                EncodingKey::from_rsa_pem(pkcs8_pem(der.as_ref()).as_bytes())
                    .map_err(|e| DevServerError::Keys(e.to_string()))?
            }
            DevAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| failed("P-256"))?;
                let der = pair.to_pkcs8v1().map_err(|_| failed("P-256"))?;
                EncodingKey::from_ec_der(der.as_ref())
            }
            DevAlgorithm::EdDsa => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::generate()
                    .map_err(|_| failed("Ed25519"))?;
                let der = pair.to_pkcs8v1().map_err(|_| failed("Ed25519"))?;
                EncodingKey::from_ed_der(der.as_ref())
            }
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.algorithm())
            .map_err(|e| DevServerError::Keys(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match algorithm {
            DevAlgorithm::Rs256 => KeyAlgorithm::RS256,
            DevAlgorithm::Es256 => KeyAlgorithm::ES256,
            DevAlgorithm::EdDsa => KeyAlgorithm::EdDSA,
        });
        Ok(Self {
            kid,
            algorithm,
            encoding,
            jwk,
        })
    }
}

/// The current keys (one per algorithm) and their JWKS, serialised once per rotation.
#[derive(Debug)]
pub(crate) struct SigningKeys {
    pub(crate) keys: Vec<SigningKey>,
    pub(crate) jwks: Bytes,
}

const ALGORITHMS: [DevAlgorithm; 3] = [
    DevAlgorithm::Rs256,
    DevAlgorithm::Es256,
    DevAlgorithm::EdDsa,
];

impl SigningKeys {
    pub(crate) fn generate() -> Result<Self, DevServerError> {
        let mut keys = Vec::with_capacity(ALGORITHMS.len());
        for algorithm in ALGORITHMS {
            let kid = format!("{}-{}", algorithm.kid_prefix(), random_suffix()?);
            keys.push(SigningKey::generate(algorithm, kid)?);
        }
        Self::from_keys(keys)
    }

    pub(crate) fn rotated(&self, rotation: KeyRotation) -> Result<Self, DevServerError> {
        let mut keys = Vec::with_capacity(self.keys.len());
        for old in &self.keys {
            let kid = match rotation {
                KeyRotation::NewKeyIds => {
                    format!("{}-{}", old.algorithm.kid_prefix(), random_suffix()?)
                }
                KeyRotation::ReuseKeyIds => old.kid.clone(),
            };
            keys.push(SigningKey::generate(old.algorithm, kid)?);
        }
        Self::from_keys(keys)
    }

    fn from_keys(keys: Vec<SigningKey>) -> Result<Self, DevServerError> {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        };
        let jwks = serde_json::to_vec(&set).map_err(|e| DevServerError::Keys(e.to_string()))?;
        Ok(Self {
            keys,
            jwks: Bytes::from(jwks),
        })
    }

    pub(crate) fn key(&self, algorithm: DevAlgorithm) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.algorithm == algorithm)
    }
}
