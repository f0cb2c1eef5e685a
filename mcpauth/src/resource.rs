//! The configuration of one protected resource: its RFC 9728 metadata and the authorization
//! servers whose tokens it accepts.

use crate::auth_server::AuthServer;
use crate::metadata::ProtectedResourceMetadata;

/// A protected resource (an MCP server endpoint): its identifier, the authorization servers
/// that issue tokens for it, its scopes and the other RFC 9728 members it publishes.
///
/// The published `authorization_servers` list is always derived from the configured servers
/// (their issuers, in order); `bearer_methods_supported` defaults to `["header"]`, the only
/// method MCP allows.
///
/// ```
/// use mcpauth::{AuthServer, AuthServerType, ProtectedResource};
///
/// let notes = ProtectedResource::new("https://api.example.com/notes")
///     .authorization_server(AuthServer::discover(
///         "https://tenant.logto.app/oidc",
///         AuthServerType::Oidc,
///     ))
///     .scopes(["read:notes", "write:notes"])
///     .resource_name("Notes");
/// assert_eq!(notes.resource(), "https://api.example.com/notes");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ProtectedResource {
    pub(crate) metadata: ProtectedResourceMetadata,
    pub(crate) auth_servers: Vec<AuthServer>,
    pub(crate) hierarchy: Vec<(String, Vec<String>)>,
}

impl ProtectedResource {
    /// A resource identified by `resource` (an absolute https URL, http only on loopback, no
    /// query or fragment; checked when the [`McpAuth`](crate::McpAuth) is built).
    pub fn new(resource: impl Into<String>) -> Self {
        Self::from_metadata(ProtectedResourceMetadata::new(resource))
    }

    /// A resource described by a complete metadata document (for example read from a file).
    /// Its `authorization_servers` member is replaced by the configured servers' issuers.
    pub fn from_metadata(metadata: ProtectedResourceMetadata) -> Self {
        Self {
            metadata,
            auth_servers: Vec::new(),
            hierarchy: Vec::new(),
        }
    }

    /// Trusts one more authorization server.
    pub fn authorization_server(mut self, server: impl Into<AuthServer>) -> Self {
        self.auth_servers.push(server.into());
        self
    }

    /// Trusts these authorization servers too.
    pub fn authorization_servers<I>(mut self, servers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<AuthServer>,
    {
        self.auth_servers
            .extend(servers.into_iter().map(Into::into));
        self
    }

    /// Sets `scopes_supported`: the scopes clients may request for this resource.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.metadata.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Declares that `scope` implies `implied` (a broader scope grants narrower ones): a token
    /// with `scope` satisfies routes that require any of `implied`, transitively. Every scope
    /// named must be declared with [`scopes`](Self::scopes); cycles are refused.
    ///
    /// ```
    /// use mcpauth::ProtectedResource;
    ///
    /// let notes = ProtectedResource::new("https://api.example.com/notes")
    ///     .scopes(["read:notes", "write:notes", "admin:notes"])
    ///     .scope_implies("admin:notes", ["read:notes", "write:notes"]);
    /// # let _ = notes;
    /// ```
    pub fn scope_implies<I>(mut self, scope: impl Into<String>, implied: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.hierarchy
            .push((scope.into(), implied.into_iter().map(Into::into).collect()));
        self
    }

    /// Sets `resource_name`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.metadata.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation`.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.metadata.resource_documentation = Some(url.into());
        self
    }

    /// Sets `resource_policy_uri`.
    pub fn resource_policy_uri(mut self, url: impl Into<String>) -> Self {
        self.metadata.resource_policy_uri = Some(url.into());
        self
    }

    /// Sets `resource_tos_uri`.
    pub fn resource_tos_uri(mut self, url: impl Into<String>) -> Self {
        self.metadata.resource_tos_uri = Some(url.into());
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.metadata.resource
    }

    /// The configured authorization servers.
    pub fn auth_servers(&self) -> &[AuthServer] {
        &self.auth_servers
    }

    /// The metadata as configured (before `authorization_servers` and defaults are filled in).
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.metadata
    }

    /// Mutable access to every metadata member.
    pub fn metadata_mut(&mut self) -> &mut ProtectedResourceMetadata {
        &mut self.metadata
    }
}
