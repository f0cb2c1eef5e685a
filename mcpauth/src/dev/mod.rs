//! A development authorization server, for local runs and tests only.
//!
//! **Not for production.** It trusts every client, approves every authorization request
//! without asking anyone, and keeps its keys in memory. What it is good for: a real OAuth 2.0 /
//! OpenID Connect server on loopback, with real RS256 and ES256 keys, so an MCP server can be
//! run and tested end to end without an identity provider.
//!
//! It serves, under its issuer `http://127.0.0.1:<port>[/path]`:
//! - metadata at both `/.well-known/oauth-authorization-server[/path]` (RFC 8414) and
//!   `[/path]/.well-known/openid-configuration` (OpenID Connect), MCP-compatible: the
//!   authorization-code flow with PKCE `S256`, dynamic registration, client ID metadata
//!   documents;
//! - `/jwks` with one RSA, one P-256 and one Ed25519 key;
//! - `/token` (client credentials; authorization code with PKCE), `/authorize` (automatic
//!   consent), `/register` (RFC 7591, any client), `/userinfo` (OpenID Connect) and
//!   `/introspect` (RFC 7662, any client).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mcpauth::dev::{DevAlgorithm, DevAuthServer};
//!
//! let dev = DevAuthServer::start().await?;
//! let token = dev
//!     .token()
//!     .subject("alice")
//!     .audience("http://127.0.0.1:3001/notes")
//!     .scopes(["read:notes"])
//!     .algorithm(DevAlgorithm::Es256)
//!     .sign()?;
//! assert_eq!(token.split('.').count(), 3);
//! # Ok(()) }
//! ```

mod endpoints;
mod keys;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use keys::{DevAlgorithm, KeyRotation};
pub use token::{DEFAULT_TOKEN_LIFETIME, TokenBuilder};

use crate::metadata::{AuthServerConfig, AuthServerType, AuthorizationServerMetadata};
use keys::SigningKeys;

/// What can go wrong starting or using the development authorization server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevServerError {
    /// The listening socket could not be bound.
    #[error("cannot bind the development authorization server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The issuer path is not a plain absolute path.
    #[error(
        "invalid issuer path {0:?}: use an absolute path like \"/tenant\" without query or fragment"
    )]
    InvalidPath(String),
    /// Keys could not be generated.
    #[error("development authorization server keys: {0}")]
    Keys(String),
    /// A token could not be signed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

#[derive(Debug)]
pub(crate) struct PendingCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: Option<String>,
    resource: Option<String>,
    issued: Instant,
}

/// State shared by the endpoints and the token builder.
#[derive(Debug)]
pub(crate) struct DevState {
    issuer: String,
    default_subject: String,
    token_lifetime: Duration,
    metadata: AuthorizationServerMetadata,
    keys: RwLock<SigningKeys>,
    codes: Mutex<HashMap<String, PendingCode>>,
    jwks_requests: AtomicUsize,
    userinfo_requests: AtomicUsize,
    introspection_requests: AtomicUsize,
}

/// Configures a [`DevAuthServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DevAuthServerBuilder {
    addr: SocketAddr,
    issuer_path: String,
    default_subject: String,
    token_lifetime: Duration,
}

impl Default for DevAuthServerBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            issuer_path: String::new(),
            default_subject: "dev-user".into(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

impl DevAuthServerBuilder {
    /// Listens on `addr` (default `127.0.0.1:0`, an ephemeral port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Puts the issuer under a path (`"/tenant"` → issuer `http://127.0.0.1:<port>/tenant`).
    pub fn issuer_path(mut self, path: impl Into<String>) -> Self {
        self.issuer_path = path.into();
        self
    }

    /// The `sub` of tokens minted without one and of authorization-code logins (default
    /// `dev-user`).
    pub fn default_subject(mut self, subject: impl Into<String>) -> Self {
        self.default_subject = subject.into();
        self
    }

    /// The lifetime of tokens issued by the token endpoint (default one hour).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Generates keys, binds and starts serving in the background.
    pub async fn start(self) -> Result<DevAuthServer, DevServerError> {
        let path = self.issuer_path.trim_end_matches('/').to_owned();
        let path_is_plain = path.is_empty()
            || (path.starts_with('/') && !path.contains(['?', '#', ' ']) && !path.contains("//"));
        if !path_is_plain {
            return Err(DevServerError::InvalidPath(self.issuer_path));
        }
        let listener =
            TcpListener::bind(self.addr)
                .await
                .map_err(|source| DevServerError::Bind {
                    addr: self.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevServerError::Bind {
                addr: self.addr,
                source,
            })?;
        crate::crypto::install_provider();
        let keys = tokio::task::spawn_blocking(SigningKeys::generate)
            .await
            .map_err(|e| DevServerError::Keys(e.to_string()))??;
        let issuer = format!("http://{addr}{path}");
        let state = Arc::new(DevState {
            metadata: dev_metadata(&issuer),
            issuer,
            default_subject: self.default_subject,
            token_lifetime: self.token_lifetime,
            keys: RwLock::new(keys),
            codes: Mutex::new(HashMap::new()),
            jwks_requests: AtomicUsize::new(0),
            userinfo_requests: AtomicUsize::new(0),
            introspection_requests: AtomicUsize::new(0),
        });
        let app = endpoints::router(state.clone(), &path);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "development authorization server stopped");
            }
        });
        tracing::info!(issuer = %state.issuer, "development authorization server started (development only)");
        Ok(DevAuthServer { addr, state, task })
    }
}

fn dev_metadata(issuer: &str) -> AuthorizationServerMetadata {
    let strings = |values: &[&str]| Some(values.iter().map(|v| (*v).to_owned()).collect());
    let mut metadata = AuthorizationServerMetadata::new(
        issuer,
        format!("{issuer}/authorize"),
        format!("{issuer}/token"),
        ["code"],
    );
    metadata.jwks_uri = Some(format!("{issuer}/jwks"));
    metadata.registration_endpoint = Some(format!("{issuer}/register"));
    metadata.userinfo_endpoint = Some(format!("{issuer}/userinfo"));
    metadata.introspection_endpoint = Some(format!("{issuer}/introspect"));
    metadata.grant_types_supported = strings(&["authorization_code", "client_credentials"]);
    metadata.response_modes_supported = strings(&["query"]);
    metadata.code_challenge_methods_supported = strings(&["S256"]);
    metadata.token_endpoint_auth_methods_supported =
        strings(&["none", "client_secret_basic", "client_secret_post"]);
    metadata.subject_types_supported = strings(&["public"]);
    metadata.id_token_signing_alg_values_supported = strings(&["RS256", "ES256", "EdDSA"]);
    metadata.client_id_metadata_document_supported = Some(true);
    metadata.authorization_response_iss_parameter_supported = Some(true);
    metadata
}

/// A running development authorization server (see the [module docs](self)). It stops when
/// dropped.
pub struct DevAuthServer {
    addr: SocketAddr,
    state: Arc<DevState>,
    task: JoinHandle<()>,
}

impl fmt::Debug for DevAuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAuthServer")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for DevAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevAuthServer {
    /// Starts a server on `127.0.0.1` with an ephemeral port and default settings.
    pub async fn start() -> Result<Self, DevServerError> {
        Self::builder().start().await
    }

    /// Starts configuring a server.
    pub fn builder() -> DevAuthServerBuilder {
        DevAuthServerBuilder::default()
    }

    /// The issuer identifier (`http://127.0.0.1:<port>[/path]`).
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its metadata, as served.
    pub fn metadata(&self) -> &AuthorizationServerMetadata {
        &self.state.metadata
    }

    /// Its metadata as a static [`AuthServerConfig`] (OpenID Connect type), to configure a
    /// resource without fetching.
    pub fn config(&self) -> AuthServerConfig {
        AuthServerConfig::new(AuthServerType::Oidc, self.state.metadata.clone())
    }

    /// The URL of its JWKS.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    /// Starts minting a token (see [`TokenBuilder`] for the defaults).
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(self.state.clone())
    }

    /// How many times the JWKS was requested (for tests of key caching).
    pub fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// How many times the userinfo endpoint was asked.
    pub fn userinfo_requests(&self) -> usize {
        self.state.userinfo_requests.load(Ordering::SeqCst)
    }

    /// How many times the introspection endpoint was asked.
    pub fn introspection_requests(&self) -> usize {
        self.state.introspection_requests.load(Ordering::SeqCst)
    }

    /// The key IDs currently published: RSA, P-256, Ed25519.
    pub fn key_ids(&self) -> Vec<String> {
        let keys = self
            .state
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        keys.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Replaces the signing keys; tokens signed before no longer verify against the JWKS.
    pub async fn rotate_keys(&self, rotation: KeyRotation) -> Result<(), DevServerError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut keys = state.keys.write().unwrap_or_else(PoisonError::into_inner);
            *keys = keys.rotated(rotation)?;
            Ok(())
        })
        .await
        .map_err(|e| DevServerError::Keys(e.to_string()))?
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}
