//! The consent page (`GET {P}/consent`) and its answer (`POST {P}/consent`).
//!
//! The MCP rule for a proxy with a static upstream client: every authorization is approved by
//! the user on a page naming the client, where its answer goes, the scopes, the identity
//! provider and the MCP server — before the broker sends the browser to the provider. The form
//! carries a CSRF token bound to the transaction and to a nonce cookie of this browser (so
//! another site cannot make a victim approve the attacker's request); loading the page twice
//! gives the same token. Approval consumes the transaction once, binds the sign-in to this
//! browser with a MACed cookie that the callback checks, and answers 303 to the provider.

use crate::metrics;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::cookies;
use super::directory::ClientLookupError;
use super::pages::{ConsentView, consent_page, page_response};
use super::params::Params;
use super::records::{self, Transaction, UpstreamLogin};
use super::responses::{
    error_page, error_redirect, registration_changed_page, see_other, store_unavailable_page,
};
use super::secrets::random_token;
use super::store::{Namespace, Put};
use super::{BrokerState, upstream};

/// The browser nonce cookie's base name.
const NONCE_COOKIE: &str = "mcpauth-browser";
/// How long the browser nonce is kept (it is only a CSRF binding, not a session).
const NONCE_MAX_AGE: u64 = 24 * 3600;
/// The binding cookie's base name; the upstream `state`'s hash follows it, so concurrent
/// sign-ins in one browser do not overwrite each other's binding.
pub(crate) const BINDING_COOKIE: &str = "mcpauth-login-";

pub(crate) fn binding_cookie_name(state: &BrokerState, upstream_state: &str) -> String {
    let suffix: String = super::secrets::token_hash(upstream_state)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    cookies::name(state.secure_cookies, &format!("{BINDING_COOKIE}{suffix}"))
}

fn csrf_token(state: &BrokerState, transaction: &str, nonce: &str) -> String {
    state
        .mac
        .sign("consent-csrf", &format!("{transaction}.{nonce}"))
}

fn expired() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired",
        "It was already answered or is too old. Start again from your MCP client.",
    )
}

/// `GET {P}/consent?transaction=…`.
pub(crate) async fn show(
    State(state): State<Arc<BrokerState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes()) else {
        return expired();
    };
    let Some(id) = params.get("transaction") else {
        return expired();
    };
    let transaction: Transaction =
        match records::load(state.store.as_ref(), Namespace::Transaction, id, false).await {
            Ok(Some(record)) => record,
            Ok(None) => return expired(),
            Err(error) => return store_unavailable_page(&error),
        };
    let client = match state.resolve_client(&transaction.client_id).await {
        Ok(client) => client,
        Err(ClientLookupError::Store(error)) => return store_unavailable_page(&error),
        Err(_) => return expired(),
    };
    let nonce_name = cookies::name(state.secure_cookies, NONCE_COOKIE);
    // An existing nonce is kept: a second load of the page (prefetch, reload) must not make the
    // first copy's token stale.
    let (nonce, new_nonce) = match cookies::read(&headers, &nonce_name) {
        Some(nonce) if nonce.len() >= 22 => (nonce.to_owned(), false),
        _ => match random_token(16) {
            Ok(nonce) => (nonce, true),
            Err(_) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later",
                    "The sign-in cannot continue right now.",
                );
            }
        },
    };
    let redirect = super::redirect_uri::RedirectUri::parse(&transaction.redirect_uri);
    let (redirect_host, loopback) = match &redirect {
        Ok(uri) => (uri.host().to_owned(), uri.is_loopback()),
        Err(_) => return expired(),
    };
    let verified_host = match client.source {
        super::client::ClientSource::MetadataDocument => url::Url::parse(&client.client_id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned)),
        _ => None,
    };
    let html = consent_page(&ConsentView {
        client_name: client.client_name.as_deref().unwrap_or(&client.client_id),
        verified_host: verified_host.as_deref(),
        redirect_host: &redirect_host,
        redirect_is_loopback: loopback,
        scopes: &transaction.scopes,
        provider: state.upstream.config().name(),
        server_name: &state.server_name,
        action: &format!("{}/consent", state.path),
        transaction: id,
        csrf: &csrf_token(&state, id, &nonce),
    });
    let mut response = page_response(StatusCode::OK, html);
    if new_nonce
        && let Some(cookie) = cookies::set(&nonce_name, &nonce, NONCE_MAX_AGE, state.secure_cookies)
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST {P}/consent` with `transaction`, `csrf` and `decision` (`approve` or `deny`).
pub(crate) async fn answer(
    State(state): State<Arc<BrokerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(params) = Params::parse(&body) else {
        return forbidden("The form was sent with repeated fields.");
    };
    let (Some(id), Some(csrf), Some(decision)) = (
        params.get("transaction"),
        params.get("csrf"),
        params.get("decision"),
    ) else {
        return forbidden("The form is incomplete.");
    };
    let nonce_name = cookies::name(state.secure_cookies, NONCE_COOKIE);
    let Some(nonce) = cookies::read(&headers, &nonce_name) else {
        return forbidden(
            "This browser did not keep the sign-in cookie. Open the sign-in link in your \
             browser (not an embedded view) and try again.",
        );
    };
    if !state
        .mac
        .verify("consent-csrf", &format!("{id}.{nonce}"), csrf)
    {
        return forbidden("The form does not belong to this browser's sign-in.");
    }
    // Consumed once, by the answer's own write (below): a second answer (double submit,
    // replay) finds nothing, or loses the race to remove these exact bytes.
    let stored = match state.store.get(Namespace::Transaction, id).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return expired(),
        Err(error) => return store_unavailable_page(&error),
    };
    let Ok(transaction) = records::decode::<Transaction>(&stored) else {
        return expired();
    };
    let consumed = Consumed {
        id,
        stored: &stored,
    };
    // The registration may have changed since the request: check the redirect URI again
    // before sending the browser there.
    match state.redirect_still_registered(&transaction).await {
        Ok(true) => {}
        Ok(false) => return registration_changed_page(),
        Err(error) => return store_unavailable_page(&error),
    }
    match decision {
        "approve" => {
            metrics::consent(true);
            approve(&state, transaction, consumed).await
        }
        "deny" => {
            metrics::consent(false);
            match state
                .store
                .compare_and_swap(Namespace::Transaction, id, &stored, None, None)
                .await
            {
                Ok(true) => {}
                Ok(false) => return expired(),
                Err(error) => return store_unavailable_page(&error),
            }
            tracing::info!(client_id = %transaction.client_id, "consent denied");
            error_redirect(
                &transaction.redirect_uri,
                &state.issuer,
                transaction.state.as_deref(),
                "access_denied",
                "the user denied the request",
            )
        }
        _ => forbidden("The form's decision is neither approve nor deny."),
    }
}

/// The transaction an answer consumes: its id, and the bytes it was read as.
struct Consumed<'a> {
    id: &'a str,
    stored: &'a [u8],
}

async fn approve(
    state: &BrokerState,
    transaction: Transaction,
    consumed: Consumed<'_>,
) -> Response {
    let fail = |code: &str, description: &str| {
        error_redirect(
            &transaction.redirect_uri,
            &state.issuer,
            transaction.state.as_deref(),
            code,
            description,
        )
    };
    let (Ok(upstream_state), Ok(verifier), Ok(nonce)) =
        (random_token(16), upstream::new_verifier(), random_token(16))
    else {
        return fail("server_error", "the sign-in cannot start");
    };
    let url = match state
        .upstream
        .authorization_url(&state.callback, &upstream_state, &verifier, &nonce)
        .await
    {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(%error, "identity provider unavailable");
            return fail(
                "temporarily_unavailable",
                "the identity provider cannot be reached",
            );
        }
    };
    let client_id = transaction.client_id.clone();
    let login = UpstreamLogin {
        transaction: transaction.clone(),
        verifier,
        nonce,
    };
    // The transaction is removed and the upstream login written at once, only if no other
    // answer consumed the transaction meanwhile.
    let written = match records::encode(&login) {
        Ok(bytes) => {
            let login = Put::new(
                Namespace::UpstreamLogin,
                &upstream_state,
                bytes,
                Some(state.lifetimes.transaction),
            );
            state
                .store
                .compare_and_swap_and_put(
                    Namespace::Transaction,
                    consumed.id,
                    consumed.stored,
                    None,
                    None,
                    login,
                )
                .await
        }
        Err(error) => Err(error),
    };
    match written {
        Ok(true) => {}
        Ok(false) => return expired(),
        // Nothing was written: the request is still there to approve again.
        Err(error) => return store_unavailable_page(&error),
    }
    tracing::info!(%client_id, "consent approved");
    let mut response = see_other(url.as_str());
    let name = binding_cookie_name(state, &upstream_state);
    let value = state.mac.sign("login-binding", &upstream_state);
    if let Some(cookie) = cookies::set(
        &name,
        &value,
        state.lifetimes.transaction.as_secs(),
        state.secure_cookies,
    ) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn forbidden(detail: &str) -> Response {
    error_page(StatusCode::FORBIDDEN, "Sign-in refused", detail)
}
