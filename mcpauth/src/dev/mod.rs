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
//!
//! # Upstream mode
//!
//! [`DevAuthServerBuilder::upstream_client`] turns it into an identity provider in the manner
//! of Google, for a broker (an MCP server acting as its own authorization server) to sit in
//! front of when no real provider is configured. It then serves a single confidential client
//! and nothing MCP clients could use directly:
//! - metadata at `[/path]/.well-known/openid-configuration` only, without
//!   `registration_endpoint`, `client_id_metadata_document_supported` or introspection; no
//!   `/register` or `/introspect`;
//! - `/authorize` knows only the configured client ID and its redirect URIs (registered with
//!   [`DevAuthServerBuilder::upstream_redirect_uri`], matched exactly; without any, any `http`
//!   loopback URI). Unknown clients and redirect URIs get a 400 page, never a redirect. PKCE is
//!   optional, but an `S256` challenge, once sent, must be met at the token endpoint. A
//!   `resource` parameter is refused with `invalid_target`, so a test can show a broker does not
//!   pass the MCP resource on. The development user (the [default
//!   subject](DevAuthServerBuilder::default_subject)) is logged in at once; the redirect carries
//!   `code`, `state` and `iss`;
//! - `/token` requires `client_secret_basic` or `client_secret_post` (else 401
//!   `invalid_client`), grants `authorization_code` and `refresh_token` (and refuses
//!   `resource`), and answers an opaque `access_token`, `expires_in`, `scope`, a
//!   `refresh_token` when `offline_access` was asked (or Google's `access_type=offline`), and an
//!   RS256 `id_token` when `openid` was: `aud` the client ID, `nonce` as sent, `email`
//!   `<subject>@example.com` and `name` the subject. Refreshing returns a new access token (and
//!   ID token) but no new refresh token: it is not rotated;
//! - `/userinfo` answers `sub`, `email` and `name` for an access token of this mode.
//!
//! Test aids on the handle, for either mode: [`DevAuthServer::fail_token_endpoint`],
//! [`DevAuthServer::token_requests`]; for upstream mode:
//! [`DevAuthServer::revoke_upstream_refresh_tokens`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mcpauth::dev::DevAuthServer;
//!
//! let idp = DevAuthServer::builder()
//!     .upstream_client("broker", "broker-secret")
//!     .start()
//!     .await?;
//! let callback = "http://127.0.0.1:3000/oauth/callback";
//! let browser = reqwest::Client::builder()
//!     .redirect(reqwest::redirect::Policy::none())
//!     .build()?;
//! let authorize = url::Url::parse_with_params(
//!     &idp.metadata().authorization_endpoint,
//!     [
//!         ("response_type", "code"),
//!         ("client_id", "broker"),
//!         ("redirect_uri", callback),
//!         ("scope", "openid email offline_access"),
//!         ("state", "s1"),
//!     ],
//! )?;
//! let login = browser.get(authorize).send().await?;
//! let location = url::Url::parse(login.headers()["location"].to_str()?)?;
//! let code = location.query_pairs().find(|(k, _)| k == "code").ok_or("no code")?.1;
//!
//! let tokens: serde_json::Value = reqwest::Client::new()
//!     .post(&idp.metadata().token_endpoint)
//!     .basic_auth("broker", Some("broker-secret"))
//!     .form(&[
//!         ("grant_type", "authorization_code"),
//!         ("code", &code),
//!         ("redirect_uri", callback),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert!(tokens["id_token"].is_string());
//! assert!(tokens["refresh_token"].is_string());
//! # Ok(()) }
//! ```

mod endpoints;
mod keys;
mod token;
mod upstream;

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
    /// The upstream mode is misconfigured (see
    /// [`DevAuthServerBuilder::upstream_client`]).
    #[error("invalid upstream configuration: {0}")]
    InvalidUpstream(String),
}

/// A failure the token endpoint answers instead of processing requests, set with
/// [`DevAuthServer::fail_token_endpoint`]: a test aid, to see how a client copes with an
/// authorization server that misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFailure {
    /// 500 with a JSON `server_error` body.
    ServerError,
    /// 200 with an HTML page (`text/html`), as a login wall or a misrouted proxy answers.
    Html,
    /// This status with a `text/plain` body (500 if the number is not a valid status).
    Status(u16),
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
    /// Changed by [`DevAuthServer::set_token_lifetime`].
    token_lifetime: Mutex<Duration>,
    metadata: AuthorizationServerMetadata,
    keys: RwLock<SigningKeys>,
    codes: Mutex<HashMap<String, PendingCode>>,
    jwks_requests: AtomicUsize,
    userinfo_requests: AtomicUsize,
    introspection_requests: AtomicUsize,
    token_requests: AtomicUsize,
    token_failure: Mutex<Option<TokenFailure>>,
    /// Present in upstream mode only.
    upstream: Option<Arc<upstream::Upstream>>,
}

impl DevState {
    /// The lifetime of the tokens the token endpoint issues now.
    pub(crate) fn token_lifetime(&self) -> Duration {
        *self
            .token_lifetime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Configures a [`DevAuthServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DevAuthServerBuilder {
    addr: SocketAddr,
    issuer_path: String,
    default_subject: String,
    token_lifetime: Duration,
    upstream_client: Option<upstream::UpstreamClient>,
    upstream_redirect_uris: Vec<String>,
}

impl Default for DevAuthServerBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            issuer_path: String::new(),
            default_subject: "dev-user".into(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            upstream_client: None,
            upstream_redirect_uris: Vec::new(),
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

    /// Turns the server into an upstream identity provider in the manner of Google, with one
    /// confidential client: `client_id`, authenticated by `client_secret` (see
    /// [upstream mode](self#upstream-mode)). This is what a broker sits in front of: no dynamic
    /// registration, no client ID metadata documents, no `resource` parameter, opaque access
    /// tokens, ID tokens, refresh tokens that are not rotated.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use mcpauth::dev::DevAuthServer;
    ///
    /// let idp = DevAuthServer::builder()
    ///     .upstream_client("broker", "broker-secret")
    ///     .upstream_redirect_uri("http://127.0.0.1:3000/oauth/callback")
    ///     .start()
    ///     .await?;
    /// let metadata = idp.metadata();
    /// assert_eq!(metadata.registration_endpoint, None);
    /// assert_eq!(metadata.client_id_metadata_document_supported, None);
    /// assert!(metadata.userinfo_endpoint.is_some());
    /// # Ok(()) }
    /// ```
    pub fn upstream_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.upstream_client = Some(upstream::UpstreamClient {
            id: client_id.into(),
            secret: client_secret.into(),
        });
        self
    }

    /// Registers a redirect URI of the [upstream client](Self::upstream_client); may be called
    /// several times. Once one is registered, `/authorize` accepts only registered URIs, compared
    /// as strings (no normalisation, as Google does); with none, any `http` loopback URI
    /// (`127.0.0.0/8`, `[::1]`, `localhost`) is accepted. Starting fails with
    /// [`DevServerError::InvalidUpstream`] without an upstream client or if `uri` is not an
    /// absolute URL without fragment.
    pub fn upstream_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.upstream_redirect_uris.push(uri.into());
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
        let upstream = upstream::Upstream::new(self.upstream_client, self.upstream_redirect_uris)?;
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
        let metadata = if upstream.is_some() {
            upstream::metadata(&issuer)
        } else {
            dev_metadata(&issuer)
        };
        let state = Arc::new(DevState {
            metadata,
            issuer,
            default_subject: self.default_subject,
            token_lifetime: Mutex::new(self.token_lifetime),
            keys: RwLock::new(keys),
            codes: Mutex::new(HashMap::new()),
            jwks_requests: AtomicUsize::new(0),
            userinfo_requests: AtomicUsize::new(0),
            introspection_requests: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            token_failure: Mutex::new(None),
            upstream: upstream.map(Arc::new),
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
    let strings = crate::metadata::owned_list;
    let mut metadata = AuthorizationServerMetadata::served_at(issuer);
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

    /// How many requests reached the token endpoint, in either mode, failed ones and those
    /// answered with an injected [`TokenFailure`] included (CORS preflights excepted). A test aid:
    /// to see that a client redeemed or refreshed, or that it did not call again.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Makes the token endpoint answer `failure` to every request from now on, without looking
    /// at them (codes and refresh tokens sent stay usable); `None` restores normal service. A
    /// test aid, for either mode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use mcpauth::dev::{DevAuthServer, TokenFailure};
    ///
    /// let dev = DevAuthServer::start().await?;
    /// dev.fail_token_endpoint(Some(TokenFailure::Status(503)));
    /// let response = reqwest::Client::new()
    ///     .post(&dev.metadata().token_endpoint)
    ///     .form(&[("grant_type", "client_credentials"), ("client_id", "c")])
    ///     .send()
    ///     .await?;
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(dev.token_requests(), 1);
    /// dev.fail_token_endpoint(None);
    /// # Ok(()) }
    /// ```
    pub fn fail_token_endpoint(&self, failure: Option<TokenFailure>) {
        *self
            .state
            .token_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// From now on, tokens the token endpoint issues live `lifetime` (see
    /// [`DevAuthServerBuilder::token_lifetime`]). A test aid: a client's token set can be made
    /// to expire soon, then its renewal to last.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *self
            .state
            .token_lifetime
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = lifetime;
    }

    /// Revokes every refresh token issued in upstream mode, as a user removing the
    /// application's access would: refreshing with any of them then fails with 400
    /// `invalid_grant`. Access tokens already issued stay valid until they expire. Answers how
    /// many were revoked (0 outside upstream mode). A test aid.
    pub fn revoke_upstream_refresh_tokens(&self) -> usize {
        self.state
            .upstream
            .as_ref()
            .map_or(0, |upstream| upstream.revoke_refresh_tokens(None))
    }

    /// Revokes one refresh token issued in upstream mode (see
    /// [`revoke_upstream_refresh_tokens`](Self::revoke_upstream_refresh_tokens)); `true` if it
    /// was live. A test aid.
    pub fn revoke_upstream_refresh_token(&self, refresh_token: &str) -> bool {
        self.state
            .upstream
            .as_ref()
            .is_some_and(|upstream| upstream.revoke_refresh_tokens(Some(refresh_token)) == 1)
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
