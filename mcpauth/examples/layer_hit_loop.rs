//! A driver for profilers: sends N requests (default 200,000) with one token through the bearer
//! layer on a trivial service, every one a verified-token cache hit (the token was verified
//! before), or, with `bare` as the second argument, through the trivial service alone. Under
//! callgrind, collecting only in the loop, the two runs' instruction counts divided by N give
//! what the layer adds to a request:
//!
//! ```text
//! cargo build --release -p mcpauth --features dev-server --example layer_hit_loop
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*layer_hit_loop::measured*' \
//!     target/release/examples/layer_hit_loop 20000 layer
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*layer_hit_loop::measured*' \
//!     target/release/examples/layer_hit_loop 20000 bare
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthServer, McpAuth, ProtectedResource};
use tower::{Layer, ServiceExt, service_fn};

const RESOURCE: &str = "http://127.0.0.1:3001/notes";

async fn empty(_: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// The measured loop (callgrind: `--collect-atstart=no --toggle-collect='*measured*'`).
#[inline(never)]
fn measured<S>(runtime: &tokio::runtime::Runtime, service: S, header: &str, count: usize)
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    runtime.block_on(async {
        for _ in 0..count {
            let request = Request::get("/notes")
                .header(http::header::AUTHORIZATION, header)
                .body(Body::empty())
                .unwrap();
            let response = service.clone().oneshot(request).await;
            assert_eq!(response.unwrap().status(), StatusCode::OK);
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(200_000, |n| n.parse().unwrap());
    let bare = args.next().as_deref() == Some("bare");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dev, _auth, bearer, token) = runtime.block_on(async {
        let dev = DevAuthServer::start().await.unwrap();
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
        (dev, auth, bearer, token)
    });
    let header = format!("Bearer {token}");
    let protected = bearer.layer(service_fn(empty));
    // The first request verifies the token (and fetches the keys): not measured.
    let first = Request::get("/notes")
        .header(http::header::AUTHORIZATION, &header)
        .body(Body::empty())
        .unwrap();
    let response = runtime.block_on(protected.clone().oneshot(first)).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    if bare {
        measured(&runtime, service_fn(empty), &header, count);
    } else {
        measured(&runtime, protected, &header, count);
    }
}
