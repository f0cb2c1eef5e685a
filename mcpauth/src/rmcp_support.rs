//! `AuthInfo` in rmcp tool and prompt handlers (feature `rmcp`).
//!
//! rmcp's streamable-HTTP server copies each HTTP request's `http::request::Parts` into the MCP
//! request's extensions; the bearer layer has put the verified [`AuthInfo`] in those parts. So a
//! handler parameter of type `AuthInfo` (or [`MaybeAuthInfo`] on optional-auth endpoints) reads
//! it per request — no globals, no task-locals.

use http::request::Parts;
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};

use crate::auth_info::AuthInfo;

fn from_parts<C: AsRequestContext>(context: &C) -> Option<AuthInfo> {
    context
        .as_request_context()
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<AuthInfo>())
        .cloned()
}

impl<C: AsRequestContext> FromContextPart<C> for AuthInfo {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        from_parts(context).ok_or_else(|| {
            tracing::error!(
                "a tool asked for AuthInfo but the request was not verified: put the MCP endpoint behind `bearer_auth`"
            );
            ErrorData::internal_error("Authentication is not configured for this endpoint.", None)
        })
    }
}

/// The verified identity of an MCP request, if it carried a token (for endpoints whose bearer
/// layer is [`optional`](crate::BearerAuthLayer::optional)).
#[derive(Debug, Clone)]
pub struct MaybeAuthInfo(pub Option<AuthInfo>);

impl<C: AsRequestContext> FromContextPart<C> for MaybeAuthInfo {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Ok(Self(from_parts(context)))
    }
}

impl<C: AsRequestContext, M: crate::ScopeMarker> FromContextPart<C> for crate::Require<M> {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let auth = AuthInfo::from_context_part(context)?;
        crate::Require::check(auth).ok_or_else(|| {
            ErrorData::invalid_request(
                format!("insufficient scope: this tool needs {}", M::SCOPE),
                Some(serde_json::json!({ "error": "insufficient_scope", "scope": M::SCOPE })),
            )
        })
    }
}
