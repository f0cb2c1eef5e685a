//! The deprecated authorization-server mode of the MCP Auth SDKs (MCP 2025-03-26): the MCP
//! server serves a copy of one authorization server's metadata at
//! `/.well-known/oauth-authorization-server`. Its own type, so that it cannot be mixed up with a
//! resource-server configuration.
#![allow(deprecated)] // the type is deprecated on purpose; its own code uses it

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::get;
use bytes::Bytes;

use crate::auth_server::{AuthServer, AuthServerHandle};
use crate::challenge::retry_after_value;
use crate::discovery::DiscoveryError;
use crate::discovery::well_known::OAUTH_AUTHORIZATION_SERVER;
use crate::jwks::KeyCacheOptions;
use crate::mcp_auth::{ConfigError, DEFAULT_METADATA_MAX_AGE, check_auth_server};
use crate::router::{json_response, max_age_header, preflight};

/// The deprecated authorization-server mode: the MCP server serves a copy of one authorization
/// server's metadata at `/.well-known/oauth-authorization-server`, as MCP 2025-03-26 clients
/// looked for it.
///
/// MCP clients since 2025-06-18 discover the authorization server through protected-resource
/// metadata instead: use [`McpAuth::resource_server`](crate::McpAuth::resource_server).
///
/// ```
/// # #![allow(deprecated)]
/// use mcpauth::{AuthServer, AuthServerType, AuthorizationServerMode};
///
/// let mode = AuthorizationServerMode::new(AuthServer::discover(
///     "https://tenant.logto.app/oidc",
///     AuthServerType::Oidc,
/// ))
/// .unwrap();
/// let app: axum::Router = mode.router();
/// # let _ = app;
/// ```
#[deprecated(
    note = "MCP servers are resource servers since MCP 2025-06-18: use `McpAuth::resource_server`"
)]
#[derive(Debug, Clone)]
pub struct AuthorizationServerMode {
    handle: Arc<AuthServerHandle>,
    metadata_max_age: Duration,
}

impl AuthorizationServerMode {
    /// Fronts `server` (checked for MCP compatibility like any authorization server).
    pub fn new(server: impl Into<AuthServer>) -> Result<Self, ConfigError> {
        tracing::warn!(
            "the authorization-server mode is deprecated: MCP servers are resource servers since MCP 2025-06-18"
        );
        Ok(Self {
            handle: check_auth_server(server.into(), KeyCacheOptions::default())?,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
        })
    }

    /// Fetches the server's metadata now (for a lazily configured server) instead of on the
    /// first request, so a server can refuse to start when it is unreachable or incompatible.
    pub async fn discover(&self) -> Result<(), DiscoveryError> {
        self.handle.config().await.map(drop)
    }

    /// The router serving the metadata at `/.well-known/oauth-authorization-server` (fetched on
    /// first request for a lazily configured server; 503 with `Retry-After` while it cannot be
    /// had). After a failed fetch, requests within the retry interval are answered 503 without
    /// asking the server.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let handle = self.handle.clone();
        let cache_control = max_age_header(self.metadata_max_age);
        let route = get(move || {
            let handle = handle.clone();
            let cache_control = cache_control.clone();
            async move {
                match handle.config_for_request().await {
                    Ok(config) => {
                        let body = serde_json::to_vec(&config.metadata).unwrap_or_default();
                        json_response(StatusCode::OK, Bytes::from(body), cache_control)
                    }
                    Err(error) => {
                        tracing::warn!(issuer = handle.issuer(), %error, "cannot serve authorization server metadata");
                        let body = serde_json::json!({
                            "error": "temporarily_unavailable",
                            "error_description": "The authorization server metadata cannot be retrieved right now.",
                        });
                        let mut response = json_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Bytes::from(body.to_string()),
                            HeaderValue::from_static("no-store"),
                        );
                        response.headers_mut().insert(
                            header::RETRY_AFTER,
                            retry_after_value(handle.retry_after()),
                        );
                        response
                    }
                }
            }
        })
        .options(|| async { preflight() });
        Router::new().route(OAUTH_AUTHORIZATION_SERVER, route)
    }
}
