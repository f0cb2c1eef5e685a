//! An authorization server a resource trusts, given either with its metadata or by issuer and
//! fetched on first use.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::auth_error::{AuthError, AuthErrorReason};
use crate::claims::DEFAULT_SCOPE_CLAIMS;
use crate::jwks::{KeyCache, KeyCacheOptions, LocalKeySet};
use mcpauth_rules::url as url_rules;

use crate::discovery::{
    AuthServerConfigValidation, DiscoveryError, MetadataFetcher, validate_server_config,
    validate_server_config_verbose,
};
use crate::metadata::{AuthServerConfig, AuthServerType};
use crate::single_flight::SingleFlight;

/// How a lazily configured authorization server's metadata is found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryMethod {
    /// The one well-known URL the type prescribes (RFC 8414 insertion or OIDC appending).
    Type(AuthServerType),
    /// Probe the well-known URLs in the MCP order; the first usable document wins.
    Probe,
    /// An explicit metadata URL.
    WellKnownUrl {
        /// The URL of the metadata document.
        url: String,
        /// The type of document expected there.
        server_type: AuthServerType,
    },
}

#[derive(Debug, Clone)]
enum Source {
    Static(Arc<AuthServerConfig>),
    Lazy(DiscoveryMethod),
}

/// An authorization server whose tokens a protected resource accepts.
///
/// Either static (its metadata is given) or lazy (only its issuer is given, and its metadata is
/// fetched on first use — once, even when many requests need it at the same moment; a failed
/// fetch is not remembered, so the next use tries again).
///
/// Its compatibility with MCP clients (see [`validate_server_config`]) is checked when a
/// [`McpAuth`](crate::McpAuth) is built (static) or when the metadata arrives (lazy); an
/// incompatible server is refused unless [`skip_compatibility_check`](Self::skip_compatibility_check)
/// says otherwise.
///
/// ```
/// use mcpauth::discovery::MetadataFetcher;
/// use mcpauth::{AuthServer, AuthServerType};
///
/// let logto = AuthServer::discover("https://tenant.logto.app/oidc", AuthServerType::Oidc);
/// let unknown_type = AuthServer::probe("https://auth.example.com/tenant1");
/// let quirky = AuthServer::discover("https://quirky.example.com", AuthServerType::OAuth)
///     .fetcher(MetadataFetcher::builder().transpile(|json| json).build());
/// assert_eq!(logto.issuer(), "https://tenant.logto.app/oidc");
/// # let _ = (unknown_type, quirky);
/// ```
#[derive(Debug, Clone)]
pub struct AuthServer {
    issuer: String,
    source: Source,
    fetcher: MetadataFetcher,
    check_compatibility: bool,
    /// Whether the outcome of the compatibility check is logged.
    report_compatibility: bool,
    scope_claims: Vec<String>,
    /// Keys held by this process (the broker's): read in-process instead of from `jwks_uri`.
    local_keys: Option<LocalKeySet>,
}

impl AuthServer {
    /// A server described by metadata you already have (fetched earlier, or written by hand).
    pub fn new(config: AuthServerConfig) -> Self {
        Self {
            issuer: config.metadata.issuer.clone(),
            source: Source::Static(Arc::new(config)),
            fetcher: MetadataFetcher::shared().clone(),
            check_compatibility: true,
            report_compatibility: true,
            scope_claims: DEFAULT_SCOPE_CLAIMS.map(str::to_owned).to_vec(),
            local_keys: None,
        }
    }

    /// A server known by issuer and type, whose metadata is fetched on first use.
    pub fn discover(issuer: impl Into<String>, server_type: AuthServerType) -> Self {
        Self::lazy(issuer.into(), DiscoveryMethod::Type(server_type))
    }

    /// A server known by issuer only, whose metadata is found by probing on first use.
    pub fn probe(issuer: impl Into<String>) -> Self {
        Self::lazy(issuer.into(), DiscoveryMethod::Probe)
    }

    /// A server whose metadata is at an explicit URL, fetched on first use; the document's
    /// `issuer` must equal `issuer`.
    pub fn well_known_url(
        issuer: impl Into<String>,
        url: impl Into<String>,
        server_type: AuthServerType,
    ) -> Self {
        let method = DiscoveryMethod::WellKnownUrl {
            url: url.into(),
            server_type,
        };
        Self::lazy(issuer.into(), method)
    }

    fn lazy(issuer: String, method: DiscoveryMethod) -> Self {
        Self {
            issuer,
            source: Source::Lazy(method),
            fetcher: MetadataFetcher::shared().clone(),
            check_compatibility: true,
            report_compatibility: true,
            scope_claims: DEFAULT_SCOPE_CLAIMS.map(str::to_owned).to_vec(),
            local_keys: None,
        }
    }

    /// Verifies with keys held by this process instead of fetching `jwks_uri` (the broker's
    /// own keys: no HTTP call to itself).
    #[cfg_attr(not(feature = "broker"), allow(dead_code))]
    pub(crate) fn with_local_keys(mut self, keys: LocalKeySet) -> Self {
        self.local_keys = Some(keys);
        self
    }

    /// Fetches with `fetcher` instead of the default one: its bounds apply to the metadata (for
    /// a lazy server) and to the key set; its transpile function to the metadata.
    #[must_use]
    pub fn fetcher(mut self, fetcher: MetadataFetcher) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Accepts this server even if it fails the MCP compatibility check (for example no PKCE
    /// `S256`). MCP clients will likely fail to log in against it; the failures are still
    /// logged as warnings.
    #[must_use]
    pub fn skip_compatibility_check(mut self) -> Self {
        self.check_compatibility = false;
        self
    }

    /// Neither checks nor reports MCP compatibility: for a server MCP clients never talk to (the
    /// broker's identity provider, which lacks registration and metadata documents by design —
    /// the broker stands in for them).
    #[cfg_attr(not(feature = "broker"), allow(dead_code))]
    pub(crate) fn ignore_compatibility(mut self) -> Self {
        self.check_compatibility = false;
        self.report_compatibility = false;
        self
    }

    /// Whether the outcome of the compatibility check is logged.
    pub(crate) fn reports_compatibility(&self) -> bool {
        self.report_compatibility
    }

    /// Reads the scopes its tokens grant from these claims, in order, instead of `scope` then
    /// `scp` (each claim a space-delimited string or an array of strings). Name a non-standard
    /// claim only for a server that puts scopes there (`scopes`, or Auth0's `permissions`): a
    /// claim read as scopes grants whatever it holds.
    ///
    /// ```
    /// use mcpauth::{AuthServer, AuthServerType};
    ///
    /// let auth0 = AuthServer::discover("https://tenant.auth0.com/", AuthServerType::Oidc)
    ///     .scope_claims(["scope", "permissions"]);
    /// # let _ = auth0;
    /// ```
    #[must_use]
    pub fn scope_claims<I>(mut self, claims: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scope_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the MCP compatibility check is enforced for this server.
    pub fn checks_compatibility(&self) -> bool {
        self.check_compatibility
    }

    /// The issuer identifier: tokens from this server carry it as `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The metadata, if it was given (static servers).
    pub fn config(&self) -> Option<&AuthServerConfig> {
        match &self.source {
            Source::Static(config) => Some(config),
            Source::Lazy(_) => None,
        }
    }

    /// How the metadata is found, for lazy servers.
    pub fn discovery_method(&self) -> Option<&DiscoveryMethod> {
        match &self.source {
            Source::Static(_) => None,
            Source::Lazy(method) => Some(method),
        }
    }
}

impl From<AuthServerConfig> for AuthServer {
    fn from(config: AuthServerConfig) -> Self {
        Self::new(config)
    }
}

/// Checks `config` for MCP compatibility. A refused server's warnings travel in the returned
/// validation (the caller's error shows them); an accepted server's warnings, and the errors of
/// a server whose check is skipped, are logged when `report` says so.
pub(crate) fn check_compatibility(
    config: &AuthServerConfig,
    enforce: bool,
    report: bool,
) -> Result<(), AuthServerConfigValidation> {
    let validation = validate_server_config(config);
    if enforce && !validation.is_valid() {
        return Err(validation);
    }
    if !report {
        return Ok(());
    }
    let issuer = config.issuer();
    for warning in &validation.warnings {
        tracing::warn!(issuer, code = warning.as_str(), "{}", warning.description());
    }
    for error in &validation.errors {
        tracing::warn!(
            issuer,
            code = error.as_str(),
            "{} (accepted: the compatibility check is skipped for this server)",
            error.description()
        );
    }
    Ok(())
}

/// The runtime side of an [`AuthServer`]: its metadata once known, and its key cache.
pub(crate) struct AuthServerHandle {
    server: AuthServer,
    key_options: KeyCacheOptions,
    resolved: OnceLock<Arc<AuthServerConfig>>,
    flight: SingleFlight<Result<Arc<AuthServerConfig>, DiscoveryError>>,
    /// The last failed fetch, answered again until the retry interval has passed, so an
    /// unreachable server is not asked once per request.
    last_failure: Mutex<Option<(Instant, DiscoveryError)>>,
    keys: OnceLock<Result<Arc<KeyCache>, AuthError>>,
}

impl fmt::Debug for AuthServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServerHandle")
            .field("issuer", &self.server.issuer)
            .field("resolved", &self.resolved.get().is_some())
            .finish_non_exhaustive()
    }
}

impl AuthServerHandle {
    pub(crate) fn new(server: AuthServer, key_options: KeyCacheOptions) -> Arc<Self> {
        let resolved = OnceLock::new();
        if let Source::Static(config) = &server.source {
            let _ = resolved.set(config.clone());
        }
        Arc::new(Self {
            server,
            key_options,
            resolved,
            flight: SingleFlight::default(),
            last_failure: Mutex::new(None),
            keys: OnceLock::new(),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.server.issuer
    }

    /// The claims its tokens' scopes are read from.
    pub(crate) fn scope_claims(&self) -> &[String] {
        &self.server.scope_claims
    }

    /// The metadata for a request: after a failed fetch, requests within the retry interval (the
    /// key cache's minimum refresh interval) get that failure without a new fetch, so a flood of
    /// requests cannot hammer a failing server; the first one after it fetches again.
    pub(crate) async fn config_for_request(
        self: &Arc<Self>,
    ) -> Result<Arc<AuthServerConfig>, DiscoveryError> {
        if let Some(config) = self.resolved.get() {
            return Ok(config.clone());
        }
        if let Some((_, error)) = self.recent_failure() {
            return Err(error);
        }
        self.config().await
    }

    /// The metadata, fetching it if needed (once, shared by concurrent callers). A failure is
    /// not kept: the next call fetches again (start-up code retries with it).
    pub(crate) async fn config(self: &Arc<Self>) -> Result<Arc<AuthServerConfig>, DiscoveryError> {
        if let Some(config) = self.resolved.get() {
            return Ok(config.clone());
        }
        let this = self.clone();
        self.flight
            .run(move || async move {
                if let Some(config) = this.resolved.get() {
                    return Ok(config.clone());
                }
                match this.fetch().await {
                    Ok(config) => Ok(this.resolved.get_or_init(|| Arc::new(config)).clone()),
                    Err(error) => {
                        *this
                            .last_failure
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) =
                            Some((Instant::now(), error.clone()));
                        Err(error)
                    }
                }
            })
            .await
    }

    /// The last failure and how long until the next try, while the retry interval runs.
    fn recent_failure(&self) -> Option<(Duration, DiscoveryError)> {
        let interval = self.key_options.min_refresh_interval;
        let guard = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (at, error) = guard.as_ref()?;
        let since = at.elapsed();
        (since < interval).then(|| (interval - since, error.clone()))
    }

    /// The key cache, once the metadata (and its `jwks_uri`) is known. Requests arriving within
    /// the retry interval after a failed metadata fetch get the failure without a new fetch, so
    /// a flood of requests cannot hammer an unreachable server.
    pub(crate) async fn key_cache(self: &Arc<Self>) -> Result<Arc<KeyCache>, AuthError> {
        if let Some(keys) = self.keys.get() {
            return keys.clone();
        }
        if let Some((_, error)) = self.recent_failure() {
            // Answered from the last failure, without logging it again.
            return Err(self.metadata_error(error));
        }
        let config = self.config().await.map_err(|error| {
            // Logged once per failed fetch; requests in the retry interval only get the answer.
            tracing::warn!(issuer = self.issuer(), %error, "authorization server metadata unavailable");
            self.metadata_error(error)
        })?;
        self.keys
            .get_or_init(|| {
                let issuer = self.issuer();
                let Some(jwks_uri) = config.metadata.jwks_uri.as_deref() else {
                    return Err(AuthError::ServerError {
                        reason: AuthErrorReason::MissingJwksUri,
                        detail: format!(
                            "The authorization server `{issuer}` publishes no jwks_uri."
                        ),
                    });
                };
                let url = url_rules::parse_secure_url(jwks_uri).map_err(|error| {
                    AuthError::ServerError {
                        reason: AuthErrorReason::InvalidJwksUri,
                        detail: format!("The jwks_uri of `{issuer}` is refused: {error}."),
                    }
                })?;
                Ok(KeyCache::new(
                    url,
                    self.server.fetcher.client().clone(),
                    self.server.local_keys.clone(),
                    self.key_options,
                ))
            })
            .clone()
    }

    /// How long until the metadata is fetched again after a failure (the retry interval when
    /// no failure is recent).
    pub(crate) fn retry_after(&self) -> Duration {
        self.recent_failure()
            .map_or(self.key_options.min_refresh_interval, |(wait, _)| wait)
    }

    fn metadata_error(&self, error: DiscoveryError) -> AuthError {
        let detail = format!("The authorization server metadata is unavailable: {error}");
        if matches!(error, DiscoveryError::Incompatible { .. }) {
            return AuthError::ServerError {
                reason: AuthErrorReason::MetadataUnavailable,
                detail,
            };
        }
        AuthError::Unavailable {
            reason: AuthErrorReason::MetadataUnavailable,
            detail,
            retry_after: self.retry_after(),
        }
    }

    async fn fetch(&self) -> Result<AuthServerConfig, DiscoveryError> {
        let Source::Lazy(method) = &self.server.source else {
            // Static handles are resolved at construction; reaching here is impossible, but a
            // fetch error is a safer answer than a panic.
            return Err(DiscoveryError::UnknownIssuer {
                url: self.server.issuer.clone(),
            });
        };
        let fetcher = &self.server.fetcher;
        let issuer = self.server.issuer.as_str();
        let config = match method {
            DiscoveryMethod::Type(server_type) => fetcher.fetch(issuer, *server_type).await,
            DiscoveryMethod::Probe => fetcher.discover(issuer).await,
            DiscoveryMethod::WellKnownUrl { url, server_type } => {
                fetcher
                    .fetch_by_well_known_url_for_issuer(url, *server_type, issuer)
                    .await
            }
        };
        // The caller reports the error (a request logs it; start-up code shows it).
        let config = config.inspect_err(|error| {
            tracing::debug!(issuer, %error, "authorization server metadata unavailable");
        })?;
        check_compatibility(
            &config,
            self.server.check_compatibility,
            self.server.report_compatibility,
        )
        .map_err(|validation| DiscoveryError::Incompatible {
            issuer: issuer.to_owned(),
            validation,
        })?;
        let passed = validate_server_config_verbose(&config).successes;
        tracing::debug!(issuer, ?passed, "authorization server metadata fetched");
        Ok(config)
    }
}
