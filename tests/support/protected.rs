//! A real application protected by the bearer layer, on loopback, for the verification tests.

use axum::Json;
use axum::routing::get;
use mcpauth::{AuthInfo, AuthServer, BearerAuthLayer, KeyCacheOptions, McpAuth, ProtectedResource};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::TestServer;

/// The scopes the protected resource declares.
pub const SCOPES: [&str; 3] = ["read:notes", "write:notes", "admin:notes"];

/// A protected application: `GET /notes` (behind the layer) answers with what the layer
/// established.
#[derive(Debug)]
pub struct Protected {
    /// The application server.
    pub server: TestServer,
    /// Its resource identifier (`http://127.0.0.1:<port>/notes`).
    pub resource: String,
    /// The configuration behind it.
    pub auth: McpAuth,
}

impl Protected {
    /// Starts an application for `server`, with `options` for its key cache and `layer` to
    /// configure the bearer layer (which requires `read:notes` unless `layer` changes it).
    pub async fn start(
        server: AuthServer,
        options: KeyCacheOptions,
        layer: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/notes", listener.local_addr().unwrap());
        let auth = McpAuth::builder()
            .protected_resource(
                ProtectedResource::new(&resource)
                    .authorization_server(server)
                    .scopes(SCOPES),
            )
            .key_cache(options)
            .build()
            .unwrap();
        let bearer = layer(
            auth.bearer_auth(&resource)
                .unwrap()
                .required_scopes(["read:notes"])
                .unwrap(),
        );
        let notes = axum::Router::new()
            .route(
                "/notes",
                get(|auth: Option<AuthInfo>| async move { Json(describe(auth)) }),
            )
            .route_layer(bearer)
            .merge(auth.resource_metadata_router());
        let server = TestServer::serve(listener, notes);
        Self {
            server,
            resource,
            auth,
        }
    }

    /// The URL of `/notes`.
    pub fn notes(&self) -> String {
        self.server.url("/notes")
    }

    /// The metadata URL (`resource_metadata` of every challenge).
    pub fn metadata_url(&self) -> String {
        self.server
            .url("/.well-known/oauth-protected-resource/notes")
    }

    /// `GET /notes` with `Authorization: Bearer <token>`.
    pub async fn get_with(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.notes())
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }
}

/// What the handler saw.
pub fn describe(auth: Option<AuthInfo>) -> Value {
    match auth {
        None => json!({"anonymous": true}),
        Some(auth) => json!({
            "issuer": auth.issuer(),
            "subject": auth.subject(),
            "client_id": auth.client_id(),
            "audience": auth.audience(),
            "scopes": auth.scopes(),
            "expires_at": auth.expires_at().map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()),
            "token_length": auth.token().len(),
        }),
    }
}
