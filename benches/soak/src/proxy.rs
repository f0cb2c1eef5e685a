//! The fault proxy: the authorization server's public address, the one notes is configured
//! with. It forwards to the development authorization server (on another loopback port) and can
//! be switched to: down (listener closed, open connections dropped), 503, slow (each answer
//! delayed), hanging (never answers in time).
//!
//! The development server builds its issuer from the address it binds, so its metadata names
//! its own port; the proxy rewrites that one string (`"http://127.0.0.1:<dev port>` →
//! `"http://127.0.0.1:<proxy port>`) in the bodies it forwards, and the harness mints tokens with
//! `iss` = the proxy's issuer. Nothing else is changed, except the JWKS's `Cache-Control`, set to
//! `max-age=JWKS_MAX_AGE` so that notes' cached key set goes stale within every phase.
//!
//! In front of the development server in upstream mode (the broker phase) it also forwards
//! POSTs (the token endpoint) with their `Authorization` and body, passes redirects on instead
//! of following them (the `iss` of the authorization response rewritten, percent-encoded, like
//! the bodies), and, since an ID token's `iss` is signed, signs every ID token it forwards again
//! with the same server's key, its claims unchanged but `iss` (see [`ProxyOptions::id_tokens`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcpauth::dev::DevAuthServer;
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tokio::task::{JoinHandle, JoinSet};

use crate::timeline::{Behaviour, Timeline};
use crate::{BoxError, Settings};

/// How the proxy behaves besides its mode.
#[derive(Debug, Clone)]
pub(crate) struct ProxyOptions {
    /// The JWKS's `max-age` as served.
    pub(crate) jwks_max_age: u64,
    /// The slow mode's delay range, milliseconds.
    pub(crate) slow_ms: (u64, u64),
    /// How long the hanging mode holds a request.
    pub(crate) hang: Duration,
    /// The slow mode's seed.
    pub(crate) seed: u64,
    /// The issuer written in place of the development server's (default: this proxy's own
    /// address). A second proxy for browsers writes the first proxy's, so that both show the
    /// one issuer the broker knows.
    pub(crate) public_issuer: Option<String>,
    /// The development server whose ID tokens are signed again with `iss` = the public issuer.
    pub(crate) id_tokens: Option<Arc<DevAuthServer>>,
}

impl ProxyOptions {
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        Self {
            jwks_max_age: settings.jwks_max_age,
            slow_ms: (settings.slow_min_ms, settings.slow_max_ms),
            hang: Duration::from_secs(settings.hang_seconds),
            seed: settings.seed,
            public_issuer: None,
            id_tokens: None,
        }
    }
}

/// What the connection tasks share.
struct Shared {
    upstream: String,
    /// `"http://127.0.0.1:<dev port>` and `"http://127.0.0.1:<proxy port>` (with the quote).
    rewrite: (String, String),
    /// The same two issuers percent-encoded, as in a redirect's query (`iss`).
    rewrite_encoded: (String, String),
    /// The public issuer (unquoted), for the ID tokens signed again.
    public_issuer: String,
    id_tokens: Option<Arc<DevAuthServer>>,
    client: reqwest::Client,
    mode: Mutex<Behaviour>,
    timeline: Arc<Timeline>,
    /// Held (shared) while the JWKS is fetched from the development server, and (exclusive)
    /// while its keys rotate: a delivered key set belongs to exactly one epoch.
    keys_lock: Arc<RwLock<()>>,
    jwks_max_age: u64,
    slow_ms: (u64, u64),
    hang: Duration,
    random: Mutex<u64>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("upstream", &self.upstream)
            .field("public_issuer", &self.public_issuer)
            .finish_non_exhaustive()
    }
}

/// `http://127.0.0.1:1` percent-encoded as a query value is (`http%3A%2F%2F127.0.0.1%3A1`).
fn encoded(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

/// The running proxy.
#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// Binds an ephemeral loopback port, in front of the development server at `upstream`.
    pub(crate) async fn start(
        upstream: SocketAddr,
        timeline: Arc<Timeline>,
        keys_lock: Arc<RwLock<()>>,
        settings: &Settings,
    ) -> Result<Self, BoxError> {
        Self::start_with(
            upstream,
            timeline,
            keys_lock,
            ProxyOptions::from_settings(settings),
        )
        .await
    }

    /// Binds an ephemeral loopback port, in front of the development server at `upstream`.
    pub(crate) async fn start_with(
        upstream: SocketAddr,
        timeline: Arc<Timeline>,
        keys_lock: Arc<RwLock<()>>,
        options: ProxyOptions,
    ) -> Result<Self, BoxError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        // Redirects are answers to pass on, not to follow.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()?;
        let dev_issuer = format!("http://{upstream}");
        let public_issuer = options
            .public_issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let shared = Arc::new(Shared {
            upstream: dev_issuer.clone(),
            rewrite: (format!("\"{dev_issuer}"), format!("\"{public_issuer}")),
            rewrite_encoded: (encoded(&dev_issuer), encoded(&public_issuer)),
            public_issuer,
            id_tokens: options.id_tokens,
            client,
            mode: Mutex::new(Behaviour::Up),
            timeline,
            keys_lock,
            jwks_max_age: options.jwks_max_age,
            slow_ms: options.slow_ms,
            hang: options.hang,
            random: Mutex::new(options.seed | 1),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept: tokio::sync::Mutex::new(Some(task)),
        })
    }

    /// The issuer notes is configured with.
    pub(crate) fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode. `Down` closes the listener and every open connection; leaving it
    /// binds the same port again.
    pub(crate) async fn set_mode(&self, mode: Behaviour) -> Result<(), BoxError> {
        let mut accept = self.accept.lock().await;
        if mode == Behaviour::Down {
            self.shared.set_mode(mode);
            if let Some(task) = accept.take() {
                task.abort();
                let _ = task.await;
            }
        } else {
            if accept.is_none() {
                let listener = TcpListener::bind(self.addr).await?;
                *accept = Some(tokio::spawn(serve(listener, self.shared.clone())));
            }
            self.shared.set_mode(mode);
        }
        Ok(())
    }
}

/// Accepts connections until aborted; aborting it drops (and so closes) every connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| handle(shared.clone(), request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

impl Shared {
    fn mode(&self) -> Behaviour {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_mode(&self, mode: Behaviour) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
        self.timeline.set_mode(mode);
    }

    /// The next slow-mode delay, uniform in the configured range (xorshift, seeded).
    fn next_delay(&self) -> Duration {
        let mut state = self.random.lock().unwrap_or_else(PoisonError::into_inner);
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let (min, max) = self.slow_ms;
        Duration::from_millis(min + *state % (max.saturating_sub(min) + 1))
    }

    /// Forwards a request to the development server and rewrites its issuer in the answer.
    async fn forward(&self, request: Forwarded, is_jwks: bool) -> Answer {
        let keys = if is_jwks {
            Some(self.keys_lock.read().await)
        } else {
            None
        };
        let fetched = async {
            let url = format!("{}{}", self.upstream, request.path);
            let mut outgoing = if request.post {
                self.client.post(url).body(request.body)
            } else {
                self.client.get(url)
            };
            for (name, value) in &request.headers {
                outgoing = outgoing.header(name, value);
            }
            let response = outgoing.send().await?;
            let status = response.status().as_u16();
            let kept = [
                CONTENT_TYPE,
                CACHE_CONTROL,
                LOCATION,
                RETRY_AFTER,
                WWW_AUTHENTICATE,
            ]
            .map(|name| response.headers().get(&name).cloned());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, kept, body))
        }
        .await;
        let epoch = self.timeline.current_epoch();
        drop(keys);
        let (
            status,
            [
                content_type,
                cache_control,
                location,
                retry_after,
                challenge,
            ],
            body,
        ) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => {
                return answer(StatusCode::BAD_GATEWAY, format!("upstream: {error}"));
            }
        };
        let body = match std::str::from_utf8(&body) {
            Ok(text) if text.contains(&self.rewrite.0) => {
                Bytes::from(text.replace(&self.rewrite.0, &self.rewrite.1))
            }
            _ => body,
        };
        let body = match &self.id_tokens {
            Some(dev) if request.post => self.sign_again(dev, body),
            _ => body,
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = answer(status, body);
        let headers = response.headers_mut();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, value);
        }
        let location = location.and_then(|value| {
            let text = value.to_str().ok()?;
            let text = text
                .replace(&self.rewrite_encoded.0, &self.rewrite_encoded.1)
                .replace(&self.rewrite.0[1..], &self.rewrite.1[1..]);
            HeaderValue::from_str(&text).ok()
        });
        for (name, value) in [
            (LOCATION, location),
            (RETRY_AFTER, retry_after),
            (WWW_AUTHENTICATE, challenge),
        ] {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        let ok_jwks = is_jwks && status == StatusCode::OK;
        let cache_control = if ok_jwks {
            HeaderValue::from_str(&format!("public, max-age={}", self.jwks_max_age)).ok()
        } else {
            cache_control
        };
        if let Some(value) = cache_control {
            headers.insert(CACHE_CONTROL, value);
        }
        if ok_jwks {
            self.timeline.delivered(epoch);
        }
        response
    }

    /// A token answer with its `id_token` signed again by `dev` (same key, header type and
    /// claims), with `iss` = the public issuer; any other body unchanged.
    fn sign_again(&self, dev: &DevAuthServer, body: Bytes) -> Bytes {
        let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return body;
        };
        let Some(id_token) = answer.get("id_token").and_then(|t| t.as_str()) else {
            return body;
        };
        let claims = id_token
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|json| {
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()
            });
        let Some(claims) = claims else { return body };
        let mut token = dev
            .token()
            .without_claim("client_id")
            .header_type(Some("JWT"));
        for (name, value) in claims {
            token = token.claim(name, value);
        }
        match token.issuer(self.public_issuer.clone()).sign() {
            Ok(signed) => {
                answer["id_token"] = serde_json::Value::String(signed);
                Bytes::from(answer.to_string())
            }
            Err(_) => body,
        }
    }
}

/// A request to forward: its method (GET or POST), path and query, the headers that matter to
/// the development server, and its body.
#[derive(Debug)]
struct Forwarded {
    post: bool,
    path: String,
    headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    body: Bytes,
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Answer, BoxError> {
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let is_jwks = request.uri().path() == "/jwks";
    let mode = shared.mode();
    if is_jwks {
        shared.timeline.jwks_request();
    } else {
        shared.timeline.other_request(&path);
    }
    match mode {
        Behaviour::Unavailable => {
            let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, "down for maintenance");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("30"));
            return Ok(response);
        }
        Behaviour::Hanging => {
            tokio::time::sleep(shared.hang).await;
            // No answer at all: the connection is closed.
            return Err("hung up without answering".into());
        }
        Behaviour::Slow => tokio::time::sleep(shared.next_delay()).await,
        Behaviour::Up | Behaviour::Down => {}
    }
    let post = match *request.method() {
        hyper::Method::GET => false,
        hyper::Method::POST => true,
        _ => return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "")),
    };
    let headers = [AUTHORIZATION, CONTENT_TYPE]
        .into_iter()
        .filter_map(|name| {
            let value = request.headers().get(&name)?.clone();
            Some((name, value))
        })
        .collect();
    let body = request.into_body().collect().await?.to_bytes();
    let forwarded = Forwarded {
        post,
        path,
        headers,
        body,
    };
    Ok(shared.forward(forwarded, is_jwks).await)
}
