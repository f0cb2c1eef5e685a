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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tokio::task::{JoinHandle, JoinSet};

use crate::timeline::{Behaviour, Timeline};
use crate::{BoxError, Settings};

/// What the connection tasks share.
#[derive(Debug)]
struct Shared {
    upstream: String,
    /// `"http://127.0.0.1:<dev port>` and `"http://127.0.0.1:<proxy port>` (with the quote).
    rewrite: (String, String),
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
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let shared = Arc::new(Shared {
            upstream: format!("http://{upstream}"),
            rewrite: (format!("\"http://{upstream}"), format!("\"http://{addr}")),
            client,
            mode: Mutex::new(Behaviour::Up),
            timeline,
            keys_lock,
            jwks_max_age: settings.jwks_max_age,
            slow_ms: (settings.slow_min_ms, settings.slow_max_ms),
            hang: Duration::from_secs(settings.hang_seconds),
            random: Mutex::new(settings.seed | 1),
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

    /// Forwards a GET to the development server and rewrites its issuer in the body.
    async fn forward(&self, path: &str, is_jwks: bool) -> Answer {
        let keys = if is_jwks {
            Some(self.keys_lock.read().await)
        } else {
            None
        };
        let fetched = async {
            let response = self
                .client
                .get(format!("{}{path}", self.upstream))
                .send()
                .await?;
            let status = response.status().as_u16();
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            let cache_control = response.headers().get(CACHE_CONTROL).cloned();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, content_type, cache_control, body))
        }
        .await;
        let epoch = self.timeline.current_epoch();
        drop(keys);
        let (status, content_type, cache_control, body) = match fetched {
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
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = answer(status, body);
        let headers = response.headers_mut();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, value);
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
    if request.method() != hyper::Method::GET {
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, ""));
    }
    Ok(shared.forward(&path, is_jwks).await)
}
