//! Shared pieces of the integration tests: real HTTP servers on loopback that play
//! authorization servers (well-behaved or not), and request logs to assert on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod broker;
pub mod entra_like;
pub mod github_like;
pub mod google_like;
pub mod logs;
pub mod protected;
pub mod provider_kit;

/// A server running on `127.0.0.1` with an ephemeral port; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `router` on an ephemeral loopback port.
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, router)
    }

    /// Serves `router` on an already bound listener (when the address must be known first).
    pub fn serve(listener: TcpListener, router: Router) -> Self {
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` with `token` as the bearer credential, sent by `client`: the status and the
    /// body as text.
    pub async fn get_with_bearer(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: &str,
    ) -> (StatusCode, String) {
        let response = client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// MCP-compatible authorization-server metadata for `issuer`.
pub fn compatible_metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "registration_endpoint": format!("{issuer}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true
    })
}

/// [`compatible_metadata`] as a static OpenID Connect server configuration.
pub fn compatible_config(issuer: &str) -> mcpauth::AuthServerConfig {
    let metadata = serde_json::from_value(compatible_metadata(issuer)).unwrap();
    mcpauth::AuthServerConfig::new(mcpauth::AuthServerType::Oidc, metadata)
}

/// What a [`StubServer`] answers on one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// This status and body, with this content type.
    Raw(StatusCode, &'static str, String),
    /// A redirect to this location.
    Redirect(String),
    /// The JSON after a delay.
    SlowJson(std::time::Duration, Value),
}

impl Reply {
    async fn into_response(self) -> Response {
        match self {
            Reply::Json(value) => axum::Json(value).into_response(),
            Reply::Raw(status, content_type, body) => {
                let mut response = (status, body).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                response
            }
            Reply::Redirect(location) => (
                StatusCode::FOUND,
                [(header::LOCATION, location)],
                Body::empty(),
            )
                .into_response(),
            Reply::SlowJson(delay, value) => {
                tokio::time::sleep(delay).await;
                axum::Json(value).into_response()
            }
        }
    }
}

type Replies = Arc<Mutex<Vec<(String, Vec<Reply>)>>>;

/// A scripted HTTP server: each path answers from a queue of replies (the last one repeats);
/// unknown paths answer 404. Every request path is logged in order.
#[derive(Debug)]
pub struct StubServer {
    server: TestServer,
    replies: Replies,
    log: Arc<Mutex<Vec<String>>>,
}

impl StubServer {
    /// Starts a stub with no routes (everything 404).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener)
    }

    /// Starts a stub on a bound listener.
    pub fn start_on(listener: TcpListener) -> Self {
        let replies: Replies = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let router = {
            let replies = replies.clone();
            let log = log.clone();
            Router::new().fallback(move |request: Request| {
                let replies = replies.clone();
                let log = log.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    log.lock().unwrap().push(path.clone());
                    let reply = {
                        let mut replies = replies.lock().unwrap();
                        replies
                            .iter_mut()
                            .find(|(p, _)| *p == path)
                            .map(|(_, queue)| {
                                if queue.len() > 1 {
                                    queue.remove(0)
                                } else {
                                    queue[0].clone()
                                }
                            })
                    };
                    match reply {
                        Some(reply) => reply.into_response().await,
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            })
        };
        Self {
            server: TestServer::serve(listener, router),
            replies,
            log,
        }
    }

    /// Answers `path` with `reply` from now on.
    pub fn on(&self, path: &str, reply: Reply) -> &Self {
        self.on_sequence(path, vec![reply])
    }

    /// Answers `path` with each reply in turn, repeating the last.
    pub fn on_sequence(&self, path: &str, replies: Vec<Reply>) -> &Self {
        let mut all = self.replies.lock().unwrap();
        all.retain(|(p, _)| p != path);
        all.push((path.to_owned(), replies));
        self
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many times `path` was requested.
    pub fn hits(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

/// A TCP server that accepts connections and never answers.
pub async fn silent_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// An address on which nothing listens (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Parses a `WWW-Authenticate: Bearer k="v", …` value into its scheme and parameters, undoing
/// quoted-string escapes. Panics on anything that is not a well-formed RFC 7235 challenge, so a
/// test fails on a malformed header.
pub fn parse_challenge(value: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let (scheme, mut rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = std::collections::BTreeMap::new();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("no `=` in {value:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad parameter name {name:?} in {value:?}"
        );
        let mut chars = after.char_indices();
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "unquoted value in {value:?}"
        );
        let mut text = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => text.push(chars.next().unwrap().1),
                '"' => {
                    end = Some(i);
                    break;
                }
                c => {
                    assert!((' '..='~').contains(&c), "raw {c:?} in {value:?}");
                    text.push(c);
                }
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated quoted-string in {value:?}"));
        assert!(
            params.insert(name.to_owned(), text).is_none(),
            "{name} twice in {value:?}"
        );
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(", ") {
            rest = next;
        } else {
            assert!(rest.is_empty(), "junk after a parameter in {value:?}");
        }
    }
    (scheme.to_owned(), params)
}
