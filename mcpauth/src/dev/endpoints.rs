//! The HTTP endpoints of the development authorization server: metadata, JWKS, token (client
//! credentials and authorization code with PKCE), authorize (automatic consent) and dynamic
//! registration. Upstream mode has endpoints of its own (`upstream.rs`) and shares the helpers
//! here.
//!
//! Every endpoint answers CORS for any origin, as authorization servers serving browser-based
//! clients do (a web page logging in discovers, registers and redeems its code cross-origin).
//! No cookie is involved, so no credentials are allowed.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};
use url::Url;

use super::token::{TokenBuilder, now_unix, random_id};
use super::{DevState, PendingCode, TokenFailure};
use crate::discovery::well_known::{OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION};

/// How long an authorization code stays valid.
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(60);

pub(crate) fn router(state: Arc<DevState>, issuer_path: &str) -> Router {
    if let Some(upstream) = state.upstream.clone() {
        return super::upstream::router(state, upstream, issuer_path);
    }
    let metadata = get(|State(state): State<Arc<DevState>>| async move {
        no_store(Json(&state.metadata).into_response())
    });
    Router::new()
        .route(
            &format!("{OAUTH_AUTHORIZATION_SERVER}{issuer_path}"),
            metadata.clone(),
        )
        .route(&format!("{issuer_path}{OPENID_CONFIGURATION}"), metadata)
        .route(&format!("{issuer_path}/jwks"), get(jwks))
        .route(
            &format!("{issuer_path}/token"),
            post(token).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                token_faults,
            )),
        )
        .route(&format!("{issuer_path}/authorize"), get(authorize))
        .route(&format!("{issuer_path}/register"), post(register))
        .route(&format!("{issuer_path}/userinfo"), get(userinfo))
        .route(&format!("{issuer_path}/introspect"), post(introspect))
        .with_state(state)
        .layer(cors())
}

/// CORS for any origin: `*`, the methods used, the request headers the browser asks for
/// (`Authorization` is never covered by `*`), and the userinfo challenge readable.
pub(super) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::list([
            axum::http::Method::GET,
            axum::http::Method::POST,
        ]))
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::list([header::WWW_AUTHENTICATE]))
        .max_age(Duration::from_secs(600))
}

pub(super) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn server_error(error: impl std::fmt::Display) -> Response {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        &error.to_string(),
    )
}

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    no_store((status, Json(body)).into_response())
}

/// In front of the token endpoint of either mode: counts every request, and answers the
/// injected failure, if one is set, without passing the request on.
pub(super) async fn token_faults(
    State(state): State<Arc<DevState>>,
    request: Request,
    next: Next,
) -> Response {
    state
        .token_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let failure = *state
        .token_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match failure {
        None => next.run(request).await,
        Some(TokenFailure::ServerError) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "injected failure",
        ),
        Some(TokenFailure::Html) => no_store(
            axum::response::Html(
                "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\
                 <body><p>Please sign in to continue.</p></body></html>\n",
            )
            .into_response(),
        ),
        Some(TokenFailure::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            no_store((status, "injected failure\n").into_response())
        }
    }
}

/// The credential of an `Authorization: Bearer` header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
}

pub(super) async fn jwks(State(state): State<Arc<DevState>>) -> Response {
    state
        .jwks_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let body = state
        .keys
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .jwks
        .clone();
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The client ID of a token request: HTTP Basic credentials, else the `client_id` parameter.
/// Secrets are not checked: this server trusts every client.
fn client_id(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, credentials)| STANDARD.decode(credentials.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, _)| id.to_owned()));
    basic.or_else(|| form.get("client_id").cloned())
}

fn token_response(state: &DevState, builder: TokenBuilder, scope: Option<&str>) -> Response {
    let lifetime = state.token_lifetime();
    match builder.expires_in(lifetime).sign() {
        Ok(access_token) => {
            let mut body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
            });
            if let Some(scope) = scope.filter(|s| !s.is_empty()) {
                body["scope"] = Value::String(scope.to_owned());
            }
            no_store(Json(body).into_response())
        }
        Err(error) => server_error(error),
    }
}

fn with_scope_and_audience(
    mut builder: TokenBuilder,
    scope: Option<&str>,
    resource: Option<&str>,
) -> TokenBuilder {
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        builder = builder.claim("scope", scope);
    }
    if let Some(resource) = resource {
        builder = builder.audience(resource);
    }
    builder
}

async fn token(
    State(state): State<Arc<DevState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(client) = client_id(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required",
        );
    };
    let scope = form.get("scope").map(String::as_str);
    let resource = form.get("resource").map(String::as_str);
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let builder = TokenBuilder::new(state.clone())
                .subject(client.clone())
                .client_id(client);
            let builder = with_scope_and_audience(builder, scope, resource);
            token_response(&state, builder, scope)
        }
        Some("authorization_code") => authorization_code_grant(&state, client, &form),
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

fn authorization_code_grant(
    state: &Arc<DevState>,
    client: String,
    form: &HashMap<String, String>,
) -> Response {
    let invalid_grant = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let Some(code) = form.get("code") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        );
    };
    let pending = state
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
    if pending.client_id != client {
        return invalid_grant("the code was issued to another client");
    }
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return invalid_grant("redirect_uri differs from the authorization request");
    }
    let Some(verifier) = form.get("code_verifier") else {
        return invalid_grant("code_verifier is required (PKCE)");
    };
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    if challenge != pending.code_challenge {
        return invalid_grant("code_verifier does not match the code challenge");
    }
    let resource = form.get("resource").or(pending.resource.as_ref());
    let builder = TokenBuilder::new(state.clone()).client_id(client);
    let builder = with_scope_and_audience(
        builder,
        pending.scope.as_deref(),
        resource.map(String::as_str),
    );
    token_response(state, builder, pending.scope.as_deref())
}

async fn authorize(
    State(state): State<Arc<DevState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let bad = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let Some(client_id) = query.get("client_id") else {
        return bad("client_id is required");
    };
    let Some(redirect) = query.get("redirect_uri").and_then(|r| Url::parse(r).ok()) else {
        return bad("redirect_uri is required and must be an absolute URL");
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
            pairs.append_pair("iss", &state.issuer);
        }
        Redirect::to(target.as_str()).into_response()
    };
    if query.get("response_type").map(String::as_str) != Some("code") {
        return redirect_with(&[("error", "unsupported_response_type")]);
    }
    let challenge = query.get("code_challenge");
    if challenge.is_none() || query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return redirect_with(&[
            ("error", "invalid_request"),
            ("error_description", "PKCE with S256 is required"),
        ]);
    }
    let code = match random_id(24) {
        Ok(code) => code,
        Err(error) => {
            return server_error(error);
        }
    };
    let pending = PendingCode {
        client_id: client_id.clone(),
        redirect_uri: redirect.to_string(),
        code_challenge: challenge.cloned().unwrap_or_default(),
        scope: query.get("scope").cloned(),
        resource: query.get("resource").cloned(),
        issued: Instant::now(),
    };
    {
        let mut codes = state.codes.lock().unwrap_or_else(PoisonError::into_inner);
        codes.retain(|_, p| p.issued.elapsed() <= CODE_LIFETIME);
        codes.insert(code.clone(), pending);
    }
    redirect_with(&[("code", &code)])
}

async fn register(Json(request): Json<Value>) -> Response {
    let Value::Object(mut client) = request else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the registration request must be a JSON object",
        );
    };
    let client_id = match random_id(16) {
        Ok(id) => id,
        Err(error) => {
            return server_error(error);
        }
    };
    client.insert("client_id".into(), client_id.into());
    client.insert("client_id_issued_at".into(), now_unix().into());
    client
        .entry("token_endpoint_auth_method")
        .or_insert_with(|| "none".into());
    no_store((StatusCode::CREATED, Json(Value::Object(client))).into_response())
}

/// The claims of `token` if one of the current keys signed it and it has not expired.
fn verified_claims(state: &DevState, token: &str) -> Option<serde_json::Map<String, Value>> {
    let keys = state.keys.read().unwrap_or_else(PoisonError::into_inner);
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = keys
        .keys
        .iter()
        .find(|k| Some(&k.kid) == header.kid.as_ref())?;
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.jwk).ok()?;
    let mut validation = jsonwebtoken::Validation::new(key.algorithm.algorithm());
    validation.validate_aud = false;
    validation.set_issuer(&[&state.issuer]);
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &decoding, &validation)
        .ok()
        .map(|data| data.claims)
}

/// OpenID Connect userinfo: the token's claims, for a valid bearer token.
async fn userinfo(State(state): State<Arc<DevState>>, headers: HeaderMap) -> Response {
    state
        .userinfo_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    match bearer_token(&headers).and_then(|token| verified_claims(&state, &token)) {
        Some(claims) => no_store(Json(Value::Object(claims)).into_response()),
        None => invalid_token(),
    }
}

/// 401 for a bearer token that is missing or not valid, with its challenge.
pub(super) fn invalid_token() -> Response {
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "the token is not valid",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

/// RFC 7662 introspection (any client may ask: development only).
async fn introspect(
    State(state): State<Arc<DevState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state
        .introspection_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let Some(token) = form.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let body = match verified_claims(&state, token) {
        Some(mut claims) => {
            claims.insert("active".into(), Value::Bool(true));
            claims.insert("token_type".into(), "Bearer".into());
            Value::Object(claims)
        }
        None => json!({"active": false}),
    };
    no_store(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use crate::dev::DevAuthServer;

    const PAGE: &str = "http://127.0.0.1:5173";

    #[tokio::test]
    async fn a_web_page_on_another_origin_can_discover_and_get_a_token() {
        let dev = DevAuthServer::start().await.unwrap();
        let client = reqwest::Client::new();
        let issuer = dev.issuer();

        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{issuer}/token"))
            .header("origin", PAGE)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,mcp-protocol-version",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["access-control-allow-methods"], "GET,POST");
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,mcp-protocol-version"
        );
        assert!(!headers.contains_key("access-control-allow-credentials"));

        let metadata = client
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .header("origin", PAGE)
            .send()
            .await
            .unwrap();
        assert_eq!(metadata.status(), 200);
        assert_eq!(metadata.headers()["access-control-allow-origin"], "*");

        let token = client
            .post(format!("{issuer}/token"))
            .header("origin", PAGE)
            .form(&[("grant_type", "client_credentials"), ("client_id", "page")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        assert_eq!(token.headers()["access-control-allow-origin"], "*");
        assert_eq!(
            token.headers()["access-control-expose-headers"],
            "www-authenticate"
        );
        let body: serde_json::Value = token.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
    }
}
