//! Grants and the tokens issued from them: the one-time code written at the end of a sign-in,
//! its redemption, refresh-token rotation, revocation, and the RFC 9068 access tokens.
//!
//! Refresh tokens rotate on every use. The grant keeps the hash of the token last used
//! (`refresh_previous`) and of the tokens issued for it that are not used yet
//! (`refresh_current`, at most [`MAX_UNUSED_REFRESH_TOKENS`]): presenting the previous token
//! again (a client that lost the answer, or refreshed twice at once) issues another one, and
//! presenting one of the unused tokens makes it the previous one and forgets the others. Any
//! other token the broker issued for the grant is an older generation — a stolen copy, or a
//! client that kept one it should have dropped — and ends the grant. A token names its grant
//! (see [`refresh_token`](super::refresh_token)), so the store keeps nothing per token. Every
//! rotation is a compare-and-swap on the grant record, so two replicas racing on one token
//! cannot both rotate from the same state.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use super::records::{self, CodeRecord, Grant, Transaction};
use super::refresh_token::{self, Presented};
use super::responses::OAuthError;
use super::secrets::{random_token, token_hash};
use super::store::{Namespace, Put, StoreError, Write};
use super::upstream::UpstreamTokens;
use super::{BrokerState, now_unix};
use crate::metrics::{self, RevokeCause};

/// How many issued-but-unused refresh tokens one grant accepts.
pub(crate) const MAX_UNUSED_REFRESH_TOKENS: usize = 4;
/// How many times a rotation retries when another request changed the grant meanwhile.
const ROTATION_ATTEMPTS: usize = 4;

pub(crate) struct NewGrant<'a> {
    pub(crate) transaction: &'a Transaction,
    pub(crate) subject: &'a str,
    pub(crate) upstream: &'a UpstreamTokens,
}

/// The claims of an access token (RFC 9068), in this order.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: String,
    iat: u64,
    exp: u64,
    jti: String,
    /// The grant, by its opaque id: a tool reaches the grant's upstream tokens from it.
    sid: &'a str,
}

/// What the token endpoint answers.
#[derive(Debug)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_in: u64,
}

impl IssuedTokens {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scopes.join(" "),
        })
    }
}

/// Where a refresh token presented for a grant stands in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenStanding {
    /// Issued and not used yet: using it rotates the grant.
    Unused,
    /// The one used last: accepted again while none of its successors is used.
    Previous,
    /// Issued by the broker for this grant, and rotated away since: a replay.
    Rotated,
}

/// The standing of the token whose hash is `hash`, when the grant accepts it.
fn standing(grant: &Grant, hash: &str) -> Option<TokenStanding> {
    if grant.refresh_current.iter().any(|current| current == hash) {
        Some(TokenStanding::Unused)
    } else if grant.refresh_previous.as_deref() == Some(hash) {
        Some(TokenStanding::Previous)
    } else {
        None
    }
}

fn user_index(subject: &str) -> String {
    format!("user:{subject}")
}

fn client_index(client_id: &str) -> String {
    format!("client:{client_id}")
}

impl BrokerState {
    /// Writes the grant (upstream tokens sealed) and a one-time code for it; returns the code.
    pub(crate) async fn create_grant(&self, new: NewGrant<'_>) -> Result<String, OAuthError> {
        let grant_id = random_token(16)?;
        let upstream = serde_json::to_vec(new.upstream)
            .map_err(|_| OAuthError::unavailable("cannot store the sign-in", 5))?;
        let sealed = self.sealing.seal(&grant_id, &upstream)?;
        let transaction = new.transaction;
        let grant = Grant {
            client_id: transaction.client_id.clone(),
            subject: new.subject.to_owned(),
            scopes: transaction.scopes.clone(),
            resource: transaction.resource.clone(),
            created_at: now_unix(),
            refresh_current: Vec::new(),
            refresh_previous: None,
            upstream: URL_SAFE_NO_PAD.encode(sealed),
            upstream_refresh: None,
        };
        let code = random_token(32)?;
        let record = CodeRecord {
            grant_id: grant_id.clone(),
            client_id: transaction.client_id.clone(),
            redirect_uri: transaction.redirect_uri.clone(),
            redirect_uri_sent: transaction.redirect_uri_sent,
            code_challenge: transaction.code_challenge.clone(),
            expires_at: now_unix().saturating_add(self.lifetimes.code.as_secs()),
        };
        let (user, client, code_hash) = (
            user_index(new.subject),
            client_index(&transaction.client_id),
            token_hash(&code),
        );
        // The grant lives until its code expires unredeemed; redemption extends it. The grant,
        // its indexes and the code are written in that order (at once where the store can).
        let code_lifetime = Some(self.lifetimes.code);
        self.store
            .write_all(vec![
                Write::Put(Put::new(
                    Namespace::Grant,
                    &grant_id,
                    records::encode(&grant)?,
                    code_lifetime,
                )),
                Write::IndexAdd {
                    index: &user,
                    member: &grant_id,
                },
                Write::IndexAdd {
                    index: &client,
                    member: &grant_id,
                },
                Write::Put(Put::new(
                    Namespace::Code,
                    &code_hash,
                    records::encode(&record)?,
                    code_lifetime,
                )),
            ])
            .await?;
        Ok(code)
    }

    /// The grant's upstream tokens sealed with the current storage key, when a previous key
    /// sealed them: a grant is re-encrypted the next time it is written anyway, so a storage
    /// key rotation needs no migration.
    fn resealed_upstream(&self, grant_id: &str, grant: &Grant) -> Option<String> {
        if !self.sealing.has_previous() {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(&grant.upstream).ok()?;
        let resealed = self.sealing.reseal(grant_id, &sealed)?;
        tracing::debug!("upstream tokens sealed again with the current storage key");
        Some(URL_SAFE_NO_PAD.encode(resealed))
    }

    /// Takes the code's record atomically, recording its redemption in the same write. A code
    /// that was already redeemed ends its grant once tokens were issued from it; a redemption
    /// that loses a race with one still issuing (the same code sent twice at once, to one
    /// replica or two) is refused and ends nothing, so the winner's answer stands and exactly
    /// one of them gets tokens.
    pub(crate) async fn take_code(&self, code: &str) -> Result<CodeRecord, OAuthError> {
        let hash = token_hash(code);
        let Some(bytes) = self.store.get(Namespace::Code, &hash).await? else {
            return Err(self.code_not_redeemable(&hash).await);
        };
        let record: CodeRecord = records::decode(&bytes)?;
        // Taken only if no other request took it since it was read: one winner, whose
        // redemption record is written with the take, so a loser finds it.
        let redeemed = Put::new(
            Namespace::RedeemedCode,
            &hash,
            record.grant_id.clone().into_bytes(),
            Some(self.lifetimes.code),
        );
        let taken = self
            .store
            .compare_and_swap_and_put(Namespace::Code, &hash, &bytes, None, None, redeemed)
            .await?;
        if !taken {
            return Err(self.code_not_redeemable(&hash).await);
        }
        if record.expires_at < now_unix() {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        Ok(record)
    }

    /// Why a code found no record to take: already redeemed (its grant ended if tokens were
    /// issued from it), or unknown or expired.
    async fn code_not_redeemable(&self, hash: &str) -> OAuthError {
        let redeemed = match self.store.get(Namespace::RedeemedCode, hash).await {
            Ok(redeemed) => redeemed,
            Err(error) => return error.into(),
        };
        let Some(grant_id) = redeemed else {
            return OAuthError::invalid_grant("the authorization code is unknown or expired");
        };
        let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
        match self.tokens_issued(&grant_id).await {
            Ok(false) => {
                return OAuthError::invalid_grant("the authorization code was already used");
            }
            Ok(true) => {}
            Err(error) => return error.into(),
        }
        tracing::warn!("authorization code replayed; its grant is revoked");
        if let Err(error) = self.revoke_grant(&grant_id, RevokeCause::Replay).await {
            return error.into();
        }
        OAuthError::invalid_grant(
            "the authorization code was already used; the tokens issued from it are revoked",
        )
    }

    /// Whether the grant exists and tokens were issued from it (it has had a refresh token).
    async fn tokens_issued(&self, grant_id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.get(Namespace::Grant, grant_id).await? else {
            return Ok(false);
        };
        let grant: Grant = records::decode(&bytes)?;
        Ok(!grant.refresh_current.is_empty() || grant.refresh_previous.is_some())
    }

    /// Issues the first tokens of a grant whose code was just redeemed.
    pub(crate) async fn issue_for_code(&self, grant_id: &str) -> Result<IssuedTokens, OAuthError> {
        let Some(bytes) = self.store.get(Namespace::Grant, grant_id).await? else {
            return Err(OAuthError::invalid_grant("the grant no longer exists"));
        };
        let mut grant: Grant = records::decode(&bytes)?;
        let refresh_token = refresh_token::mint(&self.refresh_token_key, grant_id)?;
        grant.refresh_current = vec![token_hash(&refresh_token)];
        let swapped = self
            .store
            .compare_and_swap(
                Namespace::Grant,
                grant_id,
                &bytes,
                Some(records::encode(&grant)?),
                Some(self.lifetimes.refresh_token),
            )
            .await?;
        if !swapped {
            return Err(OAuthError::invalid_grant(
                "the grant changed; sign in again",
            ));
        }
        let scopes = grant.scopes.clone();
        self.tokens(grant_id, &grant, scopes, refresh_token)
    }

    /// The grant a presented refresh token belongs to, with its record's bytes (for
    /// compare-and-swap), when the token is one the grant accepts or one the broker issued for
    /// it earlier; `None` for a token that names no grant, a grant that is gone, or a token
    /// the broker did not issue.
    pub(crate) async fn grant_of_refresh_token(
        &self,
        presented: &Presented<'_>,
    ) -> Result<Option<(Vec<u8>, Grant, TokenStanding)>, OAuthError> {
        let Some(bytes) = self.store.get(Namespace::Grant, presented.grant_id).await? else {
            return Ok(None);
        };
        let grant: Grant = records::decode(&bytes)?;
        let standing = standing(&grant, &token_hash(presented.token())).or_else(|| {
            presented
                .issued_by(&self.refresh_token_key)
                .then_some(TokenStanding::Rotated)
        });
        Ok(standing.map(|standing| (bytes, grant, standing)))
    }

    /// The `refresh_token` grant: rotation with reuse detection (see the module docs).
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        requested_scopes: Option<&str>,
    ) -> Result<IssuedTokens, OAuthError> {
        let unknown = || OAuthError::invalid_grant("the refresh token is unknown or expired");
        let presented = Presented::parse(refresh_token).ok_or_else(unknown)?;
        let grant_id = presented.grant_id;
        let hash = token_hash(refresh_token);
        let mut provider_checked = false;
        for _ in 0..ROTATION_ATTEMPTS {
            let Some((bytes, mut grant, standing)) =
                self.grant_of_refresh_token(&presented).await?
            else {
                return Err(unknown());
            };
            if grant.client_id != client_id {
                return Err(OAuthError::invalid_grant(
                    "the refresh token was issued to another client",
                ));
            }
            let scopes = narrowed_scopes(&grant.scopes, requested_scopes)?;
            let new_token = refresh_token::mint(&self.refresh_token_key, grant_id)?;
            let new_hash = token_hash(&new_token);
            match standing {
                TokenStanding::Unused => {
                    grant.refresh_previous = Some(hash.clone());
                    grant.refresh_current = vec![new_hash];
                }
                TokenStanding::Previous => {
                    if grant.refresh_current.len() >= MAX_UNUSED_REFRESH_TOKENS {
                        return Err(OAuthError::invalid_grant(
                            "the refresh token was used too many times without its successor",
                        ));
                    }
                    grant.refresh_current.push(new_hash);
                }
                TokenStanding::Rotated => {
                    tracing::warn!(client_id, "old refresh token reused; the grant is revoked");
                    self.revoke_grant(grant_id, RevokeCause::Replay).await?;
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was already rotated; the grant is revoked",
                    ));
                }
            }
            if !provider_checked {
                // Once the token is judged good (a replayed one never reaches the provider):
                // the sign-in at the provider must still hold, its tokens renewed when near
                // expiry, a user whose tokens never expire asked for again. A renewal rewrites
                // the grant, so the swap below fails and the loop judges the token again.
                provider_checked = true;
                self.check_upstream_at_refresh(grant_id, &grant).await?;
            }
            if let Some(resealed) = self.resealed_upstream(grant_id, &grant) {
                grant.upstream = resealed;
            }
            // The grant naming the new token, written only if no other request changed it
            // meanwhile.
            let swapped = self
                .store
                .compare_and_swap(
                    Namespace::Grant,
                    grant_id,
                    &bytes,
                    Some(records::encode(&grant)?),
                    Some(self.lifetimes.refresh_token),
                )
                .await?;
            if swapped {
                return self.tokens(grant_id, &grant, scopes, new_token);
            }
            // Another request rotated the grant meanwhile: judge the token again against the
            // new state.
        }
        Err(OAuthError::unavailable(
            "the grant is being refreshed concurrently; try again",
            1,
        ))
    }

    /// Ends a grant: its refresh tokens stop working now, its access tokens when they expire.
    /// `true` when there was one to end.
    pub(crate) async fn revoke_grant(
        &self,
        grant_id: &str,
        cause: RevokeCause,
    ) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.take(Namespace::Grant, grant_id).await? else {
            return Ok(false);
        };
        metrics::grant_revoked(cause);
        let grant: Grant = records::decode(&bytes)?;
        self.store
            .index_remove(&user_index(&grant.subject), grant_id)
            .await?;
        self.store
            .index_remove(&client_index(&grant.client_id), grant_id)
            .await?;
        tracing::info!(client_id = %grant.client_id, "grant revoked");
        Ok(true)
    }

    /// Ends every grant of a user (`by_user`) or of a client; the number ended.
    pub(crate) async fn revoke_all(&self, key: &str, by_user: bool) -> Result<usize, StoreError> {
        let index = if by_user {
            user_index(key)
        } else {
            client_index(key)
        };
        let mut ended = 0;
        for grant_id in self.store.index_members(&index).await? {
            if self.revoke_grant(&grant_id, RevokeCause::Operator).await? {
                ended += 1;
            } else {
                // A grant that expired on its own leaves its index entry behind.
                self.store.index_remove(&index, &grant_id).await?;
            }
        }
        Ok(ended)
    }

    /// Signs an access token and assembles the answer. `sid` names the grant (an opaque random
    /// id), so a tool can reach the grant's upstream tokens from the access token.
    fn tokens(
        &self,
        grant_id: &str,
        grant: &Grant,
        scopes: Vec<String>,
        refresh_token: String,
    ) -> Result<IssuedTokens, OAuthError> {
        let now = now_unix();
        let lifetime = self.lifetimes.access_token.as_secs();
        let claims = AccessTokenClaims {
            iss: &self.issuer,
            sub: &grant.subject,
            aud: &grant.resource,
            client_id: &grant.client_id,
            scope: scopes.join(" "),
            iat: now,
            exp: now.saturating_add(lifetime),
            jti: random_token(16)?,
            sid: grant_id,
        };
        let access_token = self.keys.active().sign_access_token(&claims).map_err(|_| {
            tracing::error!("cannot sign an access token");
            OAuthError::unavailable("the authorization server cannot sign tokens now", 5)
        })?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            scopes,
            expires_in: lifetime,
        })
    }
}

/// The scopes of a refreshed access token: the grant's, or a subset the client asks for.
fn narrowed_scopes(granted: &[String], requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.to_vec());
    };
    let mut scopes = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.iter().any(|g| g == scope) {
            return Err(OAuthError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("`{scope}` was not granted; a refresh can only narrow the scopes"),
            ));
        }
        if !scopes.iter().any(|s: &String| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}
