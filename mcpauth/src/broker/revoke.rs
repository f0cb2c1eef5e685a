//! `POST {P}/revoke` (RFC 7009): a refresh token ends its grant — its refresh tokens at once,
//! its access tokens when they expire (they are self-contained JWTs). Unknown tokens, and
//! access tokens, get 200: the client cannot learn which tokens exist.

use crate::metrics::RevokeCause;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::BrokerState;
use super::refresh_token::Presented;
use super::responses::{OAuthError, with_cors};
use super::token::authenticate_client;

pub(crate) async fn revoke(
    State(state): State<Arc<BrokerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match revoke_token(&state, &headers, &body).await {
        Ok(()) => with_cors(StatusCode::OK.into_response()),
        Err(error) => error.into_response(),
    }
}

async fn revoke_token(
    state: &BrokerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), OAuthError> {
    let (params, client_id) = authenticate_client(state, headers, body).await?;
    let Some(token) = params.get("token") else {
        return Err(OAuthError::invalid_request("token is missing"));
    };
    let Some(presented) = Presented::parse(token) else {
        return Ok(());
    };
    if let Some((_, grant, _)) = state.grant_of_refresh_token(&presented).await? {
        // A client may revoke only its own tokens; another's are answered like unknown ones.
        if grant.client_id == client_id {
            state
                .revoke_grant(presented.grant_id, RevokeCause::Client)
                .await?;
        }
    }
    Ok(())
}
