//! A plain OAuth 2.0 identity provider in the manner of GitHub's OAuth Apps, in the test process,
//! so it outlives the `todo-broker` processes it serves (restarts).
//!
//! What it copies from GitHub: no discovery, no OpenID Connect; `/login/oauth/authorize` (here
//! it approves at once, as for a user already signed in who authorized the app before);
//! `/login/oauth/access_token` answers **form-encoded** unless the request says
//! `Accept: application/json`, errors too with status 200, no `expires_in`, no refresh token;
//! `/user` wants a `User-Agent` (403 without one) and answers `{"id":12345,"login":"octocat"}`
//! to a token it issued, 401 to any other. PKCE `S256` is optional, checked when a challenge
//! was sent; the `redirect_uri` must be the registered callback.
//!
//! It records every authorization query and token request, so tests can see what the broker
//! sent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The user every sign-in signs in as.
pub(crate) const USER_ID: u64 = 12345;

/// A token request as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct TokenRequest {
    /// Whether it asked for JSON.
    pub(crate) accept_json: bool,
    /// Whether the client credentials came in the form (`client_secret_post`).
    pub(crate) credentials_in_form: bool,
    /// Its form parameters' names.
    pub(crate) params: Vec<String>,
}

#[derive(Debug, Default)]
struct Shared {
    client_id: String,
    client_secret: String,
    callback: Mutex<Option<String>>,
    /// Code → (redirect URI, PKCE challenge).
    codes: Mutex<HashMap<String, (String, Option<String>)>>,
    tokens: Mutex<HashSet<String>>,
    authorizations: Mutex<Vec<HashMap<String, String>>>,
    token_requests: Mutex<Vec<TokenRequest>>,
    user_requests: AtomicUsize,
}

/// The provider, on 127.0.0.1 at an ephemeral port; it stops when dropped.
#[derive(Debug)]
pub(crate) struct GitHubLike {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHubLike {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl GitHubLike {
    pub(crate) async fn start() -> Self {
        let shared = Arc::new(Shared {
            client_id: format!("Ov23li{}", random(14)),
            client_secret: random(40).to_lowercase(),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, shared, task }
    }

    pub(crate) fn authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.base)
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.base)
    }

    pub(crate) fn user_url(&self) -> String {
        format!("{}/user", self.base)
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    pub(crate) fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// Registers the OAuth App's callback URL (the broker's, known once it listens).
    pub(crate) fn set_callback(&self, callback: &str) {
        *self.shared.callback.lock().unwrap() = Some(callback.to_owned());
    }

    /// The authorization requests received, their query parameters.
    pub(crate) fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.shared.authorizations.lock().unwrap().clone()
    }

    /// The token requests received.
    pub(crate) fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.token_requests.lock().unwrap().clone()
    }

    /// How many requests reached `/user`.
    pub(crate) fn user_requests(&self) -> usize {
        self.shared.user_requests.load(Ordering::SeqCst)
    }

    /// Revokes every access token, as a user revoking the OAuth App does: `/user` then answers
    /// 401 to them.
    pub(crate) fn revoke_tokens(&self) {
        self.shared.tokens.lock().unwrap().clear();
    }
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.authorizations.lock().unwrap().push(query.clone());
    if query.get("client_id") != Some(&shared.client_id) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let callback = shared.callback.lock().unwrap().clone();
    let Some(redirect) = callback.filter(|c| query.get("redirect_uri") == Some(c)) else {
        return (
            StatusCode::BAD_REQUEST,
            "The redirect_uri MUST match the registered callback URL for this application.",
        )
            .into_response();
    };
    let challenge = query.get("code_challenge").cloned();
    if challenge.is_some() && query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (
            StatusCode::BAD_REQUEST,
            "code_challenge_method must be S256",
        )
            .into_response();
    }
    let code = random(20).to_lowercase();
    shared
        .codes
        .lock()
        .unwrap()
        .insert(code.clone(), (redirect.clone(), challenge));
    let mut target = url::Url::parse(&redirect).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", query.get("state").map_or("", String::as_str));
    Redirect::to(target.as_str()).into_response()
}

/// A token endpoint answer: JSON when asked for, else form-encoded; errors with status 200.
fn answer(headers: &HeaderMap, pairs: &[(&str, &str)]) -> Response {
    if accepts_json(headers) {
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

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

async fn access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|credentials| STANDARD.decode(credentials.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let (id, secret) = match &basic {
        Some(pair) => {
            let (id, secret) = pair.split_once(':').unwrap_or((pair, ""));
            (Some(id.to_owned()), Some(secret.to_owned()))
        }
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    let mut params: Vec<String> = form.keys().cloned().collect();
    params.sort();
    shared.token_requests.lock().unwrap().push(TokenRequest {
        accept_json: accepts_json(&headers),
        credentials_in_form: basic.is_none() && form.contains_key("client_secret"),
        params,
    });
    if id.as_ref() != Some(&shared.client_id) || secret.as_ref() != Some(&shared.client_secret) {
        return answer(
            &headers,
            &[
                ("error", "incorrect_client_credentials"),
                (
                    "error_description",
                    "The client_id and/or client_secret passed are incorrect.",
                ),
            ],
        );
    }
    let bad_code = [
        ("error", "bad_verification_code"),
        (
            "error_description",
            "The code passed is incorrect or expired.",
        ),
    ];
    let pending = form
        .get("code")
        .and_then(|code| shared.codes.lock().unwrap().remove(code));
    let Some((redirect_uri, challenge)) = pending else {
        return answer(&headers, &bad_code);
    };
    if form.get("redirect_uri").is_some_and(|r| *r != redirect_uri) {
        return answer(
            &headers,
            &[
                ("error", "redirect_uri_mismatch"),
                (
                    "error_description",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
            ],
        );
    }
    if let Some(challenge) = challenge {
        let verified = form.get("code_verifier").is_some_and(|verifier| {
            URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())) == challenge
        });
        if !verified {
            return answer(&headers, &bad_code);
        }
    }
    let token = format!("gho_{}", random(36));
    shared.tokens.lock().unwrap().insert(token.clone());
    answer(
        &headers,
        &[
            ("access_token", &token),
            ("scope", "read:user"),
            ("token_type", "bearer"),
        ],
    )
}

async fn user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.user_requests.fetch_add(1, Ordering::SeqCst);
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
        .map(|(_, token)| token.trim().to_owned());
    let known = token.is_some_and(|token| shared.tokens.lock().unwrap().contains(&token));
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
    Json(json!({"id": USER_ID, "login": "octocat"})).into_response()
}
