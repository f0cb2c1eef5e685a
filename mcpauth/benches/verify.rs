//! The verification path against a bare `jsonwebtoken::decode` with the same key, for RS256,
//! ES256 and EdDSA, in one run:
//!
//! ```text
//! cargo bench -p mcpauth --features dev-server --bench verify
//! ```
//!
//! With `--features dev-server,rust-crypto` every case (and the development server's signing)
//! runs on the pure-Rust backend instead of aws-lc, to measure the difference.
//!
//! - `bare`: `jsonwebtoken::decode` with a `DecodingKey` made once from the same JWK and a
//!   `Validation` checking the same issuer, audience, `exp` and `nbf`.
//! - `miss`: `BearerAuthLayer::authenticate` on a request's headers, the key set cached, every
//!   token new to the verified-token cache (1024 distinct tokens in turn, the cache holding
//!   16; checked to miss at least 98% of the time): header parsing, JWT decoding, issuer selection, key lookup, signature, claims,
//!   scopes, the `AuthInfo`, and the cache's lookup and insertion.
//! - `hit`: the same with one token repeated: a cache lookup and the route's checks.
//! - `bad-signature`: the same token with the first character of its signature changed (same
//!   `kid`): refused after one full signature check, the key set's refresh rate-limited.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{AuthServer, BearerAuthLayer, McpAuth, ProtectedResource, TokenCacheOptions};

const RESOURCE: &str = "http://127.0.0.1:3001/notes";
/// Distinct tokens per algorithm for the `miss` case, and what its cache holds.
const DISTINCT: usize = 1024;
const MISS_CACHE_ENTRIES: usize = 16;

fn layer(dev: &DevAuthServer, cache: TokenCacheOptions) -> (McpAuth, BearerAuthLayer) {
    let auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(RESOURCE)
                .authorization_server(AuthServer::new(dev.config()))
                .scopes(["read:notes"]),
        )
        .token_cache(cache)
        .build()
        .unwrap();
    let layer = auth
        .bearer_auth(RESOURCE)
        .unwrap()
        .required_scopes(["read:notes"])
        .unwrap();
    (auth, layer)
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn verification(c: &mut Criterion) {
    #[cfg(feature = "rust-crypto")]
    jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
        .install_default()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (dev, jwks) = runtime.block_on(async {
        let dev = DevAuthServer::start().await.unwrap();
        let jwks: JwkSet = reqwest::get(dev.jwks_uri())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (dev, jwks)
    });
    let (_, hit_layer) = layer(&dev, TokenCacheOptions::default());
    let (miss_auth, miss_layer) = layer(
        &dev,
        TokenCacheOptions::default().max_entries(MISS_CACHE_ENTRIES),
    );

    let mut group = c.benchmark_group("verify");
    for (name, algorithm, alg) in [
        ("RS256", DevAlgorithm::Rs256, Algorithm::RS256),
        ("ES256", DevAlgorithm::Es256, Algorithm::ES256),
        ("EdDSA", DevAlgorithm::EdDsa, Algorithm::EdDSA),
    ] {
        let mint = |subject: String| {
            dev.token()
                .subject(subject)
                .audience(RESOURCE)
                .scopes(["read:notes"])
                .algorithm(algorithm)
                .sign()
                .unwrap()
        };
        let token = mint("alice".to_owned());
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_audience(&[RESOURCE]);
        validation.set_issuer(&[dev.issuer()]);
        validation.validate_nbf = true;

        let headers = bearer(&token);
        let distinct: Vec<HeaderMap> = (0..DISTINCT)
            .map(|i| bearer(&mint(format!("user-{i}"))))
            .collect();
        // Warm the key caches, check every path accepts its tokens, and check that cycling
        // through the distinct tokens really misses every time.
        runtime.block_on(async {
            hit_layer.authenticate(&headers).await.unwrap().unwrap();
            let before = miss_auth.token_cache_stats(RESOURCE).unwrap().verifications;
            for _ in 0..2 {
                for headers in &distinct {
                    miss_layer.authenticate(headers).await.unwrap().unwrap();
                }
            }
            let after = miss_auth.token_cache_stats(RESOURCE).unwrap().verifications;
            let misses = (after - before) as f64 / (2 * DISTINCT) as f64;
            assert!(misses >= 0.98, "the miss case must miss: {misses}");
        });
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();

        group.bench_function(format!("{name}/bare"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                    .unwrap()
            })
        });
        group.bench_function(format!("{name}/miss"), |b| {
            let next = AtomicUsize::new(0);
            b.to_async(&runtime).iter(|| {
                let headers = &distinct[next.fetch_add(1, Ordering::Relaxed) % DISTINCT];
                async { miss_layer.authenticate(black_box(headers)).await.unwrap() }
            })
        });
        // The signature's first character changed: still well formed (for ECDSA, r and s stay
        // in range), so the check runs in full and fails.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged = bearer(&format!("{signed}.{flipped}{}", &signature[1..]));
        runtime
            .block_on(miss_layer.authenticate(&forged))
            .unwrap_err();
        group.bench_function(format!("{name}/bad-signature"), |b| {
            b.to_async(&runtime).iter(|| async {
                miss_layer
                    .authenticate(black_box(&forged))
                    .await
                    .unwrap_err()
            })
        });
        group.bench_function(format!("{name}/hit"), |b| {
            b.to_async(&runtime)
                .iter(|| async { hit_layer.authenticate(black_box(&headers)).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
