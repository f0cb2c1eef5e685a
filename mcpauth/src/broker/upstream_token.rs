//! The signed-in user's token at the identity provider, for tools that call the provider's API
//! on the user's behalf (the GitHub API, Google Drive, Microsoft Graph).
//!
//! The broker's access tokens name their grant (`sid`, an opaque random id). The grant holds
//! the provider's token set sealed; [`Broker::upstream_token`] opens it on demand and renews it
//! first when it is near expiry:
//!
//! - within a process, under a per-grant lock (a bounded map whose entries go when idle), so
//!   concurrent tool calls cause one call to the provider;
//! - across replicas sharing a store, under a lease written into the grant by compare-and-swap:
//!   the replica that holds it renews, the others wait for its new set (or keep using the
//!   current token while it is still valid), so a rotating refresh token is spent once;
//! - the new set is sealed and stored; an answer without a new refresh token keeps the old one;
//! - the provider refusing the refresh token (`invalid_grant`), or a token that expired with
//!   nothing to renew it, ends the grant: the client's next refresh gets `invalid_grant`, its
//!   access tokens stop within their lifetime; a provider that is down or unreachable leaves the
//!   grant as it is and answers a retryable error.
//!
//! At each refresh of the broker's own tokens the same renewal runs when the provider's token is
//! near expiry, and a token that never expires (GitHub OAuth Apps) is checked at the provider's
//! userinfo endpoint: a user who revoked the app, or is gone, ends the grant.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::records::{self, Grant, RefreshLease};
use super::responses::OAuthError;
use super::secrets::random_token;
use super::store::{Namespace, StoreError};
use super::upstream::{UpstreamClient, UpstreamError, UpstreamTokens};
use super::{Broker, BrokerState, now_unix};
use crate::auth_info::AuthInfo;
use crate::metrics::RevokeCause;

/// A token expiring within this is renewed before it is handed out.
const RENEW_BEFORE_SECS: u64 = 60;
/// A token this close to its expiry is no longer handed out while another replica renews it.
const STILL_VALID_SECS: u64 = 5;
/// How long a replica may hold the renewal lease: longer than one call to the provider.
const LEASE_SECS: u64 = 30;
/// How many grants a process keeps a lock for at once (idle ones are dropped first).
const MAX_LOCKS: usize = 10_000;
/// How often a write of the renewed set is retried when the grant changed meanwhile.
const WRITE_ATTEMPTS: usize = 8;
/// The wait suggested after the provider or the store failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The signed-in user's access token at the identity provider, from
/// [`Broker::upstream_token`] or as an axum extractor.
///
/// It is a credential of the user's at the provider: send it to the provider's API only, never
/// to the MCP client (MCP forbids token passthrough) and never into logs. Its `Debug` output
/// shows `[redacted]`; it has no `Display` and no `Serialize`; its memory is wiped when it is
/// dropped.
///
/// ```no_run
/// # async fn tool(broker: mcpauth::broker::Broker, auth: mcpauth::AuthInfo) -> Result<(), Box<dyn std::error::Error>> {
/// let token = broker.upstream_token(&auth).await?;
/// let profile: serde_json::Value = reqwest::Client::new()
///     .get("https://api.github.com/user")
///     .bearer_auth(token.expose_secret())
///     .header("user-agent", "my-mcp-server")
///     .send()
///     .await?
///     .json()
///     .await?;
/// # let _ = profile; Ok(()) }
/// ```
pub struct UpstreamToken {
    secret: Zeroizing<String>,
    expires_at: Option<SystemTime>,
    scopes: Vec<String>,
}

impl fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamToken")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl UpstreamToken {
    fn new(tokens: &UpstreamTokens) -> Self {
        Self {
            secret: Zeroizing::new(tokens.access_token.clone()),
            expires_at: tokens
                .expires_at
                .map(|at| UNIX_EPOCH + Duration::from_secs(at)),
            scopes: tokens
                .scope
                .as_deref()
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The access token itself, for the `Authorization: Bearer` header of a call to the
    /// provider's API.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// When the provider said it expires (`None`: it gave no lifetime; GitHub OAuth Apps'
    /// tokens never expire). It is at least a minute away when handed out (more than 5 s while
    /// another replica is renewing it), unless the provider issues shorter-lived tokens.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The scopes the provider granted, as it named them (empty when it did not say).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Why [`Broker::upstream_token`] has no token to give. As an axum rejection: 500, 403, 401
/// with an `invalid_token` challenge, 503 with `Retry-After`, or 500, in the order of the
/// variants. With the `rmcp` feature it converts into `rmcp::ErrorData`, so `?` works in a tool
/// returning `Result<_, ErrorData>`. No message includes a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTokenError {
    /// The request carries no verified `AuthInfo`: the route is not behind the bearer layer.
    #[error("the request was not authenticated: put the route behind the bearer layer")]
    NotAuthenticated,
    /// The access token is not one of this broker's (another authorization server's, or one
    /// that names no grant).
    #[error("the access token was not issued by this broker")]
    NotBrokered,
    /// The sign-in has ended: the grant was revoked or expired, the provider refused to renew
    /// its token, or the token expired with nothing to renew it. The user signs in again.
    #[error("the sign-in has ended: {0}")]
    SignInEnded(&'static str),
    /// The provider or the broker's store cannot be reached now; the grant is kept and a later
    /// call may succeed.
    #[error("the identity provider's token is unavailable now: {reason}")]
    Unavailable {
        /// What failed (no token in it).
        reason: String,
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// The stored token set cannot be read (a storage key that changed, corrupt data).
    #[error("the identity provider's token cannot be read: {0}")]
    Internal(String),
}

impl UpstreamTokenError {
    fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            retry_after: RETRY_AFTER,
        }
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotAuthenticated | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotBrokered => StatusCode::FORBIDDEN,
            Self::SignInEnded(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OAuth-style error code of the answer's body.
    fn code(&self) -> &'static str {
        match self {
            Self::NotAuthenticated | Self::Internal(_) => "server_error",
            Self::NotBrokered => "upstream_token_unavailable",
            Self::SignInEnded(_) => "invalid_token",
            Self::Unavailable { .. } => "temporarily_unavailable",
        }
    }
}

impl From<StoreError> for UpstreamTokenError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(%error, "broker store failed while reading upstream tokens");
        Self::unavailable("the broker's store is unavailable")
    }
}

impl IntoResponse for UpstreamTokenError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        if matches!(self, Self::NotAuthenticated) {
            tracing::error!("{description}");
        }
        let body = json!({"error": self.code(), "error_description": description});
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::SignInEnded(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    crate::challenge::bearer_challenge(&[
                        ("error", Some("invalid_token")),
                        ("error_description", Some(&description)),
                    ]),
                );
            }
            Self::Unavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    crate::challenge::retry_after_value(*retry_after),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(feature = "rmcp")]
impl From<UpstreamTokenError> for rmcp::ErrorData {
    /// A tool's error: `invalid_request` when the caller must sign in again (or is not the
    /// broker's), `internal_error` otherwise; `data` carries the code (and `retry_after`).
    fn from(error: UpstreamTokenError) -> Self {
        let message = error.to_string();
        match &error {
            UpstreamTokenError::SignInEnded(_) | UpstreamTokenError::NotBrokered => {
                rmcp::ErrorData::invalid_request(message, Some(json!({"error": error.code()})))
            }
            UpstreamTokenError::Unavailable { retry_after, .. } => rmcp::ErrorData::internal_error(
                message,
                Some(json!({"error": error.code(), "retry_after": retry_after.as_secs()})),
            ),
            _ => rmcp::ErrorData::internal_error(message, Some(json!({"error": error.code()}))),
        }
    }
}

/// An axum handler's parameter: the caller's upstream token, for a route behind the bearer
/// layer whose state gives the [`Broker`] (`Broker: FromRef<S>`; a `Router` whose state is the
/// `Broker` itself qualifies). Refusals answer as [`UpstreamTokenError`] does.
///
/// ```
/// use axum::{Router, routing::get};
/// use mcpauth::broker::{Broker, UpstreamToken};
///
/// async fn repositories(token: UpstreamToken) -> String {
///     // Call the provider's API with `token.expose_secret()`.
///     format!("{} scopes", token.scopes().len())
/// }
///
/// fn routes(broker: Broker) -> Router {
///     Router::new()
///         .route("/repositories", get(repositories))
///         .with_state(broker)
/// }
/// # let _ = routes;
/// ```
impl<S> FromRequestParts<S> for UpstreamToken
where
    Broker: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = UpstreamTokenError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<AuthInfo>()
            .cloned()
            .ok_or(UpstreamTokenError::NotAuthenticated)?;
        Broker::from_ref(state).upstream_token(&auth).await
    }
}

impl Broker {
    /// The identity provider's access token of the user behind `auth` (a request verified with
    /// one of this broker's access tokens), renewed first when it is near expiry.
    ///
    /// For tools that call the provider's API on the user's behalf. The token is never sent to
    /// the MCP client; see [`UpstreamToken`]. In an axum handler, [`UpstreamToken`] is also an
    /// extractor.
    ///
    /// ```no_run
    /// use mcpauth::AuthInfo;
    /// use mcpauth::broker::Broker;
    ///
    /// async fn whoami_upstream(broker: &Broker, auth: &AuthInfo) -> Result<String, String> {
    ///     let token = broker.upstream_token(auth).await.map_err(|e| e.to_string())?;
    ///     reqwest::Client::new()
    ///         .get("https://openidconnect.googleapis.com/v1/userinfo")
    ///         .bearer_auth(token.expose_secret())
    ///         .send()
    ///         .await
    ///         .map_err(|e| e.to_string())?
    ///         .text()
    ///         .await
    ///         .map_err(|e| e.to_string())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`UpstreamTokenError::NotBrokered`] for a token of another authorization server;
    /// [`UpstreamTokenError::SignInEnded`] when the grant has ended (the provider refusing to
    /// renew its token ends it here); [`UpstreamTokenError::Unavailable`] when the provider or
    /// the store cannot be reached (the grant is kept).
    pub async fn upstream_token(
        &self,
        auth: &AuthInfo,
    ) -> Result<UpstreamToken, UpstreamTokenError> {
        let state = &self.state;
        if auth.issuer() != state.issuer {
            return Err(UpstreamTokenError::NotBrokered);
        }
        let grant_id = auth
            .claim("sid")
            .and_then(Value::as_str)
            .ok_or(UpstreamTokenError::NotBrokered)?;
        let (grant, tokens) = state.fresh_upstream_tokens(grant_id).await?;
        if grant.subject != auth.subject() || auth.client_id() != Some(grant.client_id.as_str()) {
            return Err(UpstreamTokenError::NotBrokered);
        }
        Ok(UpstreamToken::new(&tokens))
    }
}

impl Broker {
    /// The identity provider's userinfo endpoint: the configured one of a plain OAuth 2.0
    /// provider (GitHub's `/user`), or the one its OpenID Connect discovery document names
    /// (`None` if it names none). A tool that only needs the user's profile calls it with the
    /// [`upstream_token`](Self::upstream_token).
    ///
    /// # Errors
    ///
    /// [`UpstreamTokenError::Unavailable`] when the discovery document cannot be fetched now.
    pub async fn upstream_userinfo_url(&self) -> Result<Option<url::Url>, UpstreamTokenError> {
        self.state.upstream.userinfo_url().await.map_err(|error| {
            tracing::warn!(%error, "the identity provider's endpoints are unknown");
            UpstreamTokenError::unavailable("the identity provider cannot be reached")
        })
    }
}

/// Whether `tokens` may be handed out without renewal at `now`.
fn is_fresh(tokens: &UpstreamTokens, now: u64) -> bool {
    tokens
        .expires_at
        .is_none_or(|at| at > now.saturating_add(RENEW_BEFORE_SECS))
}

/// Whether `tokens` still works for a call made now.
fn still_valid(tokens: &UpstreamTokens, now: u64) -> bool {
    tokens
        .expires_at
        .is_none_or(|at| at > now.saturating_add(STILL_VALID_SECS))
}

/// One async lock per grant renewing its upstream tokens in this process. Entries are created
/// on demand, removed when their last user is done, and at most [`MAX_LOCKS`] exist; beyond,
/// renewals go without a local lock (the store's lease still keeps them to one).
#[derive(Debug, Default)]
pub(crate) struct GrantLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held grant lock; dropping it releases the lock and forgets it when no one else waits.
pub(crate) struct GrantLockGuard<'a> {
    locks: &'a GrantLocks,
    grant_id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl GrantLocks {
    pub(crate) async fn lock(&self, grant_id: &str) -> GrantLockGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            match locks.get(grant_id) {
                Some(lock) => Some(lock.clone()),
                None => {
                    if locks.len() >= MAX_LOCKS {
                        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
                    }
                    (locks.len() < MAX_LOCKS).then(|| {
                        let lock = Arc::new(tokio::sync::Mutex::new(()));
                        locks.insert(grant_id.to_owned(), lock.clone());
                        lock
                    })
                }
            }
        };
        let guard = match lock {
            Some(lock) => Some(lock.lock_owned().await),
            None => None,
        };
        GrantLockGuard {
            locks: self,
            grant_id: grant_id.to_owned(),
            guard,
        }
    }

    /// How many grants have a lock now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for GrantLockGuard<'_> {
    fn drop(&mut self) {
        // Counts change only under the map's lock (waiters clone the entry there), so an entry
        // whose only owner is the map has no one holding or awaiting it.
        let mut locks = self
            .locks
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        if locks
            .get(&self.grant_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.grant_id);
        }
    }
}

impl fmt::Debug for GrantLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantLockGuard").finish_non_exhaustive()
    }
}

impl BrokerState {
    /// The grant and its upstream tokens, renewed first when near expiry.
    pub(crate) async fn fresh_upstream_tokens(
        &self,
        grant_id: &str,
    ) -> Result<(Grant, UpstreamTokens), UpstreamTokenError> {
        let (_, grant, tokens) = self.read_upstream(grant_id).await?;
        if is_fresh(&tokens, now_unix()) {
            return Ok((grant, tokens));
        }
        let _lock = self.grant_locks.lock(grant_id).await;
        self.renew_upstream(grant_id).await
    }

    /// At a refresh of the broker's tokens: the provider's token renewed when near expiry, or
    /// (one that never expires, from a provider that identifies users by userinfo) its user
    /// asked for again. A sign-in that ended is `invalid_grant`. A provider or store that
    /// cannot be reached does not hold the client up: its tokens are issued, and tools get a
    /// retryable error until the provider is back.
    pub(crate) async fn check_upstream_at_refresh(
        &self,
        grant_id: &str,
        grant: &Grant,
    ) -> Result<(), OAuthError> {
        match self.check_upstream(grant_id, grant).await {
            Ok(()) => Ok(()),
            Err(UpstreamTokenError::SignInEnded(why)) => {
                Err(OAuthError::invalid_grant(format!("{why}; sign in again")))
            }
            Err(error) => {
                tracing::warn!(%error, "the upstream sign-in was not checked at this refresh");
                Ok(())
            }
        }
    }

    /// `grant` as the caller just read it: a renewal reads it again under the grant's lock.
    async fn check_upstream(
        &self,
        grant_id: &str,
        grant: &Grant,
    ) -> Result<(), UpstreamTokenError> {
        let tokens = self.open_upstream(grant_id, grant)?;
        let now = now_unix();
        if tokens.expires_at.is_none() && !tokens.can_refresh(now) {
            if self.upstream.identifies_by_userinfo() {
                return self.recheck_user(grant_id, grant, &tokens).await;
            }
            return Ok(());
        }
        if is_fresh(&tokens, now) || !tokens.can_refresh(now) {
            // Nothing to renew with: the broker's own grant goes on; a tool asking for the
            // provider's token ends it.
            return Ok(());
        }
        let _lock = self.grant_locks.lock(grant_id).await;
        self.renew_upstream(grant_id).await.map(|_| ())
    }

    /// Asks the provider whether the user behind a never-expiring token is still there.
    async fn recheck_user(
        &self,
        grant_id: &str,
        grant: &Grant,
        tokens: &UpstreamTokens,
    ) -> Result<(), UpstreamTokenError> {
        let prefix = format!("{}|", self.upstream.config().id_name());
        let user_id = grant
            .subject
            .strip_prefix(&prefix)
            .unwrap_or(&grant.subject);
        match self.upstream.recheck_user(tokens, user_id).await {
            Ok(true) => Ok(()),
            Ok(false) | Err(UpstreamError::Refused { .. }) => {
                tracing::info!(
                    client_id = %grant.client_id,
                    "the identity provider no longer accepts the user's token; the grant ends"
                );
                self.revoke_grant(grant_id, RevokeCause::Upstream).await?;
                Err(UpstreamTokenError::SignInEnded(
                    "the identity provider no longer accepts the user's sign-in",
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot check the user at the identity provider");
                Err(UpstreamTokenError::unavailable(
                    "the identity provider cannot be reached",
                ))
            }
        }
    }

    /// The grant record (its bytes, for compare-and-swap), the grant and its opened tokens.
    async fn read_upstream(
        &self,
        grant_id: &str,
    ) -> Result<(Vec<u8>, Grant, UpstreamTokens), UpstreamTokenError> {
        let Some(bytes) = self.store.get(Namespace::Grant, grant_id).await? else {
            return Err(UpstreamTokenError::SignInEnded(
                "the grant was revoked or has expired",
            ));
        };
        let grant: Grant = records::decode(&bytes)?;
        let tokens = self.open_upstream(grant_id, &grant)?;
        Ok((bytes, grant, tokens))
    }

    fn open_upstream(
        &self,
        grant_id: &str,
        grant: &Grant,
    ) -> Result<UpstreamTokens, UpstreamTokenError> {
        let unreadable = |what: &str| {
            tracing::error!(
                "a grant's upstream tokens cannot be {what}: was the storage key changed?"
            );
            UpstreamTokenError::Internal(format!("the sealed token set cannot be {what}"))
        };
        let sealed = URL_SAFE_NO_PAD
            .decode(&grant.upstream)
            .map_err(|_| unreadable("decoded"))?;
        let plain = self
            .sealing
            .open(grant_id, &sealed)
            .map_err(|_| unreadable("opened"))?
            .plaintext;
        serde_json::from_slice(&plain).map_err(|_| unreadable("read"))
    }

    /// Renews the grant's upstream tokens unless another caller did meanwhile. Called under the
    /// grant's local lock; the lease in the grant record keeps other replicas out.
    async fn renew_upstream(
        &self,
        grant_id: &str,
    ) -> Result<(Grant, UpstreamTokens), UpstreamTokenError> {
        let holder = random_token(16).map_err(|e| UpstreamTokenError::Internal(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(LEASE_SECS + 5);
        let mut pause = Duration::from_millis(50);
        loop {
            let (bytes, mut grant, tokens) = self.read_upstream(grant_id).await?;
            let now = now_unix();
            if is_fresh(&tokens, now) {
                return Ok((grant, tokens));
            }
            if grant
                .upstream_refresh
                .as_ref()
                .is_some_and(|lease| lease.until > now)
            {
                // Another replica renews: its set will do; the current token still serves
                // while it is valid.
                if still_valid(&tokens, now) {
                    return Ok((grant, tokens));
                }
                if Instant::now() >= deadline {
                    return Err(UpstreamTokenError::unavailable(
                        "another replica is renewing the identity provider's token",
                    ));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
            if !tokens.can_refresh(now) {
                tracing::info!(
                    client_id = %grant.client_id,
                    "the identity provider's token expired and cannot be renewed; the grant ends"
                );
                self.revoke_grant(grant_id, RevokeCause::Upstream).await?;
                return Err(UpstreamTokenError::SignInEnded(
                    "the identity provider's token expired and cannot be renewed",
                ));
            }
            grant.upstream_refresh = Some(RefreshLease {
                holder: holder.clone(),
                until: now.saturating_add(LEASE_SECS),
            });
            let leased = records::encode(&grant)?;
            let taken = self
                .store
                .compare_and_swap(
                    Namespace::Grant,
                    grant_id,
                    &bytes,
                    Some(leased.clone()),
                    Some(self.lifetimes.refresh_token),
                )
                .await?;
            if taken {
                return self.renew_leased(grant_id, &holder, leased, &tokens).await;
            }
        }
    }

    /// With the lease held: asks the provider, then stores the new set and drops the lease.
    async fn renew_leased(
        &self,
        grant_id: &str,
        holder: &str,
        leased: Vec<u8>,
        tokens: &UpstreamTokens,
    ) -> Result<(Grant, UpstreamTokens), UpstreamTokenError> {
        let renewed = match self.upstream.refresh(tokens).await {
            Ok(renewed) => renewed,
            Err(UpstreamError::Refused { code, .. }) if UpstreamClient::ends_sign_in(&code) => {
                tracing::info!(
                    upstream_error = %code,
                    "the identity provider refused the refresh token; the grant ends"
                );
                self.revoke_grant(grant_id, RevokeCause::Upstream).await?;
                return Err(UpstreamTokenError::SignInEnded(
                    "the identity provider ended the sign-in",
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "renewing the identity provider's token failed; the grant is kept");
                self.release_lease(grant_id, holder).await;
                return Err(UpstreamTokenError::unavailable(match error {
                    UpstreamError::Unavailable(_) => "the identity provider cannot be reached",
                    _ => "the identity provider refused to renew its token",
                }));
            }
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&renewed)
                .map_err(|e| UpstreamTokenError::Internal(e.to_string()))?,
        );
        let sealed = self
            .sealing
            .seal(grant_id, &plain)
            .map_err(|e| UpstreamTokenError::Internal(e.to_string()))?;
        let sealed = URL_SAFE_NO_PAD.encode(sealed);
        let mut expected = leased;
        for _ in 0..WRITE_ATTEMPTS {
            let mut grant: Grant = records::decode(&expected)?;
            if grant.upstream_refresh.as_ref().map(|l| l.holder.as_str()) != Some(holder) {
                // The lease ran out and another replica took over: its set is the one kept.
                return Ok((grant, renewed));
            }
            grant.upstream = sealed.clone();
            grant.upstream_refresh = None;
            let written = self
                .store
                .compare_and_swap(
                    Namespace::Grant,
                    grant_id,
                    &expected,
                    Some(records::encode(&grant)?),
                    Some(self.lifetimes.refresh_token),
                )
                .await?;
            if written {
                tracing::debug!(client_id = %grant.client_id, "identity provider token renewed");
                return Ok((grant, renewed));
            }
            // The client refreshed (its refresh-token chain changed) or the grant was revoked.
            match self.store.get(Namespace::Grant, grant_id).await? {
                Some(bytes) => expected = bytes,
                None => {
                    return Err(UpstreamTokenError::SignInEnded(
                        "the grant was revoked or has expired",
                    ));
                }
            }
        }
        Err(UpstreamTokenError::unavailable(
            "the grant changes concurrently; try again",
        ))
    }

    /// Drops the lease after a failed renewal so another caller may try at once (best effort:
    /// it runs out on its own).
    async fn release_lease(&self, grant_id: &str, holder: &str) {
        let Ok(Some(bytes)) = self.store.get(Namespace::Grant, grant_id).await else {
            return;
        };
        let Ok(mut grant) = records::decode::<Grant>(&bytes) else {
            return;
        };
        if grant.upstream_refresh.as_ref().map(|l| l.holder.as_str()) != Some(holder) {
            return;
        }
        grant.upstream_refresh = None;
        if let Ok(released) = records::encode(&grant) {
            let _ = self
                .store
                .compare_and_swap(
                    Namespace::Grant,
                    grant_id,
                    &bytes,
                    Some(released),
                    Some(self.lifetimes.refresh_token),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_at: Option<u64>, refresh: Option<&str>) -> UpstreamTokens {
        UpstreamTokens {
            access_token: "at-secret-value".into(),
            refresh_token: refresh.map(str::to_owned),
            expires_at,
            refresh_expires_at: None,
            scope: Some("repo read:user".into()),
            id_token: None,
        }
    }

    #[test]
    fn tokens_are_renewed_a_minute_before_they_expire() {
        let now = 1_000_000;
        assert!(is_fresh(&tokens(None, None), now));
        assert!(is_fresh(&tokens(Some(now + 61), None), now));
        assert!(!is_fresh(&tokens(Some(now + 60), None), now));
        assert!(still_valid(&tokens(Some(now + 30), None), now));
        assert!(!still_valid(&tokens(Some(now + 5), None), now));
    }

    #[test]
    fn the_token_and_its_errors_never_show_the_secret() {
        let token = UpstreamToken::new(&tokens(Some(2_000_000_000), Some("rt-secret")));
        assert_eq!(token.expose_secret(), "at-secret-value");
        assert_eq!(token.scopes(), ["repo", "read:user"]);
        let debug = format!("{token:?} {token:#?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains("at-secret-value"), "{debug}");
        let inner = format!("{:?}", tokens(Some(1), Some("rt-secret")));
        assert!(!inner.contains("secret"), "{inner}");
        for error in [
            UpstreamTokenError::NotAuthenticated,
            UpstreamTokenError::NotBrokered,
            UpstreamTokenError::SignInEnded("the identity provider ended the sign-in"),
            UpstreamTokenError::unavailable("the identity provider cannot be reached"),
            UpstreamTokenError::Internal("the sealed token set cannot be opened".into()),
        ] {
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("secret-value"), "{shown}");
        }
    }

    #[test]
    fn errors_answer_with_their_status_and_headers() {
        let ended = UpstreamTokenError::SignInEnded("gone").into_response();
        assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
        let challenge = ended.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        let down = UpstreamTokenError::unavailable("down").into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            UpstreamTokenError::NotBrokered.into_response().status(),
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn grant_locks_exclude_each_other_and_go_when_idle() {
        let locks = Arc::new(GrantLocks::default());
        let first = locks.lock("g1").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("g1").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let other = locks.lock("g2").await;
        assert_eq!(locks.len(), 2);
        drop(first);
        waiter.await.unwrap();
        drop(other);
        assert_eq!(locks.len(), 0);
    }
}
