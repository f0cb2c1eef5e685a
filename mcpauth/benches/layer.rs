//! The whole bearer layer on a cache hit against the bare service it wraps, in one run:
//!
//! ```text
//! cargo bench -p mcpauth --features dev-server --bench layer
//! ```
//!
//! Each case sends one request through a `tower` service with `oneshot`, the request built
//! outside the timed part (the same `Authorization: Bearer …` header in every case):
//!
//! - `bare`: a trivial service (an empty 200 response), no layer;
//! - `hit`: the same service behind `BearerAuthLayer` (RS256 token, required scope), the token
//!   in the verified-token cache: the layer's service call and future, header parsing, the cache
//!   lookup and the route's checks, the `AuthInfo` in the request's extensions;
//! - `hit+extract`: as `hit`, the service also taking the `AuthInfo` out of the extensions as a
//!   handler's extractor does;
//! - `missing-token`: the layer refusing a request without credentials (the 401 challenge).
//!
//! `hit` − `bare` is the CPU the layer adds to a request whose token it has seen.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, AuthServer, McpAuth, ProtectedResource};
use tower::{Layer, ServiceExt, service_fn};

const RESOURCE: &str = "http://127.0.0.1:3001/notes";

/// The trivial service: an empty 200.
async fn empty(_: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// The trivial service reading the `AuthInfo` as an extractor would (a clone).
async fn extract(request: Request<Body>) -> Result<Response<Body>, Infallible> {
    let info = request.extensions().get::<AuthInfo>().cloned();
    let status = if black_box(info).is_some() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    Ok(response)
}

fn request(token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/notes");
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dev = runtime.block_on(DevAuthServer::start()).unwrap();
    let auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(RESOURCE)
                .authorization_server(AuthServer::new(dev.config()))
                .scopes(["read:notes"]),
        )
        .build()
        .unwrap();
    let bearer = auth
        .bearer_auth(RESOURCE)
        .unwrap()
        .required_scopes(["read:notes"])
        .unwrap();
    let token = dev
        .token()
        .subject("alice")
        .audience(RESOURCE)
        .scopes(["read:notes"])
        .sign()
        .unwrap();

    let bare = service_fn(empty);
    let protected = bearer.layer(service_fn(empty));
    let extracting = bearer.layer(service_fn(extract));
    // Warm the key set and the token cache; check each case answers as it should.
    runtime.block_on(async {
        let ok = protected.clone().oneshot(request(Some(&token))).await;
        assert_eq!(ok.unwrap().status(), StatusCode::OK);
        let ok = extracting.clone().oneshot(request(Some(&token))).await;
        assert_eq!(ok.unwrap().status(), StatusCode::OK);
        let refused = protected.clone().oneshot(request(None)).await;
        assert_eq!(refused.unwrap().status(), StatusCode::UNAUTHORIZED);
    });
    let verifications = auth.token_cache_stats(RESOURCE).unwrap().verifications;

    let mut group = c.benchmark_group("layer");
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter_batched(
            || request(Some(&token)),
            |request| bare.oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("hit", |b| {
        b.to_async(&runtime).iter_batched(
            || request(Some(&token)),
            |request| protected.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("hit+extract", |b| {
        b.to_async(&runtime).iter_batched(
            || request(Some(&token)),
            |request| extracting.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("missing-token", |b| {
        b.to_async(&runtime).iter_batched(
            || request(None),
            |request| protected.clone().oneshot(request),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    // Every request above was a hit: no signature was checked again.
    let after = auth.token_cache_stats(RESOURCE).unwrap().verifications;
    assert_eq!(after, verifications, "the hit cases must hit the cache");
}

criterion_group!(benches, layer);
criterion_main!(benches);
