//! The broker phase's record and oracle: every token issued, when each broker process was down
//! and when the identity provider was faulty, counts by phase, and the wrong answers.
//!
//! The oracle is stated from the outside (what an OAuth client and a resource may rely on), not
//! from the broker's code:
//! 1. no access-token or refresh-token value is issued twice;
//! 2. a refresh with the newest refresh token of a live grant is answered 200 — a refresh whose
//!    answer was lost (no answer: its broker process was killed) is retried with the same token
//!    and must then succeed too;
//! 3. after a revocation answered 200, the grant's refresh tokens are refused (`invalid_grant`)
//!    at once, and its access tokens are refused by `/mcp` once past their `exp` plus the bearer
//!    layer's clock leeway (60 s) plus `PROBE_MARGIN` (2 s);
//! 4. no authorization code is redeemed twice (a replay, or a race on two replicas, gets at most
//!    one 200);
//! 5. no 5xx but 503 with `Retry-After`, and that only for a sign-in while the identity
//!    provider was faulty (slow, down, 503) at some time during it; an OAuth error redirect
//!    only `temporarily_unavailable`, under the same condition; no answer at all only while a
//!    broker process of the cluster was down (killed, not yet listening again) at some time
//!    during the request.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// A span of time something was down or faulty: (from, until; `None` while it lasts).
type Span = (Instant, Option<Instant>);

fn overlaps(spans: &[Span], from: Instant, to: Instant) -> bool {
    spans
        .iter()
        .any(|(start, end)| *start <= to && end.is_none_or(|end| end >= from))
}

/// One wrong answer, for the report.
#[derive(Debug, Clone)]
pub(crate) struct Wrong {
    pub(crate) phase: usize,
    pub(crate) at: f64,
    pub(crate) what: String,
}

#[derive(Debug, Default)]
struct Records {
    issued: HashSet<String>,
    /// Process down spans, by the process's origin.
    down: BTreeMap<String, Vec<Span>>,
    upstream_faults: Vec<Span>,
    counts: BTreeMap<(usize, &'static str), u64>,
    wrong: Vec<Wrong>,
}

/// The shared record.
#[derive(Debug)]
pub(crate) struct Ledger {
    start: Instant,
    pub(crate) phase: AtomicUsize,
    records: Mutex<Records>,
}

/// The counters, in the order the report prints them.
pub(crate) const COUNTERS: [(&str, &str); 13] = [
    ("login", "sign-ins"),
    ("login-allowed", "sign-ins failed (allowed)"),
    ("refresh", "refreshes"),
    ("refresh-retry", "refreshes retried after no answer"),
    ("revoke", "revocations"),
    ("revoked-refused", "revoked refresh tokens refused"),
    ("mcp", "/mcp accepted"),
    ("probe-within", "revoked access token accepted within bound"),
    ("probe-refused", "revoked access token refused"),
    ("code-replay", "code replays refused"),
    ("code-race", "code races (one winner)"),
    ("no-answer", "no answer (process down)"),
    (
        "unavailable",
        "503 / temporarily_unavailable (provider faulty)",
    ),
];

impl Ledger {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            phase: AtomicUsize::new(0),
            records: Mutex::new(Records::default()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn phase(&self) -> usize {
        self.phase.load(Ordering::Acquire)
    }

    pub(crate) fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    pub(crate) fn count(&self, name: &'static str) {
        let phase = self.phase();
        *self.records().counts.entry((phase, name)).or_default() += 1;
    }

    pub(crate) fn counted(&self, phase: usize, name: &str) -> u64 {
        self.records()
            .counts
            .iter()
            .filter(|((p, n), _)| *p == phase && *n == name)
            .map(|(_, c)| *c)
            .sum()
    }

    pub(crate) fn wrong(&self, what: String) {
        let phase = self.phase();
        let at = self.offset(Instant::now());
        println!("!! WRONG (phase {}, {at:.1} s): {what}", phase + 1);
        let mut records = self.records();
        *records.counts.entry((phase, "wrong")).or_default() += 1;
        records.wrong.push(Wrong { phase, at, what });
    }

    pub(crate) fn wrongs(&self) -> Vec<Wrong> {
        self.records().wrong.clone()
    }

    /// Records a token received; `false` (and a wrong answer) if it was received before.
    pub(crate) fn issued(&self, kind: &str, token: &str, context: &str) -> bool {
        let fresh = self.records().issued.insert(token.to_owned());
        if !fresh {
            self.wrong(format!(
                "{kind} issued twice ({context}): {}",
                shorten(token)
            ));
        }
        fresh
    }

    pub(crate) fn issued_count(&self) -> usize {
        self.records().issued.len()
    }

    /// The process at `origin` goes down now (recorded before it is killed).
    pub(crate) fn down(&self, origin: &str) {
        self.records()
            .down
            .entry(origin.to_owned())
            .or_default()
            .push((Instant::now(), None));
    }

    /// The process at `origin` listens again.
    pub(crate) fn up(&self, origin: &str) {
        if let Some(span) = self
            .records()
            .down
            .entry(origin.to_owned())
            .or_default()
            .iter_mut()
            .rev()
            .find(|(_, end)| end.is_none())
        {
            span.1 = Some(Instant::now());
        }
    }

    /// Whether one of the processes at `origins` was down at some time in `[from, to]`.
    pub(crate) fn was_down(&self, origins: &[&str], from: Instant, to: Instant) -> bool {
        let records = self.records();
        origins.iter().any(|origin| {
            records
                .down
                .get(*origin)
                .is_some_and(|spans| overlaps(spans, from, to))
        })
    }

    pub(crate) fn upstream_fault(&self, on: bool) {
        let mut records = self.records();
        if on {
            records.upstream_faults.push((Instant::now(), None));
        } else if let Some(span) = records.upstream_faults.last_mut() {
            span.1.get_or_insert_with(Instant::now);
        }
    }

    /// Whether the identity provider was faulty at some time in `[from, to]`.
    pub(crate) fn upstream_was_faulty(&self, from: Instant, to: Instant) -> bool {
        overlaps(&self.records().upstream_faults, from, to)
    }
}

/// The start and end of a token, for reports.
pub(crate) fn shorten(token: &str) -> String {
    if token.len() <= 24 {
        return token.to_owned();
    }
    format!("{}…{}", &token[..12], &token[token.len() - 8..])
}
