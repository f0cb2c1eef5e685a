//! Support for the code the macros generate. Not public API: names here may change in any
//! release (the macro crate is pinned to this crate's exact version).

use std::fmt;

pub use ::axum::Router;
pub use ::serde;
pub use ::serde_json;

pub use crate::discovery::MetadataFetcher;
pub use crate::{
    AuthServer, AuthServerConfig, AuthServerType, AuthorizationServerMetadata, BearerAuthLayer,
    ConfigError, McpAuth, ProtectedResource, ProtectedResourceMetadata,
};
use mcpauth_rules::url as url_rules;

/// An authorization server declared with `auth_server!` (users call the generated
/// `NAME.auth_server()`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an authorization server declared with `auth_server!`",
    label = "not declared with `auth_server!`",
    note = "declare it with `mcpauth::auth_server! {{ pub NAME = oidc(\"https://issuer\"); }}` and name it in `authorization_servers = [NAME]`"
)]
pub trait AuthServerDeclaration {
    /// The declaration, as a constant `#[protected_resource]` can check at compile time.
    const SERVER: DeclaredServer;
}

/// What `#[protected_resource]` needs of a declared authorization server.
#[derive(Debug, Clone, Copy)]
pub struct DeclaredServer {
    /// The issuer, when the declaration writes it as a literal.
    pub issuer: Option<&'static str>,
    /// The server's configuration; start-up values are read and checked here.
    pub build: fn() -> Result<AuthServer, ConfigError>,
}

/// Whether two declared issuers are the same literal (the runtime refuses such a pair for one
/// resource when `McpAuth` is built; `#[protected_resource]` refuses it at compile time).
pub const fn same_issuer(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A setting given as `env("NAME")`, read at start-up.
pub fn env_setting(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::MissingSetting { name }),
    }
}

/// A discovery type given as `env("NAME")`: `oauth` or `oidc`.
pub fn server_type_setting(
    name: &'static str,
    value: String,
) -> Result<AuthServerType, ConfigError> {
    value.parse().map_err(
        |error: crate::UnknownAuthServerType| ConfigError::InvalidSetting {
            name,
            reason: error.to_string(),
        },
    )
}

/// Checks a start-up issuer by the rules the macros apply to literals.
pub fn check_issuer(issuer: String) -> Result<String, ConfigError> {
    url_rules::parse_issuer(&issuer).map_err(ConfigError::InvalidIssuer)?;
    Ok(issuer)
}

/// Checks a start-up resource identifier by the rules the macros apply to literals.
pub fn check_resource(resource: String) -> Result<String, ConfigError> {
    url_rules::parse_resource_identifier(&resource).map_err(ConfigError::InvalidResource)?;
    Ok(resource)
}

/// Checks a broker's start-up client id or secret: not blank.
pub fn check_text(value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::InvalidSetting {
            name: "the broker's upstream client_id or client_secret",
            reason: "it is empty".into(),
        });
    }
    Ok(value)
}

/// Checks a start-up Entra ID tenant by the rules the macros apply to literals.
pub fn check_entra_tenant(tenant: String) -> Result<String, ConfigError> {
    mcpauth_rules::provider::entra_tenant(&tenant).map_err(|error| {
        ConfigError::InvalidSetting {
            name: "the broker's Entra ID tenant",
            reason: error.to_string(),
        }
    })?;
    Ok(tenant)
}

/// Checks a start-up metadata URL by the rules the macros apply to literals.
pub fn check_url(url: String) -> Result<String, ConfigError> {
    url_rules::parse_secure_url(&url).map_err(ConfigError::InvalidUrl)?;
    Ok(url)
}

/// Static metadata written in `auth_server!`, serialised by the macro (so it parses).
pub fn static_server(
    server_type: AuthServerType,
    json: &'static str,
) -> Result<AuthServer, ConfigError> {
    let metadata: AuthorizationServerMetadata =
        serde_json::from_str(json).map_err(|error| ConfigError::InvalidStaticMetadata {
            reason: error.to_string(),
        })?;
    Ok(AuthServer::new(AuthServerConfig::new(
        server_type,
        metadata,
    )))
}

/// A lazily discovered server with a transpile function.
pub fn with_transpile(
    server: AuthServer,
    transpile: fn(serde_json::Value) -> serde_json::Value,
) -> AuthServer {
    server.fetcher(MetadataFetcher::builder().transpile(transpile).build())
}

/// The error of parsing a scope that a resource does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope {
    scope: String,
    expected: &'static [&'static str],
}

impl UnknownScope {
    /// An unknown `scope`, with the scopes that exist.
    pub fn new(scope: &str, expected: &'static [&'static str]) -> Self {
        Self {
            scope: scope.to_owned(),
            expected,
        }
    }
}

impl fmt::Display for UnknownScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown scope {:?}: expected one of {}",
            self.scope,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownScope {}

/// Holds only when mcpauth's `broker` feature is on: the `broker(…)` kind of `auth_server!`
/// names it, so a crate without the feature is told what to add.
#[diagnostic::on_unimplemented(
    message = "`auth_server!`'s `broker(…)` kind needs mcpauth's `broker` feature",
    label = "the `broker` feature of mcpauth is off",
    note = "add it in Cargo.toml: `mcpauth = {{ version = \"…\", features = [\"broker\"] }}`"
)]
pub trait BrokerFeature {}

#[cfg(feature = "broker")]
impl BrokerFeature for () {}

/// The identity provider of a `broker(…)` declaration.
#[derive(Debug)]
pub enum UpstreamSpec {
    /// OpenID Connect, by issuer.
    Oidc(String),
    /// Plain OAuth 2.0: authorization, token and userinfo endpoints.
    OAuth(String, String, String),
    /// GitHub: an App (`true`) or an OAuth App, and its web and API base URLs when not
    /// github.com's.
    GitHub(bool, Option<(String, String)>),
    /// Google.
    Google,
    /// Microsoft Entra ID, by tenant.
    Entra(String),
    /// Given whole by an expression (its client and options included).
    Given(Box<BrokerUpstream>),
}

/// What a `broker(…)` declaration says of its identity provider.
#[derive(Debug)]
pub struct UpstreamDeclaration {
    /// Where the provider is.
    pub spec: UpstreamSpec,
    /// The broker's client id there.
    pub client_id: String,
    /// Its secret, read at start-up.
    pub client_secret: Option<String>,
    /// The scopes asked for.
    pub scopes: &'static [&'static str],
    /// The provider's short name.
    pub id: Option<&'static str>,
    /// The userinfo member naming the user.
    pub user_id_member: Option<&'static str>,
}

#[cfg(feature = "broker")]
pub use crate::broker::{BrokerBuilder, Upstream as BrokerUpstream};

/// Stands for the broker types when the feature is off (never constructed).
#[cfg(not(feature = "broker"))]
#[derive(Debug)]
pub enum BrokerUpstream {}

/// Stands for the broker types when the feature is off (never constructed).
#[cfg(not(feature = "broker"))]
#[derive(Debug)]
pub enum BrokerBuilder {}

/// A declared broker's authorization server (see `broker::declared_auth_server`).
#[cfg(feature = "broker")]
pub fn broker_auth_server<F: BrokerFeature>(issuer: String) -> AuthServer {
    crate::broker::declared_auth_server(&issuer)
}

/// A declared broker's identity provider.
#[cfg(feature = "broker")]
pub fn broker_upstream<F: BrokerFeature>(declaration: UpstreamDeclaration) -> BrokerUpstream {
    let mut upstream = match declaration.spec {
        UpstreamSpec::Oidc(issuer) => BrokerUpstream::oidc(issuer, declaration.client_id),
        UpstreamSpec::OAuth(authorize, token, userinfo) => {
            BrokerUpstream::oauth(authorize, token, userinfo, declaration.client_id)
        }
        UpstreamSpec::GitHub(app, urls) => {
            let upstream = if app {
                BrokerUpstream::github_app(declaration.client_id)
            } else {
                BrokerUpstream::github(declaration.client_id)
            };
            match urls {
                Some((web, api)) => upstream.github_base_urls(web, api),
                None => upstream,
            }
        }
        UpstreamSpec::Google => BrokerUpstream::google(declaration.client_id),
        UpstreamSpec::Entra(tenant) => BrokerUpstream::entra(tenant, declaration.client_id),
        UpstreamSpec::Given(upstream) => return *upstream,
    };
    if let Some(secret) = declaration.client_secret {
        upstream = upstream.client_secret(secret);
    }
    upstream = upstream.scopes(declaration.scopes.iter().copied());
    if let Some(id) = declaration.id {
        upstream = upstream.id(id);
    }
    if let Some(member) = declaration.user_id_member {
        upstream = upstream.user_id_member(member);
    }
    upstream
}

/// A builder for a declared broker, its issuer and identity provider filled in.
#[cfg(feature = "broker")]
pub fn broker_builder<F: BrokerFeature>(issuer: String, upstream: BrokerUpstream) -> BrokerBuilder {
    crate::broker::Broker::builder(issuer).upstream(upstream)
}

#[cfg(not(feature = "broker"))]
#[allow(missing_docs, clippy::needless_pass_by_value)]
pub fn broker_auth_server<F: BrokerFeature>(_issuer: String) -> AuthServer {
    unreachable!("BrokerFeature has no implementation without the broker feature")
}

#[cfg(not(feature = "broker"))]
#[allow(missing_docs, clippy::needless_pass_by_value)]
pub fn broker_upstream<F: BrokerFeature>(_declaration: UpstreamDeclaration) -> BrokerUpstream {
    unreachable!("BrokerFeature has no implementation without the broker feature")
}

#[cfg(not(feature = "broker"))]
#[allow(missing_docs, clippy::needless_pass_by_value)]
pub fn broker_builder<F: BrokerFeature>(
    _issuer: String,
    upstream: BrokerUpstream,
) -> BrokerBuilder {
    match upstream {}
}
