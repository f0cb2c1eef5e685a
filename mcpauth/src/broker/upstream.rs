//! The upstream identity provider and the broker's OAuth client for it: where its endpoints are
//! (OpenID Connect discovery, or explicit endpoints for plain OAuth 2.0), the authorization
//! request the broker sends the browser to, the code exchange, and who the user is.
//!
//! One pooled HTTP client serves every call to the provider. Its answers are bounded in size
//! and time, redirects are not followed, and each failure is classified so the MCP client gets
//! an OAuth error, never a 500.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::BrokerError;
use crate::auth_server::{AuthServer, AuthServerHandle};
use crate::jwks::{KeyCacheOptions, KeysAnswer, Lookup};
use crate::metadata::AuthServerType;

/// The largest answer read from the provider's token and userinfo endpoints.
const MAX_UPSTREAM_RESPONSE_BYTES: usize = 64 * 1024;
/// The longest wait for one call to the provider.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the broker authenticates to the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamClientAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`, the OAuth default).
    Basic,
    /// The client id and secret in the form body (`client_secret_post`; GitHub's way).
    Post,
}

/// Where the provider's endpoints are.
#[derive(Debug, Clone)]
enum Endpoints {
    /// An OpenID Connect provider, found by discovery from its issuer; users are identified by
    /// the ID token.
    Discover { issuer: String },
    /// A plain OAuth 2.0 provider; users are identified by a userinfo call.
    Explicit {
        authorize: String,
        token: String,
        userinfo: String,
    },
}

/// The identity provider users sign in at: its endpoints, the broker's client there (one
/// pre-registered client whose redirect URI is the broker's callback) and what to ask for.
///
/// ```
/// use mcpauth::broker::Upstream;
///
/// let google = Upstream::oidc("https://accounts.google.com", "my-client-id")
///     .client_secret("my-secret")
///     .scopes(["openid", "email"])
///     .authorize_param("access_type", "offline");
/// let github = Upstream::oauth(
///     "https://github.com/login/oauth/authorize",
///     "https://github.com/login/oauth/access_token",
///     "https://api.github.com/user",
///     "my-client-id",
/// )
/// .id("github")
/// .user_id_member("id");
/// assert_eq!(github.id_name(), "github");
/// # let _ = google;
/// ```
#[derive(Clone)]
pub struct Upstream {
    id: String,
    display_name: Option<String>,
    endpoints: Endpoints,
    client_id: String,
    client_secret: Option<String>,
    client_auth: UpstreamClientAuth,
    scopes: Vec<String>,
    authorize_params: Vec<(String, String)>,
    user_id_member: String,
    fetcher: Option<crate::discovery::MetadataFetcher>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("id", &self.id)
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An OpenID Connect provider known by its issuer (its metadata is discovered), and the
    /// broker's client id there. Users are identified by the ID token (`openid` is always
    /// asked for).
    pub fn oidc(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let id = Url::parse(&issuer)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "oidc".into());
        Self::with(Endpoints::Discover { issuer }, id, client_id.into())
            .client_auth(UpstreamClientAuth::Basic)
            .scopes(["openid"])
            .user_id_member("sub")
    }

    /// A plain OAuth 2.0 provider with explicit endpoints and a userinfo URL that answers a
    /// JSON object naming the user (`sub`, or the member named by
    /// [`user_id_member`](Self::user_id_member)).
    pub fn oauth(
        authorize_url: impl Into<String>,
        token_url: impl Into<String>,
        userinfo_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        let authorize = authorize_url.into();
        let id = Url::parse(&authorize)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "oauth".into());
        Self::with(
            Endpoints::Explicit {
                authorize,
                token: token_url.into(),
                userinfo: userinfo_url.into(),
            },
            id,
            client_id.into(),
        )
        .client_auth(UpstreamClientAuth::Post)
        .user_id_member("sub")
    }

    fn with(endpoints: Endpoints, id: String, client_id: String) -> Self {
        Self {
            id,
            display_name: None,
            endpoints,
            client_id,
            client_secret: None,
            client_auth: UpstreamClientAuth::Basic,
            scopes: Vec::new(),
            authorize_params: Vec::new(),
            user_id_member: "sub".into(),
            fetcher: None,
        }
    }

    /// The short name of the provider (default: its host): it names the callback path
    /// (`/callback/<id>`) and prefixes user ids in the broker's tokens (`<id>|<user>`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The short name ([`id`](Self::id)).
    pub fn id_name(&self) -> &str {
        &self.id
    }

    /// The name shown to users on the consent page (default: the id).
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The broker's client secret at the provider (a confidential client).
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the client authenticates at the token endpoint (default: Basic for OpenID Connect
    /// providers, form body for plain OAuth).
    #[must_use]
    pub fn client_auth(mut self, auth: UpstreamClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The scopes asked of the provider (added to `openid` for OpenID Connect providers).
    #[must_use]
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for scope in scopes {
            let scope = scope.into();
            if !self.scopes.contains(&scope) {
                self.scopes.push(scope);
            }
        }
        self
    }

    /// An extra parameter of the authorization request (`access_type=offline`, `prompt`,
    /// `audience`, …).
    #[must_use]
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorize_params.push((name.into(), value.into()));
        self
    }

    /// The member of the userinfo answer (plain OAuth) that identifies the user (default
    /// `sub`; GitHub's is `id`).
    #[must_use]
    pub fn user_id_member(mut self, member: impl Into<String>) -> Self {
        self.user_id_member = member.into();
        self
    }

    /// Fetches the provider's discovery document and keys with `fetcher` (its bounds apply).
    #[must_use]
    pub fn fetcher(mut self, fetcher: crate::discovery::MetadataFetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    pub(crate) fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }

    pub(crate) fn scope_parameter(&self) -> String {
        self.scopes.join(" ")
    }
}

/// What went wrong talking to the provider.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The provider answered with an OAuth error (its code and description).
    #[error("the identity provider refused: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
    },
    /// The provider could not be reached or answered something unusable.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider's answer failed a check (an ID token that does not verify, no user id).
    #[error("the identity provider's answer is invalid: {0}")]
    Invalid(String),
}

/// The provider's tokens for one user, sealed at rest and never sent to an MCP client.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct UpstreamTokens {
    pub(crate) access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// Unix seconds; `None` when the provider gave no lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
}

impl fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Who signed in at the provider.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamUser {
    /// The provider's stable id for the user.
    pub(crate) id: String,
}

/// The provider's endpoints once known.
#[derive(Debug)]
struct Resolved {
    authorize: Url,
    token: Url,
    userinfo: Option<Url>,
}

/// The broker's client at the provider.
pub(crate) struct UpstreamClient {
    config: Upstream,
    http: reqwest::Client,
    /// For OpenID Connect providers: metadata and keys through the same code and caches the
    /// resource server uses.
    oidc: Option<Arc<AuthServerHandle>>,
    resolved: tokio::sync::OnceCell<Resolved>,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    pub(crate) fn new(config: Upstream) -> Result<Self, BrokerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(UPSTREAM_CONNECT_TIMEOUT)
            .timeout(UPSTREAM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcpauth-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BrokerError::Config(format!("cannot build the HTTP client: {e}")))?;
        let oidc = match &config.endpoints {
            Endpoints::Discover { issuer } => {
                // The provider serves the broker, not MCP clients: what it lacks for them
                // (registration, metadata documents, resource indicators) is why the broker
                // exists, so it is neither refused nor warned about.
                let mut server = AuthServer::discover(issuer.clone(), AuthServerType::Oidc)
                    .ignore_compatibility();
                if let Some(fetcher) = &config.fetcher {
                    server = server.fetcher(fetcher.clone());
                }
                Some(AuthServerHandle::new(server, KeyCacheOptions::default()))
            }
            Endpoints::Explicit { .. } => None,
        };
        Ok(Self {
            config,
            http,
            oidc,
            resolved: tokio::sync::OnceCell::new(),
        })
    }

    pub(crate) fn config(&self) -> &Upstream {
        &self.config
    }

    /// The provider's endpoints, discovered once (a failed discovery is tried again next time).
    async fn endpoints(&self) -> Result<&Resolved, UpstreamError> {
        self.resolved
            .get_or_try_init(|| async {
                let parse = |what: &str, raw: &str| {
                    mcpauth_rules::url::parse_secure_url(raw).map_err(|e| {
                        UpstreamError::Invalid(format!("the provider's {what} `{raw}`: {e}"))
                    })
                };
                match (&self.config.endpoints, &self.oidc) {
                    (Endpoints::Discover { .. }, Some(handle)) => {
                        let config = handle
                            .config()
                            .await
                            .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
                        let metadata = &config.metadata;
                        Ok(Resolved {
                            authorize: parse(
                                "authorization endpoint",
                                &metadata.authorization_endpoint,
                            )?,
                            token: parse("token endpoint", &metadata.token_endpoint)?,
                            userinfo: metadata
                                .userinfo_endpoint
                                .as_deref()
                                .map(|u| parse("userinfo endpoint", u))
                                .transpose()?,
                        })
                    }
                    (
                        Endpoints::Explicit {
                            authorize,
                            token,
                            userinfo,
                        },
                        _,
                    ) => Ok(Resolved {
                        authorize: parse("authorization endpoint", authorize)?,
                        token: parse("token endpoint", token)?,
                        userinfo: Some(parse("userinfo endpoint", userinfo)?),
                    }),
                    (Endpoints::Discover { .. }, None) => Err(UpstreamError::Invalid(
                        "no discovery for an OpenID Connect provider".into(),
                    )),
                }
            })
            .await
    }

    /// The URL the browser is sent to: the broker's own PKCE challenge and `state`, the fixed
    /// callback, the configured scopes and extras — never anything of the MCP client's.
    pub(crate) async fn authorization_url(
        &self,
        callback: &str,
        state: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Url, UpstreamError> {
        let mut url = self.endpoints().await?.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", callback)
                .append_pair("state", state)
                .append_pair("code_challenge", &super::secrets::s256_challenge(verifier))
                .append_pair("code_challenge_method", "S256");
            let scope = self.config.scope_parameter();
            if !scope.is_empty() {
                query.append_pair("scope", &scope);
            }
            if self.oidc.is_some() {
                query.append_pair("nonce", nonce);
            }
            for (name, value) in &self.config.authorize_params {
                query.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Exchanges the provider's code (with the same callback and the broker's verifier) and
    /// identifies the user.
    pub(crate) async fn exchange(
        &self,
        code: &str,
        callback: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<(UpstreamTokens, UpstreamUser), UpstreamError> {
        let endpoints = self.endpoints().await?;
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback),
            ("code_verifier", verifier),
        ];
        let tokens = self.token_request(&endpoints.token, form).await?;
        let user = match &self.oidc {
            Some(handle) => self.identify_by_id_token(handle, &tokens, nonce).await?,
            None => {
                let userinfo = endpoints.userinfo.as_ref().ok_or_else(|| {
                    UpstreamError::Invalid("the provider has no userinfo endpoint".into())
                })?;
                self.identify_by_userinfo(userinfo, &tokens.access_token)
                    .await?
            }
        };
        Ok((tokens, user))
    }

    async fn token_request(
        &self,
        token_url: &Url,
        mut form: Vec<(&str, &str)>,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let mut request = self
            .http
            .post(token_url.clone())
            .header(http::header::ACCEPT, "application/json");
        let secret = self.config.client_secret.as_deref();
        match (self.config.client_auth, secret) {
            (UpstreamClientAuth::Basic, Some(secret)) => {
                // RFC 6749 §2.3.1: both parts form-encoded before Basic.
                let user = form_urlencode(&self.config.client_id);
                let password = form_urlencode(secret);
                request = request.basic_auth(user, Some(password));
            }
            (UpstreamClientAuth::Post, Some(secret)) => {
                form.push(("client_id", &self.config.client_id));
                form.push(("client_secret", secret));
            }
            (_, None) => form.push(("client_id", &self.config.client_id)),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = read_bounded(response).await?;
        // A 5xx is the provider's trouble whatever its body says: worth retrying later.
        if status.is_server_error() {
            return Err(UpstreamError::Unavailable(format!(
                "the token endpoint answered {status}"
            )));
        }
        let members = parse_token_body(&content_type, &body).ok_or_else(|| {
            UpstreamError::Unavailable(format!(
                "the token endpoint answered {status} with an unreadable body ({content_type})"
            ))
        })?;
        if let Some(code) = members.get("error").and_then(Value::as_str) {
            return Err(UpstreamError::Refused {
                code: code.to_owned(),
                description: members
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        if !status.is_success() {
            return Err(UpstreamError::Unavailable(format!(
                "the token endpoint answered {status}"
            )));
        }
        let access_token = members
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Invalid("no access_token in the answer".into()))?
            .to_owned();
        let expires_in = match members.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(UpstreamTokens {
            access_token,
            refresh_token: members
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            expires_at: expires_in.map(|s| super::now_unix().saturating_add(s)),
            scope: members
                .get("scope")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id_token: members
                .get("id_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Verifies the ID token with the provider's keys (the resource server's key cache):
    /// signature, `iss`, `aud` = the broker's client id, expiry, and the `nonce` sent.
    async fn identify_by_id_token(
        &self,
        handle: &Arc<AuthServerHandle>,
        tokens: &UpstreamTokens,
        nonce: &str,
    ) -> Result<UpstreamUser, UpstreamError> {
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| UpstreamError::Invalid("no id_token in the answer".into()))?;
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| UpstreamError::Invalid(format!("id_token: {e}")))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(UpstreamError::Invalid(
                "id_token signed with a shared secret".into(),
            ));
        }
        let cache = handle
            .key_cache()
            .await
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
        let mut answer = cache.keys().await;
        let mut refreshed = false;
        let key = loop {
            match answer {
                KeysAnswer::Keys(set) => match set.lookup(header.kid.as_deref(), header.alg) {
                    Lookup::Found(key) => break key,
                    Lookup::Unknown if !refreshed => {
                        refreshed = true;
                        answer = cache.refresh(Some(set.generation)).await;
                    }
                    _ => {
                        return Err(UpstreamError::Invalid(
                            "id_token signed with an unknown key".into(),
                        ));
                    }
                },
                KeysAnswer::NotNow { .. } | KeysAnswer::Failed(_) => {
                    return Err(UpstreamError::Unavailable(
                        "the provider's keys are unavailable".into(),
                    ));
                }
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[handle.issuer()]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key.key, &validation)
            .map_err(|e| UpstreamError::Invalid(format!("id_token: {e}")))?
            .claims;
        let sent = claims.get("nonce").and_then(Value::as_str);
        if !sent.is_some_and(|n| super::secrets::equal_in_constant_time(n, nonce)) {
            return Err(UpstreamError::Invalid(
                "id_token nonce differs from the one sent".into(),
            ));
        }
        let id = claims
            .get(self.config.user_id_member.as_str())
            .and_then(user_id_text)
            .ok_or_else(|| UpstreamError::Invalid("id_token has no subject".into()))?;
        Ok(UpstreamUser { id })
    }

    async fn identify_by_userinfo(
        &self,
        userinfo: &Url,
        access_token: &str,
    ) -> Result<UpstreamUser, UpstreamError> {
        let response = self
            .http
            .get(userinfo.clone())
            .bearer_auth(access_token)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("userinfo: {e}")))?;
        let status = response.status();
        let body = read_bounded(response).await?;
        if !status.is_success() {
            return Err(UpstreamError::Unavailable(format!(
                "the userinfo endpoint answered {status}"
            )));
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid("the userinfo answer is not JSON".into()))?;
        let id = value
            .get(self.config.user_id_member.as_str())
            .and_then(user_id_text)
            .ok_or_else(|| {
                UpstreamError::Invalid(format!(
                    "the userinfo answer has no `{}`",
                    self.config.user_id_member
                ))
            })?;
        Ok(UpstreamUser { id })
    }
}

/// A user id as text: a non-empty string, or an integer (GitHub's numeric ids).
fn user_id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn form_urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_UPSTREAM_RESPONSE_BYTES as u64)
    {
        return Err(UpstreamError::Unavailable("answer too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("reading the answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_UPSTREAM_RESPONSE_BYTES {
            return Err(UpstreamError::Unavailable("answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A token answer's members: JSON (the standard), or form-encoded (GitHub without
/// `Accept: application/json`). Anything else is unreadable.
pub(crate) fn parse_token_body(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence == "application/x-www-form-urlencoded" {
        let mut members = Map::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if members.contains_key(name.as_ref()) {
                return None;
            }
            members.insert(name.into_owned(), Value::String(value.into_owned()));
        }
        return Some(members);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(members)) => Some(members),
        _ => None,
    }
}

/// A random PKCE verifier for the upstream leg (43 characters of the RFC 7636 alphabet).
pub(crate) fn new_verifier() -> Result<String, super::secrets::CryptoFailure> {
    super::secrets::random_token(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_as_json_or_form() {
        let json = parse_token_body("application/json", br#"{"access_token":"a"}"#).unwrap();
        assert_eq!(json["access_token"], "a");
        let form = parse_token_body(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"access_token=gho_1&scope=repo%2Cuser&token_type=bearer",
        )
        .unwrap();
        assert_eq!(form["scope"], "repo,user");
        assert!(parse_token_body("text/html", b"<html>").is_none());
        assert!(parse_token_body("application/json", b"[1]").is_none());
        assert!(
            parse_token_body("application/x-www-form-urlencoded", b"a=1&a=2").is_none(),
            "a repeated member is ambiguous"
        );
    }

    #[test]
    fn user_ids_are_strings_or_integers() {
        assert_eq!(user_id_text(&Value::from(12345)), Some("12345".into()));
        assert_eq!(user_id_text(&Value::from("abc")), Some("abc".into()));
        assert_eq!(user_id_text(&Value::from("")), None);
        assert_eq!(user_id_text(&Value::from(1.5)), None);
    }
}
