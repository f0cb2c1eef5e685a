//! [`McpAuth`]: the checked configuration of an MCP server's protected resources.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::auth_server::{AuthServer, AuthServerHandle, check_compatibility};
use crate::discovery::{AuthServerConfigValidation, DiscoveryError, well_known};
use crate::jwks::KeyCacheOptions;
use crate::metadata::ProtectedResourceMetadata;
use crate::resource::ProtectedResource;
use crate::token_cache::{TokenCache, TokenCacheOptions, TokenCacheStats};
use mcpauth_rules::hierarchy::{HierarchyError, ScopeHierarchy};
use mcpauth_rules::scope::scope_token_problem;
use mcpauth_rules::url::{self as url_rules, UrlError};

/// The default `Cache-Control: max-age` of served metadata.
pub(crate) const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// A configuration mistake found when building a [`McpAuth`], or an operation used in the wrong
/// mode.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Resource-server mode with no resource.
    #[error("no protected resource is configured: add at least one")]
    NoResources,
    /// A resource identifier breaks the URL rules.
    #[error("invalid resource identifier: {0}")]
    InvalidResource(#[source] UrlError),
    /// Two resources share an identifier.
    #[error("the resource `{resource}` is configured twice")]
    DuplicateResource {
        /// The repeated identifier.
        resource: String,
    },
    /// A resource trusts no authorization server.
    #[error(
        "the resource `{resource}` has no authorization server: MCP requires at least one in its metadata"
    )]
    NoAuthorizationServers {
        /// The resource.
        resource: String,
    },
    /// A resource lists the same issuer twice.
    #[error(
        "the authorization server `{issuer}` is configured twice for the resource `{resource}`"
    )]
    DuplicateAuthorizationServer {
        /// The resource.
        resource: String,
        /// The repeated issuer.
        issuer: String,
    },
    /// An issuer identifier breaks the URL rules.
    #[error("invalid issuer: {0}")]
    InvalidIssuer(#[source] UrlError),
    /// A scope is not a valid RFC 6749 scope token, or is listed twice.
    #[error("invalid scope {scope:?} for the resource `{resource}`: {reason}")]
    InvalidScope {
        /// The resource.
        resource: String,
        /// The offending scope.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `bearer_methods_supported` names a method other than `header`.
    #[error(
        "the resource `{resource}` advertises the bearer method {method:?}: MCP clients send tokens only in the Authorization header, so only \"header\" is supported"
    )]
    UnsupportedBearerMethod {
        /// The resource.
        resource: String,
        /// The offending method.
        method: String,
    },
    /// A statically configured authorization server fails the MCP compatibility check.
    #[error(
        "the authorization server `{issuer}` is not compatible with MCP: {validation} (call `skip_compatibility_check()` on it to accept it anyway)"
    )]
    IncompatibleAuthServer {
        /// The server's issuer.
        issuer: String,
        /// Every error and warning.
        validation: AuthServerConfigValidation,
    },
    /// A scope hierarchy goes round in a circle.
    #[error("the scope hierarchy of the resource `{resource}` has a cycle: {}", cycle.join(" implies "))]
    ScopeHierarchyCycle {
        /// The resource.
        resource: String,
        /// The scopes on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// Serving metadata at the root well-known path needs exactly one resource.
    #[error(
        "metadata at the root well-known path can only be served for a single resource, but {count} are configured"
    )]
    RootMetadataNeedsOneResource {
        /// How many resources are configured.
        count: usize,
    },
    /// A bearer layer was asked for a resource that is not configured.
    #[error(
        "the resource `{resource}` is not configured: use one of the identifiers given to McpAuth"
    )]
    UnknownResource {
        /// The identifier asked for.
        resource: String,
    },
    /// A route requires a scope the resource does not declare in `scopes_supported`.
    #[error(
        "the scope {scope:?} is not among the scopes_supported of the resource `{resource}`: declare it or fix the spelling"
    )]
    UndeclaredScope {
        /// The resource.
        resource: String,
        /// The undeclared scope.
        scope: String,
    },
    /// A setting given as `env("NAME")` in a macro is not set.
    #[error("the environment variable {name} is not set (or empty): set it before starting")]
    MissingSetting {
        /// The variable.
        name: &'static str,
    },
    /// A setting given as `env("NAME")` in a macro has a value that cannot be used.
    #[error("the environment variable {name} is invalid: {reason}")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A URL given at start-up breaks the URL rules.
    #[error("invalid URL: {0}")]
    InvalidUrl(#[source] UrlError),
    /// Static metadata from `auth_server!` does not parse (cannot happen with the macro's own
    /// output).
    #[error("invalid static authorization server metadata: {reason}")]
    InvalidStaticMetadata {
        /// The parser's complaint.
        reason: String,
    },
}

/// One checked protected resource, with everything the metadata route and the verifier need
/// computed once.
#[derive(Debug)]
pub(crate) struct ResourceState {
    pub(crate) identifier: String,
    pub(crate) url: Url,
    pub(crate) metadata_path: String,
    pub(crate) metadata_url: Url,
    pub(crate) metadata: ProtectedResourceMetadata,
    pub(crate) metadata_body: Bytes,
    pub(crate) scope_hierarchy: ScopeHierarchy,
    pub(crate) auth_servers: Vec<Arc<AuthServerHandle>>,
    /// Tokens verified for this resource (`None` when the cache is off).
    pub(crate) token_cache: Option<Arc<TokenCache>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) resources: Vec<ResourceState>,
    pub(crate) key_cache_options: KeyCacheOptions,
    pub(crate) metadata_at_root: bool,
    pub(crate) metadata_max_age: Duration,
}

/// The authorization configuration of an MCP server.
///
/// In resource-server mode (the MCP model since 2025-06-18) it holds one or more protected
/// resources, each with its metadata and the authorization servers whose tokens it accepts, and
/// serves their RFC 9728 metadata (see
/// [`resource_metadata_router`](Self::resource_metadata_router)). Building it checks the whole
/// configuration; cloning is cheap.
///
/// ```
/// use mcpauth::{
///     AuthServer, AuthServerConfig, AuthServerType, AuthorizationServerMetadata, McpAuth,
///     ProtectedResource,
/// };
///
/// let mut metadata = AuthorizationServerMetadata::new(
///     "https://auth.example.com",
///     "https://auth.example.com/authorize",
///     "https://auth.example.com/token",
///     ["code"],
/// );
/// metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
///
/// let auth = McpAuth::resource_server([ProtectedResource::new("https://api.example.com/notes")
///     .authorization_server(AuthServerConfig::new(AuthServerType::OAuth, metadata))
///     .scopes(["read:notes", "write:notes"])])
/// .unwrap();
/// let router: axum::Router = auth.resource_metadata_router();
/// # let _ = router;
/// ```
#[derive(Clone)]
pub struct McpAuth {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for McpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// Configures a resource-server [`McpAuth`].
#[derive(Debug, Clone)]
#[must_use]
pub struct McpAuthBuilder {
    resources: Vec<ProtectedResource>,
    key_cache_options: KeyCacheOptions,
    token_cache_options: TokenCacheOptions,
    metadata_at_root: bool,
    metadata_max_age: Duration,
}

impl Default for McpAuthBuilder {
    fn default() -> Self {
        Self {
            resources: Vec::new(),
            key_cache_options: KeyCacheOptions::default(),
            token_cache_options: TokenCacheOptions::default(),
            metadata_at_root: false,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
        }
    }
}

impl McpAuthBuilder {
    /// Adds a protected resource.
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.resources.push(resource);
        self
    }

    /// Adds protected resources.
    pub fn protected_resources(
        mut self,
        resources: impl IntoIterator<Item = ProtectedResource>,
    ) -> Self {
        self.resources.extend(resources);
        self
    }

    /// Also serves the (single) resource's metadata at the root well-known path
    /// `/.well-known/oauth-protected-resource`, for clients that probe the root. Off by default:
    /// RFC 9728 clients derive the path from the resource identifier.
    pub fn metadata_at_root(mut self, enabled: bool) -> Self {
        self.metadata_at_root = enabled;
        self
    }

    /// How long clients may cache served metadata (`Cache-Control: public, max-age=…`; default
    /// one hour).
    pub fn metadata_max_age(mut self, max_age: Duration) -> Self {
        self.metadata_max_age = max_age;
        self
    }

    /// How the authorization servers' key sets are cached and refreshed.
    pub fn key_cache(mut self, options: KeyCacheOptions) -> Self {
        self.key_cache_options = options;
        self
    }

    /// Bounds the verified-token cache of each resource, or turns it off with
    /// [`TokenCacheOptions::disabled`] (on by default: 10,000 tokens, about 4 MiB).
    ///
    /// A JWT whose signature and claims verified is remembered until its `exp` (never longer),
    /// and only while the key that verified it is still published, so a repeated token skips
    /// the signature check. Every use checks the route's rules again (issuer, `typ`, `nbf`,
    /// audience, scopes). The trade-off: a token stays usable until its expiry even if the
    /// authorization server revokes it (as with any local JWT verification — the signature
    /// says nothing about revocation either), and the memory is spent on recent tokens.
    ///
    /// ```
    /// use mcpauth::{McpAuth, TokenCacheOptions};
    ///
    /// let builder = McpAuth::builder().token_cache(TokenCacheOptions::default().max_entries(1000));
    /// let no_cache = McpAuth::builder().token_cache(TokenCacheOptions::disabled());
    /// # let _ = (builder, no_cache);
    /// ```
    pub fn token_cache(mut self, options: TokenCacheOptions) -> Self {
        self.token_cache_options = options;
        self
    }

    /// Checks the configuration and builds the [`McpAuth`].
    ///
    /// Refused: no resource; a resource identifier that is not an absolute https URL (http only
    /// on loopback) or has a query, fragment or credentials; the same resource twice; a resource
    /// without authorization servers or with the same issuer twice; an invalid issuer; an
    /// invalid or repeated scope; a bearer method other than `header`; a static authorization
    /// server incompatible with MCP (unless its check is skipped); metadata at the root with
    /// several resources.
    pub fn build(self) -> Result<McpAuth, ConfigError> {
        if self.resources.is_empty() {
            return Err(ConfigError::NoResources);
        }
        if self.metadata_at_root && self.resources.len() != 1 {
            return Err(ConfigError::RootMetadataNeedsOneResource {
                count: self.resources.len(),
            });
        }
        let mut seen = HashSet::new();
        let mut states = Vec::with_capacity(self.resources.len());
        for resource in self.resources {
            if !seen.insert(resource.metadata.resource.clone()) {
                return Err(ConfigError::DuplicateResource {
                    resource: resource.metadata.resource,
                });
            }
            states.push(check_resource(
                resource,
                self.key_cache_options,
                self.token_cache_options,
            )?);
        }
        Ok(McpAuth {
            inner: Arc::new(Inner {
                resources: states,
                key_cache_options: self.key_cache_options,
                metadata_at_root: self.metadata_at_root,
                metadata_max_age: self.metadata_max_age,
            }),
        })
    }
}

fn check_resource(
    resource: ProtectedResource,
    key_cache_options: KeyCacheOptions,
    token_cache_options: TokenCacheOptions,
) -> Result<ResourceState, ConfigError> {
    let ProtectedResource {
        mut metadata,
        auth_servers,
        hierarchy,
    } = resource;
    let identifier = metadata.resource.clone();
    let url =
        url_rules::parse_resource_identifier(&identifier).map_err(ConfigError::InvalidResource)?;

    if auth_servers.is_empty() {
        return Err(ConfigError::NoAuthorizationServers {
            resource: identifier,
        });
    }
    let mut issuers = Vec::with_capacity(auth_servers.len());
    let mut handles = Vec::with_capacity(auth_servers.len());
    for server in auth_servers {
        let issuer = server.issuer().to_owned();
        if issuers.contains(&issuer) {
            return Err(ConfigError::DuplicateAuthorizationServer {
                resource: identifier,
                issuer,
            });
        }
        handles.push(check_auth_server(server, key_cache_options)?);
        issuers.push(issuer);
    }

    let scopes = metadata.scopes_supported.take().unwrap_or_default();
    let mut seen_scopes = HashSet::new();
    for scope in &scopes {
        let problem = scope_token_problem(scope)
            .or_else(|| (!seen_scopes.insert(scope.as_str())).then_some("it is listed twice"));
        if let Some(reason) = problem {
            return Err(ConfigError::InvalidScope {
                resource: identifier,
                scope: scope.clone(),
                reason,
            });
        }
    }
    if scopes.iter().any(|s| s == "offline_access") {
        tracing::warn!(
            resource = %identifier,
            "`offline_access` is advertised in scopes_supported; MCP 2026-07-28 says protected resources SHOULD NOT"
        );
    }
    let scope_hierarchy =
        ScopeHierarchy::build(&scopes, &hierarchy).map_err(|problem| match problem {
            HierarchyError::Undeclared(scope) => ConfigError::UndeclaredScope {
                resource: identifier.clone(),
                scope,
            },
            HierarchyError::Cycle(cycle) => ConfigError::ScopeHierarchyCycle {
                resource: identifier.clone(),
                cycle,
            },
        })?;
    metadata.scopes_supported = (!scopes.is_empty()).then_some(scopes);

    let methods = metadata
        .bearer_methods_supported
        .get_or_insert_with(|| vec!["header".to_owned()]);
    if let Some(method) = methods.iter().find(|m| *m != "header") {
        return Err(ConfigError::UnsupportedBearerMethod {
            resource: identifier,
            method: method.clone(),
        });
    }
    metadata.authorization_servers = Some(issuers);

    let metadata_path = well_known::protected_resource_metadata_path(&url);
    let mut metadata_url = url.clone();
    metadata_url.set_path(&metadata_path);
    // Serialising plain data (strings, lists, JSON values) cannot fail.
    let metadata_body = Bytes::from(serde_json::to_vec(&metadata).unwrap_or_default());

    let token_cache = TokenCache::new(token_cache_options, &identifier);
    Ok(ResourceState {
        identifier,
        url,
        metadata_path,
        metadata_url,
        metadata,
        metadata_body,
        scope_hierarchy,
        auth_servers: handles,
        token_cache,
    })
}

pub(crate) fn check_auth_server(
    server: AuthServer,
    key_cache_options: KeyCacheOptions,
) -> Result<Arc<AuthServerHandle>, ConfigError> {
    url_rules::parse_issuer(server.issuer()).map_err(ConfigError::InvalidIssuer)?;
    if let Some(config) = server.config() {
        check_compatibility(
            config,
            server.checks_compatibility(),
            server.reports_compatibility(),
        )
        .map_err(|validation| ConfigError::IncompatibleAuthServer {
            issuer: server.issuer().to_owned(),
            validation,
        })?;
    }
    Ok(AuthServerHandle::new(server, key_cache_options))
}

impl McpAuth {
    /// The default `max-age` of the served metadata documents: one hour.
    pub const DEFAULT_METADATA_MAX_AGE: Duration = DEFAULT_METADATA_MAX_AGE;

    /// Starts configuring a resource-server `McpAuth`.
    pub fn builder() -> McpAuthBuilder {
        McpAuthBuilder::default()
    }

    /// A resource-server `McpAuth` for these resources, with default options.
    pub fn resource_server(
        resources: impl IntoIterator<Item = ProtectedResource>,
    ) -> Result<Self, ConfigError> {
        Self::builder().protected_resources(resources).build()
    }

    /// The identifiers of the protected resources, in configuration order.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.resource_states().iter().map(|r| r.identifier.as_str())
    }

    /// What the verified-token cache of `resource` holds (`None` when the resource is not
    /// configured or the cache is off; see [`McpAuthBuilder::token_cache`]).
    pub fn token_cache_stats(&self, resource: &str) -> Option<TokenCacheStats> {
        self.resource_state(resource)?
            .token_cache
            .as_ref()
            .map(|cache| cache.stats())
    }

    /// The metadata served for `resource`, if it is configured.
    pub fn resource_metadata(&self, resource: &str) -> Option<&ProtectedResourceMetadata> {
        self.resource_state(resource).map(|r| &r.metadata)
    }

    /// The URL of `resource`'s metadata (the `resource_metadata` of its challenges), if it is
    /// configured.
    pub fn resource_metadata_url(&self, resource: &str) -> Option<&Url> {
        self.resource_state(resource).map(|r| &r.metadata_url)
    }

    /// Fetches the metadata of every lazily configured authorization server now, instead of on
    /// first use, so a server can refuse to start when one is unreachable or incompatible.
    pub async fn discover_all(&self) -> Result<(), DiscoveryError> {
        for handle in self.inner.resources.iter().flat_map(|r| &r.auth_servers) {
            handle.config().await?;
        }
        Ok(())
    }

    pub(crate) fn resource_states(&self) -> &[ResourceState] {
        &self.inner.resources
    }

    pub(crate) fn resource_state(&self, resource: &str) -> Option<&ResourceState> {
        self.resource_states()
            .iter()
            .find(|r| r.identifier == resource)
    }
}
