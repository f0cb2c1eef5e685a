//! `POST {P}/token`: the `authorization_code` and `refresh_token` grants for public clients
//! (`client_id` in the body, no secret). Answers carry `Cache-Control: no-store`; errors follow
//! RFC 6749 §5.2 — `invalid_client` is 401 so clients re-register, the rest 400, and a store or
//! provider failure 503 with `Retry-After`, never 500.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::Instrument as _;

use super::BrokerState;
use super::directory::ClientLookupError;
use super::params::Params;
use super::responses::{OAuthError, json_no_store};
use super::secrets::{equal_in_constant_time, s256_challenge};
use crate::metrics;

pub(crate) async fn token(
    State(state): State<Arc<BrokerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = tracing::info_span!(
        "mcpauth.broker.token",
        client_id = tracing::field::Empty,
        grant_type = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let mut grant_type = "unknown";
    let answer = grant(&state, &headers, &body, &mut grant_type)
        .instrument(span.clone())
        .await;
    let outcome = answer.as_ref().map_or_else(|e| e.code, |_| "issued");
    span.record("outcome", outcome);
    metrics::token_request(grant_type, outcome);
    match answer {
        Ok(tokens) => {
            match grant_type {
                "authorization_code" => metrics::grant_issued(),
                _ => metrics::grant_refreshed(),
            }
            json_no_store(StatusCode::OK, tokens.to_json())
        }
        Err(error) => error.into_response(),
    }
}

/// Checks the form, the client, and dispatches on `grant_type`.
pub(crate) async fn authenticate_client(
    state: &BrokerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, String), OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "send the request as application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    if headers.contains_key(header::AUTHORIZATION) {
        // Only public clients exist here; credentials mean a client this server does not know.
        return Err(OAuthError::invalid_client(
            "this authorization server registers public clients only (no client secret)",
        ));
    }
    let Some(client_id) = params.get("client_id") else {
        return Err(OAuthError::invalid_client("the request names no client_id"));
    };
    match state.resolve_client(client_id).await {
        Ok(_) => {}
        Err(ClientLookupError::Unknown) => {
            return Err(OAuthError::invalid_client("unknown client; register again"));
        }
        Err(ClientLookupError::InvalidDocument(reason)) => {
            return Err(OAuthError::invalid_client(format!(
                "the client's metadata document is refused: {reason}"
            )));
        }
        Err(ClientLookupError::Unavailable(reason)) => {
            tracing::warn!(client_id, %reason, "client lookup failed");
            return Err(OAuthError::invalid_client(
                "the client's metadata document cannot be read now",
            ));
        }
        Err(ClientLookupError::Store(error)) => return Err(error.into()),
    }
    let client_id = client_id.to_owned();
    Ok((params, client_id))
}

/// The grant; `grant_type` is set to the request's as soon as its client is known.
async fn grant(
    state: &BrokerState,
    headers: &HeaderMap,
    body: &[u8],
    grant_type: &mut &'static str,
) -> Result<super::grants::IssuedTokens, OAuthError> {
    let (params, client_id) = authenticate_client(state, headers, body).await?;
    *grant_type = match params.get("grant_type") {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    };
    let span = tracing::Span::current();
    span.record("client_id", client_id.as_str());
    span.record("grant_type", *grant_type);
    if let Some(resource) = params.get("resource")
        && !state.names_the_resource(resource)
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "this authorization server issues tokens only for its own MCP server",
        ));
    }
    match params.get("grant_type") {
        Some("authorization_code") => authorization_code(state, &params, &client_id).await,
        Some("refresh_token") => {
            let Some(refresh_token) = params.get("refresh_token") else {
                return Err(OAuthError::invalid_request("refresh_token is missing"));
            };
            state
                .refresh(refresh_token, &client_id, params.get("scope"))
                .await
        }
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn authorization_code(
    state: &BrokerState,
    params: &Params,
    client_id: &str,
) -> Result<super::grants::IssuedTokens, OAuthError> {
    let Some(code) = params.get("code") else {
        return Err(OAuthError::invalid_request("code is missing"));
    };
    let Some(verifier) = params.get("code_verifier") else {
        return Err(OAuthError::invalid_request(
            "code_verifier is missing (PKCE is required)",
        ));
    };
    if !is_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    // Consumed before any other check: a code is good for one attempt, right or wrong.
    let record = state.take_code(code).await?;
    if record.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    let redirect_uri = params.get("redirect_uri");
    let redirect_matches = match redirect_uri {
        Some(sent) => sent == record.redirect_uri,
        None => !record.redirect_uri_sent,
    };
    if !redirect_matches {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !equal_in_constant_time(&s256_challenge(verifier), &record.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    state.issue_for_code(&record.grant_id).await
}
