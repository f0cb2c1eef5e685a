//! The broker: an MCP server as its own authorization server, in front of an identity provider
//! that cannot serve MCP clients itself.
//!
//! MCP clients need an authorization server with RFC 8414 metadata, PKCE `S256`, RFC 8707
//! resource indicators and a way for unknown clients to register (client ID metadata documents
//! or dynamic registration). GitHub, Google, Entra ID, Cognito and Okta lack some of these. The
//! broker speaks all of it to the MCP client, signs the user in at the identity provider with
//! one pre-registered upstream client, and issues **its own** short-lived access tokens for the
//! protected resource. The identity provider's tokens never leave the server.
//!
//! ```text
//! MCP client ──(broker = authorization server)──▶ broker ──(broker = OAuth client)──▶ provider
//!   client_id: CIMD URL, DCR id or configured        one static upstream client (id + secret)
//!   PKCE: the client's                               PKCE: the broker's own
//!   tokens: the broker's, aud = the MCP server       tokens: the provider's, kept sealed
//! ```
//!
//! It serves, under its issuer (an origin, optionally with a path `P`):
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/oauth-authorization-server{P}` | RFC 8414 metadata |
//! | `GET {P}/authorize` | the authorization request; then the consent page |
//! | `GET`/`POST {P}/consent` | the consent page and its answer |
//! | `GET {P}/callback/{upstream}` | the identity provider's answer |
//! | `POST {P}/token` | `authorization_code` and `refresh_token` grants |
//! | `POST {P}/register` | RFC 7591 dynamic registration |
//! | `POST {P}/revoke` | RFC 7009 revocation |
//! | `GET {P}/jwks` | the public signing keys |
//!
//! Its access tokens are RFC 9068 JWTs verified by the protected resource's bearer layer with
//! the same code and caches as any other authorization server's, the keys handed over in
//! process ([`Broker::auth_server`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mcpauth::broker::{Broker, FjallStore, Upstream};
//! use mcpauth::{McpAuth, ProtectedResource};
//!
//! let broker = Broker::builder("https://mcp.example.com")
//!     .resource("https://mcp.example.com/mcp", ["read:todos", "write:todos"])
//!     .upstream(Upstream::google("client-id").client_secret("client-secret"))
//!     .store(FjallStore::open("/var/lib/my-mcp/broker")?)
//!     .build()
//!     .await?;
//! let auth = McpAuth::builder()
//!     .protected_resource(
//!         ProtectedResource::new("https://mcp.example.com/mcp")
//!             .authorization_server(broker.auth_server())
//!             .scopes(["read:todos", "write:todos"]),
//!     )
//!     .build()?;
//! let app = axum::Router::new()
//!     .merge(broker.router())
//!     .merge(auth.resource_metadata_router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! The identity provider is an [`Upstream`]: a preset for GitHub ([`Upstream::github`],
//! [`Upstream::github_app`]), Google ([`Upstream::google`]) or Microsoft Entra ID
//! ([`Upstream::entra`]), which knows the provider's endpoints and quirks; any other OpenID
//! Connect provider by its issuer ([`Upstream::oidc`]); or a plain OAuth 2.0 provider by its
//! endpoints ([`Upstream::oauth`]). Register [`Broker::callback_url`] there as the redirect URI
//! of a confidential client.
//!
//! # Calling the provider's API from a tool
//!
//! A tool that acts for the user at the provider (the GitHub API, Google Drive, Microsoft Graph)
//! asks for the user's token there with [`Broker::upstream_token`] (from the request's
//! [`AuthInfo`](crate::AuthInfo)) or the [`UpstreamToken`] axum extractor. The broker renews it
//! when it is near expiry — one renewal however many tools ask at once, across replicas too —
//! and never sends it to the MCP client. A provider that refuses to renew it ends the sign-in
//! ([`UpstreamTokenError::SignInEnded`]); one that is down gives a retryable error.
//!
//! ```no_run
//! use mcpauth::AuthInfo;
//! use mcpauth::broker::{Broker, UpstreamTokenError};
//!
//! async fn starred(broker: &Broker, auth: &AuthInfo) -> Result<String, UpstreamTokenError> {
//!     let token = broker.upstream_token(auth).await?;
//!     let answer = reqwest::Client::new()
//!         .get("https://api.github.com/user/starred")
//!         .bearer_auth(token.expose_secret())
//!         .header("user-agent", "my-mcp-server")
//!         .send()
//!         .await;
//!     Ok(format!("{:?}", answer.map(|r| r.status())))
//! }
//! ```

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzzing;
mod authorize;
mod callback;
mod cimd;
mod client;
mod consent;
mod cookies;
mod directory;
mod grants;
mod keys;
mod pages;
mod params;
mod records;
mod redirect_uri;
mod refresh_token;
mod register;
mod responses;
mod revoke;
mod secrets;
pub mod store;
mod token;
mod upstream;
mod upstream_token;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};

pub use cimd::CimdOptions;
pub use keys::{BrokerKeys, SigningKey};
#[cfg(feature = "broker-redis")]
pub use store::RedisStore;
pub use store::{
    BrokerStore, Durability, FjallStore, MemoryStore, Namespace, Put, StoreError, StoreFuture,
    Write,
};
pub use upstream::{EntraTenant, Upstream, UpstreamClientAuth};
pub use upstream_token::{UpstreamToken, UpstreamTokenError};

use crate::auth_server::AuthServer;
use crate::jwks::LocalKeySet;
use crate::metadata::{AuthServerConfig, AuthServerType, AuthorizationServerMetadata};
use secrets::{MacKey, SealingKey};
use upstream::UpstreamClient;

/// Why a broker could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A configuration value is missing or refused.
    #[error("broker configuration: {0}")]
    Config(String),
    /// A key is missing or unusable.
    #[error("broker keys: {0}")]
    Keys(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lifetimes and bounds of what the broker issues.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) access_token: Duration,
    pub(crate) refresh_token: Duration,
    pub(crate) code: Duration,
    pub(crate) transaction: Duration,
    pub(crate) registered_client: Duration,
}

/// Configures a [`Broker`]; see the [module docs](self).
#[must_use]
pub struct BrokerBuilder {
    issuer: String,
    resource: Option<(String, Vec<String>)>,
    upstream: Option<Upstream>,
    store: Option<Arc<dyn BrokerStore>>,
    keys: Option<BrokerKeys>,
    lifetimes: Lifetimes,
    server_name: Option<String>,
    dynamic_registration: bool,
    max_registered_clients: u64,
    registrations_per_second: u32,
    authorizations_per_second: u32,
    clients: Vec<(String, Vec<String>, Option<String>)>,
    cimd: Option<CimdOptions>,
}

impl fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl BrokerBuilder {
    /// The protected resource the broker issues tokens for (its identifier, as in its
    /// protected-resource metadata) and the scopes it defines.
    pub fn resource<I>(mut self, identifier: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.resource = Some((identifier.into(), scopes));
        self
    }

    /// The identity provider users sign in at.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Where the broker keeps its state: a [`FjallStore`] (durable, embedded, one process), a
    /// `RedisStore` (feature `broker-redis`: one state shared by several replicas), a
    /// [`MemoryStore`] (tests), or your own [`BrokerStore`].
    pub fn store(mut self, store: impl BrokerStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store already shared with other code.
    pub fn shared_store(mut self, store: Arc<dyn BrokerStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The broker's keys. Required unless the issuer is on loopback (development), where keys
    /// are generated once and kept in the store.
    pub fn keys(mut self, keys: BrokerKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// How long the broker's access tokens live (default 10 min). They are self-contained
    /// JWTs: a revoked grant's access tokens stop working within this time plus the bearer
    /// layer's clock leeway (60 s by default; see `BearerAuthLayer::leeway`).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.access_token = lifetime;
        self
    }

    /// How long an authorization code may wait to be redeemed (default 5 min; at most 10).
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.code = lifetime.min(Duration::from_secs(600));
        self
    }

    /// How long an unused refresh token lives (default 30 days; each use starts a new one).
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.refresh_token = lifetime;
        self
    }

    /// The MCP server's name shown on the consent page (default: the resource identifier).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Whether clients may register dynamically (RFC 7591; default on, for MCP clients that
    /// predate client ID metadata documents).
    pub fn dynamic_registration(mut self, enabled: bool) -> Self {
        self.dynamic_registration = enabled;
        self
    }

    /// Bounds on dynamic registration: at most `max_clients` registered clients kept (default
    /// 10,000) and `per_second` registrations a second (default 10, bursts of twice that).
    pub fn registration_limits(mut self, max_clients: u64, per_second: u32) -> Self {
        self.max_registered_clients = max_clients;
        self.registrations_per_second = per_second;
        self
    }

    /// At most `per_second` authorization requests a second are kept as sign-ins in progress
    /// (default 100, bursts of twice that); beyond, the browser is asked to try again shortly
    /// (503). Each one writes a record that lives 15 minutes: the bound keeps a flood of
    /// requests from filling the store.
    pub fn authorization_rate(mut self, per_second: u32) -> Self {
        self.authorizations_per_second = per_second;
        self
    }

    /// A pre-registered public client: its id, its redirect URIs (the same rules as for
    /// registered clients) and the name the consent page shows.
    pub fn client<I>(
        mut self,
        client_id: impl Into<String>,
        redirect_uris: I,
        name: Option<&str>,
    ) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.clients.push((
            client_id.into(),
            redirect_uris.into_iter().map(Into::into).collect(),
            name.map(str::to_owned),
        ));
        self
    }

    /// How client ID metadata documents are fetched (default [`CimdOptions::default`]:
    /// `https` on global addresses only).
    pub fn client_metadata_documents(mut self, options: CimdOptions) -> Self {
        self.cimd = Some(options);
        self
    }

    /// Turns client ID metadata documents off: `https` client ids are then unknown clients.
    pub fn without_client_metadata_documents(mut self) -> Self {
        self.cimd = None;
        self
    }

    /// Checks the configuration, loads or generates the keys, and returns the broker.
    pub async fn build(self) -> Result<Broker, BrokerError> {
        crate::crypto::install_provider();
        let issuer_url = mcpauth_rules::url::parse_issuer(&self.issuer)
            .map_err(|e| BrokerError::Config(format!("issuer `{}`: {e}", self.issuer)))?;
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        if issuer_url.query().is_some() {
            return Err(BrokerError::Config("the issuer cannot have a query".into()));
        }
        let (resource, scopes) = self.resource.ok_or_else(|| {
            BrokerError::Config("no resource: call `.resource(identifier, scopes)`".into())
        })?;
        mcpauth_rules::url::parse_resource_identifier(&resource)
            .map_err(|e| BrokerError::Config(format!("resource `{resource}`: {e}")))?;
        mcpauth_rules::canonical::CanonicalUri::parse(&resource)
            .map_err(|e| BrokerError::Config(format!("resource `{resource}`: {e}")))?;
        for scope in &scopes {
            if !crate::is_valid_scope_token(scope) {
                return Err(BrokerError::Config(format!("invalid scope `{scope}`")));
            }
        }
        let upstream = self.upstream.ok_or_else(|| {
            BrokerError::Config("no upstream identity provider: call `.upstream(…)`".into())
        })?;
        let upstream_id_ok = !upstream.id_name().is_empty()
            && upstream
                .id_name()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !upstream_id_ok {
            return Err(BrokerError::Config(format!(
                "upstream id `{}`: use letters, digits, `-`, `.` or `_`",
                upstream.id_name()
            )));
        }
        upstream
            .check()
            .map_err(|e| BrokerError::Config(format!("upstream `{}`: {e}", upstream.id_name())))?;
        let store = self.store.ok_or_else(|| {
            BrokerError::Config("no store: call `.store(FjallStore::open(path)?)`".into())
        })?;
        let store: Arc<dyn BrokerStore> = Arc::new(store::TimedStore(store));
        let loopback = mcpauth_rules::url::is_loopback(&issuer_url);
        let keys = match self.keys {
            Some(keys) => keys,
            None if loopback => {
                tracing::warn!(
                    "broker keys generated for development and kept in the store; configure \
                     keys for production"
                );
                BrokerKeys::development(store.as_ref()).await?
            }
            None => {
                return Err(BrokerError::Keys(
                    "a broker on a public issuer needs configured keys (`.keys(…)`)".into(),
                ));
            }
        };
        let path = issuer_url.path().trim_end_matches('/').to_owned();
        let mut metadata = broker_metadata(&issuer, &scopes, self.dynamic_registration);
        if self.cimd.is_some() {
            metadata.client_id_metadata_document_supported = Some(true);
        }
        let mut configured_clients = HashMap::new();
        for (client_id, redirect_uris, name) in self.clients {
            let client = client::ClientRecord::configured(&client_id, &redirect_uris, name)
                .map_err(|e| BrokerError::Config(format!("client `{client_id}`: {e}")))?;
            configured_clients.insert(client_id, Arc::new(client));
        }
        let state = BrokerState {
            sealing: keys.sealing_key()?,
            mac: keys.mac_key(),
            refresh_token_key: keys.refresh_token_key(),
            keys,
            secure_cookies: issuer_url.scheme() == "https",
            callback: format!("{issuer}/callback/{}", upstream.id_name()),
            upstream: UpstreamClient::new(upstream)?,
            server_name: self.server_name.unwrap_or_else(|| resource.clone()),
            issuer,
            path,
            resource,
            scopes,
            store,
            lifetimes: self.lifetimes,
            dynamic_registration: self.dynamic_registration,
            max_registered_clients: self.max_registered_clients,
            registrations: crate::rate_limit::TokenBucket::new(
                self.registrations_per_second,
                self.registrations_per_second.saturating_mul(2),
            ),
            authorizations: crate::rate_limit::TokenBucket::new(
                self.authorizations_per_second,
                self.authorizations_per_second.saturating_mul(2),
            ),
            configured_clients,
            cimd: self.cimd.map(cimd::CimdFetcher::new),
            metadata,
            grant_locks: upstream_token::GrantLocks::default(),
        };
        keys::publish(&state.issuer, &state.keys);
        Ok(Broker {
            state: Arc::new(state),
        })
    }
}

fn broker_metadata(
    issuer: &str,
    scopes: &[String],
    dynamic_registration: bool,
) -> AuthorizationServerMetadata {
    let strings = crate::metadata::owned_list;
    let mut metadata = AuthorizationServerMetadata::served_at(issuer);
    if dynamic_registration {
        metadata.registration_endpoint = Some(format!("{issuer}/register"));
    }
    metadata.revocation_endpoint = Some(format!("{issuer}/revoke"));
    metadata.scopes_supported = Some(scopes.to_vec());
    metadata.response_modes_supported = strings(&["query"]);
    metadata.grant_types_supported = strings(&["authorization_code", "refresh_token"]);
    metadata.code_challenge_methods_supported = strings(&["S256"]);
    metadata.token_endpoint_auth_methods_supported = strings(&["none"]);
    metadata.revocation_endpoint_auth_methods_supported = strings(&["none"]);
    metadata.authorization_response_iss_parameter_supported = Some(true);
    metadata
}

/// A broker's authorization server for the resource server: static metadata, and the keys the
/// broker of that issuer published in this process.
fn local_auth_server(metadata: AuthorizationServerMetadata) -> AuthServer {
    let issuer = metadata.issuer.clone();
    AuthServer::new(AuthServerConfig::new(AuthServerType::OAuth, metadata))
        .with_local_keys(LocalKeySet::new(move || keys::published_jwks(&issuer)))
}

/// The authorization server of the broker of `issuer` (declared with `auth_server!`), usable
/// before the broker itself is built: its tokens verify once it is.
pub(crate) fn declared_auth_server(issuer: &str) -> AuthServer {
    let issuer = issuer.trim_end_matches('/');
    // What the resource server reads of it: the issuer, and the keys. The rest is the
    // default broker's, so the compatibility check sees what clients will see.
    let mut metadata = broker_metadata(issuer, &[], true);
    metadata.client_id_metadata_document_supported = Some(true);
    local_auth_server(metadata)
}

/// Everything the endpoints share.
pub(crate) struct BrokerState {
    pub(crate) issuer: String,
    /// The issuer's path (`""` for an origin): the endpoints live under it.
    pub(crate) path: String,
    pub(crate) resource: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) server_name: String,
    pub(crate) upstream: UpstreamClient,
    /// The fixed redirect URI registered at the provider.
    pub(crate) callback: String,
    pub(crate) store: Arc<dyn BrokerStore>,
    pub(crate) keys: BrokerKeys,
    pub(crate) sealing: SealingKey,
    pub(crate) mac: MacKey,
    /// Signs and recognises the broker's refresh tokens.
    pub(crate) refresh_token_key: MacKey,
    /// `Secure` cookies with the `__Host-` prefix (an https issuer); plain on http loopback.
    pub(crate) secure_cookies: bool,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) dynamic_registration: bool,
    pub(crate) max_registered_clients: u64,
    pub(crate) registrations: crate::rate_limit::TokenBucket,
    pub(crate) authorizations: crate::rate_limit::TokenBucket,
    pub(crate) configured_clients: HashMap<String, Arc<client::ClientRecord>>,
    /// Fetches client ID metadata documents; `None` when they are turned off.
    pub(crate) cimd: Option<cimd::CimdFetcher>,
    pub(crate) metadata: AuthorizationServerMetadata,
    /// One lock per grant whose upstream tokens are being renewed in this process.
    pub(crate) grant_locks: upstream_token::GrantLocks,
}

impl fmt::Debug for BrokerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerState")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// A configured broker: its routes ([`router`](Self::router)) and the authorization server the
/// protected resource trusts ([`auth_server`](Self::auth_server)).
#[derive(Debug, Clone)]
pub struct Broker {
    state: Arc<BrokerState>,
}

impl Broker {
    /// Starts configuring a broker whose issuer is `issuer` (usually the MCP server's origin;
    /// `https`, or `http` on loopback for development).
    pub fn builder(issuer: impl Into<String>) -> BrokerBuilder {
        BrokerBuilder {
            issuer: issuer.into(),
            resource: None,
            upstream: None,
            store: None,
            keys: None,
            lifetimes: Lifetimes {
                access_token: Duration::from_secs(600),
                refresh_token: Duration::from_secs(30 * 24 * 3600),
                code: Duration::from_secs(300),
                transaction: Duration::from_secs(900),
                registered_client: Duration::from_secs(90 * 24 * 3600),
            },
            server_name: None,
            dynamic_registration: true,
            max_registered_clients: 10_000,
            registrations_per_second: 10,
            authorizations_per_second: 100,
            clients: Vec::new(),
            cimd: Some(CimdOptions::default()),
        }
    }

    /// The issuer identifier, byte for byte as in the metadata and the tokens.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The redirect URI to register at the identity provider for the broker's client.
    pub fn callback_url(&self) -> &str {
        &self.state.callback
    }

    /// The broker's RFC 8414 metadata.
    pub fn metadata(&self) -> &AuthorizationServerMetadata {
        &self.state.metadata
    }

    /// The authorization server to name in the protected resource's configuration: the
    /// broker's metadata, and its keys handed over in process (no HTTP call to itself).
    pub fn auth_server(&self) -> AuthServer {
        local_auth_server(self.state.metadata.clone())
    }

    /// Ends every grant of a user, named as the broker's tokens name them (`sub`,
    /// `<provider id>|<provider's user id>`): their refresh tokens stop working at once, their
    /// access tokens when they expire. Returns how many grants were ended.
    pub async fn revoke_user(&self, subject: &str) -> Result<usize, StoreError> {
        self.state.revoke_all(subject, true).await
    }

    /// Ends every grant of a client (`client_id`), as [`revoke_user`](Self::revoke_user) does.
    pub async fn revoke_client(&self, client_id: &str) -> Result<usize, StoreError> {
        self.state.revoke_all(client_id, false).await
    }

    /// The broker's routes, to merge into the MCP server's router.
    pub fn router(&self) -> Router {
        let path = &self.state.path;
        Router::new()
            .route(
                &format!(
                    "{}{path}",
                    crate::discovery::well_known::OAUTH_AUTHORIZATION_SERVER
                ),
                get(responses::metadata).options(responses::preflight),
            )
            .route(
                &format!("{path}/jwks"),
                get(responses::jwks).options(responses::preflight),
            )
            .route(&format!("{path}/authorize"), get(authorize::authorize))
            .route(
                &format!("{path}/consent"),
                get(consent::show).post(consent::answer),
            )
            .route(
                &format!("{path}/callback/{{upstream}}"),
                get(callback::callback),
            )
            .route(
                &format!("{path}/token"),
                post(token::token).options(responses::preflight),
            )
            .route(
                &format!("{path}/register"),
                post(register::register).options(responses::preflight),
            )
            .route(
                &format!("{path}/revoke"),
                post(revoke::revoke).options(responses::preflight),
            )
            .layer(axum::extract::DefaultBodyLimit::max(
                register::MAX_REGISTRATION_BYTES,
            ))
            .with_state(self.state.clone())
    }
}
