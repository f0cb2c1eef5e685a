//! An OpenID Connect provider in the manner of Google's, for tests of the broker's Google
//! preset on loopback (its issuer is the stand-in's origin).
//!
//! What it copies from Google, because brokers get each of these wrong:
//! - discovery at the issuer's `/.well-known/openid-configuration`, endpoints under other
//!   paths (`/o/oauth2/v2/auth`, `/token`), keys elsewhere (the `jwks_uri` of a development
//!   server holding the signing key);
//! - one OAuth client of type "Web application": exact redirect URI match, a client secret
//!   (Basic or form body), PKCE `S256` checked when a challenge was sent;
//! - a refresh token only with `access_type=offline`, and then only at the user's first consent
//!   unless `prompt=consent` asks again; refresh answers carry no new refresh token;
//! - granted `email` and `profile` come back as full scope URIs;
//! - ID tokens (RS256, `aud` = the client id, `azp`, `nonce`) whose `iss` is
//!   `https://<host>` or, as Google's documentation allows, `<host>` alone
//!   ([`GoogleLike::bare_issuer`]);
//! - no `resource` parameter (an error if one arrives: a broker must never forward it);
//! - the redirect carries `code`, `state`, `scope`, `authuser` and `prompt`, no `iss`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use mcpauth::dev::DevAuthServer;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::TestServer;
use crate::provider_kit::{
    OAuthError, client_credentials, oauth_error, pkce_matches, random_token, redirect_to, scopes_of,
};

/// The user every sign-in signs in as (Google's subjects are decimal strings).
pub const GOOGLE_SUB: &str = "110169484474386276334";
/// That user's address.
pub const GOOGLE_EMAIL: &str = "user@example.com";

/// A Google-like provider on `127.0.0.1` with one OAuth client; it stops when dropped.
#[derive(Debug)]
pub struct GoogleLike {
    server: TestServer,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    issuer: String,
    /// Holds the signing key and serves the key set.
    keys: DevAuthServer,
    client_id: String,
    client_secret: String,
    callback: String,
    codes: Mutex<HashMap<String, Pending>>,
    refresh_tokens: Mutex<HashMap<String, Vec<String>>>,
    /// Whether the user has consented to this client before (no refresh token without
    /// `prompt=consent` after that).
    consented: AtomicBool,
    bare_issuer: AtomicBool,
    id_token_issuer: Mutex<Option<String>>,
    last_authorize: Mutex<Option<HashMap<String, String>>>,
    last_token_answer: Mutex<Option<Value>>,
    expires_in: AtomicUsize,
    token_requests: AtomicUsize,
}

#[derive(Debug)]
struct Pending {
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    nonce: Option<String>,
    refresh: bool,
}

impl GoogleLike {
    /// Starts a provider whose client has `callback` as its one authorized redirect URI.
    pub async fn start(callback: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let client_id = format!("{}-stand-in.apps.googleusercontent.com", random_digits());
        let client_secret = format!("GOCSPX-{}", random_token(21));
        let shared = Arc::new(Shared {
            issuer,
            keys: DevAuthServer::start().await.unwrap(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            callback: callback.to_owned(),
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            consented: AtomicBool::new(false),
            bare_issuer: AtomicBool::new(false),
            id_token_issuer: Mutex::default(),
            last_authorize: Mutex::default(),
            last_token_answer: Mutex::default(),
            expires_in: AtomicUsize::new(3599),
            token_requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        Self {
            server: TestServer::serve(listener, router),
            client_id,
            client_secret,
            shared,
        }
    }

    /// The issuer (`http://127.0.0.1:<port>`).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// From now on, ID tokens name the issuer without its scheme (`127.0.0.1:<port>`, as
    /// Google's `accounts.google.com`).
    pub fn bare_issuer(&self) {
        self.shared.bare_issuer.store(true, Ordering::SeqCst);
    }

    /// From now on, ID tokens name `issuer` (a forged or misrouted token).
    pub fn id_token_issuer(&self, issuer: &str) {
        *self.shared.id_token_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> Option<HashMap<String, String>> {
        self.shared.last_authorize.lock().unwrap().clone()
    }

    /// The last answer of the token endpoint.
    pub fn last_token_answer(&self) -> Option<Value> {
        self.shared.last_token_answer.lock().unwrap().clone()
    }

    /// From now on, access tokens live `seconds` (Google's: 3599).
    pub fn set_expires_in(&self, seconds: usize) {
        self.shared.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }
}

fn random_digits() -> String {
    random_token(12)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/o/oauth2/v2/auth"),
        "device_authorization_endpoint": format!("{issuer}/device/code"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "jwks_uri": shared.keys.jwks_uri(),
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    }))
}

/// Google's names for the OpenID Connect profile scopes in its answers.
fn granted_scope(scope: &str) -> &str {
    match scope {
        "email" => "https://www.googleapis.com/auth/userinfo.email",
        "profile" => "https://www.googleapis.com/auth/userinfo.profile",
        other => other,
    }
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    *shared.last_authorize.lock().unwrap() = Some(query.clone());
    // Google shows its own error page for an unknown client or redirect URI.
    if query.get("client_id") != Some(&shared.client_id) {
        return (StatusCode::UNAUTHORIZED, "Error 401: invalid_client").into_response();
    }
    if query.get("redirect_uri") != Some(&shared.callback) {
        return (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch").into_response();
    }
    let state = query.get("state").cloned().unwrap_or_default();
    let refuse = |error: &str, description: &str| {
        redirect_to(
            &shared.callback,
            &[
                ("error", error),
                ("error_description", description),
                ("state", &state),
            ],
        )
    };
    if query.get("response_type").map(String::as_str) != Some("code") {
        return refuse("unsupported_response_type", "only code here");
    }
    if query.contains_key("resource") {
        return refuse(
            "invalid_request",
            "Parameter not allowed for this message type: resource",
        );
    }
    let challenge = query.get("code_challenge").cloned();
    if challenge.is_some() && query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return refuse("invalid_request", "code_challenge_method");
    }
    let scopes = scopes_of(query.get("scope"));
    if !scopes.iter().any(|s| s == "openid") {
        return refuse("invalid_scope", "openid is required here");
    }
    let offline = query.get("access_type").map(String::as_str) == Some("offline");
    let prompted = query
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "consent"));
    let first_consent = !shared.consented.swap(true, Ordering::SeqCst);
    let code = format!("4/0A{}", random_token(32));
    let granted = scopes
        .iter()
        .map(|s| granted_scope(s))
        .collect::<Vec<_>>()
        .join(" ");
    shared.codes.lock().unwrap().insert(
        code.clone(),
        Pending {
            redirect_uri: shared.callback.clone(),
            scopes,
            challenge,
            nonce: query.get("nonce").cloned(),
            refresh: offline && (first_consent || prompted),
        },
    );
    redirect_to(
        &shared.callback,
        &[
            ("state", &state),
            ("code", &code),
            ("scope", &granted),
            ("authuser", "0"),
            ("prompt", "consent"),
        ],
    )
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let (id, secret) = client_credentials(&headers, &form);
    if id.as_ref() != Some(&shared.client_id) || secret.as_ref() != Some(&shared.client_secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized")
            .into_response();
    }
    if form.contains_key("resource") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "resource").into_response();
    }
    let answer = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&shared, &form),
        Some("refresh_token") => refresh_grant(&shared, &form),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type",
        )),
    };
    match answer {
        Ok(body) => {
            *shared.last_token_answer.lock().unwrap() = Some(body.clone());
            Json(body).into_response()
        }
        Err(error) => error.into_response(),
    }
}

fn bad_request() -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request")
}

fn code_grant(shared: &Shared, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let pending = form
        .get("code")
        .and_then(|code| shared.codes.lock().unwrap().remove(code))
        .ok_or_else(bad_request)?;
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        ));
    }
    if let Some(challenge) = &pending.challenge {
        let verified = form
            .get("code_verifier")
            .is_some_and(|verifier| pkce_matches(challenge, verifier));
        if !verified {
            return Err(bad_request());
        }
    }
    let mut body = tokens(shared, &pending.scopes, pending.nonce.as_deref());
    if pending.refresh {
        let refresh = format!("1//0g{}", random_token(48));
        shared
            .refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), pending.scopes);
        body["refresh_token"] = Value::String(refresh);
    }
    Ok(body)
}

/// Google keeps the refresh token: the answer has none.
fn refresh_grant(shared: &Shared, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let scopes = form
        .get("refresh_token")
        .and_then(|token| shared.refresh_tokens.lock().unwrap().get(token).cloned())
        .ok_or_else(|| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token has been expired or revoked.",
            )
        })?;
    Ok(tokens(shared, &scopes, None))
}

fn tokens(shared: &Shared, scopes: &[String], nonce: Option<&str>) -> Value {
    let issuer = match shared.id_token_issuer.lock().unwrap().clone() {
        Some(issuer) => issuer,
        None if shared.bare_issuer.load(Ordering::SeqCst) => {
            shared.issuer.trim_start_matches("http://").to_owned()
        }
        None => shared.issuer.clone(),
    };
    let mut id_token = shared
        .keys
        .token()
        .issuer(issuer)
        .without_claim("client_id")
        .header_type(Some("JWT"))
        .subject(GOOGLE_SUB)
        .audience(shared.client_id.clone())
        .claim("azp", shared.client_id.clone())
        .claim("email", GOOGLE_EMAIL)
        .claim("email_verified", true)
        .claim("at_hash", random_token(16))
        .expires_in(Duration::from_secs(3599));
    if let Some(nonce) = nonce {
        id_token = id_token.claim("nonce", nonce);
    }
    json!({
        "access_token": format!("ya29.a0{}", random_token(64)),
        "expires_in": shared.expires_in.load(Ordering::SeqCst),
        "scope": scopes.iter().map(|s| granted_scope(s)).collect::<Vec<_>>().join(" "),
        "token_type": "Bearer",
        "id_token": id_token.sign().unwrap(),
    })
}
