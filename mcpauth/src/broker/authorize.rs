//! `GET {P}/authorize`: the MCP client's authorization request, validated before anything is
//! redirected, then kept as a server-side transaction while the user is asked for consent.
//!
//! Errors before the client and its redirect URI are known to belong together are shown as a
//! page (RFC 6749 §4.1.2.1: never redirect to an unverified URI); after, they go back to the
//! client with its `state` and the broker's `iss`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::directory::ClientLookupError;
use super::params::Params;
use super::records::{self, Transaction};
use super::responses::{
    error_page, error_redirect, retry_after, see_other, store_unavailable_page,
};
use super::secrets::random_token;
use super::store::Namespace;
use super::{BrokerState, now_unix};

/// Scopes a client may ask for that the broker grants implicitly (refresh tokens are always
/// issued), so asking for them is not an error.
const IMPLICIT_SCOPES: [&str; 1] = ["offline_access"];

pub(crate) async fn authorize(
    State(state): State<Arc<BrokerState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(repeated) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &repeated.to_string(),
            );
        }
    };
    let Some(client_id) = params.get("client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The request names no client (client_id).",
        );
    };
    let client = match state.resolve_client(client_id).await {
        Ok(client) => client,
        Err(ClientLookupError::Unknown) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "This application is not registered here. Start again from your MCP client.",
            );
        }
        Err(ClientLookupError::InvalidDocument(reason)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Application refused",
                &format!("The application's metadata document is refused: {reason}"),
            );
        }
        Err(ClientLookupError::Unavailable(reason)) => {
            tracing::warn!(client_id, %reason, "client lookup failed");
            return retry_after(
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later",
                    "The application's details cannot be read right now.",
                ),
                5,
            );
        }
        Err(ClientLookupError::Store(error)) => return store_unavailable_page(&error),
    };
    let requested_redirect = params.get("redirect_uri");
    let Some(redirect_uri) = client.redirect_uri_for(requested_redirect) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The redirect URI is not one this application registered.",
        );
    };
    // From here on the client and its redirect URI belong together: errors go back to it.
    let client_state = params.get("state");
    let fail = |code: &str, description: &str| {
        error_redirect(
            &redirect_uri,
            &state.issuer,
            client_state,
            code,
            description,
        )
    };
    if params.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only the authorization code flow (response_type=code) is supported",
        );
    }
    let Some(challenge) = params.get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge with S256",
        );
    };
    if params.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        );
    }
    if let Some(resource) = params.get("resource")
        && !state.names_the_resource(resource)
    {
        return fail(
            "invalid_target",
            "this authorization server issues tokens only for its own MCP server",
        );
    }
    let scopes = match state.granted_scopes(params.get("scope")) {
        Ok(scopes) => scopes,
        Err(description) => return fail("invalid_scope", &description),
    };
    if let Err(wait) = state.authorizations.try_take(std::time::Instant::now()) {
        return retry_after(
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again shortly",
                "Too many sign-ins are starting right now.",
            ),
            wait.as_secs().max(1),
        );
    }
    let transaction = Transaction {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        redirect_uri_sent: requested_redirect.is_some(),
        state: client_state.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        scopes,
        resource: state.resource.clone(),
        created_at: now_unix(),
    };
    let Ok(id) = random_token(16) else {
        return fail("server_error", "the sign-in cannot start");
    };
    let stored = match records::encode(&transaction) {
        Ok(bytes) => {
            state
                .store
                .put(
                    Namespace::Transaction,
                    &id,
                    bytes,
                    Some(state.lifetimes.transaction),
                )
                .await
        }
        Err(error) => Err(error),
    };
    match stored {
        Ok(()) => see_other(&format!("{}/consent?transaction={id}", state.path)),
        // Nothing was consumed: the same request works again once the store is back, so the
        // browser is asked to retry rather than the client told the sign-in failed.
        Err(error) => store_unavailable_page(&error),
    }
}

impl BrokerState {
    /// Whether a `resource` parameter names the protected resource: the canonical comparison
    /// (scheme and host case, default port, one trailing `/`), and a query the client added
    /// when the resource has none.
    pub(crate) fn names_the_resource(&self, requested: &str) -> bool {
        use mcpauth_rules::canonical::CanonicalUri;
        let requested = match requested.split_once('?') {
            Some((base, _)) if !self.resource.contains('?') => base,
            _ => requested,
        };
        match (
            CanonicalUri::parse(requested),
            CanonicalUri::parse(&self.resource),
        ) {
            (Ok(requested), Ok(resource)) => requested.same_resource(&resource),
            _ => false,
        }
    }

    /// The scopes granted for a requested `scope` parameter: the requested scopes the resource
    /// defines (all of them when none is requested); an error when none of the requested
    /// scopes is the resource's.
    pub(crate) fn granted_scopes(&self, requested: Option<&str>) -> Result<Vec<String>, String> {
        let Some(requested) = requested else {
            return Ok(self.scopes.clone());
        };
        let mut granted = Vec::new();
        let mut unknown = Vec::new();
        for scope in requested.split(' ').filter(|s| !s.is_empty()) {
            if self.scopes.iter().any(|s| s == scope) {
                if !granted.iter().any(|g: &String| g == scope) {
                    granted.push(scope.to_owned());
                }
            } else if !IMPLICIT_SCOPES.contains(&scope) {
                unknown.push(scope);
            }
        }
        if granted.is_empty() && !unknown.is_empty() {
            return Err(format!(
                "none of the requested scopes is defined by this MCP server ({})",
                unknown.join(" ")
            ));
        }
        Ok(granted)
    }
}
