//! The JWKS document decoder (`KeyCache::decode`, which decodes each JWK with `decode_key`), as
//! a key cache runs it on a fetched document and its `Cache-Control` header.
//!
//! Input: one byte for the key bound (`b % 10`, 0 meaning the default 64), the `Cache-Control`
//! value up to the first `\n` (skipped when not a valid header value), then the document.
//!
//! Invariants:
//! - no panic (`Cache-Control` TTLs included);
//! - a document decodes exactly when it is an object with a `keys` array;
//! - never more keys than the bound, nor than the array has;
//! - a key is found for a (`kid`, `alg`) only when some JWK of the document could give it,
//!   by a model written from RFC 7517 / RFC 7518: that `kid` (or, for a token without
//!   `kid`, a set of exactly one key), a key type and curve made for `alg` (RSA for RS*/PS*,
//!   EC P-256 for ES256, EC P-384 for ES384, OKP Ed25519 for EdDSA), `use` absent or `sig`,
//!   `key_ops` absent or with `verify`, `alg` absent or equal; HMAC and `none` are never
//!   found, nor a `kid` the document does not have.
#![no_main]

use std::sync::OnceLock;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::JwksDecoder;
use mcpauth_fuzz::fields;
use serde_json::Value;

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

fn decoders() -> &'static [JwksDecoder] {
    static DECODERS: OnceLock<Vec<JwksDecoder>> = OnceLock::new();
    DECODERS.get_or_init(|| (0..10).map(|k| JwksDecoder::new(max_keys(k))).collect())
}

fn max_keys(k: usize) -> usize {
    if k == 0 { 64 } else { k }
}

/// Whether `jwk` could verify `algorithm` signatures, by the RFCs.
fn could_verify(jwk: &Value, algorithm: Algorithm) -> bool {
    let name = format!("{algorithm:?}");
    let text = |member: &str| jwk.get(member).and_then(Value::as_str);
    let fits = match (text("kty"), text("crv")) {
        (Some("RSA"), _) => name.starts_with("RS") || name.starts_with("PS"),
        (Some("EC"), Some("P-256")) => algorithm == Algorithm::ES256,
        (Some("EC"), Some("P-384")) => algorithm == Algorithm::ES384,
        (Some("OKP"), Some("Ed25519")) => algorithm == Algorithm::EdDSA,
        _ => false,
    };
    let use_ok = jwk.get("use").is_none_or(|u| u == "sig");
    let ops_ok = jwk.get("key_ops").is_none_or(|ops| {
        ops.as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    });
    let alg_ok = jwk.get("alg").is_none_or(|alg| *alg == Value::String(name));
    fits && use_ok && ops_ok && alg_ok
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let [cache_control, document] = fields(rest, b'\n', 2)[..] else {
        return;
    };
    let Ok(document) = serde_json::from_slice::<Value>(document) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(cache_control) {
        headers.insert(CACHE_CONTROL, value);
    }
    let k = usize::from(k) % 10;
    let result = decoders()[k].decode(&document, &headers);
    let jwks: &[Value] = match document.get("keys").and_then(Value::as_array) {
        Some(keys) => keys,
        None => {
            assert!(
                result.is_err(),
                "a document without a keys array was decoded"
            );
            return;
        }
    };
    let keys = result.expect("a document with a keys array was refused");
    assert!(
        keys.len() <= max_keys(k),
        "{} keys over the bound {}",
        keys.len(),
        max_keys(k)
    );
    assert!(keys.len() <= jwks.len());

    let mut kids: Vec<Option<&str>> = vec![None, Some("\u{0}no such kid")];
    kids.extend(
        jwks.iter()
            .filter_map(|jwk| jwk.get("kid")?.as_str())
            .map(Some),
    );
    for kid in kids {
        for algorithm in ALGORITHMS {
            if !keys.finds(kid, algorithm) {
                continue;
            }
            if kid.is_none() {
                assert_eq!(
                    keys.len(),
                    1,
                    "a token without kid found a key among several"
                );
            }
            // Also covers a kid the document lacks (the probe above) and HMAC algorithms
            // (no JWK can verify those).
            let possible = jwks.iter().any(|jwk| {
                kid.is_none_or(|kid| jwk.get("kid").and_then(Value::as_str) == Some(kid))
                    && could_verify(jwk, algorithm)
            });
            assert!(
                possible,
                "found a key for {kid:?} / {algorithm:?} that no JWK can be"
            );
        }
    }
});
