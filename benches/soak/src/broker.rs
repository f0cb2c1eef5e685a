//! `soak broker TODO_BROKER_BIN`: the broker phase of the soak run (see README.md, "The broker
//! phase").
//!
//! The development identity provider (upstream mode) runs here behind the fault proxy; the
//! broker (`todo-broker`, its own process) reaches it only through that proxy (its
//! `UPSTREAM_ISSUER`), while the users' browsers reach it through a second proxy that is always
//! up: the faults are on the broker's connections to the provider. Workers sign users in, refresh
//! their grants, revoke some, replay codes and check access tokens at `/mcp`, phase after phase,
//! first on one broker on the embedded store (killed and restarted in one phase), then on two
//! replicas sharing a `redis-server` (one killed mid-phase and started again). The oracle is in
//! `ledger.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use broker_driver::{BrokerClient, Failure, Step, StepError, TokenAnswer, http_client};
use mcpauth::dev::DevAuthServer;
use redis_test_server::RedisServer;
use serde_json::{Value, json};

use crate::broker_process::{BrokerConfig, BrokerProcess, Said, free_port};
use crate::ledger::{COUNTERS, Ledger, shorten};
use crate::proxy::{Proxy, ProxyOptions};
use crate::timeline::{Behaviour, Timeline};
use crate::{BoxError, flush, number};

/// The broker's client at the development identity provider.
const UPSTREAM_CLIENT: &str = "soak-broker";
/// Its secret.
const UPSTREAM_SECRET: &str = "soak-broker-upstream-secret";
/// The bearer layer's clock leeway on `exp` (`BearerAuthLayer` default).
const LEEWAY: Duration = Duration::from_secs(60);
/// Added to the revocation bound for the whole-second `exp` and the probe's own latency.
const PROBE_MARGIN: Duration = Duration::from_secs(2);
/// The driver's bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at one operation that gets no answer before the worker gives it up.
const ATTEMPTS: usize = 50;
/// Pause between attempts after no answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The broker phase's settings (environment variables of the same names).
#[derive(Debug, Clone)]
struct Settings {
    bin: String,
    phase_seconds: u64,
    workers: usize,
    /// Grants each worker keeps and refreshes in turn (a full pool).
    grants: usize,
    access_token_lifetime: u64,
    slow_ms: (u64, u64),
    seed: u64,
}

impl Settings {
    fn from_env(bin: String) -> Result<Self, BoxError> {
        let settings = Self {
            bin,
            phase_seconds: number("PHASE_SECONDS", 60)?,
            workers: usize::try_from(number("WORKERS", 4)?)?,
            grants: usize::try_from(number("GRANTS_PER_WORKER", 6)?)?,
            access_token_lifetime: number("ACCESS_TOKEN_LIFETIME", 5)?,
            slow_ms: (number("SLOW_MIN_MS", 1000)?, number("SLOW_MAX_MS", 4000)?),
            seed: number("SEED", 0x5eed_2026)?,
        };
        // A revocation leaves a full pool one grant short: with one grant, an empty pool.
        if settings.phase_seconds < 3 || settings.workers == 0 || settings.grants < 2 {
            return Err(
                "PHASE_SECONDS must be at least 3, WORKERS > 0, GRANTS_PER_WORKER at least 2"
                    .into(),
            );
        }
        if settings.access_token_lifetime == 0 || settings.slow_ms.0 > settings.slow_ms.1 {
            return Err("ACCESS_TOKEN_LIFETIME must be > 0, SLOW_MIN_MS ≤ SLOW_MAX_MS".into());
        }
        Ok(settings)
    }
}

/// What happens to the broker processes in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    None,
    /// The embedded-store broker is killed (`SIGKILL`) and started again on the same store and
    /// port, at a third and at two thirds of the phase.
    RestartBroker,
    /// Replica A is killed at a third of the phase and started again at two thirds.
    KillReplica,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    redis: bool,
    upstream: Behaviour,
    action: Action,
}

const PHASES: [Phase; 7] = [
    Phase {
        name: "steady",
        redis: false,
        upstream: Behaviour::Up,
        action: Action::None,
    },
    Phase {
        name: "upstream slow",
        redis: false,
        upstream: Behaviour::Slow,
        action: Action::None,
    },
    Phase {
        name: "upstream down",
        redis: false,
        upstream: Behaviour::Down,
        action: Action::None,
    },
    Phase {
        name: "upstream 503",
        redis: false,
        upstream: Behaviour::Unavailable,
        action: Action::None,
    },
    Phase {
        name: "broker killed + restarted",
        redis: false,
        upstream: Behaviour::Up,
        action: Action::RestartBroker,
    },
    Phase {
        name: "redis: 2 replicas",
        redis: true,
        upstream: Behaviour::Up,
        action: Action::None,
    },
    Phase {
        name: "redis: replica killed",
        redis: true,
        upstream: Behaviour::Up,
        action: Action::KillReplica,
    },
];

/// One broker, or replicas behind one issuer, with a client registered there.
#[derive(Debug)]
struct Cluster {
    name: &'static str,
    /// The issuer (replica A's origin for replicas).
    issuer: String,
    /// Where requests may go (one origin, or each replica's).
    origins: Vec<String>,
    /// The MCP endpoint's resource identifier.
    resource: String,
    client: BrokerClient,
}

impl Cluster {
    fn origins(&self) -> Vec<&str> {
        self.origins.iter().map(String::as_str).collect()
    }
}

/// A grant a worker holds.
#[derive(Debug, Clone)]
struct Grant {
    /// The newest refresh token.
    refresh: String,
    /// The one before it, once the grant was refreshed.
    previous: Option<String>,
    access: String,
}

/// A revoked grant's newest access token, to be refused once past its bound.
#[derive(Debug, Clone)]
struct Revoked {
    cluster: Arc<Cluster>,
    access: String,
    revoked_at: Instant,
    bound: Instant,
}

/// What the workers and the phase driver share.
struct Context {
    ledger: Ledger,
    cluster: RwLock<Arc<Cluster>>,
    revoked: Mutex<Vec<Revoked>>,
    mcp: reqwest::Client,
    stop: AtomicBool,
}

impl Context {
    fn cluster(&self) -> Arc<Cluster> {
        self.cluster
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A small seeded random source (xorshift).
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, origins: &'a [String]) -> &'a str {
        &origins[self.below(origins.len())]
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `exp` of a JWT (not verified).
fn expiry(jwt: &str) -> Option<u64> {
    let payload = jwt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("exp")?.as_u64()
}

/// What `/mcp` answered an `initialize` with `token`: the status, or no answer.
async fn mcp_status(http: &reqwest::Client, origin: &str, token: &str) -> Result<u16, String> {
    let response = http
        .post(format!("{origin}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(
            json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "soak", "version": "0"}
                }
            })
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Ok(status)
}

fn answer_text(answer: &TokenAnswer) -> String {
    let body = answer.body.to_string();
    format!(
        "{}{} {}",
        answer.status,
        if answer.retry_after {
            " (Retry-After)"
        } else {
            ""
        },
        body.chars().take(200).collect::<String>()
    )
}

/// One worker: signs in, refreshes its grants in turn, sometimes revokes one, until stopped.
///
/// It revokes only from a full pool, so once filled a pool never holds fewer than
/// `GRANTS_PER_WORKER − 1` grants (but for a refresh answered wrongly): a phase in which no
/// sign-in succeeds (the provider down or answering 503) still has grants to refresh.
async fn worker(context: Arc<Context>, settings: Settings, id: usize) {
    let mut random = Random(settings.seed ^ ((id as u64 + 1) * 0x9e37_79b9_7f4a_7c15) | 1);
    let mut pool: Vec<Grant> = Vec::new();
    let mut current = "";
    while !context.stop.load(Ordering::Acquire) {
        let cluster = context.cluster();
        if cluster.name != current {
            pool.clear();
            current = cluster.name;
        }
        // Sign-ins fill the pool; while they fail (the provider is faulty) the grants held
        // are still refreshed, three times in four.
        let short = pool.len() < settings.grants && (pool.is_empty() || random.below(4) == 0);
        if short || random.below(20) == 0 {
            if let Some(grant) = login(&context, &cluster, &mut random).await {
                pool.push(grant);
                if pool.len() > settings.grants {
                    pool.remove(0);
                }
            }
            continue;
        }
        let slot = random.below(pool.len());
        if pool.len() >= settings.grants && random.below(25) == 0 {
            let grant = pool.swap_remove(slot);
            revoke(&context, &cluster, &grant, &mut random).await;
            continue;
        }
        if !refresh(&context, &cluster, &mut pool[slot], &mut random).await {
            pool.swap_remove(slot);
        }
    }
}

/// Judges a sign-in that did not end with a code; whether the failure is allowed.
fn judge_sign_in(
    context: &Context,
    cluster: &Cluster,
    error: &StepError,
    from: Instant,
) -> &'static str {
    let to = Instant::now();
    let ledger = &context.ledger;
    let at_broker = error.step != Step::Provider;
    let allowed = match &error.failure {
        Failure::Transport { .. } if at_broker && ledger.was_down(&cluster.origins(), from, to) => {
            Some("no-answer")
        }
        Failure::Status {
            status: 503,
            retry_after: true,
            ..
        } if at_broker && ledger.upstream_was_faulty(from, to) => Some("unavailable"),
        Failure::ErrorRedirect { error: code, .. }
            if code == "temporarily_unavailable" && ledger.upstream_was_faulty(from, to) =>
        {
            Some("unavailable")
        }
        _ => None,
    };
    match allowed {
        Some(counter) => {
            ledger.count(counter);
            ledger.count("login-allowed");
            counter
        }
        None => {
            ledger.wrong(format!(
                "sign-in at {} (client {}) failed at step `{}`: {error} ({:?}; started {:.1} s, \
                 ended {:.1} s)",
                cluster.name,
                cluster.client.client_id(),
                error.step.label(),
                error.failure,
                ledger.offset(from),
                ledger.offset(to),
            ));
            "wrong"
        }
    }
}

/// Records the tokens of a 200 token answer; `None` (and a wrong answer) if it has none.
fn tokens_of(context: &Context, answer: &TokenAnswer, what: &str) -> Option<(String, String)> {
    let Some(tokens) = answer.tokens() else {
        context.ledger.wrong(format!(
            "{what}: 200 without both tokens: {}",
            answer_text(answer)
        ));
        return None;
    };
    context
        .ledger
        .issued("access token", &tokens.access_token, what);
    context
        .ledger
        .issued("refresh token", &tokens.refresh_token, what);
    Some((tokens.access_token, tokens.refresh_token))
}

/// A sign-in and its code redeemed (sometimes replayed, or raced on both replicas): the grant
/// to keep, if any.
async fn login(context: &Context, cluster: &Arc<Cluster>, random: &mut Random) -> Option<Grant> {
    let ledger = &context.ledger;
    let from = Instant::now();
    let offset = random.below(cluster.origins.len());
    let origins = cluster.origins.clone();
    let route = move |step: Step| origins[(offset + step as usize) % origins.len()].clone();
    let code = match cluster
        .client
        .sign_in(route, None, Some(&cluster.resource))
        .await
    {
        Ok(code) => code,
        Err(error) => {
            // Not at once again: a little while for the fault to pass.
            if judge_sign_in(context, cluster, &error, from) != "wrong" {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            return None;
        }
    };
    if code.state.as_deref() != Some(code.login.state.as_str())
        || code.iss.as_deref() != Some(cluster.issuer.as_str())
    {
        ledger.wrong(format!(
            "sign-in at {}: the code came back with state {:?} (sent {}) and iss {:?} (issuer {})",
            cluster.name, code.state, code.login.state, code.iss, cluster.issuer
        ));
    }
    // On replicas, one code in four is redeemed at both at once: one 200 at most.
    if cluster.origins.len() > 1 && random.below(4) == 0 {
        let (a, b) = tokio::join!(
            cluster.client.redeem(&cluster.origins[0], &code),
            cluster.client.redeem(&cluster.origins[1], &code)
        );
        let answers = [a, b];
        let wins = answers
            .iter()
            .filter(|a| a.as_ref().is_ok_and(|a| a.status == 200))
            .count();
        for answer in answers.iter().flatten() {
            if answer.status == 200 {
                let _ = tokens_of(context, answer, "code raced on both replicas");
            }
        }
        if wins > 1 {
            ledger.wrong(format!(
                "code {} redeemed twice: raced on both replicas, both answered 200",
                shorten(&code.code)
            ));
        } else if wins == 1 {
            ledger.count("login");
            ledger.count("code-race");
        }
        // A redemption that lost the race is a replay: the broker may end the grant.
        return None;
    }
    let mut lost = false;
    for _ in 0..ATTEMPTS {
        let origin = random.pick(&cluster.origins).to_owned();
        let sent = Instant::now();
        match cluster.client.redeem(&origin, &code).await {
            Err(error) => {
                if ledger.was_down(&[&origin], sent, Instant::now()) {
                    ledger.count("no-answer");
                } else {
                    ledger.wrong(format!("code redemption at {origin}: no answer: {error}"));
                }
                lost = true;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(answer) if answer.status == 200 => {
                let (access, refresh) = tokens_of(context, &answer, "code redemption")?;
                ledger.count("login");
                let grant = Grant {
                    refresh,
                    previous: None,
                    access,
                };
                if random.below(8) == 0 {
                    replay(context, cluster, &code, random).await;
                    return None;
                }
                return Some(grant);
            }
            Ok(answer) if lost && answer.error() == Some("invalid_grant") => {
                // Retried after no answer: the first attempt may have redeemed it.
                ledger.count("login-allowed");
                return None;
            }
            Ok(answer) => {
                ledger.wrong(format!(
                    "code redemption at {origin} (client {}): answered {}",
                    cluster.client.client_id(),
                    answer_text(&answer)
                ));
                return None;
            }
        }
    }
    None
}

/// A code redeemed once more: it must be refused.
async fn replay(
    context: &Context,
    cluster: &Cluster,
    code: &broker_driver::Code,
    random: &mut Random,
) {
    let origin = random.pick(&cluster.origins);
    match cluster.client.redeem(origin, code).await {
        Ok(answer) if answer.status == 200 => {
            let _ = tokens_of(context, &answer, "code replayed");
            context.ledger.wrong(format!(
                "code {} redeemed twice: replayed at {origin}, answered 200",
                shorten(&code.code)
            ));
        }
        Ok(answer) if answer.error() == Some("invalid_grant") => {
            context.ledger.count("code-replay")
        }
        Ok(answer) => context.ledger.wrong(format!(
            "code replayed at {origin}: answered {}",
            answer_text(&answer)
        )),
        Err(_) => {}
    }
}

/// A refresh with the grant's newest refresh token (retried while no answer comes), then its new
/// access token at `/mcp`; whether the grant is kept.
async fn refresh(
    context: &Context,
    cluster: &Cluster,
    grant: &mut Grant,
    random: &mut Random,
) -> bool {
    let ledger = &context.ledger;
    let mut lost = 0;
    for _ in 0..ATTEMPTS {
        let origin = random.pick(&cluster.origins).to_owned();
        let sent = Instant::now();
        match cluster.client.refresh(&origin, &grant.refresh).await {
            Err(error) => {
                if ledger.was_down(&[&origin], sent, Instant::now()) {
                    ledger.count("no-answer");
                } else {
                    ledger.wrong(format!(
                        "refresh at {origin}: no answer while it was up: {error}"
                    ));
                }
                lost += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(answer) if answer.status == 200 => {
                let Some((access, refresh)) = tokens_of(context, &answer, "refresh") else {
                    return false;
                };
                ledger.count("refresh");
                if lost > 0 {
                    ledger.count("refresh-retry");
                }
                grant.previous = Some(std::mem::replace(&mut grant.refresh, refresh));
                grant.access = access;
                check_access(context, cluster, &grant.access, random).await;
                return true;
            }
            Ok(answer) => {
                ledger.wrong(format!(
                    "refresh token lost: refresh at {origin} (client {}) with the newest refresh \
                     token {} of a live grant{}: answered {}",
                    cluster.client.client_id(),
                    shorten(&grant.refresh),
                    if lost > 0 {
                        format!(" (attempt {}, after {lost} without answer)", lost + 1)
                    } else {
                        String::new()
                    },
                    answer_text(&answer)
                ));
                return false;
            }
        }
    }
    false
}

/// A fresh access token at `/mcp`: it must be accepted.
async fn check_access(context: &Context, cluster: &Cluster, access: &str, random: &mut Random) {
    let ledger = &context.ledger;
    let origin = random.pick(&cluster.origins);
    let sent = Instant::now();
    match mcp_status(&context.mcp, origin, access).await {
        Ok(200) => ledger.count("mcp"),
        Ok(status) => ledger.wrong(format!(
            "a fresh access token {} refused by {origin}/mcp: {status}",
            shorten(access)
        )),
        Err(error) if ledger.was_down(&[origin], sent, Instant::now()) => {
            let _ = error;
            ledger.count("no-answer");
        }
        Err(error) => ledger.wrong(format!("{origin}/mcp: no answer while it was up: {error}")),
    }
}

/// Revokes the grant's newest refresh token (RFC 7009), then checks its refresh tokens are
/// refused at once and queues its access token for the probe past the bound.
async fn revoke(context: &Context, cluster: &Arc<Cluster>, grant: &Grant, random: &mut Random) {
    let ledger = &context.ledger;
    let mut revoked = false;
    for _ in 0..ATTEMPTS {
        let origin = random.pick(&cluster.origins).to_owned();
        let sent = Instant::now();
        match cluster.client.revoke(&origin, &grant.refresh).await {
            Err(error) => {
                if ledger.was_down(&[&origin], sent, Instant::now()) {
                    ledger.count("no-answer");
                } else {
                    ledger.wrong(format!("revocation at {origin}: no answer: {error}"));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok((200, _)) => {
                revoked = true;
                break;
            }
            Ok((status, retry_after)) => {
                ledger.wrong(format!(
                    "revocation at {origin} of refresh token {}: answered {status}{}",
                    shorten(&grant.refresh),
                    if retry_after { " (Retry-After)" } else { "" }
                ));
                return;
            }
        }
    }
    if !revoked {
        return;
    }
    let revoked_at = Instant::now();
    ledger.count("revoke");
    let tokens = [Some(&grant.refresh), grant.previous.as_ref()];
    for token in tokens.into_iter().flatten() {
        for _ in 0..ATTEMPTS {
            let origin = random.pick(&cluster.origins).to_owned();
            match cluster.client.refresh(&origin, token).await {
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
                Ok(answer) if answer.status == 400 && answer.error() == Some("invalid_grant") => {
                    ledger.count("revoked-refused");
                    break;
                }
                Ok(answer) => {
                    if answer.status == 200 {
                        let _ = tokens_of(context, &answer, "refresh of a revoked grant");
                    }
                    ledger.wrong(format!(
                        "revoked grant accepted: refresh at {origin} with refresh token {} after \
                         its revocation answered 200: answered {}",
                        shorten(token),
                        answer_text(&answer)
                    ));
                    break;
                }
            }
        }
    }
    // Its access token: accepted or refused now (either may be), refused past the bound.
    let origin = random.pick(&cluster.origins);
    if let Ok(status) = mcp_status(&context.mcp, origin, &grant.access).await {
        ledger.count(if status == 200 {
            "probe-within"
        } else {
            "probe-refused"
        });
    }
    let exp = expiry(&grant.access).unwrap_or_else(now_unix);
    let bound = Instant::now()
        + Duration::from_secs(exp.saturating_sub(now_unix()))
        + LEEWAY
        + PROBE_MARGIN;
    context
        .revoked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Revoked {
            cluster: cluster.clone(),
            access: grant.access.clone(),
            revoked_at,
            bound,
        });
}

/// Probes revoked grants' access tokens once past their bound, until the run stops and every
/// one has been judged (or `deadline` passes).
async fn probe_revoked(context: &Context, until: impl Fn() -> bool) -> (usize, usize) {
    let mut random = Random(0x0bad_5eed);
    let (mut judged, mut longest_accepted_ms) = (0, 0);
    loop {
        let due: Vec<Revoked> = {
            let mut revoked = context
                .revoked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let (due, later) = revoked.drain(..).partition(|r| r.bound <= now);
            *revoked = later;
            due
        };
        let mut again = Vec::new();
        for entry in due {
            let origin = random.pick(&entry.cluster.origins).to_owned();
            match mcp_status(&context.mcp, &origin, &entry.access).await {
                Ok(200) => {
                    judged += 1;
                    context.ledger.wrong(format!(
                        "revoked grant's access token {} accepted by {origin}/mcp {:.1} s after \
                         the revocation, past its exp + {} s leeway + {} s",
                        shorten(&entry.access),
                        entry.revoked_at.elapsed().as_secs_f64(),
                        LEEWAY.as_secs(),
                        PROBE_MARGIN.as_secs()
                    ));
                }
                Ok(401) => {
                    judged += 1;
                    context.ledger.count("probe-refused");
                    longest_accepted_ms = longest_accepted_ms
                        .max(entry.bound.duration_since(entry.revoked_at).as_millis());
                }
                Ok(status) => {
                    judged += 1;
                    context.ledger.wrong(format!(
                        "revoked grant's access token at {origin}/mcp: answered {status}"
                    ));
                }
                // That replica is down: another time.
                Err(_) => again.push(entry),
            }
        }
        let left = {
            let mut revoked = context
                .revoked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            revoked.extend(again);
            revoked.len()
        };
        if until() && left == 0 {
            return (judged, usize::try_from(longest_accepted_ms).unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The parts: the identity provider, its two proxies, the brokers.
struct Rig {
    _dev: Arc<DevAuthServer>,
    proxy: Proxy,
    front: Proxy,
    said: Arc<Mutex<Said>>,
}

fn broker_env(settings: &Settings, rig: &Rig, port: u16, store: &str) -> Vec<(String, String)> {
    [
        ("UPSTREAM_ISSUER", rig.proxy.issuer()),
        ("UPSTREAM_CLIENT_ID", UPSTREAM_CLIENT.to_owned()),
        ("UPSTREAM_CLIENT_SECRET", UPSTREAM_SECRET.to_owned()),
        ("UPSTREAM_SCOPES", "openid email offline_access".to_owned()),
        ("BROKER_STORE", store.to_owned()),
        (
            "BROKER_ACCESS_TOKEN_LIFETIME_SECS",
            settings.access_token_lifetime.to_string(),
        ),
        ("BROKER_AUTHORIZATIONS_PER_SECOND", "1000000".to_owned()),
        (
            "MCP_RESOURCE_IDENTIFIER",
            format!("http://127.0.0.1:{port}/mcp"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The callback the broker at `port` has at the provider (`<issuer>/callback/<provider id>`;
/// the id of an OpenID Connect provider is its issuer's host).
fn callback(port: u16) -> String {
    format!("http://127.0.0.1:{port}/callback/127.0.0.1")
}

async fn start(
    config: &BrokerConfig,
    said: &Arc<Mutex<Said>>,
    expected_callback: &str,
) -> Result<BrokerProcess, BoxError> {
    let process = config.start(said).await?;
    if process.callback != expected_callback {
        return Err(format!(
            "todo-broker ({}) has the callback {:?}, the provider knows {expected_callback:?}",
            config.name, process.callback
        )
        .into());
    }
    Ok(process)
}

async fn register(rig: &Rig, origin: &str) -> Result<BrokerClient, BoxError> {
    let http = http_client(REQUEST_TIMEOUT)?;
    let client = BrokerClient::register(http.clone(), http, origin, "soak broker phase")
        .await
        .map_err(|e| format!("registration at {origin}: {e}"))?;
    Ok(client.provider_origin(&rig.front.issuer()))
}

/// A process of a cluster, and how to start it again.
struct Member {
    config: BrokerConfig,
    process: Option<BrokerProcess>,
    origin: String,
    /// The callback it must print (the cluster's issuer's).
    callback: String,
}

impl Member {
    async fn kill(&mut self, ledger: &Ledger) {
        ledger.down(&self.origin);
        if let Some(process) = self.process.take() {
            process.kill().await;
        }
    }

    async fn restart(&mut self, ledger: &Ledger, said: &Arc<Mutex<Said>>) -> Result<(), BoxError> {
        self.process = Some(start(&self.config, said, &self.callback).await?);
        ledger.up(&self.origin);
        Ok(())
    }
}

/// Runs the broker phase; whether every answer was right.
#[allow(clippy::too_many_lines)] // the run, start to end
pub(crate) async fn run(bin: String) -> Result<bool, BoxError> {
    let settings = Settings::from_env(bin)?;
    let work = std::env::temp_dir().join(format!("mcpauth-soak-broker-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = soak(&settings, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[allow(clippy::too_many_lines)] // the run, start to end
async fn soak(settings: &Settings, work: &Path) -> Result<bool, BoxError> {
    let fjall_port = free_port()?;
    let replica_port = free_port()?;
    let dev = Arc::new(
        DevAuthServer::builder()
            .upstream_client(UPSTREAM_CLIENT, UPSTREAM_SECRET)
            .upstream_redirect_uri(callback(fjall_port))
            .upstream_redirect_uri(callback(replica_port))
            .start()
            .await?,
    );
    let timeline = Arc::new(Timeline::new(Duration::ZERO, Duration::ZERO));
    let keys_lock = Arc::new(tokio::sync::RwLock::new(()));
    let options = ProxyOptions {
        jwks_max_age: 30,
        slow_ms: settings.slow_ms,
        hang: Duration::from_secs(15),
        seed: settings.seed,
        public_issuer: None,
        id_tokens: Some(dev.clone()),
    };
    let proxy = Proxy::start_with(
        dev.local_addr(),
        timeline.clone(),
        keys_lock.clone(),
        options.clone(),
    )
    .await?;
    let front = Proxy::start_with(
        dev.local_addr(),
        timeline,
        keys_lock,
        ProxyOptions {
            public_issuer: Some(proxy.issuer()),
            id_tokens: None,
            ..options
        },
    )
    .await?;
    let rig = Rig {
        _dev: dev.clone(),
        proxy,
        front,
        said: Arc::new(Mutex::new(Said::default())),
    };

    let fjall_dir: PathBuf = work.join("broker-store");
    let fjall_origin = format!("http://127.0.0.1:{fjall_port}");
    let mut fjall = Member {
        config: BrokerConfig {
            bin: settings.bin.clone(),
            name: "fjall".into(),
            port: fjall_port,
            env: broker_env(settings, &rig, fjall_port, &fjall_dir.display().to_string()),
        },
        process: None,
        origin: fjall_origin.clone(),
        callback: callback(fjall_port),
    };
    fjall.process = Some(start(&fjall.config, &rig.said, &callback(fjall_port)).await?);
    let fjall_cluster = Arc::new(Cluster {
        name: "fjall",
        issuer: fjall_origin.clone(),
        origins: vec![fjall_origin.clone()],
        resource: format!("{fjall_origin}/mcp"),
        client: register(&rig, &fjall_origin).await?,
    });

    println!(
        "soak broker: {} phases × {} s; development identity provider {} behind the fault proxy \
         {} (the broker's UPSTREAM_ISSUER; browsers use {}, always up); todo-broker {} on the \
         embedded store {}; access tokens live {} s; {} workers × {} grants",
        PHASES.len(),
        settings.phase_seconds,
        dev.issuer(),
        rig.proxy.issuer(),
        rig.front.issuer(),
        fjall_origin,
        fjall_dir.display(),
        settings.access_token_lifetime,
        settings.workers,
        settings.grants,
    );
    flush();

    let context = Arc::new(Context {
        ledger: Ledger::new(),
        cluster: RwLock::new(fjall_cluster),
        revoked: Mutex::new(Vec::new()),
        mcp: reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()?,
        stop: AtomicBool::new(false),
    });
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..settings.workers {
        workers.spawn(worker(context.clone(), settings.clone(), id));
    }
    let drained = Arc::new(AtomicBool::new(false));
    let prober = {
        let (context, drained) = (context.clone(), drained.clone());
        tokio::spawn(
            async move { probe_revoked(&context, || drained.load(Ordering::Acquire)).await },
        )
    };

    let redis_installed = RedisServer::installed();
    let mut redis = None;
    let mut replicas: Vec<Member> = Vec::new();
    let phase_length = Duration::from_secs(settings.phase_seconds);
    let mut ran = Vec::new();
    let ledger = &context.ledger;
    for (index, phase) in PHASES.iter().enumerate() {
        if phase.redis && replicas.is_empty() {
            if !redis_installed {
                println!(
                    "soak broker: redis-server is not installed: the Redis phases are left out \
                     (Debian: apt-get install redis-server)"
                );
                break;
            }
            // Its append-only file on, in the run's directory (kept for a look afterwards).
            let dir = work.join("redis");
            let server = tokio::task::spawn_blocking(move || {
                RedisServer::try_start(&["--appendonly", "yes"], Some(&dir))
            })
            .await??;
            let url = server.url();
            let issuer = format!("http://127.0.0.1:{replica_port}");
            for (name, port) in [("redis A", replica_port), ("redis B", free_port()?)] {
                let mut env = broker_env(settings, &rig, replica_port, &url);
                env.push(("BROKER_REDIS_PREFIX".into(), "soak-broker".into()));
                let config = BrokerConfig {
                    bin: settings.bin.clone(),
                    name: name.into(),
                    port,
                    env,
                };
                // Both have the issuer's callback; A writes the development keys, B reads them.
                let process = start(&config, &rig.said, &callback(replica_port)).await?;
                replicas.push(Member {
                    origin: format!("http://127.0.0.1:{port}"),
                    callback: callback(replica_port),
                    config,
                    process: Some(process),
                });
            }
            let origins: Vec<String> = replicas.iter().map(|m| m.origin.clone()).collect();
            println!(
                "soak broker: {}; replicas {} (issuer {issuer}) on {url}, prefix soak-broker",
                RedisServer::version().unwrap_or_default(),
                origins.join(" and ")
            );
            let cluster = Arc::new(Cluster {
                name: "redis",
                issuer: issuer.clone(),
                resource: format!("{issuer}/mcp"),
                client: register(&rig, &origins[1]).await?,
                origins,
            });
            *context
                .cluster
                .write()
                .unwrap_or_else(PoisonError::into_inner) = cluster;
            redis = Some(server);
        }
        let started = Instant::now();
        ledger.phase.store(index, Ordering::Release);
        if phase.upstream != Behaviour::Up {
            ledger.upstream_fault(true);
        }
        rig.proxy.set_mode(phase.upstream).await?;
        let mut outages = Vec::new();
        match phase.action {
            Action::None => tokio::time::sleep(phase_length).await,
            Action::RestartBroker => {
                for _ in 0..2 {
                    tokio::time::sleep(phase_length / 3).await;
                    let down = Instant::now();
                    fjall.kill(ledger).await;
                    fjall.restart(ledger, &rig.said).await?;
                    outages.push(down.elapsed());
                }
                tokio::time::sleep(phase_length.saturating_sub(started.elapsed())).await;
            }
            Action::KillReplica => {
                tokio::time::sleep(phase_length / 3).await;
                let down = Instant::now();
                replicas[0].kill(ledger).await;
                tokio::time::sleep(phase_length / 3).await;
                replicas[0].restart(ledger, &rig.said).await?;
                outages.push(down.elapsed());
                tokio::time::sleep(phase_length.saturating_sub(started.elapsed())).await;
            }
        }
        rig.proxy.set_mode(Behaviour::Up).await?;
        ledger.upstream_fault(false);
        let seconds = started.elapsed().as_secs_f64();
        for member in std::iter::once(&mut fjall).chain(replicas.iter_mut()) {
            if let Some(process) = &mut member.process
                && !process.running()
            {
                return Err(
                    format!("todo-broker ({}) exited during the run", member.config.name).into(),
                );
            }
        }
        print_phase(index, phase, seconds, &outages, ledger);
        ran.push((index, *phase, seconds));
    }

    // Stop the load, then wait for every revoked grant's access token to pass its bound.
    context.stop.store(true, Ordering::Release);
    while workers.join_next().await.is_some() {}
    let drain = Instant::now();
    ledger.phase.store(PHASES.len(), Ordering::Release);
    drained.store(true, Ordering::Release);
    let (probed, longest_bound_ms) = prober.await?;
    let drain = drain.elapsed();

    println!();
    let widths: Vec<usize> = COUNTERS.iter().map(|(k, _)| k.len().max(7)).collect();
    print!("{:>2} {:<26} {:>5}", "#", "phase", "secs");
    for ((key, _), width) in COUNTERS.iter().zip(&widths) {
        print!(" {key:>width$}");
    }
    println!(" {:>6}", "wrong");
    let mut rows: Vec<(String, String, f64, usize)> = ran
        .iter()
        .map(|(i, p, s)| ((i + 1).to_string(), p.name.to_owned(), *s, *i))
        .collect();
    rows.push((
        "-".into(),
        "drain (revocation probes)".into(),
        drain.as_secs_f64(),
        PHASES.len(),
    ));
    let mut totals = vec![0u64; COUNTERS.len() + 1];
    for (number, name, seconds, index) in &rows {
        print!("{number:>2} {name:<26} {seconds:>5.1}");
        for (n, ((key, _), width)) in COUNTERS.iter().zip(&widths).enumerate() {
            let count = ledger.counted(*index, key);
            totals[n] += count;
            print!(" {count:>width$}");
        }
        let wrong = ledger.counted(*index, "wrong");
        totals[COUNTERS.len()] += wrong;
        println!(" {wrong:>6}");
    }
    print!("{:>2} {:<26} {:>5}", "", "all", "");
    for (n, width) in widths.iter().enumerate() {
        print!(" {:>width$}", totals[n]);
    }
    println!(" {:>6}", totals[COUNTERS.len()]);
    println!("columns:");
    for (key, meaning) in COUNTERS {
        println!("  {key:<16} {meaning}");
    }
    println!(
        "tokens issued: {} distinct values (access and refresh), none twice unless reported; \
         revoked grants' access tokens probed past their bound: {probed} (bound: exp + {} s \
         leeway + {} s, at most {:.1} s after a revocation)",
        ledger.issued_count(),
        LEEWAY.as_secs(),
        PROBE_MARGIN.as_secs(),
        longest_bound_ms as f64 / 1000.0
    );
    println!(
        "identity provider: {} token requests served",
        dev.token_requests()
    );
    {
        let said = rig.said.lock().unwrap_or_else(PoisonError::into_inner);
        println!("todo-broker's standard error (all processes), by message:");
        if said.messages.is_empty() {
            println!("  (nothing)");
        }
        for (message, count) in &said.messages {
            println!("  {count:>6} × {message}");
        }
    }
    let wrongs = ledger.wrongs();
    if !wrongs.is_empty() {
        println!("!! WRONG ANSWERS: {}", wrongs.len());
        for wrong in wrongs.iter().take(50) {
            println!(
                "   phase {} at {:.1} s: {}",
                wrong.phase + 1,
                wrong.at,
                wrong.what
            );
        }
    }
    let unexercised = unexercised(&ran, ledger);
    if !unexercised.is_empty() {
        println!("!! NOT EXERCISED: {}", unexercised.len());
        for what in &unexercised {
            println!("   {what}");
        }
    }
    for member in std::iter::once(fjall).chain(replicas) {
        if let Some(process) = member.process {
            process.kill().await;
        }
    }
    drop(redis);
    println!();
    let passed = wrongs.is_empty() && unexercised.is_empty();
    println!(
        "{}",
        if passed {
            "soak broker: PASSED"
        } else {
            "soak broker: FAILED"
        }
    );
    Ok(passed)
}

/// What a phase that ran is there to exercise and did not: refreshes in every phase (none
/// needs the provider), sign-ins in every phase whose provider is up. A run that tested
/// nothing there fails.
fn unexercised(ran: &[(usize, Phase, f64)], ledger: &Ledger) -> Vec<String> {
    let mut missing = Vec::new();
    for (index, phase, _) in ran {
        if ledger.counted(*index, "refresh") == 0 {
            missing.push(format!("phase {} ({}): no refresh", index + 1, phase.name));
        }
        if phase.upstream == Behaviour::Up && ledger.counted(*index, "login") == 0 {
            missing.push(format!("phase {} ({}): no sign-in", index + 1, phase.name));
        }
    }
    missing
}

fn print_phase(index: usize, phase: &Phase, seconds: f64, outages: &[Duration], ledger: &Ledger) {
    let outages: Vec<String> = outages
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    println!(
        "{:>2} {:<26} {:>5.1} s  upstream {:<5} sign-ins {:>5}  refreshes {:>6}  revocations {:>4}  \
         /mcp {:>6}  allowed failures {:>4}  wrong {:>3}{}",
        index + 1,
        phase.name,
        seconds,
        phase.upstream.label(),
        ledger.counted(index, "login"),
        ledger.counted(index, "refresh"),
        ledger.counted(index, "revoke"),
        ledger.counted(index, "mcp"),
        ledger.counted(index, "login-allowed") + ledger.counted(index, "no-answer"),
        ledger.counted(index, "wrong"),
        if outages.is_empty() {
            String::new()
        } else {
            format!("  (down for {})", outages.join(", "))
        }
    );
    flush();
}
