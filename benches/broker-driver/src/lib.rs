//! A browser and an MCP client of an mcpauth broker, over HTTP, for the load and soak runs:
//! dynamic client registration, a sign-in through the broker's consent page and its identity
//! provider (cookies carried by hand, no redirect followed implicitly), code redemption, refresh
//! grants and revocation (RFC 7009).
//!
//! Every answer that is not the one a step expects comes back as a [`StepError`] naming the
//! step and what was answered (no answer at all, a status, an OAuth error redirect, a page
//! without its form), so that a caller can judge it; the token endpoint's answers are returned
//! whole ([`TokenAnswer`]), whatever their status.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};
use url::Url;

/// The MCP client's redirect URI (never visited: the driver reads the redirect).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// How much of an unexpected answer's body a [`Failure::Status`] keeps.
const BODY_KEPT: usize = 200;

/// A step of the client's or the browser's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// `POST /register` (RFC 7591).
    Register,
    /// `GET /authorize`: 303 to the consent page.
    Authorize,
    /// `GET /consent`: the page and its form.
    ConsentPage,
    /// `POST /consent` with `decision=approve`: 303 to the identity provider.
    Approve,
    /// The identity provider's authorization endpoint: a redirect to the broker's callback.
    Provider,
    /// `GET /callback/…`: 303 to the client's redirect URI with the code.
    Callback,
    /// `POST /token`.
    Token,
    /// `POST /revoke`.
    Revoke,
}

impl Step {
    /// A short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Authorize => "authorize",
            Self::ConsentPage => "consent page",
            Self::Approve => "approve",
            Self::Provider => "provider",
            Self::Callback => "callback",
            Self::Token => "token",
            Self::Revoke => "revoke",
        }
    }
}

/// What a step got instead of the answer it expects.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No answer: the connection was refused (`connect`), reset, or timed out (`timeout`).
    Transport {
        /// The connection could not be made.
        connect: bool,
        /// The request's time bound ran out.
        timeout: bool,
        /// The error and its causes.
        message: String,
    },
    /// Another status than the step expects.
    Status {
        /// The status answered.
        status: u16,
        /// Whether `Retry-After` came with it.
        retry_after: bool,
        /// The start of the body.
        body: String,
    },
    /// The broker sent the browser back to the client's redirect URI with an OAuth error.
    ErrorRedirect {
        /// The `error` code.
        error: String,
        /// The `error_description` (empty if none).
        description: String,
        /// The `state` sent back.
        state: Option<String>,
        /// The `iss` sent back (RFC 9207).
        iss: Option<String>,
    },
    /// The expected status, but not the expected content (no `Location`, no form field, no
    /// code).
    Malformed(String),
}

/// A step that did not get the answer it expects.
#[derive(Debug, Clone)]
pub struct StepError {
    /// The step.
    pub step: Step,
    /// What it got.
    pub failure: Failure,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = self.step.label();
        match &self.failure {
            Failure::Transport { message, .. } => write!(f, "{step}: no answer: {message}"),
            Failure::Status { status, body, .. } => write!(f, "{step}: answered {status}: {body}"),
            Failure::ErrorRedirect {
                error, description, ..
            } => write!(f, "{step}: error redirect {error}: {description}"),
            Failure::Malformed(what) => write!(f, "{step}: {what}"),
        }
    }
}

impl std::error::Error for StepError {}

impl StepError {
    fn malformed(step: Step, what: impl Into<String>) -> Self {
        Self {
            step,
            failure: Failure::Malformed(what.into()),
        }
    }

    fn transport(step: Step, error: &reqwest::Error) -> Self {
        // The chain of causes names what happened (refused, reset, timed out).
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            step,
            failure: Failure::Transport {
                connect: error.is_connect(),
                timeout: error.is_timeout(),
                message,
            },
        }
    }

    /// A status the step did not expect, with the start of its body.
    async fn status(step: Step, response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key(RETRY_AFTER);
        let body = response.text().await.unwrap_or_default();
        Self {
            step,
            failure: Failure::Status {
                status,
                retry_after,
                body: body.chars().take(BODY_KEPT).collect(),
            },
        }
    }
}

/// An HTTP client for the driver: no redirect followed, no proxy from the environment, every
/// request bounded by `timeout`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .build()
}

/// A PKCE pair: (verifier, S256 challenge); the verifier is unique within the process.
pub fn pkce() -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let verifier = format!("driver-verifier-{n:020}-0123456789abcdefghijklmnop");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// A browser's cookies, by hand: the `name=value` of each `Set-Cookie` (a `Max-Age=0` one
/// deletes).
#[derive(Debug, Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn absorb(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if text.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }
}

/// The value of the hidden input `name` of the broker's consent page.
fn hidden_input<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next()
}

/// The `Location` of a redirect; any other answer is the step's failure.
async fn location(response: reqwest::Response, step: Step) -> Result<String, StepError> {
    if !response.status().is_redirection() {
        return Err(StepError::status(step, response).await);
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| StepError::malformed(step, "a redirect without Location"))
}

/// `url` (absolute, or a path) at `origin`: its path and query kept, its origin replaced — the
/// same request sent to another replica behind one public URL.
pub fn at(origin: &str, url: &str) -> Result<String, String> {
    let base = Url::parse(origin).map_err(|e| format!("origin {origin}: {e}"))?;
    let joined = base.join(url).map_err(|e| format!("{url}: {e}"))?;
    let mut moved = origin.trim_end_matches('/').to_owned();
    moved.push_str(joined.path());
    if let Some(query) = joined.query() {
        moved.push('?');
        moved.push_str(query);
    }
    Ok(moved)
}

/// The query of a redirect to the client's redirect URI, if it is one.
fn client_redirect(location: &str) -> Option<HashMap<String, String>> {
    if !location.starts_with(REDIRECT_URI) {
        return None;
    }
    let url = Url::parse(location).ok()?;
    Some(url.query_pairs().into_owned().collect())
}

/// An OAuth error redirect's failure, or `None` if the query carries no `error`.
fn error_redirect(query: &HashMap<String, String>) -> Option<Failure> {
    let error = query.get("error")?;
    Some(Failure::ErrorRedirect {
        error: error.clone(),
        description: query.get("error_description").cloned().unwrap_or_default(),
        state: query.get("state").cloned(),
        iss: query.get("iss").cloned(),
    })
}

/// What the client keeps of one sign-in between the authorization request and the code
/// redemption.
#[derive(Debug, Clone)]
pub struct Login {
    /// The PKCE verifier.
    pub verifier: String,
    /// The `state` sent.
    pub state: String,
    /// The `resource` sent, if any (RFC 8707).
    pub resource: Option<String>,
}

/// A sign-in's end: the code, with the `state` and `iss` the broker sent back with it.
#[derive(Debug, Clone)]
pub struct Code {
    /// The sign-in it ends.
    pub login: Login,
    /// The authorization code.
    pub code: String,
    /// The `state` sent back.
    pub state: Option<String>,
    /// The `iss` sent back (RFC 9207).
    pub iss: Option<String>,
}

/// The token endpoint's answer, whatever its status.
#[derive(Debug, Clone)]
pub struct TokenAnswer {
    /// The status.
    pub status: u16,
    /// Whether `Retry-After` came with it.
    pub retry_after: bool,
    /// `Cache-Control: no-store`, as RFC 6749 §5.1 and §5.2 want on every answer.
    pub no_store: bool,
    /// The JSON body (`Null` if there was none, or it was not JSON).
    pub body: Value,
}

/// The tokens of a 200 answer.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// `expires_in`, if given.
    pub expires_in: Option<u64>,
}

impl TokenAnswer {
    /// The tokens, for a 200 carrying both.
    pub fn tokens(&self) -> Option<Tokens> {
        if self.status != 200 {
            return None;
        }
        Some(Tokens {
            access_token: self.body.get("access_token")?.as_str()?.to_owned(),
            refresh_token: self.body.get("refresh_token")?.as_str()?.to_owned(),
            expires_in: self.body.get("expires_in").and_then(Value::as_u64),
        })
    }

    /// The RFC 6749 §5.2 `error` code, for an error answer.
    pub fn error(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }
}

/// An MCP client registered at a broker: it signs users in (through a browser of its own for
/// each sign-in), redeems codes, refreshes and revokes. Requests to the broker go through
/// `http`, the browser's requests to the identity provider through `provider` (which may go
/// through a proxy).
#[derive(Debug, Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    provider: reqwest::Client,
    client_id: Arc<str>,
    /// Where the browser's requests to the identity provider go instead of the origin the
    /// broker's redirect names (see [`BrokerClient::provider_origin`]).
    provider_origin: Option<Arc<str>>,
}

impl BrokerClient {
    /// Registers a public native client (dynamic registration) at the broker at `origin`.
    pub async fn register(
        http: reqwest::Client,
        provider: reqwest::Client,
        origin: &str,
        client_name: &str,
    ) -> Result<Self, StepError> {
        let step = Step::Register;
        let body = json!({
            "client_name": client_name,
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"],
        });
        let response = http
            .post(format!("{}/register", origin.trim_end_matches('/')))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| StepError::transport(step, &e))?;
        if !response.status().is_success() {
            return Err(StepError::status(step, response).await);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StepError::transport(step, &e))?;
        let registered: Value = serde_json::from_slice(&bytes)
            .map_err(|e| StepError::malformed(step, format!("not JSON: {e}")))?;
        let client_id = registered
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or_else(|| StepError::malformed(step, "no client_id"))?;
        Ok(Self {
            http,
            provider,
            client_id: client_id.into(),
            provider_origin: None,
        })
    }

    /// Sends the browser's request to the identity provider to `origin` (its path and query
    /// kept): the provider's front door for browsers, when the broker reaches it at another
    /// address (through a fault proxy, say).
    #[must_use]
    pub fn provider_origin(mut self, origin: &str) -> Self {
        self.provider_origin = Some(origin.into());
        self
    }

    /// The client's `client_id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The browser part of one sign-in, in a new browser: the authorization request, the
    /// consent page, approval, the identity provider (which signs its user in without asking),
    /// the callback. `route` names the origin each of the broker's steps is sent to (one
    /// broker, or replicas behind one public URL).
    pub async fn sign_in(
        &self,
        route: impl Fn(Step) -> String,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Code, StepError> {
        let mut jar = Jar::default();
        let (verifier, challenge) = pkce();
        let (state, _) = pkce();
        let login = Login {
            verifier,
            state,
            resource: resource.map(str::to_owned),
        };

        let step = Step::Authorize;
        let origin = route(step);
        let mut authorize = Url::parse(&format!("{}/authorize", origin.trim_end_matches('/')))
            .map_err(|e| StepError::malformed(step, e.to_string()))?;
        {
            let mut query = authorize.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &login.state);
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
            if let Some(resource) = resource {
                query.append_pair("resource", resource);
            }
        }
        let send = |request: reqwest::RequestBuilder, step: Step| async move {
            request
                .send()
                .await
                .map_err(|e| StepError::transport(step, &e))
        };
        let response = send(self.http.get(authorize), step).await?;
        let consent = location(response, step).await?;

        let step = Step::ConsentPage;
        let consent = at(&route(step), &consent).map_err(|e| StepError::malformed(step, e))?;
        let response = send(self.http.get(&consent), step).await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(StepError::status(step, response).await);
        }
        jar.absorb(&response);
        let html = response
            .text()
            .await
            .map_err(|e| StepError::transport(step, &e))?;
        let field = |name| {
            hidden_input(&html, name)
                .ok_or_else(|| StepError::malformed(step, format!("no {name} field")))
        };
        let form = [
            ("transaction", field("transaction")?),
            ("csrf", field("csrf")?),
            ("decision", "approve"),
        ];

        let step = Step::Approve;
        let approval = self
            .http
            .post(format!("{}/consent", route(step).trim_end_matches('/')))
            .header(COOKIE, jar.header())
            .form(&form);
        let response = send(approval, step).await?;
        jar.absorb(&response);
        let provider = location(response, step).await?;
        if let Some(query) = client_redirect(&provider) {
            let failure = error_redirect(&query)
                .unwrap_or_else(|| Failure::Malformed(format!("sent to the client: {provider}")));
            return Err(StepError { step, failure });
        }

        let step = Step::Provider;
        let provider = match &self.provider_origin {
            Some(origin) => at(origin, &provider).map_err(|e| StepError::malformed(step, e))?,
            None => provider,
        };
        let response = send(self.provider.get(&provider), step).await?;
        let callback = location(response, step).await?;

        let step = Step::Callback;
        let callback = at(&route(step), &callback).map_err(|e| StepError::malformed(step, e))?;
        let response = send(self.http.get(&callback).header(COOKIE, jar.header()), step).await?;
        let back = location(response, step).await?;
        let query = client_redirect(&back)
            .ok_or_else(|| StepError::malformed(step, format!("not sent to the client: {back}")))?;
        if let Some(failure) = error_redirect(&query) {
            return Err(StepError { step, failure });
        }
        let code = query
            .get("code")
            .cloned()
            .ok_or_else(|| StepError::malformed(step, format!("no code in {back}")))?;
        Ok(Code {
            login,
            code,
            state: query.get("state").cloned(),
            iss: query.get("iss").cloned(),
        })
    }

    /// The code redeemed at `origin`.
    pub async fn redeem(&self, origin: &str, code: &Code) -> Result<TokenAnswer, StepError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", &*self.client_id),
            ("code", &code.code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &code.login.verifier),
        ];
        if let Some(resource) = &code.login.resource {
            form.push(("resource", resource));
        }
        self.token_request(origin, &form).await
    }

    /// One `refresh_token` grant at `origin`.
    pub async fn refresh(
        &self,
        origin: &str,
        refresh_token: &str,
    ) -> Result<TokenAnswer, StepError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &*self.client_id),
            ("refresh_token", refresh_token),
        ];
        self.token_request(origin, &form).await
    }

    /// RFC 7009 revocation of `token` at `origin`: the status, and whether `Retry-After` came
    /// with it.
    pub async fn revoke(&self, origin: &str, token: &str) -> Result<(u16, bool), StepError> {
        let form = [("client_id", &*self.client_id), ("token", token)];
        let response = self
            .http
            .post(format!("{}/revoke", origin.trim_end_matches('/')))
            .form(&form)
            .send()
            .await
            .map_err(|e| StepError::transport(Step::Revoke, &e))?;
        let retry_after = response.headers().contains_key(RETRY_AFTER);
        Ok((response.status().as_u16(), retry_after))
    }

    async fn token_request(
        &self,
        origin: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenAnswer, StepError> {
        let step = Step::Token;
        let response = self
            .http
            .post(format!("{}/token", origin.trim_end_matches('/')))
            .form(form)
            .send()
            .await
            .map_err(|e| StepError::transport(step, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let retry_after = headers.contains_key(RETRY_AFTER);
        let no_store = headers
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store"));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StepError::transport(step, &e))?;
        Ok(TokenAnswer {
            status,
            retry_after,
            no_store,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// A whole sign-in at `origin`, its code redeemed: the tokens (any other answer is an
    /// error).
    pub async fn login(&self, origin: &str, scope: Option<&str>) -> Result<Tokens, StepError> {
        let code = self.sign_in(|_| origin.to_owned(), scope, None).await?;
        let answer = self.redeem(origin, &code).await?;
        answer.tokens().ok_or_else(|| token_failure(&answer))
    }
}

/// A token answer without tokens, as a step error.
pub fn token_failure(answer: &TokenAnswer) -> StepError {
    StepError {
        step: Step::Token,
        failure: Failure::Status {
            status: answer.status,
            retry_after: answer.retry_after,
            body: answer.body.to_string().chars().take(BODY_KEPT).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_moves_to_another_origin_with_its_path_and_query() {
        for (url, moved) in [
            ("/consent?t=1", "http://127.0.0.1:2/consent?t=1"),
            (
                "http://127.0.0.1:1/callback/dev?code=a&state=b",
                "http://127.0.0.1:2/callback/dev?code=a&state=b",
            ),
            ("http://127.0.0.1:1/jwks", "http://127.0.0.1:2/jwks"),
        ] {
            assert_eq!(at("http://127.0.0.1:2", url).as_deref(), Ok(moved));
        }
    }

    #[test]
    fn an_error_redirect_is_read_with_its_state_and_issuer() {
        let query = client_redirect(&format!(
            "{REDIRECT_URI}?error=temporarily_unavailable&error_description=down&state=s&iss=http%3A%2F%2F127.0.0.1%3A1"
        ));
        let failure = query.as_ref().and_then(error_redirect);
        let Some(Failure::ErrorRedirect {
            error, state, iss, ..
        }) = failure
        else {
            unreachable!("not read as an error redirect: {failure:?}");
        };
        assert_eq!(error, "temporarily_unavailable");
        assert_eq!(state.as_deref(), Some("s"));
        assert_eq!(iss.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn verifiers_are_unique_and_challenges_are_s256() {
        let (a, challenge) = pkce();
        let (b, _) = pkce();
        assert_ne!(a, b);
        assert!((43..=128).contains(&a.len()));
        assert_eq!(challenge.len(), 43);
    }
}
