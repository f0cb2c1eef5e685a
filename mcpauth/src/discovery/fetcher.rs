//! Fetching authorization-server metadata: by issuer and type, by well-known URL, or by probing.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::validation::AuthServerConfigValidation;
use super::well_known;
use crate::http_client::{self, BoundedClient, FetchError, Limits, json_kind};
use crate::metadata::{AuthServerConfig, AuthServerType, AuthorizationServerMetadata};
use mcpauth_rules::url::{self as url_rules, UrlError};

/// A function that rewrites the raw JSON of a metadata document before it is parsed and
/// validated, for providers whose documents need a fix.
pub type Transpile = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// Why an authorization server's metadata could not be had or used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The configured issuer is not a valid issuer identifier.
    #[error("invalid issuer: {0}")]
    InvalidIssuer(#[source] UrlError),
    /// The document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document was fetched but is not valid metadata (a required member is missing or has
    /// the wrong type, or the transpile function returned something other than an object).
    #[error("the metadata at {url} is invalid: {reason}")]
    InvalidMetadata {
        /// Where the document came from.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The document's `issuer` differs from the issuer it was fetched for.
    #[error(
        "the metadata at {url} names issuer `{actual}`, but `{expected}` was configured: they must be identical (RFC 8414 §3.3)"
    )]
    IssuerMismatch {
        /// Where the document came from.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The `issuer` the document names.
        actual: String,
    },
    /// A metadata URL of no well-known form was given without the issuer it belongs to, so the
    /// document's `issuer` cannot be checked.
    #[error(
        "{url} is not a well-known metadata URL, so its issuer cannot be checked: name the expected issuer"
    )]
    UnknownIssuer {
        /// The URL given.
        url: String,
    },
    /// Probing found no usable document at any of the well-known URLs.
    #[error("no usable metadata for issuer `{issuer}`: {}", list_attempts(.attempts))]
    NotFound {
        /// The issuer probed.
        issuer: String,
        /// Why each URL failed, in probing order.
        attempts: Vec<DiscoveryError>,
    },
    /// The metadata was fetched but the server cannot serve MCP clients (see
    /// [`validate_server_config`](crate::discovery::validate_server_config)).
    #[error("the authorization server `{issuer}` is not compatible with MCP: {validation}")]
    Incompatible {
        /// The server's issuer.
        issuer: String,
        /// The validation result, with every error and warning.
        validation: AuthServerConfigValidation,
    },
}

fn list_attempts(attempts: &[DiscoveryError]) -> String {
    let listed: Vec<String> = attempts
        .iter()
        .enumerate()
        .map(|(i, error)| format!("({}) {error}", i + 1))
        .collect();
    listed.join("; ")
}

/// Fetches authorization-server metadata within explicit bounds.
///
/// The defaults: 5 s to connect, 10 s for the whole request, 256 KiB of body, redirects followed
/// only within the same origin (at most 5), https required except on loopback hosts. Cloning is
/// cheap and shares the connection pool.
///
/// ```
/// use std::time::Duration;
/// use mcpauth::discovery::MetadataFetcher;
///
/// let fetcher = MetadataFetcher::builder()
///     .timeout(Duration::from_secs(3))
///     .max_response_bytes(64 * 1024)
///     .build();
/// # let _ = fetcher;
/// ```
#[derive(Clone)]
pub struct MetadataFetcher {
    client: BoundedClient,
    transpile: Option<Transpile>,
}

impl fmt::Debug for MetadataFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataFetcher")
            .field("client", &self.client)
            .field("transpile", &self.transpile.is_some())
            .finish()
    }
}

impl Default for MetadataFetcher {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Configures a [`MetadataFetcher`].
#[derive(Clone, Default)]
#[must_use]
pub struct MetadataFetcherBuilder {
    limits: Limits,
    transpile: Option<Transpile>,
}

impl fmt::Debug for MetadataFetcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataFetcherBuilder")
            .field("limits", &self.limits)
            .field("transpile", &self.transpile.is_some())
            .finish()
    }
}

impl MetadataFetcherBuilder {
    /// Time allowed for a whole request, body included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Time allowed to establish a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.connect_timeout = timeout;
        self
    }

    /// Largest body accepted, in bytes (default 256 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_response_bytes = bytes;
        self
    }

    /// Rewrites each fetched document before it is parsed and checked.
    pub fn transpile(mut self, transpile: impl Fn(Value) -> Value + Send + Sync + 'static) -> Self {
        self.transpile = Some(Arc::new(transpile));
        self
    }

    /// Builds the fetcher.
    pub fn build(self) -> MetadataFetcher {
        MetadataFetcher {
            client: BoundedClient::new(self.limits),
            transpile: self.transpile,
        }
    }
}

impl MetadataFetcher {
    /// The default time allowed to establish a connection: 5 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = http_client::DEFAULT_CONNECT_TIMEOUT;
    /// The default time allowed for a whole request, body included: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = http_client::DEFAULT_TIMEOUT;
    /// The default maximum size of a response body: 256 KiB.
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = http_client::DEFAULT_MAX_RESPONSE_BYTES;
    /// How many same-origin redirects are followed before giving up: 5.
    pub const MAX_REDIRECTS: usize = http_client::MAX_REDIRECTS;

    /// A fetcher with the default bounds and no transpile function.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts configuring a fetcher.
    pub fn builder() -> MetadataFetcherBuilder {
        MetadataFetcherBuilder::default()
    }

    /// The bounded HTTP client (also used for key sets).
    pub(crate) fn client(&self) -> &BoundedClient {
        &self.client
    }

    /// The process-wide fetcher with default settings, shared by the free functions.
    pub(crate) fn shared() -> &'static Self {
        static SHARED: OnceLock<MetadataFetcher> = OnceLock::new();
        SHARED.get_or_init(Self::new)
    }

    /// Fetches the metadata of `issuer` from the one well-known URL its type prescribes.
    pub async fn fetch(
        &self,
        issuer: &str,
        server_type: AuthServerType,
    ) -> Result<AuthServerConfig, DiscoveryError> {
        let url = well_known::server_metadata_url(issuer, server_type)
            .map_err(DiscoveryError::InvalidIssuer)?;
        self.fetch_from(&url, server_type, &[issuer]).await
    }

    /// Fetches metadata from an explicit well-known URL.
    ///
    /// The document's `issuer` must be the issuer the URL was derived from (with or without a
    /// terminating `/`); for a URL of no well-known form use
    /// [`fetch_by_well_known_url_for_issuer`](Self::fetch_by_well_known_url_for_issuer).
    pub async fn fetch_by_well_known_url(
        &self,
        url: &str,
        server_type: AuthServerType,
    ) -> Result<AuthServerConfig, DiscoveryError> {
        let parsed = url_rules::parse_secure_url(url).map_err(FetchError::from)?;
        let Some(issuers) = well_known::issuers_for_well_known_url(&parsed) else {
            return Err(DiscoveryError::UnknownIssuer {
                url: url.to_owned(),
            });
        };
        let [bare, slashed] = &issuers;
        self.fetch_from(&parsed, server_type, &[bare, slashed])
            .await
    }

    /// Fetches metadata from any URL, requiring the document's `issuer` to equal `issuer`.
    pub async fn fetch_by_well_known_url_for_issuer(
        &self,
        url: &str,
        server_type: AuthServerType,
        issuer: &str,
    ) -> Result<AuthServerConfig, DiscoveryError> {
        url_rules::parse_issuer(issuer).map_err(DiscoveryError::InvalidIssuer)?;
        let parsed = url_rules::parse_secure_url(url).map_err(FetchError::from)?;
        self.fetch_from(&parsed, server_type, &[issuer]).await
    }

    /// Discovers the metadata of `issuer` without knowing its type, trying the well-known URLs
    /// in the order the MCP specification gives clients (see
    /// [`well_known::discovery_urls`]); the first usable document wins.
    pub async fn discover(&self, issuer: &str) -> Result<AuthServerConfig, DiscoveryError> {
        let urls = well_known::discovery_urls(issuer).map_err(DiscoveryError::InvalidIssuer)?;
        let mut attempts = Vec::with_capacity(urls.len());
        for (url, server_type) in urls {
            match self.fetch_from(&url, server_type, &[issuer]).await {
                Ok(config) => return Ok(config),
                Err(error) => {
                    tracing::debug!(%url, %error, "metadata probe failed, trying the next URL");
                    attempts.push(error);
                }
            }
        }
        Err(DiscoveryError::NotFound {
            issuer: issuer.to_owned(),
            attempts,
        })
    }

    async fn fetch_from(
        &self,
        url: &Url,
        server_type: AuthServerType,
        expected_issuers: &[&str],
    ) -> Result<AuthServerConfig, DiscoveryError> {
        let fetched = self.client.get_json_object(url).await?;
        let value = match &self.transpile {
            Some(transpile) => transpile(fetched.value),
            None => fetched.value,
        };
        if !value.is_object() {
            return Err(DiscoveryError::InvalidMetadata {
                url: url.to_string(),
                reason: format!(
                    "the transpile function returned a JSON {}, not an object",
                    json_kind(&value)
                ),
            });
        }
        let metadata: AuthorizationServerMetadata =
            serde_json::from_value(value).map_err(|error| DiscoveryError::InvalidMetadata {
                url: url.to_string(),
                reason: error.to_string(),
            })?;
        if !expected_issuers.contains(&metadata.issuer.as_str()) {
            return Err(DiscoveryError::IssuerMismatch {
                url: url.to_string(),
                expected: expected_issuers
                    .first()
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                actual: metadata.issuer,
            });
        }
        Ok(AuthServerConfig::new(server_type, metadata))
    }
}

/// Fetches the metadata of `issuer` from the well-known URL its type prescribes, with the
/// default bounds: RFC 8414 inserts `/.well-known/oauth-authorization-server` before the
/// issuer's path; OpenID Connect appends `/.well-known/openid-configuration` to it.
///
/// The document's `issuer` must equal `issuer` exactly. Use a [`MetadataFetcher`] for other
/// bounds or a transpile function.
pub async fn fetch_server_config(
    issuer: &str,
    server_type: AuthServerType,
) -> Result<AuthServerConfig, DiscoveryError> {
    MetadataFetcher::shared().fetch(issuer, server_type).await
}

/// Fetches metadata from an explicit well-known URL with the default bounds; see
/// [`MetadataFetcher::fetch_by_well_known_url`].
pub async fn fetch_server_config_by_well_known_url(
    url: &str,
    server_type: AuthServerType,
) -> Result<AuthServerConfig, DiscoveryError> {
    MetadataFetcher::shared()
        .fetch_by_well_known_url(url, server_type)
        .await
}

/// Discovers the metadata of `issuer` by probing the well-known URLs in the MCP order, with the
/// default bounds; see [`MetadataFetcher::discover`].
pub async fn discover_server_config(issuer: &str) -> Result<AuthServerConfig, DiscoveryError> {
    MetadataFetcher::shared().discover(issuer).await
}
