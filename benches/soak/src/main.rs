//! `soak`: the soak run of mcpauth. Run it through `benches/soak/run.sh`.
//!
//! ```text
//! soak NOTES_BIN WRK_LUA         # settings from the environment, see README.md
//! soak broker TODO_BROKER_BIN    # the broker phase (`broker.rs`)
//! ```
//!
//! It starts the development authorization server behind a fault proxy, starts `notes` (its own
//! process) with the proxy's address as its issuer, and then, phase after phase, changes what
//! the authorization server does (rotates keys, goes down, answers with 503, slowly, or not at
//! all) while `wrk` loads `GET /notes` with valid tokens and a checker sends valid and invalid
//! tokens of every kind. It prints one line per phase and a summary, and exits with status 1 if
//! any answer was wrong, the JWKS was fetched more often than notes' rate limit allows, or
//! notes' memory grew by more than its token cache's bound.

// A command-line report: printing is its output, and it never runs inside anything else.
#![allow(clippy::print_stdout)]

mod broker;
mod broker_process;
mod checker;
mod inflight;
mod ledger;
mod notes;
mod proxy;
mod timeline;
mod tokens;
mod wrk;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpauth::dev::{DevAuthServer, KeyRotation};
use mcpauth::{KeyCacheOptions, TokenCacheOptions};
use tokio::sync::RwLock;

use crate::checker::{Checker, Findings, PhaseChecks, Verdict};
use crate::notes::Notes;
use crate::proxy::Proxy;
use crate::timeline::{Behaviour, JwksCounts, Timeline};
use crate::tokens::{CheckKind, Minter};
use crate::wrk::WrkRun;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The run's settings (environment variables of the same names, upper case).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Run the in-flight refusal reproduction (`--inflight`) instead of the soak.
    inflight: bool,
    pub(crate) notes_bin: String,
    lua: PathBuf,
    phase_seconds: u64,
    head_seconds: u64,
    tokens_per_phase: usize,
    head_tokens: usize,
    threads: u64,
    connections: u64,
    wrk_timeout: u64,
    check_interval_ms: u64,
    pub(crate) slow_min_ms: u64,
    pub(crate) slow_max_ms: u64,
    pub(crate) hang_seconds: u64,
    pub(crate) jwks_max_age: u64,
    grace_ms: u64,
    settle_margin_ms: u64,
    pub(crate) seed: u64,
    notes_cpu: Option<String>,
}

pub(crate) fn number(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a whole number").into()),
        _ => Ok(default),
    }
}

fn text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let mut args = std::env::args().skip(1).peekable();
        let inflight = args.next_if_eq("--inflight").is_some();
        let (Some(notes_bin), lua) = (args.next(), args.next()) else {
            return Err("usage: soak NOTES_BIN WRK_LUA | soak --inflight NOTES_BIN \
                        (settings in the environment)"
                .into());
        };
        let Some(lua) = lua.or_else(|| inflight.then(String::new)) else {
            return Err("usage: soak NOTES_BIN WRK_LUA | soak --inflight NOTES_BIN".into());
        };
        let settings = Self {
            inflight,
            notes_bin,
            lua: PathBuf::from(lua),
            phase_seconds: number("PHASE_SECONDS", 60)?,
            head_seconds: number("HEAD_SECONDS", 15)?,
            tokens_per_phase: usize::try_from(number("TOKENS_PER_PHASE", 2000)?)?,
            head_tokens: usize::try_from(number("HEAD_TOKENS", 100)?)?,
            threads: number("THREADS", 1)?,
            connections: number("CONNECTIONS", 16)?,
            wrk_timeout: number("WRK_TIMEOUT", 20)?,
            check_interval_ms: number("CHECK_INTERVAL_MS", 100)?,
            slow_min_ms: number("SLOW_MIN_MS", 2000)?,
            slow_max_ms: number("SLOW_MAX_MS", 8000)?,
            hang_seconds: number("HANG_SECONDS", 15)?,
            jwks_max_age: number("JWKS_MAX_AGE", 30)?,
            grace_ms: number("GRACE_MS", 1000)?,
            settle_margin_ms: number("SETTLE_MARGIN_MS", 2000)?,
            seed: number("SEED", 0x5eed_2026)?,
            notes_cpu: text("NOTES_CPU"),
        };
        if settings.phase_seconds < 2 {
            return Err("PHASE_SECONDS must be at least 2".into());
        }
        if settings.head_tokens == 0
            || settings.tokens_per_phase == 0
            || settings.connections == 0
            || settings.threads == 0
            || settings.check_interval_ms == 0
        {
            return Err("token counts, CONNECTIONS, THREADS, CHECK_INTERVAL_MS must be > 0".into());
        }
        if settings.slow_min_ms > settings.slow_max_ms {
            return Err("SLOW_MIN_MS must not exceed SLOW_MAX_MS".into());
        }
        Ok(settings)
    }

    /// The seconds of a phase's first wrk segment (its "head").
    fn head(&self) -> u64 {
        self.head_seconds.min(self.phase_seconds / 4).max(1)
    }

    fn describe(&self) -> String {
        format!(
            "PHASE_SECONDS={} HEAD_SECONDS={} TOKENS_PER_PHASE={} HEAD_TOKENS={} THREADS={} \
             CONNECTIONS={} WRK_TIMEOUT={} CHECK_INTERVAL_MS={} SLOW_MIN_MS={} SLOW_MAX_MS={} \
             HANG_SECONDS={} JWKS_MAX_AGE={} GRACE_MS={} SETTLE_MARGIN_MS={} SEED={}",
            self.phase_seconds,
            self.head(),
            self.tokens_per_phase,
            self.head_tokens,
            self.threads,
            self.connections,
            self.wrk_timeout,
            self.check_interval_ms,
            self.slow_min_ms,
            self.slow_max_ms,
            self.hang_seconds,
            self.jwks_max_age,
            self.grace_ms,
            self.settle_margin_ms,
            self.seed,
        )
    }
}

/// One phase: what the authorization server does, and whether its keys rotate at the start.
#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    mode: Behaviour,
    rotation: Option<KeyRotation>,
}

const PHASES: [Phase; 12] = [
    Phase {
        name: "steady",
        mode: Behaviour::Up,
        rotation: None,
    },
    Phase {
        name: "rotate, new kid",
        mode: Behaviour::Up,
        rotation: Some(KeyRotation::NewKeyIds),
    },
    Phase {
        name: "rotate, reused kid",
        mode: Behaviour::Up,
        rotation: Some(KeyRotation::ReuseKeyIds),
    },
    Phase {
        name: "AS down (refused)",
        mode: Behaviour::Down,
        rotation: None,
    },
    Phase {
        name: "AS back",
        mode: Behaviour::Up,
        rotation: None,
    },
    Phase {
        name: "AS slow",
        mode: Behaviour::Slow,
        rotation: None,
    },
    Phase {
        name: "AS normal",
        mode: Behaviour::Up,
        rotation: None,
    },
    Phase {
        name: "AS answers 503",
        mode: Behaviour::Unavailable,
        rotation: None,
    },
    Phase {
        name: "AS hangs",
        mode: Behaviour::Hanging,
        rotation: None,
    },
    Phase {
        name: "AS slow + rotate, reused kid",
        mode: Behaviour::Slow,
        rotation: Some(KeyRotation::ReuseKeyIds),
    },
    Phase {
        name: "AS down + rotate, new kid",
        mode: Behaviour::Down,
        rotation: Some(KeyRotation::NewKeyIds),
    },
    Phase {
        name: "AS back (keys rotated)",
        mode: Behaviour::Up,
        rotation: None,
    },
];

fn rotation_label(rotation: Option<KeyRotation>) -> &'static str {
    match rotation {
        Some(KeyRotation::NewKeyIds) => "new kid",
        Some(KeyRotation::ReuseKeyIds) => "same kid",
        _ => "-",
    }
}

/// What one phase measured.
#[derive(Debug)]
struct PhaseRecord {
    phase: Phase,
    seconds: f64,
    head: WrkRun,
    tail: WrkRun,
    jwks: JwksCounts,
    /// When notes was first given this phase's keys, from the phase's start (rotations only).
    keys_after: Option<Option<f64>>,
    rss_kib: u64,
    /// How long minting the tail's tokens took (during the head, on the load's CPU).
    minting: Duration,
}

impl PhaseRecord {
    fn wrk_total(&self, f: impl Fn(&WrkRun) -> u64) -> u64 {
        f(&self.head) + f(&self.tail)
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn write_tokens(path: &Path, tokens: &[String]) -> Result<(), BoxError> {
    let mut text = tokens.join("\n");
    text.push('\n');
    tokio::fs::write(path, text).await?;
    Ok(())
}

pub(crate) fn flush() {
    let _ = std::io::stdout().flush();
}

/// The parts of a run: the development authorization server behind the fault proxy, notes (its
/// own process) trusting the proxy's address as its issuer, and the token minter.
pub(crate) struct Rig {
    pub(crate) dev: Arc<DevAuthServer>,
    pub(crate) proxy: Proxy,
    pub(crate) notes: Notes,
    pub(crate) minter: Arc<Minter>,
}

impl Rig {
    /// Starts everything, recording into `timeline`; notes pinned to `notes_cpu` if given.
    pub(crate) async fn start(
        settings: &Settings,
        timeline: &Arc<Timeline>,
        notes_cpu: Option<&str>,
    ) -> Result<Self, BoxError> {
        let keys_lock = Arc::new(RwLock::new(()));
        let dev = Arc::new(DevAuthServer::builder().start().await?);
        let proxy = Proxy::start(
            dev.local_addr(),
            timeline.clone(),
            keys_lock.clone(),
            settings,
        )
        .await?;
        let notes = Notes::start(
            &settings.notes_bin,
            notes_cpu,
            &proxy.issuer(),
            timeline.clone(),
        )
        .await?;
        let minter = Minter::new(
            dev.clone(),
            proxy.issuer(),
            notes.resource.clone(),
            keys_lock,
            timeline.clone(),
        )
        .await?;
        Ok(Self {
            dev,
            proxy,
            notes,
            minter,
        })
    }
}

async fn run(settings: Settings) -> Result<bool, BoxError> {
    let work = std::env::temp_dir().join(format!("mcpauth-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = if settings.inflight {
        inflight::run(&settings).await
    } else {
        soak(&settings, &work).await
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[allow(clippy::too_many_lines)] // the run, start to end, reads best in one place
async fn soak(settings: &Settings, work: &Path) -> Result<bool, BoxError> {
    let min_refresh = KeyCacheOptions::DEFAULT_MIN_REFRESH_INTERVAL;
    let settle = min_refresh + Duration::from_millis(settings.settle_margin_ms);
    let timeline = Arc::new(Timeline::new(
        Duration::from_millis(settings.grace_ms),
        settle,
    ));
    let Rig {
        dev,
        proxy,
        mut notes,
        minter,
    } = Rig::start(settings, &timeline, settings.notes_cpu.as_deref()).await?;
    let issuer = proxy.issuer();
    let (rss_startup, _) = notes.memory()?;
    let notes_url = format!("{}/notes", notes.url);

    println!(
        "soak: {} phases × {} s; development authorization server {} behind the fault proxy {} \
         (notes' issuer); notes {} (pid {}), resource {}",
        PHASES.len(),
        settings.phase_seconds,
        dev.issuer(),
        issuer,
        notes.url,
        notes.pid,
        notes.resource
    );
    println!("soak: settings: {}", settings.describe());
    println!(
        "soak: notes' key cache: minimum refresh interval {} s (so keys count as available {:.1} s \
         after publication with the AS up, or {:.1} s after notes was given them)",
        min_refresh.as_secs(),
        settle.as_secs_f64(),
        settings.grace_ms as f64 / 1000.0
    );
    println!();
    println!(
        "{:>2} {:<29} {:<7} {:<8} {:>5} {:>8} {:>13} {:>25} {:>17} {:>11} {:>8} {:>7}",
        "#",
        "phase",
        "AS",
        "rotation",
        "secs",
        "wrk rps",
        "p99 ms h/t",
        "wrk ok/allowed/wrong",
        "checks ok/al/wr",
        "JWKS r/ok/f",
        "keys at",
        "RSS MiB"
    );
    flush();

    let checker = Checker::start(
        minter.clone(),
        timeline.clone(),
        notes_url.clone(),
        Duration::from_millis(settings.check_interval_ms),
    )?;

    let mut records = Vec::new();
    let mut rss_after_first = None;
    let mut previous_mode = Behaviour::Up;
    for (index, phase) in PHASES.iter().enumerate() {
        let started = Instant::now();
        checker
            .phase
            .store(index, std::sync::atomic::Ordering::Release);
        if phase.mode != previous_mode {
            proxy.set_mode(phase.mode).await?;
            previous_mode = phase.mode;
        }
        if let Some(rotation) = phase.rotation {
            minter.rotate(rotation).await?;
        }
        // The epoch of the keys every token of this phase is signed with.
        let (epoch, head_tokens) = minter.batch(settings.head_tokens).await?;
        let head_file = work.join(format!("phase{index}-head.txt"));
        write_tokens(&head_file, &head_tokens).await?;
        let tail_minter = minter.clone();
        let tail_count = settings.tokens_per_phase;
        let tail_tokens = tokio::spawn(async move {
            let minting = Instant::now();
            let batch = tail_minter.batch(tail_count).await;
            batch.map(|(_, tokens)| (tokens, minting.elapsed()))
        });

        let head_seconds = settings.head();
        let judged = (timeline.as_ref(), epoch);
        let head = wrk::run(settings, &notes_url, &head_file, head_seconds, judged).await?;

        let (tail_tokens, minting) = tail_tokens.await??;
        let tail_file = work.join(format!("phase{index}-tail.txt"));
        write_tokens(&tail_file, &tail_tokens).await?;
        let tail_seconds = settings
            .phase_seconds
            .saturating_sub(started.elapsed().as_secs())
            .max(1);
        let tail = wrk::run(settings, &notes_url, &tail_file, tail_seconds, judged).await?;
        let ended = Instant::now();

        if !notes.running() {
            return Err("notes exited during the run".into());
        }
        let (rss_kib, _) = notes.memory()?;
        if index == 0 {
            rss_after_first = Some(rss_kib);
        }
        let keys_after = phase.rotation.map(|_| {
            timeline
                .first_delivery(epoch)
                .map(|at| at.saturating_duration_since(started).as_secs_f64())
        });
        let record = PhaseRecord {
            phase: *phase,
            seconds: ended.saturating_duration_since(started).as_secs_f64(),
            head,
            tail,
            jwks: timeline.jwks_counts(started, ended),
            keys_after,
            rss_kib,
            minting,
        };
        print_phase(index, &record, &checker.phase_checks(index));
        records.push(record);
    }

    let findings = checker.finish().await;
    let elapsed = Duration::from_secs_f64(timeline.offset(Instant::now()));
    let (rss_end, hwm_end) = notes.memory()?;
    let stderr = {
        let stderr = notes
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stderr.messages.clone()
    };
    notes.stop().await;

    let summary = Summary {
        settings,
        records: &records,
        findings: &findings,
        timeline: &timeline,
        elapsed,
        min_refresh,
        dev_jwks_requests: dev.jwks_requests(),
        rss: Rss {
            startup: rss_startup,
            after_first: rss_after_first.unwrap_or(rss_startup),
            end: rss_end,
            peak: hwm_end,
        },
        stderr: &stderr,
    };
    Ok(summary.print())
}

/// One phase's line. The checker's counts are those at the phase's end (an answer still due
/// then is added to the summary's table, which has them all).
fn print_phase(index: usize, record: &PhaseRecord, checks: &PhaseChecks) {
    let p99 = format!(
        "{:.1}/{:.1}",
        record.head.p99_us as f64 / 1000.0,
        record.tail.p99_us as f64 / 1000.0
    );
    let requests = record.wrk_total(|w| w.requests);
    let busy_us = record.wrk_total(|w| w.duration_us);
    let rps = requests as f64 / (busy_us as f64 / 1e6).max(0.001);
    let keys = match record.keys_after {
        None => "-".to_owned(),
        Some(None) => "never".to_owned(),
        Some(Some(after)) => format!("+{after:.1}s"),
    };
    println!(
        "{:>2} {:<29} {:<7} {:<8} {:>5.1} {:>8.0} {:>13} {:>25} {:>17} {:>11} {:>8} {:>7.1}",
        index + 1,
        record.phase.name,
        record.phase.mode.label(),
        rotation_label(record.phase.rotation),
        record.seconds,
        rps,
        p99,
        format!(
            "{}/{}/{}",
            record.wrk_total(WrkRun::ok),
            record.wrk_total(WrkRun::allowed),
            record.wrk_total(WrkRun::wrong)
        ),
        format!(
            "{}/{}/{}",
            checks.total(Verdict::Correct),
            checks.total(Verdict::Allowed),
            checks.total(Verdict::Wrong)
        ),
        format!(
            "{}/{}/{}",
            record.jwks.requests, record.jwks.delivered, record.jwks.failed
        ),
        keys,
        mib(record.rss_kib),
    );
    flush();
}

#[derive(Debug)]
struct Rss {
    startup: u64,
    after_first: u64,
    end: u64,
    peak: u64,
}

struct Summary<'a> {
    settings: &'a Settings,
    records: &'a [PhaseRecord],
    findings: &'a Findings,
    timeline: &'a Timeline,
    elapsed: Duration,
    min_refresh: Duration,
    dev_jwks_requests: usize,
    rss: Rss,
    stderr: &'a BTreeMap<String, usize>,
}

impl Summary<'_> {
    /// Prints the summary; whether the run passed.
    #[allow(clippy::too_many_lines)] // one report
    fn print(&self) -> bool {
        let mut passed = true;
        println!();
        println!(
            "checker (one request every {} ms), by phase:",
            self.settings.check_interval_ms
        );
        println!(
            "{:>2} {:<29} {:>8} {:>8} {:>6} {:>12}  allowed / wrong answers",
            "#", "phase", "correct", "allowed", "wrong", "max latency"
        );
        for (index, record) in self.records.iter().enumerate() {
            let checks = self
                .findings
                .phases
                .get(&index)
                .cloned()
                .unwrap_or_default();
            let notable: Vec<String> = checks
                .notable
                .iter()
                .map(|((kind, verdict, answer), n)| {
                    let verdict = if *verdict == Verdict::Wrong {
                        "WRONG "
                    } else {
                        ""
                    };
                    format!("{verdict}{}: {answer} ×{n}", kind.label())
                })
                .collect();
            println!(
                "{:>2} {:<29} {:>8} {:>8} {:>6} {:>10.0}ms  {}",
                index + 1,
                record.phase.name,
                checks.total(Verdict::Correct),
                checks.total(Verdict::Allowed),
                checks.total(Verdict::Wrong),
                checks.max_latency.as_secs_f64() * 1000.0,
                if notable.is_empty() {
                    "-".to_owned()
                } else {
                    notable.join("; ")
                }
            );
        }

        println!();
        println!("checker, by kind of token:");
        println!(
            "  {:<22} {:>8} {:>8} {:>6}",
            "kind", "correct", "allowed", "wrong"
        );
        let mut totals = [0u64; 3];
        for kind in CheckKind::ALL {
            let count = |verdict| -> u64 {
                self.findings
                    .phases
                    .values()
                    .filter_map(|p| p.counts.get(&(kind, verdict)))
                    .sum()
            };
            let row = [
                count(Verdict::Correct),
                count(Verdict::Allowed),
                count(Verdict::Wrong),
            ];
            for (total, n) in totals.iter_mut().zip(row) {
                *total += n;
            }
            println!(
                "  {:<22} {:>8} {:>8} {:>6}",
                kind.label(),
                row[0],
                row[1],
                row[2]
            );
        }
        println!(
            "  {:<22} {:>8} {:>8} {:>6}",
            "all", totals[0], totals[1], totals[2]
        );

        let wrk_ok: u64 = self.records.iter().map(|r| r.wrk_total(WrkRun::ok)).sum();
        let wrk_allowed: u64 = self
            .records
            .iter()
            .map(|r| r.wrk_total(WrkRun::allowed))
            .sum();
        let wrk_wrong: u64 = self
            .records
            .iter()
            .map(|r| r.wrk_total(WrkRun::wrong))
            .sum();
        println!();
        println!("wrk segments (head: the phase's first seconds; tail: the rest):");
        println!(
            "  {:>2} {:<4} {:>4} {:>8} {:>8} {:>9} {:>8} {:>6}  answers",
            "#", "seg", "secs", "rps", "p99 ms", "max ms", "allowed", "wrong"
        );
        for (index, record) in self.records.iter().enumerate() {
            for (name, run) in [("head", &record.head), ("tail", &record.tail)] {
                let mut answers: Vec<String> = run
                    .outcomes
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect();
                if run.socket_errors > 0 {
                    answers.push(format!("socket errors/timeouts ×{}", run.socket_errors));
                }
                println!(
                    "  {:>2} {name:<4} {:>4} {:>8.0} {:>8.2} {:>9.1} {:>8} {:>6}  {}",
                    index + 1,
                    run.seconds,
                    run.requests_per_second(),
                    run.p99_us as f64 / 1000.0,
                    run.max_us as f64 / 1000.0,
                    run.allowed(),
                    run.wrong(),
                    answers.join(", ")
                );
            }
        }
        println!(
            "  (allowed: refusals for want of the key in a second that began while notes could not \
             have the key yet; every other refusal is wrong)"
        );
        let minting: Duration = self.records.iter().map(|r| r.minting).sum();
        println!(
            "  (each tail's {} RS256 tokens were minted during the head, on the load's CPU: {:.2} s \
             on average, up to {:.2} s)",
            self.settings.tokens_per_phase,
            minting.as_secs_f64() / self.records.len().max(1) as f64,
            self.records
                .iter()
                .map(|r| r.minting.as_secs_f64())
                .fold(0.0, f64::max)
        );

        println!();
        let checker_wrong = totals[2];
        println!(
            "answers: wrk {} correct, {} allowed refusals, {} wrong; checker {} correct, {} allowed, {} wrong",
            wrk_ok, wrk_allowed, wrk_wrong, totals[0], totals[1], checker_wrong
        );
        if wrk_wrong + checker_wrong > 0 {
            passed = false;
            println!("!! WRONG ANSWERS: {}", wrk_wrong + checker_wrong);
            for wrong in &self.findings.wrong {
                println!(
                    "   phase {} at {:.1} s: {} → {} ({})",
                    wrong.phase + 1,
                    wrong.at,
                    wrong.kind.label(),
                    wrong.answer,
                    wrong.why
                );
            }
        }
        for error in &self.findings.errors {
            passed = false;
            println!("!! checker error: {error}");
        }

        // Every fetch notes starts is at least the minimum refresh interval after the one
        // before: that is the bound, on the whole run and on the shortest gap (less a margin
        // for the proxy's view of when a request arrived).
        let total = self.timeline.jwks_totals();
        let attempts = total.delivered + total.failed;
        let bound =
            (self.elapsed.as_secs_f64() / self.min_refresh.as_secs_f64()).floor() as usize + 1;
        let min_gap = self.timeline.min_jwks_gap();
        let gap = min_gap.map_or_else(|| "-".to_owned(), |g| format!("{:.2} s", g.as_secs_f64()));
        println!(
            "JWKS: {} requests reached the proxy, {} key sets delivered, {} fetches failed (notes' \
             warnings); {} attempts in {:.0} s, bound {} (one per {} s + 1); shortest gap between \
             requests {}; the AS itself served {}",
            total.requests,
            total.delivered,
            total.failed,
            attempts,
            self.elapsed.as_secs_f64(),
            bound,
            self.min_refresh.as_secs(),
            gap,
            self.dev_jwks_requests
        );
        let too_close = min_gap.is_some_and(|g| g + Duration::from_millis(100) < self.min_refresh);
        if attempts.max(total.requests) > bound || too_close {
            passed = false;
            println!("!! JWKS fetched more often than the rate limit allows");
        }
        println!("key rotations: when notes was first given the new keys");
        for (index, record) in self.records.iter().enumerate() {
            let Some(keys_after) = record.keys_after else {
                continue;
            };
            let after = keys_after.map_or_else(
                || "never".to_owned(),
                |after| format!("{after:.1} s after the rotation"),
            );
            println!(
                "  phase {:>2} ({}, AS {}): {after}",
                index + 1,
                rotation_label(record.phase.rotation),
                record.phase.mode.label()
            );
        }
        let other = self.timeline.other_requests();
        println!(
            "other requests to the AS: {}",
            if other.is_empty() {
                "none".to_owned()
            } else {
                other
                    .iter()
                    .map(|(at, path)| format!("{path} at {at:.1} s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );

        let cache_bound = TokenCacheOptions::DEFAULT_MAX_BYTES as u64 / 1024;
        let growth = self.rss.end.saturating_sub(self.rss.after_first);
        println!(
            "notes RSS: {:.1} MiB after start-up, {:.1} MiB after phase 1, {:.1} MiB at the end, \
             peak {:.1} MiB; growth after phase 1: {:.1} MiB (bound: the token cache's {:.1} MiB)",
            mib(self.rss.startup),
            mib(self.rss.after_first),
            mib(self.rss.end),
            mib(self.rss.peak),
            mib(growth),
            mib(cache_bound)
        );
        if growth > cache_bound {
            passed = false;
            println!("!! notes' memory grew beyond the token cache's bound");
        }
        println!("notes' standard error, by message:");
        if self.stderr.is_empty() {
            println!("  (nothing)");
        }
        for (message, count) in self.stderr {
            println!("  {count:>5} × {message}");
        }
        println!();
        println!(
            "{}",
            if passed {
                "soak: PASSED"
            } else {
                "soak: FAILED"
            }
        );
        passed
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("broker") {
        let Some(bin) = args.next() else {
            eprintln!("soak: usage: soak broker TODO_BROKER_BIN (settings in the environment)");
            return ExitCode::from(2);
        };
        return run_until_signal(broker::run(bin));
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::from(2);
        }
    };
    run_until_signal(run(settings))
}

/// Runs `run` to its end or until Ctrl-C or `SIGTERM` (dropping it, and with it the processes
/// it started, killed on drop): exit status 0 passed, 1 failed, 2 could not run.
fn run_until_signal(run: impl Future<Output = Result<bool, BoxError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("soak: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("soak: cannot watch SIGTERM: {error}");
                    return ExitCode::from(2);
                }
            };
        // On a signal the run is dropped, and with it notes and wrk (killed on drop).
        tokio::select! {
            result = run => match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("soak: {error}");
                    ExitCode::from(2)
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("soak: interrupted");
                ExitCode::from(130)
            }
            _ = terminate.recv() => {
                eprintln!("soak: terminated");
                ExitCode::from(143)
            }
        }
    })
}
