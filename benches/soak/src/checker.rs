//! The checker: every `CHECK_INTERVAL_MS` one request to notes with a token of a known kind,
//! judged against the timeline: what notes had to know when the request was sent, and what it
//! may have known by the time it answered.
//!
//! Outcomes:
//! - **correct**: what the token deserves (200 for a valid token; 401 with the precise reason
//!   for an invalid one; when notes cannot yet know the signing key, any of the refusals a
//!   missing key gives: `unknown_key`, `invalid_signature`, 503 `keys_unavailable`);
//! - **allowed**: a valid token refused while its key is not available (see
//!   [`Timeline::keys_available`]), or a rotated-away key's token accepted before notes was
//!   given a newer key set (it cannot know of the rotation);
//! - **wrong**: everything else, in particular any invalid token accepted, any valid token
//!   refused while its key is available, a rotated-away key's token accepted after notes
//!   fetched the newer keys, and any request notes did not answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcpauth::AuthErrorReason;
use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::BoxError;
use crate::timeline::Timeline;
use crate::tokens::{CheckKind, Minter};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verdict {
    Correct,
    Allowed,
    Wrong,
}

/// Counts of one phase, by kind and verdict.
#[derive(Debug, Default, Clone)]
pub(crate) struct PhaseChecks {
    pub(crate) counts: BTreeMap<(CheckKind, Verdict), u64>,
    /// Allowed and wrong answers by kind and `status reason`, for the report.
    pub(crate) notable: BTreeMap<(CheckKind, Verdict, String), u64>,
    pub(crate) max_latency: Duration,
}

impl PhaseChecks {
    pub(crate) fn total(&self, verdict: Verdict) -> u64 {
        self.counts
            .iter()
            .filter(|((_, v), _)| *v == verdict)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One wrong answer, in detail.
#[derive(Debug, Clone)]
pub(crate) struct WrongAnswer {
    pub(crate) phase: usize,
    pub(crate) at: f64,
    pub(crate) kind: CheckKind,
    pub(crate) answer: String,
    pub(crate) why: &'static str,
}

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) phases: BTreeMap<usize, PhaseChecks>,
    pub(crate) wrong: Vec<WrongAnswer>,
    pub(crate) errors: Vec<String>,
}

/// The running checker.
#[derive(Debug)]
pub(crate) struct Checker {
    pub(crate) phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    findings: Arc<Mutex<Findings>>,
}

struct Context {
    minter: Arc<Minter>,
    timeline: Arc<Timeline>,
    client: reqwest::Client,
    url: String,
    phase: Arc<AtomicUsize>,
    findings: Arc<Mutex<Findings>>,
}

/// `status reason` of an answer: the status and mcpauth's `reason`.
fn describe(status: u16, reason: &str) -> String {
    if reason.is_empty() {
        status.to_string()
    } else {
        format!("{status} {reason}")
    }
}

/// Whether an answer is one of the refusals a token gets while notes lacks its key.
pub(crate) fn is_key_refusal(status: u16, reason: &str) -> bool {
    let is = |r: AuthErrorReason| reason == r.as_str();
    (status == 401 && (is(AuthErrorReason::UnknownKey) || is(AuthErrorReason::InvalidSignature)))
        || (status == 503 && is(AuthErrorReason::KeysUnavailable))
}

/// The verdict on one answer (`None`: no answer) to a `kind` token signed by `epoch`'s keys,
/// sent at `sent` and answered at `answered` (notes judged it somewhere in between).
fn judge(
    timeline: &Timeline,
    kind: CheckKind,
    epoch: usize,
    (sent, answered): (Instant, Instant),
    answer: Option<(u16, &str)>,
) -> (Verdict, &'static str) {
    let Some((status, reason)) = answer else {
        return (Verdict::Wrong, "notes did not answer");
    };
    let accepted = (200..300).contains(&status);
    let expected = match kind {
        // Signed by a key the server published, for this resource, unexpired.
        CheckKind::ValidFresh | CheckKind::ValidReused | CheckKind::Retired => {
            return judge_well_formed(timeline, epoch, (sent, answered), status, reason);
        }
        CheckKind::NoToken => AuthErrorReason::MissingCredentials,
        CheckKind::Expired => AuthErrorReason::Expired,
        CheckKind::Tampered | CheckKind::Forged => AuthErrorReason::InvalidSignature,
        CheckKind::ForeignAudience => AuthErrorReason::InvalidAudience,
    };
    if accepted {
        return (Verdict::Wrong, "invalid token accepted");
    }
    if status == 401 && reason == expected.as_str() {
        return (Verdict::Correct, "");
    }
    // Refused before its key could be looked at: right, for want of the key.
    let keyless =
        !timeline.keys_available(epoch, sent) || timeline.may_know_newer_keys(epoch, answered);
    if kind != CheckKind::NoToken && keyless && is_key_refusal(status, reason) {
        return (Verdict::Correct, "");
    }
    (
        Verdict::Wrong,
        "invalid token refused with an unexpected reason",
    )
}

/// The verdict on a token that is valid but for its key, which may have been rotated away
/// (before it was sent: a retired token, or a rotation between minting and sending; or while
/// notes was judging it).
fn judge_well_formed(
    timeline: &Timeline,
    epoch: usize,
    (sent, answered): (Instant, Instant),
    status: u16,
    reason: &str,
) -> (Verdict, &'static str) {
    let retired = epoch < timeline.epoch_at(sent);
    if (200..300).contains(&status) {
        return if !retired {
            (Verdict::Correct, "")
        } else if timeline.must_know_newer_keys(epoch, sent) {
            (
                Verdict::Wrong,
                "token of a rotated-away key accepted after notes had the new keys",
            )
        } else {
            (Verdict::Allowed, "rotated-away key, notes not yet told")
        };
    }
    if !is_key_refusal(status, reason) {
        return (
            Verdict::Wrong,
            "well-formed token refused for another reason",
        );
    }
    if timeline.may_know_newer_keys(epoch, answered) {
        // Notes had a newer key set, without this key, before it answered.
        (Verdict::Correct, "")
    } else if !timeline.keys_available(epoch, sent) {
        (
            Verdict::Allowed,
            "valid token refused, key not yet available",
        )
    } else {
        (Verdict::Wrong, "valid token refused while keys available")
    }
}

impl Checker {
    pub(crate) fn start(
        minter: Arc<Minter>,
        timeline: Arc<Timeline>,
        url: String,
        interval: Duration,
    ) -> Result<Self, BoxError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let findings = Arc::new(Mutex::new(Findings::default()));
        let context = Arc::new(Context {
            minter,
            timeline,
            client,
            url,
            phase: phase.clone(),
            findings: findings.clone(),
        });
        let stop_flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut checks = JoinSet::new();
            let mut sequence = 0usize;
            while !stop_flag.load(Ordering::Acquire) {
                ticks.tick().await;
                let kind = CheckKind::CYCLE[sequence % CheckKind::CYCLE.len()];
                checks.spawn(check(context.clone(), kind, sequence));
                sequence += 1;
                while checks.try_join_next().is_some() {}
            }
            // Let the checks in flight finish (notes answers within its fetch timeout).
            let _ = tokio::time::timeout(Duration::from_secs(40), async {
                while checks.join_next().await.is_some() {}
            })
            .await;
        });
        Ok(Self {
            phase,
            stop,
            task,
            findings,
        })
    }

    /// The counts of phase `index` so far.
    pub(crate) fn phase_checks(&self, index: usize) -> PhaseChecks {
        let findings = self.findings.lock().unwrap_or_else(PoisonError::into_inner);
        findings.phases.get(&index).cloned().unwrap_or_default()
    }

    /// Stops sending and waits for the answers still due; what was found.
    pub(crate) async fn finish(self) -> Findings {
        self.stop.store(true, Ordering::Release);
        let _ = self.task.await;
        let mut findings = self.findings.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *findings)
    }
}

async fn check(context: Arc<Context>, kind: CheckKind, sequence: usize) {
    let minted = context.minter.check_token(kind, sequence).await;
    let (epoch, token) = match minted {
        Ok(Some(minted)) => minted,
        Ok(None) => return,
        Err(error) => {
            let mut findings = context
                .findings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            findings
                .errors
                .push(format!("cannot mint a {kind:?} token: {error}"));
            return;
        }
    };
    let phase = context.phase.load(Ordering::Acquire);
    let mut request = context.client.get(&context.url);
    if let Some(token) = &token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let sent = Instant::now();
    let answer = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            let reason = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            Some((status, reason))
        }
        Err(_) => None,
    };
    let answered = Instant::now();
    let latency = answered - sent;
    let (verdict, why) = judge(
        &context.timeline,
        kind,
        epoch,
        (sent, answered),
        answer.as_ref().map(|(s, r)| (*s, r.as_str())),
    );
    let described = answer.as_ref().map_or_else(
        || "no answer".to_owned(),
        |(status, reason)| describe(*status, reason),
    );
    let mut findings = context
        .findings
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let at = context.timeline.offset(sent);
    let checks = findings.phases.entry(phase).or_default();
    *checks.counts.entry((kind, verdict)).or_default() += 1;
    checks.max_latency = checks.max_latency.max(latency);
    if verdict != Verdict::Correct {
        *checks
            .notable
            .entry((kind, verdict, described.clone()))
            .or_default() += 1;
    }
    if verdict == Verdict::Wrong && findings.wrong.len() < 50 {
        findings.wrong.push(WrongAnswer {
            phase,
            at,
            kind,
            answer: described,
            why,
        });
    }
}
