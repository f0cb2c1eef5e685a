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
//!     .merge(auth.resource_metadata_router());
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
//! [`discovery::fetch_server_config`] or written by hand). Fetched metadata must name exactly the
//! configured issuer, is fetched over https (http only on loopback) within time and size
//! bounds, and is checked for MCP compatibility ([`discovery::validate_server_config`]): the
//! authorization-code flow with PKCE `S256`.
//!
//! ## Describe the protected resource
//!
//! A [`ProtectedResource`] is the resource identifier (the URL clients use), its authorization
//! servers, its scopes and the other RFC 9728 members. [`McpAuth`] checks the whole
//! configuration when it is built and refuses mistakes with a [`ConfigError`].
//!
//! ## Declare it in code
//!
//! With the `macros` feature (default), the same configuration is written once and checked at
//! compile time: a scope with a space, an issuer with a fragment, an http resource on a remote
//! host or static metadata without PKCE `S256` is a compile error at the offending token, and a
//! route can only require scopes its resource declares.
//!
//! ```
//! use mcpauth::{auth_server, protected_resource};
//!
//! auth_server! {
//!     /// Our Logto tenant (its metadata is fetched on first use).
//!     pub LOGTO = oidc("https://tenant.logto.app/oidc");
//! }
//!
//! /// The notes API.
//! #[protected_resource(
//!     resource = "https://api.example.com/notes",
//!     authorization_servers = [LOGTO],
//!     scopes = ["read:notes", "write:notes", "admin:notes"],
//!     scope_hierarchy = { "admin:notes" => ["read:notes", "write:notes"] },
//!     resource_name = "Notes",
//! )]
//! pub mod notes {}
//!
//! # fn main() -> Result<(), mcpauth::ConfigError> {
//! assert_eq!(notes::METADATA_PATH, "/.well-known/oauth-protected-resource/notes");
//! assert_eq!("read:notes".parse::<notes::Scope>().ok(), Some(notes::Scope::ReadNotes));
//!
//! let auth = mcpauth::McpAuth::resource_server([notes::protected_resource()?])?;
//! // A layer for routes that need `read:notes` (a token with `admin:notes` will do too);
//! // `notes::require(&auth, [todos::Scope::ReadTodos])` would not compile.
//! let read = notes::require(&auth, [notes::Scope::ReadNotes])?;
//! # let _ = read; Ok(()) }
//! ```
//!
//! `auth_server!` declares servers discovered by type (`oauth("…")`, `oidc("…")`,
//! `issuer("…", type = …)`), by probing (`discover("…")`), at a metadata URL
//! (`well_known("…", issuer = "…", type = oauth)`) or with static metadata
//! (`metadata { issuer = "…", jwks_uri = "…", … }`), with an optional `transpile = function`.
//! Deployment values may be `env("NAME")` or `expr(…)` instead of literals: they are read at
//! start-up and checked by the same rules, with the same messages. `#[protected_resource]` on an
//! inline module generates, inside it: the `Scope` enum (`as_str`, `FromStr`, `Display`, serde,
//! `ALL`) and a marker type per scope in `scopes`, `RESOURCE` and `METADATA_PATH` (for a literal
//! resource), `resource()`, `protected_resource()`, `metadata()`, `metadata_router()`,
//! `require(&auth, scopes)`, and `operation_scopes()` from `tool_scopes = { "tool" => [...] }`,
//! `method_scopes` and `login_scopes` (scopes per MCP operation, every one checked against
//! `scopes` at compile time). A renamed dependency is named with `crate = "::name"` (and
//! `crate = "::name";` first in `auth_server!`).
//!
//! ## Protect a route
//!
//! [`McpAuth::bearer_auth`] makes a [`BearerAuthLayer`] for one resource: it verifies the
//! bearer token (a JWT against the issuing server's cached keys, or with a custom
//! [`VerifyToken`] for opaque tokens), checks the audience and the route's scopes, hands the
//! handler an [`AuthInfo`], and answers refusals with the RFC 6750 status and
//! `WWW-Authenticate` challenge (see [`AuthError`]).
//!
//! A verified JWT is remembered per resource until its `exp` (never longer) while the key that
//! verified it is still published, so a repeated token costs a cache lookup (about 0.25 µs)
//! instead of a signature check (16–40 µs); each use still gets the route's checks. Bound or
//! disable it with [`McpAuthBuilder::token_cache`].
//!
//! ## Serve browser-based MCP clients
//!
//! With the `cors` feature, `mcpauth::cors::mcp_cors(["https://app.example"])?` is a CORS layer
//! for the MCP endpoint: add it with `.layer(...)` outside the bearer layer. It answers
//! preflights from the listed origins itself (they carry no token), lets those pages read
//! `WWW-Authenticate` and `Mcp-Session-Id`, and leaves every other origin to the bearer layer.
//! Origins are checked when it is built: no `*`, no path, no trailing `/`.
//!
//! ## Security rules
//!
//! The layer fails closed: input it cannot read unambiguously is refused, never read as
//! "nothing to check".
//!
//! - **Audience.** `aud` must name the resource by MCP's canonical-URI rule and nothing looser:
//!   scheme and host compared without regard to ASCII case, an explicit default port equal to
//!   none, one trailing `/` ignored. An audience with a `.`/`..` segment (raw or
//!   percent-encoded), an encoded `/` or `\`, whitespace, a control character, a backslash,
//!   userinfo, a query, a fragment, or a host in a non-canonical spelling (`2130706433`,
//!   `127.1`, a trailing dot, Unicode) never matches, and nothing matches by prefix. Resource
//!   identifiers must be written in canonical form ([`ConfigError::InvalidResource`] otherwise,
//!   or a compile error with the macros).
//! - **MCP operations.** With [`OperationScopes`], no request is content-encoded; a POST body
//!   must be strict UTF-8 JSON without a byte-order mark, one JSON-RPC message or a non-empty
//!   batch; `jsonrpc`, `method`, `id`, `params` and the members naming targets (`params.name`,
//!   `params.uri`, `params.taskId`) appear once, the first four and the method's target member
//!   in no other case, and a method that acts on a target names it as a string; other methods'
//!   requests carry no body. `Mcp-Method` / `Mcp-Name` (Base64
//!   wrapping undone) must match the body. Anything else is a 400 naming the reason, without a
//!   Bearer challenge. The body is read without being built, within a bound (413 beyond it).
//! - **Every request is authenticated**, CORS preflights included: serve CORS with a layer
//!   outside the bearer layer.
//! - **Token types.** By default `typ` may be `at+jwt`, `application/at+jwt`, `JWT` or absent
//!   (several providers send the last two on access tokens); any other `typ` is refused. An
//!   OpenID Connect ID token is kept out by its audience (the client id, never the resource).
//!   If you skip the audience check, also call [`BearerAuthLayer::strict_token_type`] when your
//!   provider sends `at+jwt`.
//! - **Scopes** are read from `scope` and `scp`; a non-standard claim (`scopes`, Auth0's
//!   `permissions`) only when [`AuthServer::scope_claims`] names it.
//! - **Opaque tokens** ([`RemoteVerifier`]): one call per token under any concurrency,
//!   refusals remembered for seconds, calls for unknown tokens rate-limited (503 with
//!   `Retry-After` beyond), caches bounded in entries and bytes. Userinfo mode cannot check the
//!   audience, and reads scopes only from a member you name.
//! - **Failing authorization servers** are asked at most once per retry interval, whatever the
//!   request rate: metadata and key fetches alike.
//! - **Refusal bodies.** The precise `reason` of a refused token (or malformed `Authorization`
//!   header) follows [`BearerAuthLayer::show_error_details`], like its description.
//! - **Loopback** means `localhost`, `127.0.0.0/8` and `::1`: names under `.localhost` are
//!   resolved by whatever resolver is configured and may leave the machine.
//!
//! ## Test without an identity provider
//!
//! With the `dev-server` feature, [`dev::DevAuthServer`] starts a real authorization server
//! in-process on loopback, with real keys, and mints tokens. It is for development and tests
//! only.
//!
//! ## Other crates' types in this API
//!
//! Only at the integration points, where they are the point: `axum` (routers, bodies, the
//! `AuthInfo` extractor), `http` (headers, methods, statuses), `tower` (the `Layer` and
//! `Service` of [`BearerAuthLayer`]), `rmcp` (with the `rmcp` feature: `AuthInfo` in tool
//! handlers), `tower-http` (with the `cors` feature: the CORS layer it configures), `url` (parsed
//! URLs returned by getters) and `serde_json` (metadata members and claims). Errors from the
//! HTTP client are opaque ([`discovery::TransportError`]): its version is not part of this API.
//!
//! ## Features
//!
//! - `aws-lc-rs` (default): signature checks through aws-lc.
//! - `rust-crypto`: pure-Rust signature checks, for targets that cannot build aws-lc (measured
//!   7.7× slower for RS256 and 5.2× for ES256 on a cache miss; the same on hits — see
//!   `BENCHMARKS.md`).
//! - `macros` (default): the declarative configuration macros.
//! - `dev-server`: the development authorization server.
//! - `rmcp`: [`AuthInfo`] as a parameter of `rmcp` tool and prompt handlers.
//! - `cors`: the CORS layer for browser-based MCP clients (`mcpauth::cors`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// docs.rs (nightly) marks each item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzzing;
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod auth_error;
mod auth_info;
mod auth_server;
mod authorization_server_mode;
mod bearer;
mod bounded_cache;
#[cfg(feature = "broker")]
#[cfg_attr(docsrs, doc(cfg(feature = "broker")))]
pub mod broker;
mod challenge;
mod claims;
#[cfg(feature = "cors")]
#[cfg_attr(docsrs, doc(cfg(feature = "cors")))]
pub mod cors;
mod crypto;
#[cfg(feature = "dev-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-server")))]
pub mod dev;
pub mod discovery;
mod http_client;
mod jwks;
mod jwt;
mod layer;
mod mcp_auth;
mod metadata;
pub mod metrics;
mod operations;
mod rate_limit;
mod remote_verifier;
mod resource;
#[cfg(feature = "rmcp")]
mod rmcp_support;
mod router;
mod scope_marker;
mod single_flight;
mod token_cache;
mod verify;

pub use auth_error::{AuthError, AuthErrorReason, CustomVerifyError};
pub use auth_info::{AuthInfo, AuthInfoBuilder, MissingAuthInfo};
pub use auth_server::{AuthServer, DiscoveryMethod};
#[allow(deprecated)]
pub use authorization_server_mode::AuthorizationServerMode;
pub use jwks::KeyCacheOptions;
pub use jwt::TokenTypePolicy;
pub use layer::{BearerAuthLayer, BearerAuthService, VerifyToken};
pub use mcp_auth::{ConfigError, McpAuth, McpAuthBuilder};
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use mcpauth_macros::{auth_server, protected_resource};
pub use mcpauth_rules::scope::is_valid_scope_token;
pub use mcpauth_rules::url::UrlError;
pub use metadata::{
    AuthServerConfig, AuthServerType, AuthorizationServerMetadata, ExtraFields,
    ProtectedResourceMetadata, UnknownAuthServerType,
};
pub use operations::OperationScopes;
pub use remote_verifier::{RemoteVerifier, RemoteVerifierStats};
pub use resource::ProtectedResource;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub use rmcp_support::MaybeAuthInfo;
pub use scope_marker::{Require, ScopeMarker};
pub use token_cache::{TokenCacheOptions, TokenCacheStats};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
