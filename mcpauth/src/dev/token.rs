//! Minting access tokens on the development authorization server.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::keys::DevAlgorithm;
use super::{DevServerError, DevState};

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn random_id(bytes: usize) -> Result<String, DevServerError> {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).map_err(|_| DevServerError::Keys("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// The default lifetime of minted tokens.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Builds and signs one JWT access token (RFC 9068 profile) on a
/// [`DevAuthServer`](super::DevAuthServer).
///
/// Defaults: `iss` = the server's issuer, `sub` = the server's default subject, `client_id` =
/// `dev-client`, `iat` = now, `exp` = in one hour, a random `jti`, header `typ: at+jwt`, RS256
/// with the current RSA key. No `aud` and no `scope` unless set. Every default can be changed or
/// removed, so tests can mint exactly the broken token they need.
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenBuilder {
    state: Arc<DevState>,
    claims: Map<String, Value>,
    algorithm: DevAlgorithm,
    typ: Option<String>,
    key_id: Option<String>,
    header_params: Map<String, Value>,
}

impl TokenBuilder {
    pub(crate) fn new(state: Arc<DevState>) -> Self {
        let now = now_unix();
        let lifetime = i64::try_from(DEFAULT_TOKEN_LIFETIME.as_secs()).unwrap_or(3600);
        let mut claims = Map::new();
        claims.insert("iss".into(), state.issuer.clone().into());
        claims.insert("sub".into(), state.default_subject.clone().into());
        claims.insert("client_id".into(), "dev-client".into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + lifetime).into());
        Self {
            state,
            claims,
            algorithm: DevAlgorithm::default(),
            typ: Some("at+jwt".into()),
            key_id: None,
            header_params: Map::new(),
        }
    }

    /// Sets `sub`.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.claim("sub", subject.into())
    }

    /// Sets `aud` to one value (a JSON string).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.claim("aud", audience.into())
    }

    /// Sets `aud` to several values (a JSON array).
    pub fn audiences<I>(self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let list: Vec<Value> = audiences
            .into_iter()
            .map(|a| Value::String(a.into()))
            .collect();
        self.claim("aud", list)
    }

    /// Sets `scope` to the space-separated scopes.
    pub fn scopes<I>(self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.claim("scope", scopes.join(" "))
    }

    /// Sets `client_id`.
    pub fn client_id(self, client_id: impl Into<String>) -> Self {
        self.claim("client_id", client_id.into())
    }

    /// Sets `iss` (to mint a token from a wrong issuer).
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.claim("iss", issuer.into())
    }

    /// Sets `exp` to `lifetime` from now.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        self.expires_at(now_unix().saturating_add(seconds))
    }

    /// Sets `exp` to a Unix time (in the past for an expired token).
    pub fn expires_at(self, unix_seconds: i64) -> Self {
        self.claim("exp", unix_seconds)
    }

    /// Sets `nbf` to a Unix time.
    pub fn not_before(self, unix_seconds: i64) -> Self {
        self.claim("nbf", unix_seconds)
    }

    /// Sets `iat` to a Unix time.
    pub fn issued_at(self, unix_seconds: i64) -> Self {
        self.claim("iat", unix_seconds)
    }

    /// Sets any claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Removes a claim (for example `exp`, to mint a token without expiry).
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Signs with the current key of `algorithm` (default RS256).
    pub fn algorithm(mut self, algorithm: DevAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the header `typ` (`None` leaves it out; default `at+jwt`).
    pub fn header_type(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_owned);
        self
    }

    /// Puts another `kid` in the header than the signing key's.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// Sets any JOSE header parameter (`crit`, `jku`, `x5u`, …; it may override `alg`, `kid`
    /// or `typ`), to mint the hostile tokens tests need.
    pub fn header_param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.header_params.insert(name.into(), value.into());
        self
    }

    /// The claims as they stand.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Signs the token, with a fresh random `jti` unless one was set.
    pub fn sign(mut self) -> Result<String, DevServerError> {
        crate::crypto::install_provider();
        if !self.claims.contains_key("jti") {
            self.claims.insert("jti".into(), random_id(12)?.into());
        }
        let keys = self
            .state
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = keys
            .key(self.algorithm)
            .ok_or_else(|| DevServerError::Keys(format!("no {:?} key", self.algorithm)))?;
        let algorithm = self.algorithm.algorithm();
        let mut header = Map::new();
        header.insert("alg".into(), format!("{algorithm:?}").into());
        header.insert(
            "kid".into(),
            self.key_id.unwrap_or_else(|| key.kid.clone()).into(),
        );
        if let Some(typ) = self.typ {
            header.insert("typ".into(), typ.into());
        }
        header.extend(self.header_params);
        let encode = |value: &Map<String, Value>| {
            serde_json::to_vec(value)
                .map(|json| URL_SAFE_NO_PAD.encode(json))
                .map_err(|e| DevServerError::Sign(e.to_string()))
        };
        let signing_input = format!("{}.{}", encode(&header)?, encode(&self.claims)?);
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, algorithm)
                .map_err(|e| DevServerError::Sign(e.to_string()))?;
        Ok(format!("{signing_input}.{signature}"))
    }
}
