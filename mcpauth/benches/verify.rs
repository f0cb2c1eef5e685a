//! The verification path against a bare `jsonwebtoken::decode` with the same key, for RS256,
//! ES256 and EdDSA, in one run:
//!
//! ```text
//! cargo bench -p mcpauth --features dev-server --bench verify
//! ```
//!
//! `layer` is `BearerAuthLayer::authenticate` on a request's headers with the key set cached:
//! header parsing, JWT decoding, issuer selection, key lookup, signature, claims, scopes and the
//! `AuthInfo`. `bare` is `jsonwebtoken::decode` with a `DecodingKey` made once from the same
//! JWK and a `Validation` checking the same issuer, audience, `exp` and `nbf`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{AuthServer, McpAuth, ProtectedResource};

const RESOURCE: &str = "http://127.0.0.1:3001/notes";

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (dev, layer, jwks) = runtime.block_on(async {
        let dev = DevAuthServer::start().await.unwrap();
        let auth = McpAuth::resource_server([ProtectedResource::new(RESOURCE)
            .authorization_server(AuthServer::new(dev.config()))
            .scopes(["read:notes"])])
        .unwrap();
        let layer = auth
            .bearer_auth(RESOURCE)
            .unwrap()
            .required_scopes(["read:notes"])
            .unwrap();
        let jwks: JwkSet = reqwest::get(dev.jwks_uri())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (dev, layer, jwks)
    });

    let mut group = c.benchmark_group("verify");
    for (name, algorithm, alg) in [
        ("RS256", DevAlgorithm::Rs256, Algorithm::RS256),
        ("ES256", DevAlgorithm::Es256, Algorithm::ES256),
        ("EdDSA", DevAlgorithm::EdDsa, Algorithm::EdDSA),
    ] {
        let token = dev
            .token()
            .audience(RESOURCE)
            .scopes(["read:notes"])
            .algorithm(algorithm)
            .sign()
            .unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_audience(&[RESOURCE]);
        validation.set_issuer(&[dev.issuer()]);
        validation.validate_nbf = true;

        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        // Warm the key cache, and check both paths accept the token.
        runtime
            .block_on(layer.authenticate(&headers))
            .unwrap()
            .unwrap();
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();

        group.bench_function(format!("{name}/bare"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                    .unwrap()
            })
        });
        group.bench_function(format!("{name}/layer"), |b| {
            b.to_async(&runtime)
                .iter(|| async { layer.authenticate(black_box(&headers)).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
