//! The broker's part of the load benchmark: the notes handler behind the bearer layer trusting
//! an `mcpauth` broker (its keys handed over in process) and, for comparison, behind the layer
//! trusting an external issuer that signs with the same algorithm (ES256); and a browser-and-
//! client driver for the broker's sign-in and token endpoint over HTTP.
//!
//! ```text
//! load-reference broker COUNT DIR                  # writes DIR/es256-tokens.txt and
//!                                                  # DIR/broker-tokens.txt, then prints
//!                                                  # `es256 http://…` and `broker http://…`
//! load-reference logins ISSUER LOGINS REFRESHES PID [STORE_PID]
//! ```
//!
//! `broker` serves two loopback ports with `notes`' `GET /notes` handler behind the layer
//! (`read:notes` required, the verified-token cache on):
//! - `es256`: the resource trusts a development authorization server in this process, found
//!   by discovery and its keys fetched from its JWKS over HTTP as for any external issuer; its
//!   tokens are ES256 and carry the same claims as the broker's (`sub`, `client_id`, `scope`);
//! - `broker`: the resource trusts a broker (`Broker::auth_server()`, in-memory store), whose
//!   routes are served on the same port; its identity provider is a development server in
//!   upstream mode in this process.
//!
//! COUNT tokens of each are written before the addresses are printed: the external issuer's
//! minted in process, the broker's issued by its token endpoint over HTTP — a few sign-ins
//! (authorize, consent, the provider, callback, code redemption), then chains of refresh grants,
//! each answer carrying a fresh access token. Both live a day, so a long run never sees one
//! expire.
//!
//! `logins` plays LOGINS users against the broker at ISSUER (registering one client, signing
//! in through the broker's consent page and its identity provider, redeeming the code), then
//! REFRESHES refresh grants spread over their grants, a few sign-ins or refreshes in flight at
//! once. It prints, for each phase, the count, the wall time and the CPU time the server process
//! PID spent (user + system, from `/proc`) — and the store's server STORE_PID (a
//! `redis-server`), when given —, then the server's peak and current RSS.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth::broker::{Broker, MemoryStore, Upstream};
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{AuthServer, AuthServerType, McpAuth, ProtectedResource, TokenCacheOptions};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::{Error, READ_SCOPE, json_answer, listen, notes_router};

/// The broker's client at the development identity provider.
const UPSTREAM_CLIENT: &str = "load-broker";
/// Its secret.
const UPSTREAM_SECRET: &str = "load-broker-upstream-secret";
/// The MCP client's redirect URI (never visited: the driver reads the redirect).
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// Sign-ins (or refresh chains) in flight at once.
const CONCURRENCY: usize = 8;
/// How long the benchmark's tokens live.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
}

fn flow(step: &str, detail: impl std::fmt::Display) -> Error {
    Error::Flow(format!("{step}: {detail}"))
}

/// A PKCE pair: (verifier, S256 challenge); the verifier is unique within the process.
fn pkce() -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let verifier = format!("load-verifier-{n:020}-0123456789abcdefghijklmnop");
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

fn location(response: &reqwest::Response, step: &str) -> Result<String, Error> {
    if !response.status().is_redirection() {
        return Err(flow(step, format!("answered {}", response.status())));
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| flow(step, "no Location"))
}

/// An MCP client of a broker, registered once, that signs users in and refreshes.
#[derive(Debug, Clone)]
pub(crate) struct BrokerClient {
    http: reqwest::Client,
    issuer: Arc<str>,
    client_id: Arc<str>,
}

impl BrokerClient {
    /// Registers a public client (dynamic registration) at the broker at `issuer`.
    pub(crate) async fn register(issuer: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Client)?;
        let url = format!("{issuer}/register");
        let body = json!({
            "client_name": "load benchmark",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        });
        let sent = http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        #[derive(Deserialize)]
        struct Registered {
            client_id: String,
        }
        let registered: Registered = json_answer(&url, sent).await?;
        Ok(Self {
            http,
            issuer: issuer.trim_end_matches('/').into(),
            client_id: registered.client_id.into(),
        })
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// One sign-in in a new browser: authorize, the consent page, approval, the identity
    /// provider (which signs its user in without asking), the callback, and the code redeemed.
    pub(crate) async fn login(&self, scope: Option<&str>) -> Result<Tokens, Error> {
        let issuer = &*self.issuer;
        let mut jar = Jar::default();
        let send = |request: reqwest::RequestBuilder, step: &'static str| async move {
            request.send().await.map_err(|e| flow(step, e))
        };
        let (verifier, challenge) = pkce();
        let mut authorize =
            url::Url::parse(&format!("{issuer}/authorize")).map_err(|e| flow("authorize", e))?;
        {
            let mut query = authorize.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", "load");
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
        }
        let response = send(self.http.get(authorize), "authorize").await?;
        let consent = format!("{issuer}{}", location(&response, "authorize")?);

        let response = send(self.http.get(&consent), "consent page").await?;
        if response.status() != StatusCode::OK {
            return Err(flow("consent page", response.status()));
        }
        jar.absorb(&response);
        let html = response.text().await.map_err(|e| flow("consent page", e))?;
        let field = |name| hidden_input(&html, name).ok_or_else(|| flow("consent page", name));
        let form = [
            ("transaction", field("transaction")?),
            ("csrf", field("csrf")?),
            ("decision", "approve"),
        ];
        let approval = self
            .http
            .post(format!("{issuer}/consent"))
            .header(COOKIE, jar.header())
            .form(&form);
        let response = send(approval, "consent").await?;
        jar.absorb(&response);
        let upstream = location(&response, "consent")?;

        let response = send(self.http.get(&upstream), "identity provider").await?;
        let callback = location(&response, "identity provider")?;

        let response = send(
            self.http.get(&callback).header(COOKIE, jar.header()),
            "callback",
        )
        .await?;
        let back = location(&response, "callback")?;
        let code = url::Url::parse(&back)
            .map_err(|e| flow("callback", e))?
            .query_pairs()
            .find(|(name, _)| name == "code")
            .map(|(_, code)| code.into_owned())
            .ok_or_else(|| flow("callback", format!("no code in {back}")))?;

        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ];
        self.token_request(&form).await
    }

    /// One `refresh_token` grant.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Tokens, Error> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &*self.client_id),
            ("refresh_token", refresh_token),
        ];
        self.token_request(&form).await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, Error> {
        let url = format!("{}/token", self.issuer);
        let sent = self.http.post(&url).form(form).send().await;
        json_answer(&url, sent).await
    }
}

/// Writes `tokens`, one a line, to `path`.
fn write_tokens(path: &Path, tokens: &[String]) -> Result<(), Error> {
    let file = std::fs::File::create(path).map_err(Error::Io)?;
    let mut out = std::io::BufWriter::new(file);
    for token in tokens {
        writeln!(out, "{token}").map_err(Error::Io)?;
    }
    out.flush().map_err(Error::Io)
}

/// Spreads `count` over the workers: the first `count % CONCURRENCY` take one more.
fn share(count: usize, worker: usize) -> usize {
    count / CONCURRENCY + usize::from(worker < count % CONCURRENCY)
}

/// `count` access tokens from the broker's token endpoint: one sign-in per worker, then a
/// chain of refresh grants.
async fn broker_tokens(client: &BrokerClient, count: usize) -> Result<Vec<String>, Error> {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let share = share(count, worker);
        let client = client.clone();
        workers.spawn(async move {
            let mut minted = Vec::with_capacity(share);
            if share == 0 {
                return Ok(minted);
            }
            let mut tokens = client.login(Some(READ_SCOPE)).await?;
            minted.push(tokens.access_token);
            while minted.len() < share {
                tokens = client.refresh(&tokens.refresh_token).await?;
                minted.push(tokens.access_token);
            }
            Ok::<_, Error>(minted)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(minted) = workers.join_next().await {
        all.extend(minted.map_err(Error::Join)??);
    }
    Ok(all)
}

/// Serves `app` on `listener` in the background.
fn spawn_server(listener: TcpListener, app: Router) {
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("load-reference: error: server error: {error}");
            std::process::exit(1);
        }
    });
}

#[allow(clippy::print_stdout)] // the addresses are this command's output
pub(crate) async fn serve(count: usize, dir: &Path) -> Result<(), Error> {
    // The broker, its identity provider, and the notes handler behind the layer trusting it.
    let (broker_listener, broker_addr) = listen().await?;
    let issuer = format!("http://{broker_addr}");
    let broker_resource = format!("{issuer}/notes");
    let upstream = DevAuthServer::builder()
        .upstream_client(UPSTREAM_CLIENT, UPSTREAM_SECRET)
        .upstream_redirect_uri(format!("{issuer}/callback/dev"))
        .start()
        .await
        .map_err(Error::DevServer)?;
    let broker = Broker::builder(issuer.clone())
        .resource(broker_resource.clone(), [READ_SCOPE, "write:notes"])
        .upstream(
            Upstream::oidc(upstream.issuer(), UPSTREAM_CLIENT)
                .id("dev")
                .client_secret(UPSTREAM_SECRET)
                .scopes(["openid"]),
        )
        .access_token_lifetime(TOKEN_LIFETIME)
        .store(MemoryStore::new())
        .build()
        .await
        .map_err(Error::Broker)?;
    let broker_auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(broker_resource.clone())
                .authorization_server(broker.auth_server())
                .scopes([READ_SCOPE, "write:notes"]),
        )
        .token_cache(TokenCacheOptions::default())
        .build()?;
    let broker_app = notes_router(&broker_auth, &broker_resource, true)?.merge(broker.router());
    spawn_server(broker_listener, broker_app);

    // The external issuer signing ES256, and the same handler behind the layer trusting it.
    let external = DevAuthServer::start().await.map_err(Error::DevServer)?;
    let (es256_listener, es256_addr) = listen().await?;
    let es256_resource = format!("http://{es256_addr}/notes");
    let es256_auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(es256_resource.clone())
                .authorization_server(AuthServer::discover(
                    external.issuer(),
                    AuthServerType::Oidc,
                ))
                .scopes([READ_SCOPE, "write:notes"]),
        )
        .token_cache(TokenCacheOptions::default())
        .build()?;
    es256_auth.discover_all().await?;
    spawn_server(
        es256_listener,
        notes_router(&es256_auth, &es256_resource, true)?,
    );

    // The broker's tokens through its token endpoint; the external issuer's with the same
    // claims (the broker's subject for the development user, the same client id and scope).
    let client = BrokerClient::register(&issuer).await?;
    let broker_tokens = broker_tokens(&client, count).await?;
    let mut es256_tokens = Vec::with_capacity(count);
    for _ in 0..count {
        // A `jti` as long as the broker's (16 random bytes).
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| Error::Flow("no randomness".into()))?;
        let token = external
            .token()
            .claim("jti", URL_SAFE_NO_PAD.encode(jti))
            .algorithm(DevAlgorithm::Es256)
            .subject("dev|dev-user")
            .client_id(client.client_id())
            .audience(es256_resource.as_str())
            .scopes([READ_SCOPE])
            .expires_in(TOKEN_LIFETIME)
            .sign()
            .map_err(Error::DevServer)?;
        es256_tokens.push(token);
    }
    write_tokens(&dir.join("es256-tokens.txt"), &es256_tokens)?;
    write_tokens(&dir.join("broker-tokens.txt"), &broker_tokens)?;
    println!("es256 http://{es256_addr}");
    println!("broker http://{broker_addr}");
    // The servers run on the runtime's tasks; the development servers stop when dropped.
    let _keep = (upstream, external, broker);
    std::future::pending::<()>().await;
    Ok(())
}

/// User + system CPU time of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(Error::Io)?;
    // The fields after the command name (which may hold spaces) start with the state; utime
    // and stime are the 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(field(11) + field(12))
}

/// A line of `/proc/PID/status` (`VmHWM`, `VmRSS`), as written there.
fn status_line(pid: u32, name: &str) -> Result<String, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(Error::Io)?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned()))
}

#[allow(clippy::print_stdout)] // the measurements are this command's output
pub(crate) async fn logins(
    issuer: &str,
    logins: usize,
    refreshes: usize,
    pid: u32,
    store_pid: Option<u32>,
) -> Result<(), Error> {
    let client = BrokerClient::register(issuer).await?;
    // The CPU ticks of the server and of the store's server (none: 0) so far.
    let ticks_now = || -> Result<(u64, u64), Error> {
        Ok((cpu_ticks(pid)?, store_pid.map_or(Ok(0), cpu_ticks)?))
    };
    let phase = |name: &str, count: usize, start: Instant, ticks: (u64, u64)| {
        let now = ticks_now()?;
        println!(
            "{name} {count} wall_s {:.3} cpu_ticks {} store_cpu_ticks {}",
            start.elapsed().as_secs_f64(),
            now.0.saturating_sub(ticks.0),
            now.1.saturating_sub(ticks.1),
        );
        Ok::<_, Error>(())
    };

    let (start, ticks) = (Instant::now(), ticks_now()?);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let client = client.clone();
        let mine = share(logins, worker);
        workers.spawn(async move {
            let mut refresh_tokens = Vec::with_capacity(mine);
            for _ in 0..mine {
                refresh_tokens.push(client.login(None).await?.refresh_token);
            }
            Ok::<_, Error>(refresh_tokens)
        });
    }
    let mut chains = Vec::with_capacity(CONCURRENCY);
    while let Some(done) = workers.join_next().await {
        chains.push(done.map_err(Error::Join)??);
    }
    phase("logins", logins, start, ticks)?;

    let (start, ticks) = (Instant::now(), ticks_now()?);
    let mut workers = tokio::task::JoinSet::new();
    for (worker, mut chain) in chains.into_iter().enumerate() {
        let client = client.clone();
        let mine = share(refreshes, worker);
        workers.spawn(async move {
            // Round-robin over this worker's grants, each grant's newest refresh token.
            let mut done = 0;
            while done < mine && !chain.is_empty() {
                let slot = done % chain.len();
                chain[slot] = client.refresh(&chain[slot]).await?.refresh_token;
                done += 1;
            }
            Ok::<_, Error>(done)
        });
    }
    let mut done = 0;
    while let Some(worker) = workers.join_next().await {
        done += worker.map_err(Error::Join)??;
    }
    phase("refreshes", done, start, ticks)?;
    println!(
        "server VmHWM {} VmRSS {}",
        status_line(pid, "VmHWM")?,
        status_line(pid, "VmRSS")?
    );
    Ok(())
}
