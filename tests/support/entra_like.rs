//! Microsoft Entra ID's v2.0 endpoints in miniature, for tests of the broker's Entra preset on
//! loopback (the stand-in's origin plays `https://login.microsoftonline.com`).
//!
//! What it copies from Entra ID, because brokers get each of these wrong:
//! - per-tenant endpoints: `/{tenant}/v2.0/.well-known/openid-configuration`,
//!   `/{tenant}/oauth2/v2.0/{authorize,token}`, for a tenant id, `organizations` or `common`;
//!   the multi-tenant documents name the issuer **template** `…/{tenantid}/v2.0`, a tenant's
//!   own document names `…/<tenant id>/v2.0`;
//! - ID tokens (RS256, `aud` = the application id, `nonce`, `ver` 2.0) carrying the user's home
//!   tenant in `tid` and its issuer `…/<tid>/v2.0` in `iss` (or the v1 form
//!   `https://sts.windows.net/<tid>/`, [`EntraLike::issue_v1`]); a token whose `iss` names
//!   another tenant than its `tid` can be forced ([`EntraLike::id_token_issuer`]);
//! - the "Web" platform: an exact redirect URI and a client secret (form body or Basic);
//! - one resource per request: scopes of two resources are refused (AADSTS28000), and so is
//!   the `resource` parameter (AADSTS901002);
//! - a refresh token only with `offline_access`, rotated on every refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
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

/// The home tenant of the user who signs in, unless changed.
pub const HOME_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Another organization's tenant.
pub const OTHER_TENANT: &str = "0b9f6b1e-2a4c-4d3e-8f70-6a5b4c3d2e1f";
/// The user's object id.
pub const USER_OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";
/// The user's subject for this application (pairwise).
pub const USER_SUB: &str = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";

/// An Entra-like provider on `127.0.0.1` with one app registration; it stops when dropped.
#[derive(Debug)]
pub struct EntraLike {
    server: TestServer,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    base: String,
    keys: DevAuthServer,
    client_id: String,
    client_secret: String,
    callback: String,
    user_tenant: Mutex<String>,
    id_token_issuer: Mutex<Option<String>>,
    v1: AtomicBool,
    codes: Mutex<HashMap<String, Pending>>,
    refresh_tokens: Mutex<HashMap<String, Vec<String>>>,
    last_authorize: Mutex<Option<(String, HashMap<String, String>)>>,
    last_token_answer: Mutex<Option<Value>>,
    last_refresh_form: Mutex<Option<HashMap<String, String>>>,
    expires_in: AtomicUsize,
    token_requests: AtomicUsize,
}

#[derive(Debug)]
struct Pending {
    scopes: Vec<String>,
    challenge: Option<String>,
    nonce: Option<String>,
}

impl EntraLike {
    /// Starts a provider whose app registration has `callback` as its Web redirect URI.
    pub async fn start(callback: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let client_id = "6731de76-14a6-49ae-97bc-6eba6914391e".to_owned();
        let client_secret = format!("Qx8Q~{}", random_token(27));
        let shared = Arc::new(Shared {
            base,
            keys: DevAuthServer::start().await.unwrap(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            callback: callback.to_owned(),
            user_tenant: Mutex::new(HOME_TENANT.to_owned()),
            id_token_issuer: Mutex::default(),
            v1: AtomicBool::new(false),
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            last_authorize: Mutex::default(),
            last_token_answer: Mutex::default(),
            last_refresh_form: Mutex::default(),
            expires_in: AtomicUsize::new(4271),
            token_requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(shared.clone());
        Self {
            server: TestServer::serve(listener, router),
            client_id,
            client_secret,
            shared,
        }
    }

    /// The sign-in host (`http://127.0.0.1:<port>`), in place of
    /// `https://login.microsoftonline.com`.
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// The v2.0 issuer of `tenant`.
    pub fn issuer_of(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.shared.base)
    }

    /// From now on, the user who signs in belongs to `tenant`.
    pub fn user_tenant(&self, tenant: &str) {
        *self.shared.user_tenant.lock().unwrap() = tenant.to_owned();
    }

    /// From now on, ID tokens name `issuer`, whatever their `tid`.
    pub fn id_token_issuer(&self, issuer: &str) {
        *self.shared.id_token_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// From now on, ID tokens carry the v1 issuer of their tenant,
    /// `https://sts.windows.net/<tid>/`.
    pub fn issue_v1(&self) {
        self.shared.v1.store(true, Ordering::SeqCst);
    }

    /// The tenant segment and query of the last authorization request.
    pub fn last_authorize(&self) -> Option<(String, HashMap<String, String>)> {
        self.shared.last_authorize.lock().unwrap().clone()
    }

    /// The last answer of the token endpoint.
    pub fn last_token_answer(&self) -> Option<Value> {
        self.shared.last_token_answer.lock().unwrap().clone()
    }

    /// The form of the last refresh request, without the client secret.
    pub fn last_refresh_form(&self) -> Option<HashMap<String, String>> {
        self.shared.last_refresh_form.lock().unwrap().clone()
    }

    /// From now on, access tokens live `seconds` (Entra ID's vary around 1 hour).
    pub fn set_expires_in(&self, seconds: usize) {
        self.shared.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }
}

/// A tenant id. The crate has the same rule; it is written again so the stand-in does not
/// trust the code under test.
fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn known_tenant(tenant: &str) -> bool {
    matches!(tenant, "common" | "organizations") || is_guid(tenant)
}

async fn discovery(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    if !known_tenant(&tenant) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            "AADSTS90002: Tenant not found.",
        )
        .into_response();
    }
    let base = &shared.base;
    let issuer_tenant = if is_guid(&tenant) {
        tenant.as_str()
    } else {
        "{tenantid}"
    };
    Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": shared.keys.jwks_uri(),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// The resource of a scope: before the last `/` of a URI scope, Graph for a bare name, none
/// for OpenID Connect's.
fn resource_of(scope: &str) -> Option<String> {
    if ["openid", "profile", "email", "offline_access"].contains(&scope) {
        return None;
    }
    match scope.rsplit_once('/') {
        Some((resource, _)) if scope.contains("://") => Some(resource.to_owned()),
        _ => Some("https://graph.microsoft.com".to_owned()),
    }
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    *shared.last_authorize.lock().unwrap() = Some((tenant.clone(), query.clone()));
    // Entra ID shows its own error page for an unknown application or redirect URI.
    if !known_tenant(&tenant) || query.get("client_id") != Some(&shared.client_id) {
        return (
            StatusCode::BAD_REQUEST,
            "AADSTS700016: Application not found",
        )
            .into_response();
    }
    if query.get("redirect_uri") != Some(&shared.callback) {
        return (
            StatusCode::BAD_REQUEST,
            "AADSTS50011: The redirect URI specified in the request does not match",
        )
            .into_response();
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
    if query.contains_key("resource") {
        return refuse(
            "invalid_request",
            "AADSTS901002: The 'resource' request parameter is not supported.",
        );
    }
    let scopes = scopes_of(query.get("scope"));
    let mut resources: Vec<String> = scopes.iter().filter_map(|s| resource_of(s)).collect();
    resources.dedup();
    if resources.len() > 1 {
        return refuse(
            "invalid_scope",
            "AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource.",
        );
    }
    let challenge = query.get("code_challenge").cloned();
    if challenge.is_some() && query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return refuse(
            "invalid_request",
            "AADSTS501491: Invalid code_challenge_method",
        );
    }
    let code = format!("1.AQ{}", random_token(48));
    shared.codes.lock().unwrap().insert(
        code.clone(),
        Pending {
            scopes,
            challenge,
            nonce: query.get("nonce").cloned(),
        },
    );
    redirect_to(
        &shared.callback,
        &[
            ("code", &code),
            ("state", &state),
            ("session_state", "00000000-0000-0000-0000-000000000000"),
        ],
    )
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    if !known_tenant(&tenant) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS90002")
            .into_response();
    }
    let (id, secret) = client_credentials(&headers, &form);
    if id.as_ref() != Some(&shared.client_id) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016",
        )
        .into_response();
    }
    if secret.as_ref() != Some(&shared.client_secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        )
        .into_response();
    }
    let answer = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&shared, &form),
        Some("refresh_token") => refresh_grant(&shared, &form),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
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

fn invalid_grant(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn code_grant(shared: &Shared, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let pending = form
        .get("code")
        .and_then(|code| shared.codes.lock().unwrap().remove(code))
        .ok_or_else(|| invalid_grant("AADSTS70008: The provided authorization code is expired."))?;
    if form.get("redirect_uri") != Some(&shared.callback) {
        return Err(invalid_grant("AADSTS50011: redirect URI mismatch"));
    }
    if let Some(challenge) = &pending.challenge {
        let verified = form
            .get("code_verifier")
            .is_some_and(|verifier| pkce_matches(challenge, verifier));
        if !verified {
            return Err(invalid_grant(
                "AADSTS501481: The Code_Verifier does not match",
            ));
        }
    }
    Ok(tokens(shared, &pending.scopes, pending.nonce.as_deref()))
}

/// Refresh tokens rotate; the scope is asked again.
fn refresh_grant(shared: &Shared, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let mut recorded = form.clone();
    recorded.remove("client_secret");
    *shared.last_refresh_form.lock().unwrap() = Some(recorded);
    let scopes = form
        .get("refresh_token")
        .and_then(|token| shared.refresh_tokens.lock().unwrap().remove(token))
        .ok_or_else(|| invalid_grant("AADSTS70000: The provided grant is invalid or malformed."))?;
    if !form.contains_key("scope") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
        ));
    }
    Ok(tokens(shared, &scopes, None))
}

fn tokens(shared: &Shared, scopes: &[String], nonce: Option<&str>) -> Value {
    let tid = shared.user_tenant.lock().unwrap().clone();
    let issuer = match shared.id_token_issuer.lock().unwrap().clone() {
        Some(issuer) => issuer,
        None if shared.v1.load(Ordering::SeqCst) => format!("https://sts.windows.net/{tid}/"),
        None => format!("{}/{tid}/v2.0", shared.base),
    };
    let mut id_token = shared
        .keys
        .token()
        .issuer(issuer)
        .without_claim("client_id")
        .header_type(Some("JWT"))
        .subject(USER_SUB)
        .audience(shared.client_id.clone())
        .claim("tid", tid)
        .claim("oid", USER_OID)
        .claim("ver", "2.0")
        .claim("name", "Adele Vance")
        .claim("preferred_username", "adele@contoso.example")
        .expires_in(Duration::from_secs(3600));
    if let Some(nonce) = nonce {
        id_token = id_token.claim("nonce", nonce);
    }
    let granted: Vec<&String> = scopes.iter().filter(|s| resource_of(s).is_some()).collect();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
        "expires_in": shared.expires_in.load(Ordering::SeqCst),
        "ext_expires_in": shared.expires_in.load(Ordering::SeqCst),
        "access_token": format!("eyJ0eXAiOiJKV1Qi.{}", random_token(64)),
        "id_token": id_token.sign().unwrap(),
    });
    if scopes.iter().any(|s| s == "offline_access") {
        let refresh = format!("1.AQ{}", random_token(64));
        shared
            .refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), scopes.to_vec());
        body["refresh_token"] = Value::String(refresh);
    }
    body
}
