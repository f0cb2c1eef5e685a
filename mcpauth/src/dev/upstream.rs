//! Upstream mode: the development authorization server as an identity provider in the manner of
//! Google, for a broker to sit in front of. One confidential client, OpenID Connect discovery
//! only, opaque access tokens, RS256 ID tokens, refresh tokens that are not rotated, and no
//! dynamic registration, client ID metadata documents or `resource` parameter.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use url::{Host, Url};

use super::endpoints::{
    CODE_LIFETIME, bearer_token, cors, invalid_token, jwks, no_store, oauth_error, server_error,
    token_faults,
};
use super::token::{TokenBuilder, random_id};
use super::{DevServerError, DevState};
use crate::discovery::well_known::OPENID_CONFIGURATION;
use crate::metadata::AuthorizationServerMetadata;

/// The scopes advertised. Others are accepted and granted as asked: an identity provider knows
/// API scopes a test cannot foresee.
const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The one client of upstream mode. Its `Debug` leaves the secret out.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An authorization code waiting to be redeemed.
struct PendingCode {
    /// As sent, compared as a string at redemption.
    redirect_uri: String,
    code_challenge: Option<String>,
    scopes: Vec<String>,
    nonce: Option<String>,
    /// `offline_access` in the scope or `access_type=offline`: a refresh token comes with the
    /// tokens.
    offline: bool,
    issued: Instant,
}

/// What an access or refresh token stands for.
#[derive(Clone)]
struct Grant {
    subject: String,
    scopes: Vec<String>,
    /// `None`: until revoked (refresh tokens, and access tokens whose lifetime overflows).
    expires: Option<Instant>,
}

impl Grant {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }
}

/// The state of upstream mode: its client, and the codes and tokens it issued.
pub(crate) struct Upstream {
    client: UpstreamClient,
    redirect_uris: Vec<String>,
    codes: Mutex<HashMap<String, PendingCode>>,
    access_tokens: Mutex<HashMap<String, Grant>>,
    refresh_tokens: Mutex<HashMap<String, Grant>>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("client", &self.client)
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Upstream mode if a client was configured; an error for settings that make no sense.
    pub(crate) fn new(
        client: Option<UpstreamClient>,
        redirect_uris: Vec<String>,
    ) -> Result<Option<Self>, DevServerError> {
        let Some(client) = client else {
            if redirect_uris.is_empty() {
                return Ok(None);
            }
            return Err(DevServerError::InvalidUpstream(
                "upstream_redirect_uri needs upstream_client".into(),
            ));
        };
        if client.id.is_empty() || client.secret.is_empty() {
            return Err(DevServerError::InvalidUpstream(
                "the client ID and secret must not be empty".into(),
            ));
        }
        for uri in &redirect_uris {
            let valid = Url::parse(uri).is_ok_and(|url| url.fragment().is_none());
            if !valid {
                return Err(DevServerError::InvalidUpstream(format!(
                    "redirect URI {uri:?} is not an absolute URL without fragment"
                )));
            }
        }
        Ok(Some(Self {
            client,
            redirect_uris,
            codes: Mutex::default(),
            access_tokens: Mutex::default(),
            refresh_tokens: Mutex::default(),
        }))
    }

    /// Revokes one refresh token, or all of them; answers how many were live.
    pub(crate) fn revoke_refresh_tokens(&self, which: Option<&str>) -> usize {
        let mut tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match which {
            Some(token) => usize::from(tokens.remove(token).is_some()),
            None => {
                let count = tokens.len();
                tokens.clear();
                count
            }
        }
    }

    /// Exact string match against the registered URIs; without any, an `http` loopback URI.
    fn redirect_uri_allowed(&self, uri: &str) -> bool {
        if !self.redirect_uris.is_empty() {
            return self.redirect_uris.iter().any(|r| r == uri);
        }
        let Ok(url) = Url::parse(uri) else {
            return false;
        };
        let loopback = match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        };
        url.scheme() == "http" && loopback && url.fragment().is_none() && url.username().is_empty()
    }
}

/// The metadata of upstream mode: what Google's discovery document says, on loopback.
pub(crate) fn metadata(issuer: &str) -> AuthorizationServerMetadata {
    let strings = crate::metadata::owned_list;
    let mut metadata = AuthorizationServerMetadata::served_at(issuer);
    metadata.userinfo_endpoint = Some(format!("{issuer}/userinfo"));
    metadata.scopes_supported = strings(&SCOPES);
    metadata.grant_types_supported = strings(&["authorization_code", "refresh_token"]);
    metadata.response_modes_supported = strings(&["query"]);
    metadata.code_challenge_methods_supported = strings(&["S256"]);
    metadata.token_endpoint_auth_methods_supported =
        strings(&["client_secret_basic", "client_secret_post"]);
    metadata.subject_types_supported = strings(&["public"]);
    metadata.id_token_signing_alg_values_supported = strings(&["RS256"]);
    metadata.claims_supported = strings(&[
        "aud",
        "email",
        "email_verified",
        "exp",
        "iat",
        "iss",
        "name",
        "nonce",
        "sub",
    ]);
    metadata.authorization_response_iss_parameter_supported = Some(true);
    metadata
}

/// The state of the upstream endpoints; each handler takes the part it needs.
#[derive(Clone)]
struct Context {
    dev: Arc<DevState>,
    upstream: Arc<Upstream>,
}

impl FromRef<Context> for Arc<DevState> {
    fn from_ref(context: &Context) -> Self {
        context.dev.clone()
    }
}

impl FromRef<Context> for Arc<Upstream> {
    fn from_ref(context: &Context) -> Self {
        context.upstream.clone()
    }
}

/// The endpoints of upstream mode. Only the OpenID Connect discovery document is served (no
/// RFC 8414 document), and neither registration nor introspection, as at Google.
pub(crate) fn router(dev: Arc<DevState>, upstream: Arc<Upstream>, issuer_path: &str) -> Router {
    let metadata = get(|State(state): State<Arc<DevState>>| async move {
        no_store(Json(&state.metadata).into_response())
    });
    let token_route = post(token).layer(axum::middleware::from_fn_with_state(
        dev.clone(),
        token_faults,
    ));
    Router::new()
        .route(&format!("{issuer_path}{OPENID_CONFIGURATION}"), metadata)
        .route(&format!("{issuer_path}/jwks"), get(jwks))
        .route(&format!("{issuer_path}/token"), token_route)
        .route(&format!("{issuer_path}/authorize"), get(authorize))
        .route(&format!("{issuer_path}/userinfo"), get(userinfo))
        .with_state(Context { dev, upstream })
        .layer(cors())
}

/// The email and name of the development user, derived from its subject.
fn profile(subject: &str) -> (String, String) {
    (format!("{subject}@example.com"), subject.to_owned())
}

fn scopes_of(scope: Option<&String>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in scope
        .map(String::as_str)
        .unwrap_or_default()
        .split_whitespace()
    {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set. The same shape holds for an
/// S256 challenge (43 characters of base64url).
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn authorize(
    State(dev): State<Arc<DevState>>,
    State(upstream): State<Arc<Upstream>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Until the client and its redirect URI are known to be good, errors are shown here, never
    // sent to the redirect URI (RFC 6749 §4.1.2.1).
    let bad = |error: &str, why: &str| oauth_error(StatusCode::BAD_REQUEST, error, why);
    match query.get("client_id") {
        None => return bad("invalid_request", "client_id is required"),
        Some(id) if *id != upstream.client.id => {
            return bad("invalid_client", "the OAuth client was not found");
        }
        Some(_) => {}
    }
    let Some(raw_redirect) = query.get("redirect_uri") else {
        return bad("invalid_request", "redirect_uri is required");
    };
    let redirect = match Url::parse(raw_redirect) {
        Ok(url) if upstream.redirect_uri_allowed(raw_redirect) => url,
        _ => {
            return bad(
                "redirect_uri_mismatch",
                "redirect_uri is not registered for this client",
            );
        }
    };
    let redirect_with = |params: &[(&str, &str)]| {
        let mut target = redirect.clone();
        {
            let mut pairs = target.query_pairs_mut();
            for (name, value) in params {
                pairs.append_pair(name, value);
            }
            if let Some(state) = query.get("state") {
                pairs.append_pair("state", state);
            }
            pairs.append_pair("iss", &dev.issuer);
        }
        Redirect::to(target.as_str()).into_response()
    };
    let refuse =
        |error: &str, why: &str| redirect_with(&[("error", error), ("error_description", why)]);
    if query.get("response_type").map(String::as_str) != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code");
    }
    if query.contains_key("resource") {
        return refuse(
            "invalid_target",
            "this provider does not support the resource parameter",
        );
    }
    let challenge = query.get("code_challenge");
    let method = query.get("code_challenge_method").map(String::as_str);
    match (challenge, method) {
        (None, None) => {}
        (Some(challenge), Some("S256")) if is_pkce_string(challenge) => {}
        (Some(_), Some("S256")) => {
            return refuse("invalid_request", "code_challenge is malformed");
        }
        (None, Some(_)) => {
            return refuse(
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
        (Some(_), _) => return refuse("invalid_request", "only code_challenge_method=S256"),
    }
    let scopes = scopes_of(query.get("scope"));
    let offline = scopes.iter().any(|s| s == "offline_access")
        || query.get("access_type").map(String::as_str) == Some("offline");
    let code = match random_id(24) {
        Ok(code) => code,
        Err(error) => return server_error(error),
    };
    let pending = PendingCode {
        redirect_uri: raw_redirect.clone(),
        code_challenge: challenge.cloned(),
        scopes,
        nonce: query.get("nonce").cloned(),
        offline,
        issued: Instant::now(),
    };
    {
        let mut codes = upstream
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        codes.retain(|_, p| p.issued.elapsed() <= CODE_LIFETIME);
        codes.insert(code.clone(), pending);
    }
    redirect_with(&[("code", &code)])
}

/// RFC 6749 §2.3.1: the client ID and secret are form-encoded before Basic encoding. Many
/// clients skip that step; as most providers do, both forms are accepted.
fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let (scheme, credentials) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(
        STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
            }),
    )
}

fn form_decoded(value: &str) -> String {
    url::form_urlencoded::parse(format!("x={value}").as_bytes())
        .next()
        .map(|(_, decoded)| decoded.into_owned())
        .unwrap_or_default()
}

fn same_secret(expected: &str, given: &str) -> bool {
    verify_slices_are_equal(expected.as_bytes(), given.as_bytes()).is_ok()
}

/// Why client authentication failed.
#[derive(Debug, PartialEq, Eq)]
enum AuthFailure {
    /// Basic credentials and a `client_secret` in the body: RFC 6749 §2.3 allows one method.
    TwoMethods,
    /// Wrong, malformed or missing credentials; `basic` if the Authorization header was tried.
    InvalidClient { why: &'static str, basic: bool },
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        match self {
            Self::TwoMethods => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method, not both",
            ),
            Self::InvalidClient { why, basic } => {
                let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
                // RFC 6749 §5.2: a client that tried the Authorization header gets a challenge.
                if basic {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"dev\""),
                    );
                }
                response
            }
        }
    }
}

/// Client authentication: `client_secret_basic` or `client_secret_post`, one of them.
fn authenticate(
    client: &UpstreamClient,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), AuthFailure> {
    let invalid_client = |why, basic| AuthFailure::InvalidClient { why, basic };
    match basic_credentials(headers) {
        Some(_) if form.contains_key("client_secret") => Err(AuthFailure::TwoMethods),
        Some(None) => Err(invalid_client("malformed Basic credentials", true)),
        Some(Some((id, secret))) => {
            let raw = id == client.id && same_secret(&client.secret, &secret);
            let decoded = form_decoded(&id) == client.id
                && same_secret(&client.secret, &form_decoded(&secret));
            let body_id_agrees = form.get("client_id").is_none_or(|body| *body == client.id);
            if (raw || decoded) && body_id_agrees {
                Ok(())
            } else {
                Err(invalid_client("client authentication failed", true))
            }
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) if *id == client.id && same_secret(&client.secret, secret) => {
                Ok(())
            }
            (_, Some(_)) => Err(invalid_client("client authentication failed", false)),
            (_, None) => Err(invalid_client(
                "client authentication is required (client_secret_basic or client_secret_post)",
                false,
            )),
        },
    }
}

async fn token(
    State(context): State<Context>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(failure) = authenticate(&context.upstream.client, &headers, &form) {
        return failure.into_response();
    }
    // The broker must never pass the MCP resource on: a provider like this one refuses it.
    if form.contains_key("resource") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "this provider does not support the resource parameter",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code_grant(&context, &form),
        Some("refresh_token") => refresh_token_grant(&context, &form),
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant type {other:?} is not supported"),
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

fn invalid_grant(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

fn authorization_code_grant(context: &Context, form: &HashMap<String, String>) -> Response {
    let Some(code) = form.get("code") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        );
    };
    // Removed before any check: a code is used once, even by a failed attempt.
    let pending = context
        .upstream
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(code);
    let Some(pending) = pending else {
        return invalid_grant("unknown or already used code");
    };
    if pending.issued.elapsed() > CODE_LIFETIME {
        return invalid_grant("the code has expired");
    }
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return invalid_grant("redirect_uri differs from the authorization request");
    }
    match (&pending.code_challenge, form.get("code_verifier")) {
        (None, None) => {}
        (None, Some(_)) => {
            return invalid_grant("code_verifier sent, but no code_challenge was");
        }
        (Some(_), None) => return invalid_grant("code_verifier is required (PKCE)"),
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
            if !is_pkce_string(verifier) || computed != *challenge {
                return invalid_grant("code_verifier does not match the code challenge");
            }
        }
    }
    let grant = Grant {
        subject: context.dev.default_subject.clone(),
        scopes: pending.scopes,
        expires: None,
    };
    let refresh_token = if pending.offline {
        match random_id(32) {
            Ok(token) => {
                context
                    .upstream
                    .refresh_tokens
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(token.clone(), grant.clone());
                Some(token)
            }
            Err(error) => return server_error(error),
        }
    } else {
        None
    };
    issue(context, grant, pending.nonce.as_deref(), refresh_token)
}

fn refresh_token_grant(context: &Context, form: &HashMap<String, String>) -> Response {
    let Some(refresh_token) = form.get("refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        );
    };
    let grant = context
        .upstream
        .refresh_tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(refresh_token)
        .cloned();
    let Some(mut grant) = grant else {
        return invalid_grant("the refresh token has expired or been revoked");
    };
    // A refresh may narrow the scope, never widen it (RFC 6749 §6).
    if form.contains_key("scope") {
        let asked = scopes_of(form.get("scope"));
        if asked.iter().any(|s| !grant.scopes.contains(s)) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the scope exceeds the one originally granted",
            );
        }
        grant.scopes = asked;
    }
    // Not rotated: the client keeps using the refresh token it has, as with Google.
    issue(context, grant, None, None)
}

/// Issues an opaque access token for `grant`, with the refresh token given and an ID token when
/// `openid` was granted.
fn issue(
    context: &Context,
    mut grant: Grant,
    nonce: Option<&str>,
    refresh_token: Option<String>,
) -> Response {
    let lifetime = context.dev.token_lifetime();
    let access_token = match random_id(32) {
        Ok(token) => token,
        Err(error) => return server_error(error),
    };
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    });
    if !grant.scopes.is_empty() {
        body["scope"] = Value::String(grant.scopes.join(" "));
    }
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = Value::String(refresh_token);
    }
    if grant.scopes.iter().any(|s| s == "openid") {
        match id_token(context, &grant.subject, nonce) {
            Ok(id_token) => body["id_token"] = Value::String(id_token),
            Err(error) => return server_error(error),
        }
    }
    grant.expires = Instant::now().checked_add(lifetime);
    {
        let mut tokens = context
            .upstream
            .access_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        tokens.retain(|_, g| g.is_live(now));
        tokens.insert(access_token, grant);
    }
    no_store(Json(body).into_response())
}

/// An OpenID Connect ID token for the client, signed with the current RSA key.
fn id_token(
    context: &Context,
    subject: &str,
    nonce: Option<&str>,
) -> Result<String, DevServerError> {
    let client_id = &context.upstream.client.id;
    let (email, name) = profile(subject);
    let mut builder = TokenBuilder::new(context.dev.clone())
        .without_claim("client_id")
        .header_type(Some("JWT"))
        .subject(subject)
        .audience(client_id.clone())
        .claim("azp", client_id.clone())
        .claim("email", email)
        .claim("email_verified", true)
        .claim("name", name)
        .expires_in(context.dev.token_lifetime());
    if let Some(nonce) = nonce {
        builder = builder.claim("nonce", nonce);
    }
    builder.sign()
}

/// The profile of the development user, for an access token of this mode.
async fn userinfo(State(context): State<Context>, headers: HeaderMap) -> Response {
    context
        .dev
        .userinfo_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let grant = bearer_token(&headers).and_then(|token| {
        context
            .upstream
            .access_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&token)
            .filter(|g| g.is_live(Instant::now()))
            .cloned()
    });
    match grant {
        Some(grant) => {
            let (email, name) = profile(&grant.subject);
            no_store(
                Json(json!({"sub": grant.subject, "email": email, "name": name})).into_response(),
            )
        }
        None => invalid_token(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(redirect_uris: &[&str]) -> Upstream {
        let client = UpstreamClient {
            id: "broker".into(),
            secret: "s3cret+/".into(),
        };
        let uris = redirect_uris.iter().map(|u| (*u).to_owned()).collect();
        Upstream::new(Some(client), uris).unwrap().unwrap()
    }

    #[test]
    fn registered_redirect_uris_match_exactly_and_otherwise_only_loopback_http() {
        let registered = upstream(&["http://127.0.0.1:3000/cb"]);
        assert!(registered.redirect_uri_allowed("http://127.0.0.1:3000/cb"));
        assert!(!registered.redirect_uri_allowed("http://127.0.0.1:3000/cb/"));
        assert!(!registered.redirect_uri_allowed("http://127.0.0.1:3000/cb?x=1"));
        assert!(!registered.redirect_uri_allowed("http://localhost:3000/cb"));

        let open = upstream(&[]);
        for uri in [
            "http://127.0.0.1:9/cb",
            "http://127.1.2.3/cb",
            "http://[::1]:8080/",
            "http://localhost/cb",
        ] {
            assert!(open.redirect_uri_allowed(uri), "{uri}");
        }
        for uri in [
            "https://127.0.0.1/cb",
            "http://example.com/cb",
            "http://10.0.0.1/cb",
            "http://127.0.0.1/cb#f",
            "http://u@127.0.0.1/cb",
            "not a url",
        ] {
            assert!(!open.redirect_uri_allowed(uri), "{uri}");
        }
    }

    #[test]
    fn misconfigurations_are_refused_at_start() {
        let client = || {
            Some(UpstreamClient {
                id: "c".into(),
                secret: "s".into(),
            })
        };
        assert!(Upstream::new(None, vec![]).unwrap().is_none());
        assert!(Upstream::new(None, vec!["http://127.0.0.1/cb".into()]).is_err());
        assert!(Upstream::new(client(), vec!["/relative".into()]).is_err());
        assert!(Upstream::new(client(), vec!["http://h/cb#frag".into()]).is_err());
        let empty = Some(UpstreamClient {
            id: "c".into(),
            secret: String::new(),
        });
        assert!(Upstream::new(empty, vec![]).is_err());
    }

    #[test]
    fn the_debug_output_leaves_the_secret_out() {
        let upstream = upstream(&[]);
        let debug = format!("{upstream:?}");
        assert!(debug.contains("broker"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn basic_credentials_are_accepted_raw_or_form_encoded() {
        let client = upstream(&[]).client;
        let basic = |pair: &str| {
            let mut headers = HeaderMap::new();
            let value = format!("Basic {}", STANDARD.encode(pair));
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let none = HashMap::new();
        assert!(authenticate(&client, &basic("broker:s3cret+/"), &none).is_ok());
        assert!(authenticate(&client, &basic("broker:s3cret%2B%2F"), &none).is_ok());
        let wrong = authenticate(&client, &basic("broker:nope"), &none)
            .unwrap_err()
            .into_response();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(wrong.headers().contains_key(header::WWW_AUTHENTICATE));

        let both: HashMap<String, String> = [("client_secret".to_owned(), "s3cret+/".to_owned())]
            .into_iter()
            .collect();
        let refused = authenticate(&client, &basic("broker:s3cret+/"), &both).unwrap_err();
        assert_eq!(refused, AuthFailure::TwoMethods);
        assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST);

        let other_id: HashMap<String, String> = [("client_id".to_owned(), "other".to_owned())]
            .into_iter()
            .collect();
        assert!(authenticate(&client, &basic("broker:s3cret+/"), &other_id).is_err());
        let missing = authenticate(&client, &HeaderMap::new(), &none)
            .unwrap_err()
            .into_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert!(!missing.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn pkce_strings_have_the_rfc_7636_shape() {
        assert!(is_pkce_string(&"a".repeat(43)));
        assert!(is_pkce_string(&"-._~".repeat(32)));
        assert!(!is_pkce_string(&"a".repeat(42)));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(43))));
    }
}
