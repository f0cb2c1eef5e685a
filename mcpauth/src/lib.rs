//! # mcpauth — MCP Auth for Rust
//!
//! Every MCP server reached over HTTP is an OAuth 2.0 *resource server*: it publishes RFC 9728
//! protected-resource metadata naming the authorization servers that issue its tokens, and
//! accepts bearer access tokens from them. This crate does that part for axum servers.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use mcpauth::{AuthInfo, AuthServer, AuthServerType, McpAuth, ProtectedResource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Which authorization server issues tokens (fetched on first use, or now):
//! let logto = AuthServer::discover("https://tenant.logto.app/oidc", AuthServerType::Oidc);
//!
//! // 2. What this server is, as a protected resource:
//! let resource = "https://api.example.com/notes";
//! let auth = McpAuth::resource_server([ProtectedResource::new(resource)
//!     .authorization_server(logto)
//!     .scopes(["read:notes", "write:notes"])])?;
//! auth.discover_all().await?; // optional: fail at start-up rather than on first request
//!
//! // 3. Protect routes, and serve the metadata at /.well-known/oauth-protected-resource/notes:
//! let read = auth.bearer_auth(resource)?.required_scopes(["read:notes"])?;
//! let app = Router::new()
//!     .route("/notes", get(|who: AuthInfo| async move { who.subject().to_owned() }))
//!     .route_layer(read)
//!     .merge(auth.resource_metadata_router()?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! ## Declare an authorization server
//!
//! An [`AuthServer`] is given either by issuer — fetched lazily with
//! [`AuthServer::discover`] (a known type), [`AuthServer::probe`] (the MCP probing order) or
//! [`AuthServer::well_known_url`] — or by metadata you already have ([`AuthServer::new`], from
//! [`fetch_server_config`] or written by hand). Fetched metadata must name exactly the
//! configured issuer, is fetched over https (http only on loopback) within time and size
//! bounds, and is checked for MCP compatibility ([`validate_server_config`]): the
//! authorization-code flow with PKCE `S256`.
//!
//! ## Describe the protected resource
//!
//! A [`ProtectedResource`] is the resource identifier (the URL clients use), its authorization
//! servers, its scopes and the other RFC 9728 members. [`McpAuth`] checks the whole
//! configuration when it is built and refuses mistakes with a [`ConfigError`].
//!
//! ## Protect a route
//!
//! [`McpAuth::bearer_auth`] makes a [`BearerAuthLayer`] for one resource: it verifies the
//! bearer token (a JWT against the issuing server's cached keys, or with a custom
//! [`VerifyToken`] for opaque tokens), checks the audience and the route's scopes, hands the
//! handler an [`AuthInfo`], and answers refusals with the RFC 6750 status and
//! `WWW-Authenticate` challenge (see [`AuthError`]).
//!
//! ## Test without an identity provider
//!
//! With the `dev-server` feature, [`dev::DevAuthServer`] starts a real authorization server
//! in-process on loopback, with real keys, and mints tokens. It is for development and tests
//! only.
//!
//! ## Features
//!
//! - `aws-lc-rs` (default): signature checks through aws-lc.
//! - `rust-crypto`: pure-Rust signature checks, for targets that cannot build aws-lc.
//! - `macros` (default): the declarative configuration macros.
//! - `dev-server`: the development authorization server.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod auth_error;
mod auth_info;
mod auth_server;
mod bearer;
mod challenge;
mod claims;
mod crypto;
#[cfg(feature = "dev-server")]
pub mod dev;
pub mod discovery;
mod http_client;
mod jwks;
mod jwt;
mod layer;
mod mcp_auth;
mod metadata;
mod resource;
mod router;
mod single_flight;
mod verify;

pub use auth_error::{AuthError, AuthErrorReason, CustomVerifyError};
pub use auth_info::{AuthInfo, AuthInfoBuilder, MissingAuthInfo};
pub use auth_server::{AuthServer, DiscoveryMethod};
pub use bearer::DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES;
pub use discovery::{
    AuthServerConfigErrorCode, AuthServerConfigSuccessCode, AuthServerConfigValidation,
    AuthServerConfigWarningCode, DiscoveryError, MetadataFetcher, MetadataFetcherBuilder,
    Transpile, discover_server_config, fetch_server_config, fetch_server_config_by_well_known_url,
    validate_server_config, validate_server_config_verbose,
};
pub use http_client::FetchError;
pub use jwks::KeyCacheOptions;
pub use jwt::TokenTypePolicy;
pub use layer::{BearerAuthLayer, BearerAuthService, DEFAULT_LEEWAY, VerifyToken};
pub use mcp_auth::{ConfigError, DEFAULT_METADATA_MAX_AGE, McpAuth, McpAuthBuilder};
#[cfg(feature = "macros")]
pub use mcpauth_macros::{auth_server, protected_resource};
pub use mcpauth_rules::scope::is_valid_scope_token;
pub use mcpauth_rules::url::UrlError;
pub use metadata::{
    AuthServerConfig, AuthServerType, AuthorizationServerMetadata, ExtraFields,
    ProtectedResourceMetadata, UnknownAuthServerType,
};
pub use resource::ProtectedResource;
