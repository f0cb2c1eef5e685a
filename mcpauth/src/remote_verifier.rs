//! Verifying tokens the server cannot check locally (opaque tokens) by asking the
//! authorization server: RFC 7662 introspection, or the OpenID Connect userinfo endpoint.
//!
//! Answers are cached per token (the whole token is the key) until the token's expiry, never
//! longer than a ceiling (so a revocation is seen within it), and the cache is bounded in
//! entries. Every call is bounded like every other fetch of this crate.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use url::Url;

use crate::auth_error::CustomVerifyError;
use crate::auth_info::{AuthInfo, system_time};
use crate::claims;
use crate::discovery::MetadataFetcher;
use crate::http_client::FetchError;
use crate::layer::VerifyToken;
use crate::mcp_auth::ConfigError;

/// The default ceiling on how long an answer is cached.
pub const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// The default bound on cached answers.
pub const DEFAULT_MAX_CACHED_TOKENS: usize = 10_000;

#[derive(Clone)]
enum Endpoint {
    Introspection {
        url: Url,
        client_id: String,
        client_secret: String,
    },
    Userinfo {
        url: Url,
    },
}

struct Cached {
    info: AuthInfo,
    until: Instant,
}

struct Inner {
    issuer: String,
    endpoint: Endpoint,
    fetcher: MetadataFetcher,
    max_ttl: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<String, Cached>>,
}

/// A [`VerifyToken`] that asks the authorization server about each token (once per token
/// while its answer is cached).
///
/// ```
/// use mcpauth::RemoteVerifier;
///
/// let verifier = RemoteVerifier::userinfo(
///     "https://tenant.logto.app/oidc",
///     "https://tenant.logto.app/oidc/me",
/// )
/// .unwrap();
/// # let _ = verifier;
/// ```
#[derive(Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for RemoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.inner.endpoint {
            Endpoint::Introspection { url, .. } => ("introspection", url.as_str()),
            Endpoint::Userinfo { url } => ("userinfo", url.as_str()),
        };
        f.debug_struct("RemoteVerifier")
            .field("issuer", &self.inner.issuer)
            .field("endpoint", &endpoint)
            .field("max_ttl", &self.inner.max_ttl)
            .field("max_entries", &self.inner.max_entries)
            .finish_non_exhaustive()
    }
}

fn endpoint_url(url: &str) -> Result<Url, ConfigError> {
    mcpauth_rules::url::parse_secure_url(url).map_err(ConfigError::InvalidUrl)
}

impl RemoteVerifier {
    fn new(issuer: String, endpoint: Endpoint) -> Result<Self, ConfigError> {
        mcpauth_rules::url::parse_issuer(&issuer).map_err(ConfigError::InvalidIssuer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                endpoint,
                fetcher: MetadataFetcher::new(),
                max_ttl: DEFAULT_MAX_CACHE_TTL,
                max_entries: DEFAULT_MAX_CACHED_TOKENS,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Verifies tokens with RFC 7662 introspection at `endpoint`, authenticating as
    /// `client_id` / `client_secret` (HTTP Basic). Inactive tokens are refused.
    pub fn introspection(
        issuer: impl Into<String>,
        endpoint: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::Introspection {
            url: endpoint_url(endpoint)?,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        };
        Self::new(issuer.into(), endpoint)
    }

    /// Verifies tokens by calling the OpenID Connect userinfo `endpoint` with them. Userinfo
    /// answers carry no audience or expiry: the layer's audience check must be skipped
    /// explicitly, and answers are cached for the ceiling only.
    pub fn userinfo(issuer: impl Into<String>, endpoint: &str) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::Userinfo {
            url: endpoint_url(endpoint)?,
        };
        Self::new(issuer.into(), endpoint)
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| shared.settings());
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The longest an answer is cached (default 5 minutes), whatever the token's expiry.
    #[must_use]
    pub fn max_cache_ttl(self, ttl: Duration) -> Self {
        self.with(|inner| inner.max_ttl = ttl)
    }

    /// The most answers cached at once (default 10,000); beyond it, answers are not cached.
    #[must_use]
    pub fn max_cached_tokens(self, entries: usize) -> Self {
        self.with(|inner| inner.max_entries = entries)
    }

    /// Bounds for the calls (timeouts, response size).
    #[must_use]
    pub fn fetcher(self, fetcher: MetadataFetcher) -> Self {
        self.with(|inner| inner.fetcher = fetcher)
    }

    fn cached(&self, token: &str) -> Option<AuthInfo> {
        let cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .get(token)
            .filter(|entry| entry.until > Instant::now())
            .map(|entry| entry.info.clone())
    }

    fn remember(&self, token: &str, info: &AuthInfo) {
        let now = Instant::now();
        let lifetime = info
            .expires_at()
            .map(|exp| exp.duration_since(SystemTime::now()).unwrap_or_default())
            .map_or(self.inner.max_ttl, |left| left.min(self.inner.max_ttl));
        if lifetime.is_zero() {
            return;
        }
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.inner.max_entries {
            cache.retain(|_, entry| entry.until > now);
        }
        if cache.len() < self.inner.max_entries {
            cache.insert(
                token.to_owned(),
                Cached {
                    info: info.clone(),
                    until: now.checked_add(lifetime).unwrap_or(now),
                },
            );
        }
    }

    async fn ask(&self, token: &str) -> Result<AuthInfo, CustomVerifyError> {
        let client = self.inner.fetcher.client();
        let answer = match &self.inner.endpoint {
            Endpoint::Introspection {
                url,
                client_id,
                client_secret,
            } => {
                let form = [("token", token), ("token_type_hint", "access_token")];
                client
                    .json_object(http::Method::POST, url, |request| {
                        request
                            .basic_auth(client_id, Some(client_secret))
                            .form(&form)
                    })
                    .await
            }
            Endpoint::Userinfo { url } => {
                client
                    .json_object(http::Method::GET, url, |request| request.bearer_auth(token))
                    .await
            }
        };
        let claims = match answer {
            Ok(fetched) => match fetched.value {
                Value::Object(claims) => claims,
                _ => return Err(CustomVerifyError::Unavailable("not a JSON object".into())),
            },
            Err(FetchError::Status { status, .. })
                if status == http::StatusCode::UNAUTHORIZED
                    || status == http::StatusCode::FORBIDDEN =>
            {
                return Err(CustomVerifyError::InvalidToken(
                    "the authorization server refused the token".into(),
                ));
            }
            Err(error) => return Err(CustomVerifyError::Unavailable(error.to_string())),
        };
        if matches!(self.inner.endpoint, Endpoint::Introspection { .. })
            && claims.get("active") != Some(&Value::Bool(true))
        {
            return Err(CustomVerifyError::InvalidToken(
                "the token is not active".into(),
            ));
        }
        self.auth_info(token, claims)
    }

    fn auth_info(
        &self,
        token: &str,
        claims: Map<String, Value>,
    ) -> Result<AuthInfo, CustomVerifyError> {
        let invalid = |error: crate::AuthError| CustomVerifyError::InvalidToken(error.to_string());
        let issuer = match claims::string_claim(&claims, "iss").map_err(invalid)? {
            Some(iss) if iss != self.inner.issuer => {
                return Err(CustomVerifyError::InvalidToken(format!(
                    "the token was issued by {iss:?}, not {:?}",
                    self.inner.issuer
                )));
            }
            _ => self.inner.issuer.clone(),
        };
        let subject = match claims::string_claim(&claims, "sub").map_err(invalid)? {
            Some(sub) if !sub.is_empty() => sub.to_owned(),
            _ => {
                return Err(CustomVerifyError::InvalidToken(
                    "the answer has no sub".into(),
                ));
            }
        };
        let mut info = AuthInfo::builder(token, issuer, subject)
            .audience(claims::audiences(&claims).map_err(invalid)?)
            .scopes(claims::scopes(&claims).map_err(invalid)?);
        if let Some(client_id) = claims::client_id(&claims).map_err(invalid)? {
            info = info.client_id(client_id);
        }
        if let Some(exp) = claims::numeric_date(&claims, "exp").map_err(invalid)?
            && let Some(expires_at) = system_time(exp)
        {
            info = info.expires_at(expires_at);
        }
        Ok(info.claims(claims).build())
    }
}

impl VerifyToken for RemoteVerifier {
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<AuthInfo, CustomVerifyError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(info) = self.cached(token) {
                return Ok(info);
            }
            let info = self.ask(token).await?;
            self.remember(token, &info);
            Ok(info)
        })
    }
}

impl Inner {
    /// The settings, with an empty cache (a reconfigured verifier starts afresh).
    fn settings(&self) -> Self {
        Self {
            issuer: self.issuer.clone(),
            endpoint: self.endpoint.clone(),
            fetcher: self.fetcher.clone(),
            max_ttl: self.max_ttl,
            max_entries: self.max_entries,
            cache: Mutex::new(HashMap::new()),
        }
    }
}
