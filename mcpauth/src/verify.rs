//! Verifying a JWT access token for one protected resource (ARCHITECTURE.md, "The path of one
//! request").
//!
//! Order: decode the header and payload (header rules first), pick the authorization server by
//! `iss` among the resource's (no network for an unknown issuer), find the key by `kid` in that
//! server's cached key set (refetching, rate-limited, on an unknown `kid` or a failed
//! signature), verify the signature with the algorithm the key is pinned to, then check `exp`,
//! `nbf`, `aud` and `sub`.

use std::sync::Arc;
use std::time::Duration;

use crate::auth_error::{AuthError, AuthErrorReason};
use crate::auth_info::{AuthInfo, Identity, system_time};
use crate::auth_server::AuthServerHandle;
use crate::claims::{self, ExpectedAudience};
use crate::jwks::{KeyCache, KeysAnswer, Lookup, VerificationKey};
use crate::jwt::{TokenTypePolicy, UnverifiedJwt, decode_unverified};

/// What JWT verification checks besides the signature.
#[derive(Debug, Clone)]
pub(crate) struct JwtRules {
    pub(crate) leeway: Duration,
    pub(crate) audience: Option<ExpectedAudience>,
    pub(crate) type_policy: TokenTypePolicy,
}

/// A token whose signature verified, with what the verified-token cache needs to serve it
/// again: when it expires, the key and server that vouched for it, and its `typ` and `nbf`
/// (the rules of each route are checked again on every use).
#[derive(Debug)]
pub(crate) struct VerifiedToken {
    /// What the token says, without the token itself (the cache's key holds that).
    pub(crate) identity: Identity,
    pub(crate) exp: f64,
    nbf: Option<f64>,
    /// The header's `typ`.
    pub(crate) typ: Option<String>,
    pub(crate) server: Arc<AuthServerHandle>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) key: Arc<VerificationKey>,
}

impl VerifiedToken {
    /// Checks the rules of one route again (for a token verified earlier, maybe under other
    /// rules): its server is one of `servers`, `typ`, `exp`/`nbf` with leeway, audience.
    pub(crate) fn check(
        &self,
        servers: &[Arc<AuthServerHandle>],
        rules: &JwtRules,
        now: f64,
    ) -> Result<(), AuthError> {
        if !servers.iter().any(|s| Arc::ptr_eq(s, &self.server)) {
            return Err(untrusted_issuer(self.server.issuer()));
        }
        rules.type_policy.check(self.typ.as_deref())?;
        // `exp` needs no check here: an entry is only used before it.
        claims::check_not_before(self.nbf, now, rules.leeway)?;
        if let Some(expected) = &rules.audience {
            expected.check(self.identity.audience())?;
        }
        Ok(())
    }
}

fn untrusted_issuer(issuer: &str) -> AuthError {
    AuthError::invalid_token(
        AuthErrorReason::UntrustedIssuer,
        format!("The issuer {issuer:?} is not an authorization server of this resource."),
    )
}

fn verifies(jwt: &UnverifiedJwt<'_>, key: &VerificationKey) -> bool {
    jsonwebtoken::crypto::verify(
        jwt.signature,
        jwt.signing_input.as_bytes(),
        &key.key,
        jwt.algorithm,
    )
    .unwrap_or(false)
}

fn invalid_signature() -> AuthError {
    AuthError::invalid_token(
        AuthErrorReason::InvalidSignature,
        "The token's signature does not verify.",
    )
}

fn unavailable(cache_detail: &str, retry_after: Duration) -> AuthError {
    AuthError::Unavailable {
        reason: AuthErrorReason::KeysUnavailable,
        detail: format!("The authorization server's keys cannot be fetched: {cache_detail}"),
        retry_after,
    }
}

/// Checks the signature with the key the token names, refreshing the key set once when the
/// key is unknown or the signature fails (a rotation that reused a `kid`).
async fn check_signature(
    cache: &Arc<KeyCache>,
    jwt: &UnverifiedJwt<'_>,
    retry_after: Duration,
) -> Result<Arc<VerificationKey>, AuthError> {
    let kid = jwt.kid.as_deref();
    let set = match cache.keys().await {
        KeysAnswer::Keys(set) => set,
        KeysAnswer::NotNow { retry_after, .. } => {
            return Err(unavailable("the last attempt failed", retry_after));
        }
        KeysAnswer::Failed(error) => return Err(unavailable(&error, retry_after)),
    };
    let mismatch = || {
        AuthError::invalid_token(
            AuthErrorReason::UnsupportedAlgorithm,
            format!(
                "The key {:?} may not verify {:?} signatures.",
                kid.unwrap_or(""),
                jwt.algorithm
            ),
        )
    };
    let unknown = || {
        AuthError::invalid_token(
            AuthErrorReason::UnknownKey,
            match kid {
                Some(kid) => format!("No key of the authorization server has the kid {kid:?}."),
                None => {
                    "The token has no kid and the authorization server has several keys.".to_owned()
                }
            },
        )
    };
    let first = match set.lookup(kid, jwt.algorithm) {
        Lookup::Found(key) if verifies(jwt, &key) => return Ok(key),
        Lookup::Found(key) => Some(key),
        Lookup::AlgorithmMismatch => return Err(mismatch()),
        Lookup::Unknown => None,
    };
    // Unknown key, or a signature that failed: maybe the keys rotated. Refetch (rate-limited).
    let newer = match cache.refresh(Some(set.generation)).await {
        KeysAnswer::Keys(newer) => newer,
        KeysAnswer::NotNow {
            last_failed: true,
            retry_after,
        } if first.is_none() => {
            return Err(unavailable("the last attempt failed", retry_after));
        }
        KeysAnswer::Failed(error) if first.is_none() => {
            return Err(unavailable(&error, retry_after));
        }
        _ if first.is_some() => return Err(invalid_signature()),
        _ => return Err(unknown()),
    };
    match newer.lookup(kid, jwt.algorithm) {
        Lookup::Found(key) => {
            let same_key = first.as_ref().is_some_and(|old| Arc::ptr_eq(old, &key));
            if !same_key && verifies(jwt, &key) {
                Ok(key)
            } else {
                Err(invalid_signature())
            }
        }
        Lookup::AlgorithmMismatch => Err(mismatch()),
        Lookup::Unknown if first.is_some() => Err(invalid_signature()),
        Lookup::Unknown => Err(unknown()),
    }
}

/// Verifies `token` as a JWT issued by one of `servers`, under `rules`: its `AuthInfo`, and
/// what the verified-token cache keeps of it.
pub(crate) async fn verify_jwt(
    token: &str,
    servers: &[Arc<AuthServerHandle>],
    rules: &JwtRules,
    retry_after: Duration,
) -> Result<(AuthInfo, VerifiedToken), AuthError> {
    let jwt = decode_unverified(token, rules.type_policy)?;
    let Some(issuer) = claims::string_claim(&jwt.claims, "iss")? else {
        return Err(AuthError::invalid_token(
            AuthErrorReason::MissingIssuer,
            "The token has no iss claim.",
        ));
    };
    let Some(server) = servers.iter().find(|s| s.issuer() == issuer) else {
        return Err(untrusted_issuer(issuer));
    };
    let keys = server.key_cache().await?;
    let key = check_signature(&keys, &jwt, retry_after).await?;

    let validity = claims::check_times(&jwt.claims, claims::now_seconds(), rules.leeway)?;
    let audience = claims::audiences(&jwt.claims)?;
    if let Some(expected) = &rules.audience {
        expected.check(&audience)?;
    }
    let subject = match claims::string_claim(&jwt.claims, "sub")? {
        Some(sub) if !sub.is_empty() => sub.to_owned(),
        _ => {
            return Err(AuthError::invalid_token(
                AuthErrorReason::MissingSubject,
                "The token has no sub claim.",
            ));
        }
    };
    let scopes = claims::scopes(&jwt.claims, server.scope_claims())?;
    let client_id = claims::client_id(&jwt.claims)?;

    let issuer = server.issuer().to_owned();
    let mut info = AuthInfo::builder(token, issuer, subject)
        .audience(audience)
        .scopes(scopes);
    if let Some(client_id) = client_id {
        info = info.client_id(client_id);
    }
    if let Some(expires_at) = system_time(validity.exp) {
        info = info.expires_at(expires_at);
    }
    let info = info.claims_json(jwt.payload).build();
    let verified = VerifiedToken {
        identity: info.identity(),
        exp: validity.exp,
        nbf: validity.nbf,
        typ: jwt.typ,
        server: server.clone(),
        keys,
        key,
    };
    Ok((info, verified))
}
