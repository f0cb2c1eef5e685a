//! `GET {P}/callback/{upstream}`: the identity provider's answer. The sign-in it belongs to is
//! found by `state`, checked against this browser's binding cookie before it is consumed (so a
//! victim's browser cannot burn or complete an attacker's sign-in), and consumed once. The
//! provider's code is exchanged, the user identified, the grant written with the provider's
//! tokens sealed, and the client receives a one-time code with its `state` and the broker's
//! `iss`. Every provider failure reaches the client as an OAuth error, never a 500.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::BrokerState;
use super::consent::binding_cookie_name;
use super::cookies;
use super::grants::NewGrant;
use super::params::Params;
use super::records::{self, UpstreamLogin};
use super::responses::{
    error_page, error_redirect, redirect_to_client, registration_changed_page,
    store_unavailable_page,
};
use super::store::Namespace;
use super::upstream::UpstreamError;

/// Error codes from the provider that keep their meaning for the MCP client; any other becomes
/// `server_error` (the client cannot act on the provider's internals).
const PASSED_THROUGH: [&str; 2] = ["access_denied", "temporarily_unavailable"];

pub(crate) async fn callback(
    State(state): State<Arc<BrokerState>>,
    Path(upstream): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if upstream != state.upstream.config().id_name() {
        return error_page(
            StatusCode::NOT_FOUND,
            "Unknown sign-in",
            "No such identity provider.",
        );
    }
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid answer",
            "The identity provider's answer repeats a parameter.",
        );
    };
    let Some(upstream_state) = params.get("state") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid answer",
            "The identity provider's answer has no state.",
        );
    };
    let cookie_name = binding_cookie_name(&state, upstream_state);
    let bound = cookies::read(&headers, &cookie_name)
        .is_some_and(|mac| state.mac.verify("login-binding", upstream_state, mac));
    if !bound {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "This sign-in was not started in this browser, or the browser did not keep its \
             cookie. Open the sign-in link in your browser (not an embedded view) and try again.",
        );
    }
    let login: UpstreamLogin = match records::load(
        state.store.as_ref(),
        Namespace::UpstreamLogin,
        upstream_state,
        true,
    )
    .await
    {
        Ok(Some(record)) => record,
        Ok(None) => return unknown_login(),
        Err(error) => return store_unavailable_page(&error),
    };
    let mut response = finish(&state, &params, login).await;
    if let Some(clear) = cookies::set(&cookie_name, "", 0, state.secure_cookies) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

fn unknown_login() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "It was already completed or is too old. Start again from your MCP client.",
    )
}

async fn finish(state: &BrokerState, params: &Params, login: UpstreamLogin) -> Response {
    let transaction = &login.transaction;
    // The registration may have changed while the user was at the provider.
    match state.redirect_still_registered(transaction).await {
        Ok(true) => {}
        Ok(false) => return registration_changed_page(),
        Err(error) => return store_unavailable_page(&error),
    }
    let fail = |code: &str, description: &str| {
        error_redirect(
            &transaction.redirect_uri,
            &state.issuer,
            transaction.state.as_deref(),
            code,
            description,
        )
    };
    if let Some(error) = params.get("error") {
        tracing::info!(
            upstream_error = error,
            "identity provider refused the sign-in"
        );
        let code = PASSED_THROUGH
            .into_iter()
            .find(|c| *c == error)
            .unwrap_or("server_error");
        return fail(code, &format!("the identity provider answered `{error}`"));
    }
    let Some(code) = params.get("code") else {
        return fail("server_error", "the identity provider sent no code");
    };
    let (tokens, user) = match state
        .upstream
        .exchange(code, &state.callback, &login.verifier, &login.nonce)
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "identity provider code exchange failed");
            let (code, description) = match error {
                UpstreamError::Unavailable(_) => (
                    "temporarily_unavailable",
                    "the identity provider cannot be reached",
                ),
                UpstreamError::Refused { .. } => {
                    ("server_error", "the identity provider refused the sign-in")
                }
                UpstreamError::Invalid(_) => (
                    "server_error",
                    "the identity provider's answer failed verification",
                ),
            };
            return fail(code, description);
        }
    };
    let subject = format!("{}|{}", state.upstream.config().id_name(), user.id);
    let issued = state
        .create_grant(NewGrant {
            transaction,
            subject: &subject,
            upstream: &tokens,
        })
        .await;
    match issued {
        Ok(code) => {
            tracing::info!(client_id = %transaction.client_id, %subject, "sign-in completed");
            let mut params = vec![("code", code.as_str())];
            if let Some(client_state) = transaction.state.as_deref() {
                params.push(("state", client_state));
            }
            redirect_to_client(&transaction.redirect_uri, &state.issuer, &params)
        }
        Err(error) => fail("temporarily_unavailable", &error.description),
    }
}
