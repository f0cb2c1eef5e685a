//! The broker's token endpoint and sign-in, in process over its axum router (tower `oneshot`,
//! no network between the client and the broker), with the in-memory and the embedded store:
//!
//! ```text
//! cargo bench -p mcpauth --features broker,dev-server --bench broker
//! ```
//!
//! - `refresh_token`: one refresh grant, the whole handler — form parsing, the client's lookup
//!   (a dynamically registered client, read from the store), the refresh record and the grant
//!   read, the grant's compare-and-swap with the new refresh record (one write), the ES256 access
//!   token signed, the JSON answer. Refresh tokens are single use, so each iteration presents the
//!   token the previous one received (one grant per task rotated over and over).
//! - `authorization_code`: the token-endpoint part of a sign-in, the code redeemed (the code
//!   taken with its redemption recorded, the grant's first refresh token, the access token). The
//!   codes of a sample are made by whole sign-ins before its measured part.
//! - `login`: a complete sign-in in a new browser — `GET /authorize`, `GET /consent` (the page),
//!   `POST /consent` (approval), the identity provider's own step (not the broker's: done
//!   outside the broker's threads), `GET /callback/dev` (the provider's code exchanged by the
//!   broker's pooled HTTP client, its ID token verified, the grant and the code written), and the
//!   code redeemed at `POST /token`.
//!
//! Each store — `memory`, `fjall` (the embedded store as opened by default: its journal synced
//! within 100 ms, and before a write that ends a grant or writes a key is answered) and
//! `fjall-every-write` (`Durability::EveryWrite`: synced before every write is answered) — runs
//! each case one operation at a time (`memory/…`, `fjall/…`) and eight at once (`memory-8/…`,
//! `fjall-8/…`: eight tasks on the broker's runtime, each starting its next
//! operation when its last one is answered, as eight clients would), and is measured twice:
//! `…/wall`, criterion's wall-clock time per operation, and `…/cpu`, the CPU time (user +
//! system) per operation of the broker's threads — this thread, which drives the broker's
//! runtime, the runtime's blocking pool, where `FjallStore` reads, and `FjallStore`'s writer
//! thread — read from `/proc/self/task/*/schedstat` at the start and end of each sample
//! (criterion still reports it as "time"). The identity provider (the development server in
//! upstream mode, on loopback HTTP) runs on a thread of its own with its own runtime, and the
//! browser's visit to it is made from there, so its CPU is not counted; its time is part of a
//! sign-in's wall-clock time (the callback waits for its token endpoint, which signs an RS256 ID
//! token). The CPU figures include the bench's own client side (building each request, reading
//! each answer), a few microseconds per request.
//!
//! With `Durability::EveryWrite`, `FjallStore` syncs its journal (`fdatasync`) before a write
//! returns: its wall-clock times are mostly the file system's, its CPU times what the broker and
//! the store spend. Its writes made at the same time share a sync, so its CPU per operation
//! depends on how many are in flight.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use http::{HeaderMap, Request, StatusCode, header};
use mcpauth::broker::{
    Broker, BrokerKeys, BrokerStore, Durability, FjallStore, MemoryStore, SigningKey, Upstream,
};
use mcpauth::dev::DevAuthServer;
use serde_json::Value;
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:3001";
const RESOURCE: &str = "http://127.0.0.1:3001/mcp";
const SCOPES: [&str; 3] = ["read:todos", "create:todos", "delete:todos"];
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const UPSTREAM_CLIENT: &str = "bench-broker";
const UPSTREAM_SECRET: &str = "bench-broker-upstream-secret";
/// The names of the identity provider's threads (its runtime's and its blocking pool's), whose
/// CPU is not the broker's.
const UPSTREAM_THREADS: &str = "upstream";

/// The CPU time this process's threads have used, the identity provider's excepted.
///
/// `schedstat`'s first field is the thread's time on a CPU in nanoseconds. A running thread's
/// count is brought up to date when it stops running, so this thread sleeps for an instant
/// first: its own count is then exact, and the broker's other threads are idle between
/// operations.
fn broker_cpu() -> Duration {
    std::thread::sleep(Duration::from_micros(1));
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        // A thread that ended between the listing and the read no longer counts.
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if name.starts_with(UPSTREAM_THREADS) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(total)
}

/// What a measured loop reports: wall-clock time, or the broker's CPU time.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Wall,
    Cpu,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Self::Wall => "wall",
            Self::Cpu => "cpu",
        }
    }
}

/// A start of measurement for either clock.
enum Mark {
    Wall(Instant),
    Cpu(Duration),
}

impl Mark {
    fn now(clock: Clock) -> Self {
        match clock {
            Clock::Wall => Self::Wall(Instant::now()),
            Clock::Cpu => Self::Cpu(broker_cpu()),
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Self::Wall(start) => start.elapsed(),
            Self::Cpu(start) => broker_cpu().saturating_sub(*start),
        }
    }
}

/// The identity provider on a thread of its own: its issuer, and a handle to its runtime (the
/// browser's visits to it are made there).
fn start_upstream() -> (String, tokio::runtime::Handle) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(UPSTREAM_THREADS.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(UPSTREAM_THREADS)
                .build()
                .unwrap();
            let upstream = runtime
                .block_on(
                    DevAuthServer::builder()
                        .upstream_client(UPSTREAM_CLIENT, UPSTREAM_SECRET)
                        .upstream_redirect_uri(format!("{ISSUER}/callback/dev"))
                        .start(),
                )
                .unwrap();
            sender
                .send((upstream.issuer().to_owned(), runtime.handle().clone()))
                .unwrap();
            // Serves until the process ends.
            runtime.block_on(std::future::pending::<()>());
            drop(upstream);
        })
        .unwrap();
    receiver.recv().unwrap()
}

/// A broker with one registered client, driven in process.
struct Fixture {
    router: Router,
    client_id: String,
    upstream: tokio::runtime::Handle,
    browser: reqwest::Client,
}

/// One answer, its body read.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn location(&self) -> &str {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{:?}", self.body);
        self.headers[header::LOCATION].to_str().unwrap()
    }

    /// `name=value` of the first `Set-Cookie`.
    fn cookie(&self) -> String {
        let set = self.headers[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }
}

/// The value of a query parameter of `url`.
fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// The value of the consent page's hidden input `name`.
fn hidden_input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce(n: u64) -> (String, String) {
    use base64::Engine as _;
    let verifier = format!("bench-verifier-{n:020}-0123456789abcdefghijklmnop");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    (verifier, challenge)
}

impl Fixture {
    async fn new(
        store: Arc<dyn BrokerStore>,
        upstream_issuer: &str,
        upstream: tokio::runtime::Handle,
    ) -> Self {
        let keys = BrokerKeys::new(SigningKey::generate_es256().unwrap(), [7; 32], [9; 32]);
        let broker = Broker::builder(ISSUER)
            .resource(RESOURCE, SCOPES)
            .upstream(
                Upstream::oidc(upstream_issuer, UPSTREAM_CLIENT)
                    .id("dev")
                    .client_secret(UPSTREAM_SECRET)
                    .scopes(["openid", "email"]),
            )
            .keys(keys)
            // Sign-ins here come faster than the default bound on authorization requests.
            .authorization_rate(1_000_000)
            .shared_store(store)
            .build()
            .await
            .unwrap();
        let router = broker.router();
        let registration = serde_json::json!({
            "client_name": "Bench client",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        });
        let request = Request::post("/register")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(registration.to_string()))
            .unwrap();
        let answer = call(&router, request).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let registered: Value = serde_json::from_slice(&answer.body).unwrap();
        Self {
            router,
            client_id: registered["client_id"].as_str().unwrap().to_owned(),
            upstream,
            browser: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        call(&self.router, request.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, body: String, cookie: Option<&str>) -> Answer {
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        call(&self.router, request.body(Body::from(body)).unwrap()).await
    }

    /// The browser's visit to the identity provider, made on the provider's runtime: where it
    /// sends the browser back to.
    async fn visit_upstream(&self, url: String) -> String {
        let browser = self.browser.clone();
        self.upstream
            .spawn(async move {
                let answer = browser.get(url).send().await.unwrap();
                assert!(answer.status().is_redirection(), "{}", answer.status());
                answer.headers()[header::LOCATION]
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .await
            .unwrap()
    }

    /// A sign-in in a new browser up to the client's code: (code, PKCE verifier).
    async fn sign_in(&self, n: u64) -> (String, String) {
        let (verifier, challenge) = pkce(n);
        let authorize = format!(
            "/authorize?{}",
            form(&[
                ("response_type", "code"),
                ("client_id", &self.client_id),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "read:todos"),
                ("state", "bench-state"),
            ])
        );
        let consent = self.get(&authorize, None).await.location().to_owned();
        let page = self.get(&consent, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let nonce = page.cookie();
        let html = std::str::from_utf8(&page.body).unwrap();
        let approval = form(&[
            ("transaction", &hidden_input(html, "transaction")),
            ("csrf", &hidden_input(html, "csrf")),
            ("decision", "approve"),
        ]);
        let approved = self.post_form("/consent", approval, Some(&nonce)).await;
        let binding = approved.cookie();
        let callback = self.visit_upstream(approved.location().to_owned()).await;
        let callback = callback.strip_prefix(ISSUER).unwrap();
        let back = self.get(callback, Some(&binding)).await;
        (query_param(back.location(), "code"), verifier)
    }

    /// The code redeemed: the refresh token of the answer.
    async fn redeem(&self, code: &str, verifier: &str) -> String {
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ]);
        self.token(body).await
    }

    /// One refresh grant: the next refresh token.
    async fn refresh(&self, refresh_token: &str) -> String {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("refresh_token", refresh_token),
        ]);
        self.token(body).await
    }

    async fn token(&self, body: String) -> String {
        let answer = self.post_form("/token", body, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let tokens: Value = serde_json::from_slice(&answer.body).unwrap();
        tokens["refresh_token"].as_str().unwrap().to_owned()
    }
}

async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answer {
        status,
        headers: parts.headers,
        body,
    }
}

/// The embedded store with `durability`, in a fresh directory `name` under cargo's temporary
/// directory for benchmarks.
fn fjall_store(name: &str, durability: Durability) -> Arc<dyn BrokerStore> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("broker-bench")
        .join(name);
    let _ = std::fs::remove_dir_all(&path);
    Arc::new(FjallStore::open_with(&path, durability).unwrap())
}

/// Operations in flight at once in the `…-8` cases: a broker serving several clients,
/// whose embedded store then commits their writes together.
const CONCURRENCY: usize = 8;

/// A benchmark group of this bench's shape: few, long samples, each timed as a whole.
fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
    measurement_time: Duration,
) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(measurement_time);
    group
}

/// Makes `operations` operations in `states.len()` tasks at once on the current runtime: each
/// task takes the next operation while any is left, carrying its state from one to the next.
/// The states afterwards.
async fn in_flight<S, F, Fut>(operations: u64, states: Vec<S>, step: F) -> Vec<S>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = S> + Send,
{
    let left = Arc::new(AtomicU64::new(operations));
    let mut tasks = tokio::task::JoinSet::new();
    for state in states {
        let (left, step) = (left.clone(), step.clone());
        tasks.spawn(async move {
            let mut state = state;
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                state = step(state).await;
            }
            state
        });
    }
    let mut states = Vec::new();
    while let Some(state) = tasks.join_next().await {
        states.push(state.unwrap());
    }
    states
}

fn broker(c: &mut Criterion) {
    // The broker's runtime runs on this thread (criterion's `block_on`); its blocking pool,
    // where `FjallStore` reads, keeps its threads for the whole run so none of their CPU time is
    // lost with an ended thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("broker-blocking")
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()
        .unwrap();
    let (upstream_issuer, upstream) = start_upstream();
    let stores: [(&str, Arc<dyn BrokerStore>, Duration); 3] = [
        (
            "memory",
            Arc::new(MemoryStore::new()),
            Duration::from_secs(5),
        ),
        (
            "fjall",
            fjall_store("deferred", Durability::default()),
            Duration::from_secs(10),
        ),
        (
            "fjall-every-write",
            fjall_store("every-write", Durability::EveryWrite),
            Duration::from_secs(10),
        ),
    ];
    for (store_name, store, measurement_time) in stores {
        let fixture =
            Arc::new(runtime.block_on(Fixture::new(store, &upstream_issuer, upstream.clone())));
        let counter = Arc::new(AtomicU64::new(0));
        let next = {
            let counter = counter.clone();
            move || counter.fetch_add(1, Ordering::Relaxed)
        };
        // One grant per task, each rotated by every refresh of every sample.
        let refresh_tokens = runtime.block_on(async {
            let mut tokens = Vec::new();
            for _ in 0..CONCURRENCY {
                let (code, verifier) = fixture.sign_in(next()).await;
                tokens.push(fixture.redeem(&code, &verifier).await);
            }
            tokens
        });
        let refresh_tokens = Arc::new(tokio::sync::Mutex::new(refresh_tokens));

        for (tasks, suffix) in [(1, String::new()), (CONCURRENCY, format!("-{CONCURRENCY}"))] {
            for clock in [Clock::Wall, Clock::Cpu] {
                let id = format!("{store_name}{suffix}/{}", clock.name());
                let mut refresh = group(c, "refresh_token", measurement_time);
                refresh.bench_function(&id, |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (fixture, refresh_tokens) = (fixture.clone(), refresh_tokens.clone());
                        async move {
                            let mut tokens = refresh_tokens.lock().await;
                            let mine: Vec<String> = tokens.drain(..tasks).collect();
                            let mark = Mark::now(clock);
                            let step = move |token: String| {
                                let fixture = fixture.clone();
                                async move { fixture.refresh(&token).await }
                            };
                            let mine = in_flight(iters, mine, step).await;
                            let elapsed = mark.elapsed();
                            tokens.extend(mine);
                            elapsed
                        }
                    })
                });
                refresh.finish();

                let mut redeem = group(c, "authorization_code", measurement_time);
                redeem.bench_function(&id, |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (fixture, next) = (fixture.clone(), next.clone());
                        async move {
                            let mut codes = Vec::new();
                            for _ in 0..iters {
                                codes.push(fixture.sign_in(next()).await);
                            }
                            let codes = Arc::new(std::sync::Mutex::new(codes));
                            let mark = Mark::now(clock);
                            let step = move |()| {
                                let (fixture, codes) = (fixture.clone(), codes.clone());
                                async move {
                                    let taken = codes.lock().unwrap().pop();
                                    let (code, verifier) = taken.unwrap();
                                    fixture.redeem(&code, &verifier).await;
                                }
                            };
                            in_flight(iters, vec![(); tasks], step).await;
                            mark.elapsed()
                        }
                    })
                });
                redeem.finish();

                let mut login = group(c, "login", measurement_time);
                login.bench_function(&id, |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (fixture, next) = (fixture.clone(), next.clone());
                        async move {
                            let mark = Mark::now(clock);
                            let step = move |()| {
                                let (fixture, next) = (fixture.clone(), next.clone());
                                async move {
                                    let (code, verifier) = fixture.sign_in(next()).await;
                                    fixture.redeem(&code, &verifier).await;
                                }
                            };
                            in_flight(iters, vec![(); tasks], step).await;
                            mark.elapsed()
                        }
                    })
                });
                login.finish();
            }
        }
    }
}

criterion_group!(benches, broker);
criterion_main!(benches);
