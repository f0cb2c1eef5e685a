//! The upstream identity provider and the broker's OAuth client for it: where its endpoints are
//! (OpenID Connect discovery, or explicit endpoints for plain OAuth 2.0), the authorization
//! request the broker sends the browser to, the code exchange, and who the user is.
//!
//! One pooled HTTP client serves every call to the provider. Its answers are bounded in size
//! and time, redirects are not followed, and each failure is classified so the MCP client gets
//! an OAuth error, never a 500.

use crate::metrics;
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
    /// the ID token. `metadata_url` is set when the document is not at the issuer's well-known
    /// URL: a multi-tenant Entra ID endpoint (`…/common/v2.0`) serves a document whose issuer is
    /// the template `…/{tenantid}/v2.0`.
    Discover {
        issuer: String,
        metadata_url: Option<String>,
    },
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
/// Presets know the large providers' endpoints and quirks: [`github`](Self::github),
/// [`github_app`](Self::github_app), [`google`](Self::google) and [`entra`](Self::entra). Any
/// other OpenID Connect provider (Auth0, Okta, Keycloak, Cognito, Logto…) is
/// [`oidc`](Self::oidc); a plain OAuth 2.0 one is [`oauth`](Self::oauth).
///
/// ```
/// use mcpauth::broker::Upstream;
///
/// let github = Upstream::github("my-client-id").client_secret("my-secret");
/// let google = Upstream::google("my-client-id").client_secret("my-secret");
/// let entra = Upstream::entra("organizations", "my-client-id")
///     .client_secret("my-secret")
///     .scopes(["api://my-mcp-api/todos.read"]);
/// let auth0 = Upstream::oidc("https://tenant.eu.auth0.com/", "my-client-id")
///     .client_secret("my-secret")
///     .scopes(["email", "offline_access"])
///     .authorize_param("audience", "https://api.example.com");
/// let custom = Upstream::oauth(
///     "https://auth.example.com/authorize",
///     "https://auth.example.com/token",
///     "https://api.example.com/me",
///     "my-client-id",
/// )
/// .id("example")
/// .user_id_member("user_id");
/// assert_eq!(github.id_name(), "github");
/// assert_eq!(entra.id_name(), "entra");
/// # let _ = (google, auth0, custom);
/// ```
#[derive(Clone)]
pub struct Upstream {
    id: String,
    display_name: Option<String>,
    endpoints: Endpoints,
    preset: Preset,
    client_id: String,
    client_secret: Option<String>,
    client_auth: UpstreamClientAuth,
    scopes: Vec<String>,
    authorize_params: Vec<(String, String)>,
    user_id_member: String,
    fetcher: Option<crate::discovery::MetadataFetcher>,
    /// Mistakes of the builder calls (a preset's option on another provider, a base URL that
    /// does not parse), reported when the broker is built.
    mistakes: Vec<String>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("id", &self.id)
            .field("endpoints", &self.endpoints)
            .field("preset", &self.preset)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The provider a preset was made for, and what it needs beyond the standard.
#[derive(Debug, Clone)]
enum Preset {
    /// [`Upstream::oidc`] or [`Upstream::oauth`]: the standard only.
    Generic,
    /// GitHub: comma-separated scopes in token answers, its own media type at the API.
    GitHub {
        /// A GitHub App (expiring user tokens, permissions instead of scopes).
        app: bool,
    },
    /// Google: its ID tokens may name the issuer without the scheme.
    Google,
    /// Microsoft Entra ID: the ID token's issuer is its tenant's.
    Entra(EntraSettings),
}

#[derive(Debug, Clone)]
struct EntraSettings {
    tenant: EntraTenant,
    /// The sign-in host, without a trailing `/`.
    base_url: String,
    /// Whether v1 issuers (`https://sts.windows.net/{tid}/`) are accepted as well.
    v1_issuer: bool,
}

const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";
/// GitHub's REST API media type, which its documentation asks every call to send.
const GITHUB_MEDIA_TYPE: &str = "application/vnd.github+json";
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const ENTRA_BASE_URL: &str = "https://login.microsoftonline.com";
/// The issuer host of Entra ID's v1 tokens (global cloud).
const ENTRA_V1_ISSUER_BASE: &str = "https://sts.windows.net";

/// The Microsoft Entra ID tenants whose users can sign in through [`Upstream::entra`].
///
/// Strings convert: `"common"`, `"organizations"`, anything else a tenant id.
///
/// ```
/// use mcpauth::broker::EntraTenant;
///
/// assert_eq!(EntraTenant::from("organizations"), EntraTenant::Organizations);
/// assert_eq!(
///     EntraTenant::from("72f988bf-86f1-41af-91ab-2d7cd011db47"),
///     EntraTenant::Single("72f988bf-86f1-41af-91ab-2d7cd011db47".into())
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntraTenant {
    /// The users of one directory, by its tenant id (a GUID; a domain name is refused because
    /// the discovery document names the tenant by id). For personal Microsoft accounts only,
    /// the consumers tenant `9188040d-6c67-4c5b-b112-36a304b66dad`.
    Single(String),
    /// Work and school accounts of any directory (a multi-tenant app).
    Organizations,
    /// Work, school and personal accounts (a multi-tenant app that also takes personal
    /// accounts).
    Common,
}

impl EntraTenant {
    /// The tenant segment of the endpoints (`common`, `organizations` or the tenant id).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Single(id) => id,
            Self::Organizations => "organizations",
            Self::Common => "common",
        }
    }
}

impl From<&str> for EntraTenant {
    fn from(tenant: &str) -> Self {
        match tenant {
            "common" => Self::Common,
            "organizations" => Self::Organizations,
            id => Self::Single(id.to_owned()),
        }
    }
}

impl From<String> for EntraTenant {
    fn from(tenant: String) -> Self {
        match tenant.as_str() {
            "common" | "organizations" => Self::from(tenant.as_str()),
            _ => Self::Single(tenant),
        }
    }
}

impl fmt::Display for EntraTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `base` without its trailing `/`, if it is an `https` URL (`http` on loopback) without query
/// or fragment.
fn base_url(base: &str, what: &str) -> Result<String, String> {
    let url = mcpauth_rules::url::parse_secure_url(base).map_err(|e| format!("{what}: {e}"))?;
    if url.query().is_some() {
        return Err(format!("{what} `{base}` cannot have a query"));
    }
    Ok(base.trim_end_matches('/').to_owned())
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
        let endpoints = Endpoints::Discover {
            issuer,
            metadata_url: None,
        };
        Self::with(endpoints, id, client_id.into())
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

    /// GitHub, with an OAuth App's client id (id `github`).
    ///
    /// The endpoints are GitHub's (no discovery there): the browser goes to
    /// `https://github.com/login/oauth/authorize`, the code is exchanged at
    /// `…/login/oauth/access_token` (asking for JSON; the answer's comma-separated `scope` is
    /// read as a list), and the user is `GET https://api.github.com/user`'s numeric `id`, asked
    /// with GitHub's media type and the broker's `User-Agent` (GitHub refuses calls without
    /// one). PKCE `S256` is sent. No scope is asked for by default: the user's id is public;
    /// add [`scopes`](Self::scopes) (`read:user`, `repo`…) for what your tools call.
    ///
    /// An OAuth App's tokens never expire and come without a refresh token; the broker's own
    /// tokens stay short-lived whatever the provider gives. Needs the client secret
    /// ([`client_secret`](Self::client_secret)). For GitHub Enterprise Server, see
    /// [`github_base_urls`](Self::github_base_urls).
    ///
    /// ```
    /// use mcpauth::broker::Upstream;
    ///
    /// let github = Upstream::github("Ov23liAbCdEfGhIjKlMn")
    ///     .client_secret("the-secret")
    ///     .scopes(["read:user"]);
    /// assert_eq!(github.id_name(), "github");
    /// ```
    pub fn github(client_id: impl Into<String>) -> Self {
        Self::github_preset(client_id.into(), false)
    }

    /// GitHub, with a GitHub App's client id (id `github`): as [`github`](Self::github), for
    /// an App whose user tokens expire (8 hours, with a 6-month refresh token: the App's
    /// "Expire user authorization tokens" setting). A GitHub App has permissions, set in its
    /// settings, instead of scopes: giving [`scopes`](Self::scopes) is refused when the broker
    /// is built.
    ///
    /// ```
    /// use mcpauth::broker::Upstream;
    ///
    /// let github = Upstream::github_app("Iv23liAbCdEfGhIjKlMn").client_secret("the-secret");
    /// assert_eq!(github.id_name(), "github");
    /// ```
    pub fn github_app(client_id: impl Into<String>) -> Self {
        Self::github_preset(client_id.into(), true)
    }

    fn github_preset(client_id: String, app: bool) -> Self {
        let mut upstream = Self::with(
            github_endpoints(GITHUB_WEB, GITHUB_API),
            "github".into(),
            client_id,
        )
        .client_auth(UpstreamClientAuth::Post)
        .user_id_member("id")
        .display_name("GitHub");
        upstream.preset = Preset::GitHub { app };
        upstream
    }

    /// Where GitHub is, for [`github`](Self::github) and [`github_app`](Self::github_app):
    /// the web host (`https://github.com` by default; the sign-in and token endpoints are under
    /// `/login/oauth/`) and the REST API's root (`https://api.github.com`; the user is its
    /// `/user`). For GitHub Enterprise Server, `https://HOST` and `https://HOST/api/v3`; for
    /// tests, a stand-in on loopback (`http` is allowed there only).
    ///
    /// ```
    /// use mcpauth::broker::Upstream;
    ///
    /// let enterprise = Upstream::github("client-id")
    ///     .client_secret("the-secret")
    ///     .github_base_urls("https://github.example.com", "https://github.example.com/api/v3");
    /// # let _ = enterprise;
    /// ```
    #[must_use]
    pub fn github_base_urls(mut self, web: impl AsRef<str>, api: impl AsRef<str>) -> Self {
        if !matches!(self.preset, Preset::GitHub { .. }) {
            return self.mistake("`github_base_urls` is for `Upstream::github` or `github_app`");
        }
        match (
            base_url(web.as_ref(), "GitHub's web URL"),
            base_url(api.as_ref(), "GitHub's API URL"),
        ) {
            (Ok(web), Ok(api)) => self.endpoints = github_endpoints(&web, &api),
            (Err(error), _) | (_, Err(error)) => return self.mistake(error),
        }
        self
    }

    /// Google, with the client id of an OAuth client of type "Web application" (id `google`).
    ///
    /// The OpenID Connect issuer `https://accounts.google.com` (discovered); scopes `openid
    /// email profile` (add more with [`scopes`](Self::scopes)); `access_type=offline` and
    /// `prompt=consent`, without which Google issues a refresh token only at a user's first
    /// consent. The user is the ID token's `sub`; an ID token naming the issuer without its
    /// scheme (`accounts.google.com`, which Google's documentation allows) is accepted. Needs
    /// the client secret ([`client_secret`](Self::client_secret)).
    ///
    /// ```
    /// use mcpauth::broker::Upstream;
    ///
    /// let google = Upstream::google("1234-abc.apps.googleusercontent.com")
    ///     .client_secret("the-secret");
    /// assert_eq!(google.id_name(), "google");
    /// ```
    pub fn google(client_id: impl Into<String>) -> Self {
        let mut upstream = Self::oidc(GOOGLE_ISSUER, client_id)
            .id("google")
            .display_name("Google")
            .scopes(["email", "profile"])
            .authorize_param("access_type", "offline")
            .authorize_param("prompt", "consent");
        upstream.preset = Preset::Google;
        upstream
    }

    /// Where Google is, for [`google`](Self::google): its issuer (`https://accounts.google.com`
    /// by default), for tests with a stand-in on loopback.
    #[must_use]
    pub fn google_base_url(mut self, issuer: impl AsRef<str>) -> Self {
        if !matches!(self.preset, Preset::Google) {
            return self.mistake("`google_base_url` is for `Upstream::google`");
        }
        match base_url(issuer.as_ref(), "Google's issuer") {
            Ok(issuer) => {
                self.endpoints = Endpoints::Discover {
                    issuer,
                    metadata_url: None,
                }
            }
            Err(error) => return self.mistake(error),
        }
        self
    }

    /// Microsoft Entra ID, with the application (client) id of an app registration whose
    /// redirect URI is on the "Web" platform (id `entra`).
    ///
    /// The v2.0 OpenID Connect endpoints of `tenant` (`https://login.microsoftonline.com/
    /// {tenant}/v2.0`, discovered) and the scopes `openid profile offline_access`; add your
    /// API's (`api://{app-id}/{scope}`) with [`scopes`](Self::scopes). Entra ID grants one
    /// resource per sign-in: scopes of two resources (two APIs, or an API and Microsoft Graph)
    /// are refused when the broker is built.
    ///
    /// The user is the ID token's `sub`. Its `iss` must be its own tenant's:
    /// `https://login.microsoftonline.com/{tid}/v2.0`, built from the token's `tid`. For a
    /// single tenant that is the configured one; for [`EntraTenant::Organizations`] and
    /// [`EntraTenant::Common`], whose discovery document names the template
    /// `…/{tenantid}/v2.0` as its issuer, each token is checked against its own `tid` (and an
    /// `organizations` sign-in never comes from the personal-accounts tenant). Needs the client
    /// secret ([`client_secret`](Self::client_secret)).
    ///
    /// ```
    /// use mcpauth::broker::{EntraTenant, Upstream};
    ///
    /// let single = Upstream::entra("72f988bf-86f1-41af-91ab-2d7cd011db47", "app-id")
    ///     .client_secret("the-secret")
    ///     .scopes(["api://my-mcp-api/todos.read"]);
    /// let any_organization = Upstream::entra(EntraTenant::Organizations, "app-id")
    ///     .client_secret("the-secret");
    /// # let _ = (single, any_organization);
    /// ```
    pub fn entra(tenant: impl Into<EntraTenant>, client_id: impl Into<String>) -> Self {
        let settings = EntraSettings {
            tenant: tenant.into(),
            base_url: ENTRA_BASE_URL.into(),
            v1_issuer: false,
        };
        let mut upstream = Self::with(entra_endpoints(&settings), "entra".into(), client_id.into())
            .client_auth(UpstreamClientAuth::Post)
            .scopes(["openid", "profile", "offline_access"])
            .user_id_member("sub")
            .display_name("Microsoft");
        upstream.preset = Preset::Entra(settings);
        upstream
    }

    /// Where Entra ID is, for [`entra`](Self::entra): the sign-in host
    /// (`https://login.microsoftonline.com` by default), for a national cloud
    /// (`https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`) or a test stand-in
    /// on loopback.
    #[must_use]
    pub fn entra_base_url(mut self, base: impl AsRef<str>) -> Self {
        let Preset::Entra(settings) = &mut self.preset else {
            return self.mistake("`entra_base_url` is for `Upstream::entra`");
        };
        match base_url(base.as_ref(), "Entra ID's sign-in host") {
            Ok(base) => {
                settings.base_url = base;
                self.endpoints = entra_endpoints(settings);
            }
            Err(error) => return self.mistake(error),
        }
        self
    }

    /// Also accepts ID tokens whose issuer is the v1 form of their tenant,
    /// `https://sts.windows.net/{tid}/` (global cloud), for deployments that receive v1 tokens
    /// (the token version is chosen in the app registration's manifest). Off by default: the
    /// v2.0 endpoints issue v2.0 ID tokens.
    #[must_use]
    pub fn entra_v1_issuer(mut self, accept: bool) -> Self {
        let Preset::Entra(settings) = &mut self.preset else {
            return self.mistake("`entra_v1_issuer` is for `Upstream::entra`");
        };
        settings.v1_issuer = accept;
        self
    }

    fn with(endpoints: Endpoints, id: String, client_id: String) -> Self {
        Self {
            id,
            display_name: None,
            endpoints,
            preset: Preset::Generic,
            client_id,
            client_secret: None,
            client_auth: UpstreamClientAuth::Basic,
            scopes: Vec::new(),
            authorize_params: Vec::new(),
            user_id_member: "sub".into(),
            fetcher: None,
            mistakes: Vec::new(),
        }
    }

    fn mistake(mut self, mistake: impl Into<String>) -> Self {
        self.mistakes.push(mistake.into());
        self
    }

    /// The short name of the provider (default: the preset's name, else its host): it names
    /// the callback path (`/callback/<id>`) and prefixes user ids in the broker's tokens
    /// (`<id>|<user>`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The short name ([`id`](Self::id)).
    pub fn id_name(&self) -> &str {
        &self.id
    }

    /// The name shown to users on the consent page (default: the preset's provider name, else
    /// the id).
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
    /// providers, form body for plain OAuth and the GitHub and Entra ID presets).
    #[must_use]
    pub fn client_auth(mut self, auth: UpstreamClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The scopes asked of the provider, added to those of the constructor (`openid` for
    /// OpenID Connect providers, a preset's defaults).
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
    /// Auth0's `audience`, …). A second value for the same name replaces the first: a
    /// parameter may appear once (RFC 6749 §3.1).
    #[must_use]
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self.authorize_params.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => self.authorize_params.push((name, value)),
        }
        self
    }

    /// The member of the userinfo answer (plain OAuth) or the ID-token claim (OpenID Connect)
    /// that identifies the user (default `sub`; GitHub's is `id`).
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

    /// What the builder calls got wrong, and what a preset's provider would refuse: checked
    /// when the broker is built, so the mistake shows at start-up rather than at a sign-in.
    pub(crate) fn check(&self) -> Result<(), String> {
        use mcpauth_rules::provider;
        if let Some(mistake) = self.mistakes.first() {
            return Err(mistake.clone());
        }
        let provider = match &self.preset {
            Preset::Generic => return Ok(()),
            Preset::GitHub { .. } => "GitHub",
            Preset::Google => "Google",
            Preset::Entra(_) => "Entra ID",
        };
        if self.client_secret.is_none() {
            return Err(format!(
                "{provider} requires the client secret of the broker's client: `.client_secret(…)`"
            ));
        }
        let scopes = self.scopes.iter().map(String::as_str);
        match &self.preset {
            Preset::GitHub { app: true } => {
                provider::github_app_scopes(scopes).map_err(|e| e.to_string())
            }
            Preset::Entra(settings) => {
                if let EntraTenant::Single(tenant) = &settings.tenant {
                    provider::entra_tenant(tenant).map_err(|e| e.to_string())?;
                }
                provider::entra_scopes(scopes).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// The `Accept` header of the userinfo call.
    fn userinfo_accept(&self) -> &'static str {
        match self.preset {
            Preset::GitHub { .. } => GITHUB_MEDIA_TYPE,
            _ => "application/json",
        }
    }

    /// The `scope` of a token answer as a space-separated list: GitHub separates with commas
    /// (a comma is a legal character of a scope elsewhere, so only GitHub's are split).
    fn normalise_scope(&self, scope: &str) -> String {
        match self.preset {
            Preset::GitHub { .. } => scope
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            _ => scope.to_owned(),
        }
    }

    /// Checks the verified ID token's `iss` against the issuer the provider's metadata names
    /// (`discovered`), or for Entra ID against the token's own tenant. Always runs: there is no
    /// configuration without an issuer check.
    fn check_id_token_issuer(
        &self,
        claims: &Map<String, Value>,
        discovered: &str,
    ) -> Result<(), UpstreamError> {
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| UpstreamError::Invalid("id_token has no issuer".into()))?;
        let accepted = match &self.preset {
            Preset::Entra(settings) => return settings.check_issuer(iss, claims),
            // Google documents both spellings of its issuer in ID tokens.
            Preset::Google => {
                iss == discovered
                    || discovered
                        .strip_prefix("https://")
                        .or_else(|| discovered.strip_prefix("http://"))
                        .is_some_and(|bare| iss == bare)
            }
            _ => iss == discovered,
        };
        if accepted {
            Ok(())
        } else {
            Err(UpstreamError::Invalid(format!(
                "id_token issuer `{iss}` is not the provider's (`{discovered}`)"
            )))
        }
    }
}

fn github_endpoints(web: &str, api: &str) -> Endpoints {
    Endpoints::Explicit {
        authorize: format!("{web}/login/oauth/authorize"),
        token: format!("{web}/login/oauth/access_token"),
        userinfo: format!("{api}/user"),
    }
}

/// A tenant's v2.0 endpoints. A multi-tenant endpoint's discovery document names the issuer
/// template `…/{tenantid}/v2.0`: it is expected as such there, and only there; each ID token
/// is then checked against its own tenant.
fn entra_endpoints(settings: &EntraSettings) -> Endpoints {
    let base = &settings.base_url;
    match &settings.tenant {
        // Entra ID writes tenant ids in lower case in its issuers.
        EntraTenant::Single(tenant) => Endpoints::Discover {
            issuer: format!("{base}/{}/v2.0", tenant.to_ascii_lowercase()),
            metadata_url: None,
        },
        tenant => Endpoints::Discover {
            issuer: format!("{base}/{{tenantid}}/v2.0"),
            metadata_url: Some(format!(
                "{base}/{tenant}/v2.0{}",
                crate::discovery::well_known::OPENID_CONFIGURATION
            )),
        },
    }
}

impl EntraSettings {
    /// The token's `iss` must be the issuer of the tenant its `tid` names, and that tenant one
    /// the configuration admits.
    fn check_issuer(&self, iss: &str, claims: &Map<String, Value>) -> Result<(), UpstreamError> {
        let tid = claims
            .get("tid")
            .and_then(Value::as_str)
            .filter(|tid| mcpauth_rules::provider::is_guid(tid))
            .ok_or_else(|| UpstreamError::Invalid("id_token has no tenant id (`tid`)".into()))?;
        match &self.tenant {
            EntraTenant::Single(tenant) if !tenant.eq_ignore_ascii_case(tid) => {
                return Err(UpstreamError::Invalid(format!(
                    "id_token is from the tenant `{tid}`, not `{tenant}`"
                )));
            }
            EntraTenant::Organizations
                if tid.eq_ignore_ascii_case(mcpauth_rules::provider::ENTRA_CONSUMERS_TENANT) =>
            {
                return Err(UpstreamError::Invalid(
                    "id_token is from a personal Microsoft account; the tenant is `organizations`"
                        .into(),
                ));
            }
            _ => {}
        }
        let v2 = format!("{}/{tid}/v2.0", self.base_url);
        let v1 = format!("{ENTRA_V1_ISSUER_BASE}/{tid}/");
        if iss == v2 || (self.v1_issuer && iss == v1) {
            Ok(())
        } else {
            Err(UpstreamError::Invalid(format!(
                "id_token issuer `{iss}` is not the issuer of its tenant `{tid}` (`{v2}`)"
            )))
        }
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
    /// When the refresh token expires (Unix seconds), for providers that say so (GitHub Apps'
    /// `refresh_token_expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_expires_at: Option<u64>,
    /// Space-separated, whatever the provider's separator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// The ID token of a token answer, which identifies the user at the sign-in. Never
    /// stored: once the sign-in has verified it nothing reads it, and it is the largest part of
    /// the set, which every grant's record carries and every refresh writes again.
    #[serde(default, skip_serializing)]
    pub(crate) id_token: Option<String>,
}

impl UpstreamTokens {
    /// The set after a refresh answered `answer`: what the answer leaves out (a refresh token,
    /// its lifetime, the scope) is kept from this one. A refresh answer's ID token is not kept:
    /// it is not verified (OpenID Connect Core §12.2 would have its issuer, subject and audience
    /// checked against the sign-in's), and nothing reads it.
    fn renewed_by(&self, mut answer: UpstreamTokens) -> UpstreamTokens {
        let rotated = answer.refresh_token.is_some();
        UpstreamTokens {
            access_token: std::mem::take(&mut answer.access_token),
            refresh_token: answer
                .refresh_token
                .take()
                .or_else(|| self.refresh_token.clone()),
            expires_at: answer.expires_at,
            refresh_expires_at: if rotated {
                answer.refresh_expires_at
            } else {
                self.refresh_expires_at
            },
            scope: answer.scope.take().or_else(|| self.scope.clone()),
            id_token: None,
        }
    }

    /// Whether the refresh token is there and not known to have expired at `now`.
    pub(crate) fn can_refresh(&self, now: u64) -> bool {
        self.refresh_token.is_some() && self.refresh_expires_at.is_none_or(|at| at > now)
    }
}

impl Drop for UpstreamTokens {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access_token.zeroize();
        self.refresh_token.zeroize();
        self.id_token.zeroize();
    }
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
            Endpoints::Discover {
                issuer,
                metadata_url,
            } => {
                let server = match metadata_url {
                    None => AuthServer::discover(issuer.clone(), AuthServerType::Oidc),
                    Some(url) => AuthServer::well_known_url(
                        issuer.clone(),
                        url.clone(),
                        AuthServerType::Oidc,
                    ),
                };
                // The provider serves the broker, not MCP clients: what it lacks for them
                // (registration, metadata documents, resource indicators) is why the broker
                // exists, so it is neither refused nor warned about.
                let mut server = server.ignore_compatibility();
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

    /// The provider's userinfo endpoint (configured, or from its discovery document).
    pub(crate) async fn userinfo_url(&self) -> Result<Option<Url>, UpstreamError> {
        Ok(self.endpoints().await?.userinfo.clone())
    }

    /// Whether a token endpoint error ends the sign-in: the refresh token is no longer good
    /// (`invalid_grant`; GitHub says `bad_refresh_token`).
    pub(crate) fn ends_sign_in(code: &str) -> bool {
        matches!(code, "invalid_grant" | "bad_refresh_token")
    }

    /// Whether the provider identifies users by a userinfo call (plain OAuth 2.0: GitHub).
    pub(crate) fn identifies_by_userinfo(&self) -> bool {
        self.oidc.is_none()
    }

    /// Refreshes the provider's tokens with the refresh token of `current`. Entra ID wants the
    /// scopes again; an answer without a new refresh token (Google) keeps the old one, and one
    /// with a new refresh token (GitHub Apps, Entra ID: rotation) replaces it.
    pub(crate) async fn refresh(
        &self,
        current: &UpstreamTokens,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let refresh_token = current
            .refresh_token
            .as_deref()
            .ok_or_else(|| UpstreamError::Invalid("no refresh token".into()))?;
        let endpoints = self.endpoints().await?;
        let scope = self.config.scope_parameter();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if matches!(self.config.preset, Preset::Entra(_)) && !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let answer = self.token_request(&endpoints.token, form).await?;
        Ok(current.renewed_by(answer))
    }

    /// Asks the provider again who owns `tokens` (its userinfo endpoint): for tokens that never
    /// expire (GitHub OAuth Apps), the check at each refresh of the broker's tokens that the
    /// user still exists and still authorizes the broker's client: `true` when the token is
    /// still `user_id`'s, `false` when it names another user; a token no longer accepted is
    /// [`UpstreamError::Refused`].
    pub(crate) async fn recheck_user(
        &self,
        tokens: &UpstreamTokens,
        user_id: &str,
    ) -> Result<bool, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let userinfo = endpoints.userinfo.as_ref().ok_or_else(|| {
            UpstreamError::Invalid("the provider has no userinfo endpoint".into())
        })?;
        let user = self
            .identify_by_userinfo(userinfo, &tokens.access_token)
            .await?;
        Ok(user.id == user_id)
    }

    /// A call to the provider's token endpoint, counted.
    async fn token_request(
        &self,
        token_url: &Url,
        form: Vec<(&str, &str)>,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let answer = self.send_token_request(token_url, form).await;
        metrics::upstream_call("token", answer.is_ok());
        answer
    }

    async fn send_token_request(
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
            .filter(|t| is_access_token(t))
            .ok_or_else(|| UpstreamError::Invalid("no usable access_token in the answer".into()))?
            .to_owned();
        let seconds = |name: &str| match members.get(name) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let expires_in = seconds("expires_in");
        let refresh_expires_in = seconds("refresh_token_expires_in");
        Ok(UpstreamTokens {
            access_token,
            refresh_token: members
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            expires_at: expires_in.map(|s| super::now_unix().saturating_add(s)),
            refresh_expires_at: refresh_expires_in.map(|s| super::now_unix().saturating_add(s)),
            scope: members
                .get("scope")
                .and_then(Value::as_str)
                .map(|scope| self.config.normalise_scope(scope)),
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
        // The issuer is checked below, once the signature holds: for Entra ID it depends on the
        // token's own tenant.
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key.key, &validation)
            .map_err(|e| UpstreamError::Invalid(format!("id_token: {e}")))?
            .claims;
        self.config
            .check_id_token_issuer(&claims, handle.issuer())?;
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

    /// A call to the provider's userinfo endpoint, counted.
    async fn identify_by_userinfo(
        &self,
        userinfo: &Url,
        access_token: &str,
    ) -> Result<UpstreamUser, UpstreamError> {
        let answer = self.fetch_userinfo(userinfo, access_token).await;
        metrics::upstream_call("userinfo", answer.is_ok());
        answer
    }

    async fn fetch_userinfo(
        &self,
        userinfo: &Url,
        access_token: &str,
    ) -> Result<UpstreamUser, UpstreamError> {
        let response = self
            .http
            .get(userinfo.clone())
            .bearer_auth(access_token)
            .header(http::header::ACCEPT, self.config.userinfo_accept())
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("userinfo: {e}")))?;
        let status = response.status();
        let body = read_bounded(response).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // RFC 6750 §3.1: the token is no longer accepted (revoked, or the user is gone).
            return Err(UpstreamError::Refused {
                code: "invalid_token".into(),
                description: Some(format!("the userinfo endpoint answered {status}")),
            });
        }
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

/// RFC 6749 §A.12: an access token is one or more visible ASCII characters or spaces. Any other
/// cannot be sent in an `Authorization` header, so the provider's answer is unusable.
fn is_access_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A random PKCE verifier for the upstream leg (43 characters of the RFC 7636 alphabet).
pub(crate) fn new_verifier() -> Result<String, super::secrets::CryptoFailure> {
    super::secrets::random_token(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_keeps_what_its_answer_leaves_out_and_no_id_token() {
        let tokens = |access: &str, refresh: Option<&str>, id: Option<&str>| UpstreamTokens {
            access_token: access.into(),
            refresh_token: refresh.map(Into::into),
            expires_at: Some(100),
            refresh_expires_at: None,
            scope: None,
            id_token: id.map(Into::into),
        };
        let signed_in = tokens("old", Some("refresh-1"), Some("verified.id.token"));
        let renewed = signed_in.renewed_by(tokens("new", None, Some("unverified.id.token")));
        assert_eq!(renewed.access_token, "new");
        assert_eq!(renewed.refresh_token.as_deref(), Some("refresh-1"));
        assert_eq!(renewed.id_token, None);
        let rotated = signed_in.renewed_by(tokens("new", Some("refresh-2"), None));
        assert_eq!(rotated.refresh_token.as_deref(), Some("refresh-2"));
        assert_eq!(rotated.id_token, None);
    }

    #[test]
    fn a_stored_token_set_leaves_the_id_token_out() {
        let tokens = UpstreamTokens {
            access_token: "access".into(),
            refresh_token: Some("refresh".into()),
            expires_at: Some(100),
            refresh_expires_at: None,
            scope: Some("openid".into()),
            id_token: Some("header.claims.signature".into()),
        };
        let stored: serde_json::Value = serde_json::to_value(&tokens).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "access_token": "access",
                "refresh_token": "refresh",
                "expires_at": 100,
                "scope": "openid",
            })
        );
        // A set stored with its ID token still reads.
        let old = br#"{"access_token":"a","id_token":"header.claims.signature"}"#;
        let read: UpstreamTokens = serde_json::from_slice(old).unwrap();
        assert_eq!(read.access_token, "a");
    }

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
    fn access_tokens_are_visible_ascii() {
        for token in [
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "ya29.a0-_~+/=",
            "a b",
        ] {
            assert!(is_access_token(token), "{token:?}");
        }
        for token in ["", "ghu_\0\0", "a\nb", "a\tb", "caf\u{e9}", "\u{7f}"] {
            assert!(!is_access_token(token), "{token:?}");
        }
    }

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const OTHER_TENANT: &str = "0b9f6b1e-2a4c-4d3e-8f70-6a5b4c3d2e1f";

    fn claims(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    fn explicit(upstream: &Upstream) -> (&str, &str, &str) {
        match &upstream.endpoints {
            Endpoints::Explicit {
                authorize,
                token,
                userinfo,
            } => (authorize, token, userinfo),
            Endpoints::Discover { .. } => panic!("discovered"),
        }
    }

    fn discovered(upstream: &Upstream) -> (&str, Option<&str>) {
        match &upstream.endpoints {
            Endpoints::Discover {
                issuer,
                metadata_url,
            } => (issuer, metadata_url.as_deref()),
            Endpoints::Explicit { .. } => panic!("explicit"),
        }
    }

    #[test]
    fn github_knows_its_endpoints_and_takes_enterprise_base_urls() {
        let github = Upstream::github("id").client_secret("s");
        assert_eq!(
            explicit(&github),
            (
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com/user"
            )
        );
        assert_eq!(github.id_name(), "github");
        assert_eq!(github.name(), "GitHub");
        assert_eq!(github.user_id_member, "id");
        assert_eq!(github.client_auth, UpstreamClientAuth::Post);
        assert!(github.scopes.is_empty());
        assert_eq!(github.userinfo_accept(), "application/vnd.github+json");
        assert!(github.check().is_ok());

        let enterprise =
            github.github_base_urls("https://ghe.example.com/", "https://ghe.example.com/api/v3");
        assert_eq!(
            explicit(&enterprise),
            (
                "https://ghe.example.com/login/oauth/authorize",
                "https://ghe.example.com/login/oauth/access_token",
                "https://ghe.example.com/api/v3/user"
            )
        );
        let insecure = Upstream::github("id")
            .client_secret("s")
            .github_base_urls("http://ghe.example.com", "https://ghe.example.com/api/v3");
        assert!(insecure.check().unwrap_err().contains("GitHub's web URL"));
        let misplaced = Upstream::google("id")
            .client_secret("s")
            .github_base_urls("https://a.example", "https://b.example");
        assert!(misplaced.check().unwrap_err().contains("github_base_urls"));
    }

    #[test]
    fn presets_need_a_client_secret_and_github_apps_no_scopes() {
        for preset in [
            Upstream::github("id"),
            Upstream::github_app("id"),
            Upstream::google("id"),
            Upstream::entra(TENANT, "id"),
        ] {
            assert!(
                preset.check().unwrap_err().contains("client secret"),
                "{preset:?}"
            );
        }
        assert!(
            Upstream::oidc("https://issuer.example", "id")
                .check()
                .is_ok()
        );
        assert!(
            Upstream::github_app("id")
                .client_secret("s")
                .check()
                .is_ok()
        );
        let scoped = Upstream::github_app("id")
            .client_secret("s")
            .scopes(["repo"]);
        assert!(
            scoped
                .check()
                .unwrap_err()
                .contains("GitHub App ignores scopes")
        );
    }

    #[test]
    fn github_scopes_are_read_as_a_list_elsewhere_kept_as_written() {
        let github = Upstream::github("id");
        assert_eq!(github.normalise_scope("repo,read:user"), "repo read:user");
        assert_eq!(github.normalise_scope("repo, user,"), "repo user");
        assert_eq!(github.normalise_scope(""), "");
        let oidc = Upstream::oidc("https://issuer.example", "id");
        assert_eq!(oidc.normalise_scope("a,b c"), "a,b c");
    }

    #[test]
    fn google_asks_for_a_refresh_token_and_accepts_both_issuer_spellings() {
        let google = Upstream::google("id").client_secret("s");
        assert_eq!(discovered(&google), ("https://accounts.google.com", None));
        assert_eq!(google.scope_parameter(), "openid email profile");
        assert_eq!(
            google.authorize_params,
            vec![
                ("access_type".to_owned(), "offline".to_owned()),
                ("prompt".to_owned(), "consent".to_owned())
            ]
        );
        let issuer = "https://accounts.google.com";
        for iss in [issuer, "accounts.google.com"] {
            assert!(
                google
                    .check_id_token_issuer(&claims(&[("iss", iss)]), issuer)
                    .is_ok()
            );
        }
        for iss in [
            "https://accounts.google.com/",
            "https://evil.example",
            "google.com",
        ] {
            assert!(
                google
                    .check_id_token_issuer(&claims(&[("iss", iss)]), issuer)
                    .is_err()
            );
        }
        assert!(google.check_id_token_issuer(&Map::new(), issuer).is_err());

        // One value per parameter: the user's prompt replaces the preset's.
        let picker = google.authorize_param("prompt", "select_account");
        assert_eq!(picker.authorize_params[1].1, "select_account");
        assert_eq!(picker.authorize_params.len(), 2);

        let local = Upstream::google("id").google_base_url("http://127.0.0.1:8080/");
        assert_eq!(discovered(&local), ("http://127.0.0.1:8080", None));
        assert!(
            local
                .check_id_token_issuer(
                    &claims(&[("iss", "127.0.0.1:8080")]),
                    "http://127.0.0.1:8080"
                )
                .is_ok()
        );
    }

    #[test]
    fn other_providers_id_tokens_name_exactly_the_discovered_issuer() {
        let oidc = Upstream::oidc("https://issuer.example", "id");
        let issuer = "https://issuer.example";
        assert!(
            oidc.check_id_token_issuer(&claims(&[("iss", issuer)]), issuer)
                .is_ok()
        );
        assert!(
            oidc.check_id_token_issuer(&claims(&[("iss", "issuer.example")]), issuer)
                .is_err()
        );
    }

    #[test]
    fn entra_discovers_per_tenant_and_multi_tenant_from_the_template() {
        let single = Upstream::entra(TENANT, "id").client_secret("s");
        assert_eq!(
            discovered(&single),
            (
                "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                None
            )
        );
        assert_eq!(single.scope_parameter(), "openid profile offline_access");
        let upper = Upstream::entra(TENANT.to_ascii_uppercase(), "id");
        assert_eq!(discovered(&upper).0, discovered(&single).0);
        assert_eq!(single.id_name(), "entra");
        for (tenant, segment) in [
            (EntraTenant::Organizations, "organizations"),
            (EntraTenant::Common, "common"),
        ] {
            let multi = Upstream::entra(tenant, "id");
            let metadata = format!(
                "https://login.microsoftonline.com/{segment}/v2.0/.well-known/openid-configuration"
            );
            assert_eq!(
                discovered(&multi),
                (
                    "https://login.microsoftonline.com/{tenantid}/v2.0",
                    Some(metadata.as_str())
                )
            );
        }
        let local = Upstream::entra("common", "id").entra_base_url("http://127.0.0.1:9000");
        assert_eq!(
            discovered(&local).1,
            Some("http://127.0.0.1:9000/common/v2.0/.well-known/openid-configuration")
        );
    }

    #[test]
    fn entra_refuses_domain_tenants_and_a_second_resource() {
        let configured = |tenant: &str, scopes: &[&str]| {
            Upstream::entra(tenant, "id")
                .client_secret("s")
                .scopes(scopes.iter().copied())
                .check()
        };
        assert!(configured(TENANT, &["api://mcp/todos.read", "api://mcp/todos.write"]).is_ok());
        assert!(configured("organizations", &[]).is_ok());
        assert!(
            configured("contoso.onmicrosoft.com", &[])
                .unwrap_err()
                .contains("not a tenant id")
        );
        assert!(
            configured("consumers", &[])
                .unwrap_err()
                .contains("9188040d")
        );
        let two = configured(TENANT, &["api://mcp/todos.read", "api://other/read"]).unwrap_err();
        assert!(two.contains("AADSTS28000"), "{two}");
        assert!(configured(TENANT, &["api://mcp/todos.read", "User.Read"]).is_err());
    }

    #[test]
    fn entra_id_tokens_are_checked_against_their_own_tenant() {
        let v2 = |tid: &str| format!("https://login.microsoftonline.com/{tid}/v2.0");
        let token = |iss: &str, tid: &str| claims(&[("iss", iss), ("tid", tid)]);
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";

        let organizations = Upstream::entra(EntraTenant::Organizations, "id");
        let check = |upstream: &Upstream, claims: &Map<String, Value>| {
            upstream.check_id_token_issuer(claims, template)
        };
        assert!(check(&organizations, &token(&v2(TENANT), TENANT)).is_ok());
        assert!(check(&organizations, &token(&v2(OTHER_TENANT), OTHER_TENANT)).is_ok());
        // The issuer of another tenant than the token's.
        let mismatch = check(&organizations, &token(&v2(OTHER_TENANT), TENANT)).unwrap_err();
        assert!(
            mismatch
                .to_string()
                .contains("not the issuer of its tenant"),
            "{mismatch}"
        );
        // The template itself is never an accepted issuer.
        assert!(check(&organizations, &token(template, TENANT)).is_err());
        assert!(check(&organizations, &claims(&[("iss", &v2(TENANT))])).is_err());
        assert!(check(&organizations, &token(&v2("not-a-guid"), "not-a-guid")).is_err());
        let consumers = mcpauth_rules::provider::ENTRA_CONSUMERS_TENANT;
        assert!(check(&organizations, &token(&v2(consumers), consumers)).is_err());
        let common = Upstream::entra(EntraTenant::Common, "id");
        assert!(check(&common, &token(&v2(consumers), consumers)).is_ok());

        // v1 issuers only when configured.
        let v1 = format!("https://sts.windows.net/{TENANT}/");
        assert!(check(&common, &token(&v1, TENANT)).is_err());
        assert!(check(&common.clone().entra_v1_issuer(true), &token(&v1, TENANT)).is_ok());

        // A single tenant takes its own users only.
        let single = Upstream::entra(TENANT, "id");
        let own = v2(TENANT);
        assert!(
            single
                .check_id_token_issuer(&token(&own, TENANT), &own)
                .is_ok()
        );
        let foreign = token(&v2(OTHER_TENANT), OTHER_TENANT);
        assert!(single.check_id_token_issuer(&foreign, &own).is_err());
    }

    #[test]
    fn user_ids_are_strings_or_integers() {
        assert_eq!(user_id_text(&Value::from(12345)), Some("12345".into()));
        assert_eq!(user_id_text(&Value::from("abc")), Some("abc".into()));
        assert_eq!(user_id_text(&Value::from("")), None);
        assert_eq!(user_id_text(&Value::from(1.5)), None);
    }
}
