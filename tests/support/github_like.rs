//! A plain OAuth 2.0 provider in the manner of GitHub's OAuth Apps, for tests of a broker in
//! front of a provider that has no discovery, no OpenID Connect and no refresh tokens.
//!
//! What it copies from GitHub, because brokers get each of these wrong:
//! - no discovery document: the endpoints are known by their paths, `/login/oauth/authorize`,
//!   `/login/oauth/access_token` and `/user`;
//! - the token endpoint answers **form-encoded** unless the request says
//!   `Accept: application/json`; the granted `scope` is comma-separated; there is no
//!   `expires_in` and no refresh token (OAuth App tokens do not expire);
//! - token endpoint errors come back with status **200** and an `error` member
//!   (`incorrect_client_credentials`, `bad_verification_code`, `redirect_uri_mismatch`);
//! - the redirect carries `code` and `state`, no `iss`;
//! - `/user` wants a `User-Agent` header (403 without one, as GitHub's API does), accepts
//!   `Bearer` and `token` credentials, and answers 401 `{"message": "Bad credentials", …}` for
//!   an unknown token;
//! - PKCE `S256` is optional, and checked when a challenge was sent;
//! - with a registered callback ([`GitHubLike::start_with_callback`]), a `redirect_uri` must
//!   share its scheme, host and port and sit under its path, and a missing one means the
//!   callback itself; a mismatch is reported to the callback as `error=redirect_uri_mismatch`;
//! - as a GitHub App with expiring user tokens ([`GitHubLike::start_app`]): `ghu_` access
//!   tokens for 8 hours, a `ghr_` refresh token for 6 months, an empty `scope` (Apps have
//!   permissions, not scopes); `grant_type=refresh_token` rotates the refresh token (the old
//!   one is refused afterwards with `bad_refresh_token`) and revokes the old access token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use url::Url;

use crate::TestServer;

/// The user every login signs in as.
pub const USER_ID: u64 = 12345;
/// The login of that user.
pub const USER_LOGIN: &str = "octocat";
/// The display name of that user.
pub const USER_NAME: &str = "The Octocat";

/// A GitHub-like provider on `127.0.0.1` with an ephemeral port and one OAuth App; it stops when
/// dropped.
#[derive(Debug)]
pub struct GitHubLike {
    server: TestServer,
    /// The OAuth App's client ID.
    pub client_id: String,
    /// The OAuth App's client secret.
    pub client_secret: String,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client_id: String,
    client_secret: String,
    callback: Option<Url>,
    codes: Mutex<HashMap<String, PendingCode>>,
    /// Access token → granted scopes.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    /// A GitHub App's refresh token → its access token and scopes.
    refresh_tokens: Mutex<HashMap<String, (String, Vec<String>)>>,
    /// A GitHub App's access token lifetime, in seconds (GitHub's is 8 hours).
    expires_in: AtomicUsize,
    refresh_requests: AtomicUsize,
    authorize_requests: AtomicUsize,
    token_requests: AtomicUsize,
    user_requests: AtomicUsize,
    /// A GitHub App with expiring user tokens.
    app: bool,
    /// Answer form-encoded even when JSON is asked for.
    always_form: AtomicBool,
    last_authorize: Mutex<Option<HashMap<String, String>>>,
    last_user_request: Mutex<Option<UserRequest>>,
}

/// The headers of a call to `/user` that matter to GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRequest {
    /// `Accept`.
    pub accept: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

#[derive(Debug)]
struct PendingCode {
    redirect_uri: String,
    scopes: Vec<String>,
    code_challenge: Option<String>,
}

impl GitHubLike {
    /// Starts a provider whose OAuth App has no registered callback: any `redirect_uri` is
    /// accepted, and one is required.
    pub async fn start() -> Self {
        Self::start_inner(None, false).await
    }

    /// Starts a provider whose OAuth App has `callback` as its callback URL (GitHub's rules for
    /// `redirect_uri` apply; see the [module docs](self)).
    pub async fn start_with_callback(callback: &str) -> Self {
        Self::start_inner(Some(Url::parse(callback).unwrap()), false).await
    }

    /// Starts a provider with a GitHub App whose user tokens expire, and `callback` as one of
    /// its callback URLs.
    pub async fn start_app(callback: &str) -> Self {
        Self::start_inner(Some(Url::parse(callback).unwrap()), true).await
    }

    async fn start_inner(callback: Option<Url>, app: bool) -> Self {
        let client_id = format!("Ov23li{}", random_alphanumeric(14));
        let client_secret = random_alphanumeric(40).to_lowercase();
        let shared = Arc::new(Shared {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            callback,
            codes: Mutex::default(),
            tokens: Mutex::default(),
            refresh_tokens: Mutex::default(),
            expires_in: AtomicUsize::new(28800),
            refresh_requests: AtomicUsize::new(0),
            authorize_requests: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            user_requests: AtomicUsize::new(0),
            app,
            always_form: AtomicBool::new(false),
            last_authorize: Mutex::default(),
            last_user_request: Mutex::default(),
        });
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .with_state(shared.clone());
        Self {
            server: TestServer::start(router).await,
            client_id,
            client_secret,
            shared,
        }
    }

    /// `http://127.0.0.1:<port>`: both the web host and the API host of this provider.
    pub fn base_url(&self) -> String {
        self.server.url("")
    }

    /// The authorization endpoint.
    pub fn authorize_url(&self) -> String {
        self.server.url("/login/oauth/authorize")
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        self.server.url("/login/oauth/access_token")
    }

    /// The user endpoint of the API.
    pub fn user_url(&self) -> String {
        self.server.url("/user")
    }

    /// How many requests reached the authorization endpoint.
    pub fn authorize_requests(&self) -> usize {
        self.shared.authorize_requests.load(Ordering::SeqCst)
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// How many token requests were refreshes (`grant_type=refresh_token`).
    pub fn refresh_requests(&self) -> usize {
        self.shared.refresh_requests.load(Ordering::SeqCst)
    }

    /// From now on, a GitHub App's access tokens live `seconds` (8 hours by default).
    pub fn set_expires_in(&self, seconds: usize) {
        self.shared.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// How many requests reached `/user`.
    pub fn user_requests(&self) -> usize {
        self.shared.user_requests.load(Ordering::SeqCst)
    }

    /// From now on, answers the token endpoint form-encoded even to `Accept: application/json`
    /// (GitHub's default answer; a proxy in between may drop the header).
    pub fn answer_form_always(&self) {
        self.shared.always_form.store(true, Ordering::SeqCst);
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> Option<HashMap<String, String>> {
        self.shared.last_authorize.lock().unwrap().clone()
    }

    /// The headers of the last call to `/user`.
    pub fn last_user_request(&self) -> Option<UserRequest> {
        self.shared.last_user_request.lock().unwrap().clone()
    }

    /// Revokes every access token, as a user revoking the OAuth App does: `/user` then answers
    /// 401 to them. Answers how many there were.
    pub fn revoke_tokens(&self) -> usize {
        let mut tokens = self.shared.tokens.lock().unwrap();
        let count = tokens.len();
        tokens.clear();
        count
    }
}

/// Random letters and digits, the alphabet of GitHub's tokens.
fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    // 256 is not a multiple of 62: the slight bias does not matter for a test provider.
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// GitHub takes scopes separated by spaces (or commas).
fn scopes_of(scope: Option<&String>) -> Vec<String> {
    scope
        .map(String::as_str)
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// GitHub's rule for OAuth Apps: same scheme, host and port as the callback, and a path under
/// the callback's.
fn under_callback(callback: &Url, redirect: &Url) -> bool {
    let base = callback.path().trim_end_matches('/');
    let path = redirect.path();
    callback.scheme() == redirect.scheme()
        && callback.host() == redirect.host()
        && callback.port_or_known_default() == redirect.port_or_known_default()
        && (path == base
            || path
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/')))
}

fn redirect_to(target: &Url, params: &[(&str, &str)]) -> Response {
    let mut target = target.clone();
    target.query_pairs_mut().extend_pairs(params);
    Redirect::to(target.as_str()).into_response()
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.authorize_requests.fetch_add(1, Ordering::SeqCst);
    *shared.last_authorize.lock().unwrap() = Some(query.clone());
    if query.get("client_id") != Some(&shared.client_id) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let state = query.get("state").map(String::as_str).unwrap_or_default();
    let asked = query.get("redirect_uri").map(|r| Url::parse(r));
    let redirect = match (&shared.callback, asked) {
        (_, Some(Err(_))) | (None, None) => {
            return (
                StatusCode::BAD_REQUEST,
                "The redirect_uri is missing or malformed.",
            )
                .into_response();
        }
        (None, Some(Ok(redirect))) => redirect,
        (Some(callback), None) => callback.clone(),
        (Some(callback), Some(Ok(redirect))) if under_callback(callback, &redirect) => redirect,
        (Some(callback), Some(Ok(_))) => {
            return redirect_to(
                callback,
                &[
                    ("error", "redirect_uri_mismatch"),
                    (
                        "error_description",
                        "The redirect_uri MUST match the registered callback URL for this application.",
                    ),
                    ("state", state),
                ],
            );
        }
    };
    let challenge = query.get("code_challenge").cloned();
    if challenge.is_some() && query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return redirect_to(
            &redirect,
            &[
                ("error", "invalid_request"),
                ("error_description", "code_challenge_method must be S256"),
                ("state", state),
            ],
        );
    }
    let code = random_alphanumeric(20).to_lowercase();
    shared.codes.lock().unwrap().insert(
        code.clone(),
        PendingCode {
            redirect_uri: redirect.to_string(),
            scopes: scopes_of(query.get("scope")),
            code_challenge: challenge,
        },
    );
    redirect_to(&redirect, &[("code", &code), ("state", state)])
}

/// The client credentials of a token request: HTTP Basic, else the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|credentials| STANDARD.decode(credentials.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    }
}

/// A token endpoint answer: JSON when asked for, else form-encoded, as GitHub does. Errors too
/// come with status 200.
fn answer(shared: &Shared, headers: &HeaderMap, pairs: &[(&str, &str)]) -> Response {
    let wants_json = !shared.always_form.load(Ordering::SeqCst)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        let body: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        return Json(body).into_response();
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    response
}

fn error(shared: &Shared, headers: &HeaderMap, error: &str, description: &str) -> Response {
    answer(
        shared,
        headers,
        &[
            ("error", error),
            ("error_description", description),
            (
                "error_uri",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
            ),
        ],
    )
}

async fn access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let (id, secret) = client_credentials(&headers, &form);
    if id.as_ref() != Some(&shared.client_id) || secret.as_ref() != Some(&shared.client_secret) {
        return error(
            &shared,
            &headers,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh(&shared, &headers, &form);
    }
    let bad_code = |headers: &HeaderMap| {
        error(
            &shared,
            headers,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        )
    };
    let pending = form
        .get("code")
        .and_then(|code| shared.codes.lock().unwrap().remove(code));
    let Some(pending) = pending else {
        return bad_code(&headers);
    };
    if let Some(redirect_uri) = form.get("redirect_uri") {
        let same = Url::parse(redirect_uri).is_ok_and(|r| r.as_str() == pending.redirect_uri);
        if !same {
            return error(
                &shared,
                &headers,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            );
        }
    }
    if let Some(challenge) = &pending.code_challenge {
        let verified = form.get("code_verifier").is_some_and(|verifier| {
            URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())) == *challenge
        });
        if !verified {
            return bad_code(&headers);
        }
    }
    let prefix = if shared.app { "ghu_" } else { "gho_" };
    let token = format!("{prefix}{}", random_alphanumeric(36));
    // A GitHub App has permissions, not scopes: its answers name none.
    let scope = if shared.app {
        String::new()
    } else {
        pending.scopes.join(",")
    };
    shared
        .tokens
        .lock()
        .unwrap()
        .insert(token.clone(), pending.scopes.clone());
    if shared.app {
        return app_tokens(&shared, &headers, token, pending.scopes);
    }
    answer(
        &shared,
        &headers,
        &[
            ("access_token", &token),
            ("scope", &scope),
            ("token_type", "bearer"),
        ],
    )
}

/// A GitHub App's answer: the access token, its lifetime, and a new refresh token.
fn app_tokens(
    shared: &Shared,
    headers: &HeaderMap,
    token: String,
    scopes: Vec<String>,
) -> Response {
    let refresh = format!("ghr_{}", random_alphanumeric(76));
    shared
        .refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh.clone(), (token.clone(), scopes));
    let expires_in = shared.expires_in.load(Ordering::SeqCst).to_string();
    answer(
        shared,
        headers,
        &[
            ("access_token", &token),
            ("expires_in", &expires_in),
            ("refresh_token", &refresh),
            ("refresh_token_expires_in", "15897600"),
            ("scope", ""),
            ("token_type", "bearer"),
        ],
    )
}

/// `grant_type=refresh_token` of a GitHub App: the refresh token is spent (rotation), the
/// access token it came with revoked.
fn refresh(shared: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> Response {
    shared.refresh_requests.fetch_add(1, Ordering::SeqCst);
    let spent = form
        .get("refresh_token")
        .and_then(|token| shared.refresh_tokens.lock().unwrap().remove(token));
    let Some((old_access, scopes)) = spent.filter(|_| shared.app) else {
        return error(
            shared,
            headers,
            "bad_refresh_token",
            "The refresh token passed is incorrect or expired.",
        );
    };
    shared.tokens.lock().unwrap().remove(&old_access);
    let token = format!("ghu_{}", random_alphanumeric(36));
    shared
        .tokens
        .lock()
        .unwrap()
        .insert(token.clone(), scopes.clone());
    app_tokens(shared, headers, token, scopes)
}

async fn user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.user_requests.fetch_add(1, Ordering::SeqCst);
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    *shared.last_user_request.lock().unwrap() = Some(UserRequest {
        accept: text(header::ACCEPT),
        user_agent: text(header::USER_AGENT),
    });
    if !headers.contains_key(header::USER_AGENT) {
        return (
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header.\n",
        )
            .into_response();
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")
        })
        .map(|(_, token)| token.trim());
    let known = token.is_some_and(|token| shared.tokens.lock().unwrap().contains_key(token));
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401"
            })),
        )
            .into_response();
    }
    Json(json!({"id": USER_ID, "login": USER_LOGIN, "name": USER_NAME})).into_response()
}
