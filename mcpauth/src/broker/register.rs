//! `POST {P}/register` (RFC 7591): dynamic registration of public clients, for MCP clients that
//! predate client ID metadata documents. Bounded: a rate limit per process and a cap on the
//! clients kept; each registration expires when unused for a long time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::client::validate_registration;
use super::records;
use super::responses::{OAuthError, json_no_store};
use super::secrets::random_token;
use super::store::Namespace;
use super::{BrokerState, now_unix};

/// The largest registration body read.
pub(crate) const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

pub(crate) async fn register(
    State(state): State<Arc<BrokerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match register_client(&state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn register_client(
    state: &BrokerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    if !state.dynamic_registration {
        return Err(OAuthError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "dynamic registration is disabled",
        ));
    }
    if let Err(wait) = state.registrations.try_take(Instant::now()) {
        return Err(OAuthError {
            retry_after: Some(wait.as_secs().max(1)),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many registrations; try again shortly",
            )
        });
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "send the client metadata as application/json",
        ));
    }
    if body.len() > MAX_REGISTRATION_BYTES {
        return Err(OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_client_metadata",
            "the client metadata is too large",
        ));
    }
    let mut client = validate_registration(body).map_err(|error| {
        let code = match error.code.as_str() {
            "invalid_redirect_uri" => "invalid_redirect_uri",
            _ => "invalid_client_metadata",
        };
        OAuthError::new(StatusCode::BAD_REQUEST, code, error.description)
    })?;
    if state.store.count(Namespace::Client).await? >= state.max_registered_clients {
        return Err(OAuthError::unavailable(
            "the authorization server holds as many registrations as it may",
            3600,
        ));
    }
    client.client_id = format!("mcp-{}", random_token(16)?);
    client.registered_at = now_unix();
    state
        .store
        .put(
            Namespace::Client,
            &client.client_id,
            records::encode(&client)?,
            Some(state.lifetimes.registered_client),
        )
        .await?;
    tracing::info!(client_id = %client.client_id, name = ?client.client_name, "client registered");
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.registered_at,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": client.application_type.as_str(),
    });
    if let Some(object) = body.as_object_mut() {
        for (name, value) in [
            ("client_name", &client.client_name),
            ("client_uri", &client.client_uri),
            ("logo_uri", &client.logo_uri),
            ("scope", &client.scope),
        ] {
            if let Some(value) = value {
                object.insert(name.into(), value.clone().into());
            }
        }
    }
    Ok(json_no_store(StatusCode::CREATED, body))
}
