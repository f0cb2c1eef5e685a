//! Scopes as types: the marker types `#[protected_resource]` generates implement
//! [`ScopeMarker`], so code can require a scope the resource declares — and only such a scope —
//! by naming its type.

use std::fmt;
use std::marker::PhantomData;

use crate::auth_info::AuthInfo;

/// A scope as a type (implemented by the marker types `#[protected_resource]` generates in
/// `<module>::scopes`).
pub trait ScopeMarker: Send + Sync + 'static {
    /// The scope.
    const SCOPE: &'static str;
    /// The scopes that imply it through the resource's scope hierarchy.
    const IMPLIED_BY: &'static [&'static str];

    /// Whether `auth` was granted the scope, directly or through the hierarchy.
    fn granted(auth: &AuthInfo) -> bool {
        auth.has_scope(Self::SCOPE) || Self::IMPLIED_BY.iter().any(|s| auth.has_scope(s))
    }
}

/// The verified identity of a request whose token grants the scope `M` (directly or through
/// the hierarchy). As an rmcp tool parameter (feature `rmcp`) it refuses the call with an MCP
/// error when the scope is missing — a second line behind the HTTP layer's per-tool scopes.
pub struct Require<M: ScopeMarker> {
    auth: AuthInfo,
    scope: PhantomData<fn() -> M>,
}

impl<M: ScopeMarker> Require<M> {
    /// Checks `auth` for the scope.
    pub fn check(auth: AuthInfo) -> Option<Self> {
        M::granted(&auth).then_some(Self {
            auth,
            scope: PhantomData,
        })
    }

    /// The verified identity.
    pub fn auth(&self) -> &AuthInfo {
        &self.auth
    }

    /// The verified identity, owned.
    pub fn into_auth(self) -> AuthInfo {
        self.auth
    }
}

impl<M: ScopeMarker> fmt::Debug for Require<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Require")
            .field("scope", &M::SCOPE)
            .field("auth", &self.auth)
            .finish()
    }
}

impl<M: ScopeMarker> Clone for Require<M> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            scope: PhantomData,
        }
    }
}
