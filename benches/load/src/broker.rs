//! The broker's part of the load benchmark: the notes handler behind the bearer layer trusting
//! an `mcpauth` broker (its keys handed over in process) and, for comparison, behind the layer
//! trusting an external issuer that signs with the same algorithm (ES256); and sign-ins and
//! refreshes at a broker over HTTP, through the shared driver (`broker-driver`).
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

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use broker_driver::{BrokerClient, StepError, Tokens, http_client, token_failure};
use mcpauth::broker::{Broker, MemoryStore, Upstream};
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{AuthServer, AuthServerType, McpAuth, ProtectedResource, TokenCacheOptions};
use tokio::net::TcpListener;

use crate::{Error, READ_SCOPE, listen, notes_router};

/// The broker's client at the development identity provider.
const UPSTREAM_CLIENT: &str = "load-broker";
/// Its secret.
const UPSTREAM_SECRET: &str = "load-broker-upstream-secret";
/// Sign-ins (or refresh chains) in flight at once.
const CONCURRENCY: usize = 8;
/// How long the benchmark's tokens live.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The driver's bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn driver(error: StepError) -> Error {
    Error::Flow(error.to_string())
}

/// An MCP client of the broker at `issuer`, registered (dynamic registration), with the issuer
/// it sends every request to.
#[derive(Debug, Clone)]
struct Client {
    driver: BrokerClient,
    issuer: Arc<str>,
}

impl Client {
    async fn register(issuer: &str) -> Result<Self, Error> {
        let http = http_client(REQUEST_TIMEOUT).map_err(Error::Client)?;
        let driver = BrokerClient::register(http.clone(), http, issuer, "load benchmark")
            .await
            .map_err(driver)?;
        Ok(Self {
            driver,
            issuer: issuer.trim_end_matches('/').into(),
        })
    }

    fn client_id(&self) -> &str {
        self.driver.client_id()
    }

    /// One sign-in in a new browser, its code redeemed.
    async fn login(&self, scope: Option<&str>) -> Result<Tokens, Error> {
        self.driver.login(&self.issuer, scope).await.map_err(driver)
    }

    /// One `refresh_token` grant.
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, Error> {
        let answer = self
            .driver
            .refresh(&self.issuer, refresh_token)
            .await
            .map_err(driver)?;
        answer
            .tokens()
            .ok_or_else(|| driver(token_failure(&answer)))
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
async fn broker_tokens(client: &Client, count: usize) -> Result<Vec<String>, Error> {
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
    let client = Client::register(&issuer).await?;
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
    let client = Client::register(issuer).await?;
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
