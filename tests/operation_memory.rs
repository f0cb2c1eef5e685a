//! The operation check reads a body without building it: a 4 MiB batch of empty objects (which
//! a generic JSON reader turns into millions of values) costs no memory beyond the body itself.
//! Measured with dhat's counting allocator, so this binary holds only this test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use http::{Request, Response, StatusCode};
use mcpauth::dev::DevAuthServer;
use mcpauth::{McpAuth, OperationScopes, ProtectedResource};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[test]
fn a_large_batch_of_empty_objects_is_checked_without_building_it() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dev = DevAuthServer::start().await.unwrap();
        let resource = "http://127.0.0.1:9/mcp";
        let auth = McpAuth::resource_server([
            ProtectedResource::new(resource).authorization_server(dev.config())
        ])
        .unwrap();
        let layer = auth
            .bearer_auth(resource)
            .unwrap()
            .operation_scopes(OperationScopes::new().tool("create_todo", Vec::<String>::new()))
            .unwrap();
        let token = dev.token().audience(resource).sign().unwrap();
        let service = layer.layer(service_fn(|request: Request<Body>| async move {
            let size = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap()
                .len();
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(size.to_string())))
        }));
        let send = |body: Vec<u8>| {
            let request = Request::post("/mcp")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body))
                .unwrap();
            service.clone().oneshot(request)
        };
        // Warm up (key set fetched, token cached) with a small body.
        let warm = send(b"[{}]".to_vec()).await.unwrap();
        assert_eq!(warm.status(), StatusCode::OK);

        let mut body = Vec::with_capacity(4 * 1024 * 1024);
        body.push(b'[');
        while body.len() < 4 * 1024 * 1024 - 8 {
            body.extend_from_slice(b"{},");
        }
        body.extend_from_slice(b"{}]");
        let length = body.len();

        // dhat's peak cannot be reset; the set-up before stayed well below this request's.
        let before = dhat::HeapStats::get().curr_bytes;
        let response = send(body).await.unwrap();
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(before);
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            echoed,
            length.to_string(),
            "the body reached the service whole"
        );
        // The body is already allocated; the check may add little more than a copy of it.
        assert!(
            peak < length + (1 << 20),
            "the check took {peak} bytes beyond a {length}-byte body"
        );
    });
}
