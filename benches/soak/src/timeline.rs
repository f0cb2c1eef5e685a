//! What happened when: the authorization server's key epochs (one per rotation), the fault
//! proxy's modes, and every JWKS request and delivery. The checker and the load segments are
//! judged against it: "keys are available" is a statement about this record.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the authorization server (as notes sees it, through the fault proxy) behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Answers at once.
    Up,
    /// Not listening: connections are refused, open ones are closed.
    Down,
    /// Answers every request with 503.
    Unavailable,
    /// Answers every request after a delay (within notes' fetch timeout).
    Slow,
    /// Accepts requests and never answers in time (longer than notes' fetch timeout).
    Hanging,
}

impl Behaviour {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unavailable => "503",
            Self::Slow => "slow",
            Self::Hanging => "hanging",
        }
    }
}

/// JWKS traffic in a time window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JwksCounts {
    /// Requests that reached the fault proxy (in any mode but `Down`).
    pub(crate) requests: usize,
    /// Key sets the proxy delivered to notes (200).
    pub(crate) delivered: usize,
    /// Fetches notes reported as failed (its `key set unavailable` warning).
    pub(crate) failed: usize,
}

#[derive(Debug, Default)]
struct Records {
    /// When each key epoch began (the first at the start; one more per rotation).
    epochs: Vec<Instant>,
    modes: Vec<(Instant, Behaviour)>,
    deliveries: Vec<(Instant, usize)>,
    jwks_requests: Vec<Instant>,
    other_requests: Vec<(Instant, String)>,
    fetch_failures: Vec<Instant>,
}

/// The shared record.
#[derive(Debug)]
pub(crate) struct Timeline {
    start: Instant,
    /// The wall clock at `start`, in seconds since the Unix epoch (wrk reports in those).
    start_unix: f64,
    /// A delivered key set counts as known to notes this long after the proxy answered.
    grace: Duration,
    /// How long the server must have been up (and the key published) before notes must have
    /// the key: notes' minimum refresh interval plus a margin.
    settle: Duration,
    records: Mutex<Records>,
}

impl Timeline {
    pub(crate) fn new(grace: Duration, settle: Duration) -> Self {
        let start = Instant::now();
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let records = Records {
            epochs: vec![start],
            modes: vec![(start, Behaviour::Up)],
            ..Records::default()
        };
        Self {
            start,
            start_unix,
            grace,
            settle,
            records: Mutex::new(records),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds since the start, for reports.
    pub(crate) fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    /// The instant at which the wall clock read `unix_seconds`.
    pub(crate) fn instant_at_unix(&self, unix_seconds: u64) -> Instant {
        let since_start = unix_seconds as f64 - self.start_unix;
        if since_start >= 0.0 {
            self.start + Duration::from_secs_f64(since_start)
        } else {
            self.start
        }
    }

    pub(crate) fn set_mode(&self, mode: Behaviour) {
        self.records().modes.push((Instant::now(), mode));
    }

    /// Records a rotation that just happened; the new epoch's number.
    pub(crate) fn new_epoch(&self) -> usize {
        let mut records = self.records();
        records.epochs.push(Instant::now());
        records.epochs.len() - 1
    }

    pub(crate) fn current_epoch(&self) -> usize {
        self.records().epochs.len() - 1
    }

    /// The epoch whose keys the server published at `at`.
    pub(crate) fn epoch_at(&self, at: Instant) -> usize {
        let records = self.records();
        records
            .epochs
            .iter()
            .filter(|began| **began <= at)
            .count()
            .max(1)
            - 1
    }

    pub(crate) fn delivered(&self, epoch: usize) {
        self.records().deliveries.push((Instant::now(), epoch));
    }

    pub(crate) fn jwks_request(&self) {
        self.records().jwks_requests.push(Instant::now());
    }

    pub(crate) fn other_request(&self, path: &str) {
        self.records()
            .other_requests
            .push((Instant::now(), path.to_owned()));
    }

    pub(crate) fn fetch_failed(&self) {
        self.records().fetch_failures.push(Instant::now());
    }

    /// Whether notes must be able to verify a token signed by `epoch`'s keys at `at`:
    /// - (A) a key set of that epoch was delivered to notes before `at` (less the grace), so
    ///   notes holds the key whatever the server does now (stale keys are kept); or
    /// - (B) the key has been published for the settle time, and the server was up (answering
    ///   at once) all that time, so notes' rate limit has let it fetch the key by now.
    pub(crate) fn keys_available(&self, epoch: usize, at: Instant) -> bool {
        let records = self.records();
        let delivered = records
            .deliveries
            .iter()
            .any(|(d, e)| *e == epoch && *d + self.grace <= at);
        if delivered {
            return true;
        }
        let Some(since) = at.checked_sub(self.settle) else {
            return false;
        };
        let published = records
            .epochs
            .get(epoch)
            .is_some_and(|began| *began <= since)
            && records.epochs.get(epoch + 1).is_none_or(|next| *next > at);
        let mode_then = records
            .modes
            .iter()
            .rev()
            .find(|(t, _)| *t <= since)
            .map(|(_, m)| *m);
        let up_since = mode_then == Some(Behaviour::Up)
            && records
                .modes
                .iter()
                .filter(|(t, _)| *t > since && *t <= at)
                .all(|(_, m)| *m == Behaviour::Up);
        published && up_since
    }

    /// Whether notes must know a key set newer than `epoch` at `at` (one was delivered before
    /// `at`, less the grace): from then on, a token of `epoch`'s keys must be refused.
    pub(crate) fn must_know_newer_keys(&self, epoch: usize, at: Instant) -> bool {
        self.newer_keys_delivered_by(epoch, at, self.grace)
    }

    /// Whether notes may know a key set newer than `epoch` at `at` (one was delivered before
    /// `at`): from then on, a token of `epoch`'s keys may be refused for want of its key.
    pub(crate) fn may_know_newer_keys(&self, epoch: usize, at: Instant) -> bool {
        self.newer_keys_delivered_by(epoch, at, Duration::ZERO)
    }

    fn newer_keys_delivered_by(&self, epoch: usize, at: Instant, grace: Duration) -> bool {
        self.records()
            .deliveries
            .iter()
            .any(|(d, e)| *e > epoch && *d + grace <= at)
    }

    /// When `epoch`'s key set was first delivered.
    pub(crate) fn first_delivery(&self, epoch: usize) -> Option<Instant> {
        self.records()
            .deliveries
            .iter()
            .find(|(_, e)| *e == epoch)
            .map(|(d, _)| *d)
    }

    /// JWKS traffic in `[from, to)`.
    pub(crate) fn jwks_counts(&self, from: Instant, to: Instant) -> JwksCounts {
        let records = self.records();
        let within = |t: &Instant| *t >= from && *t < to;
        JwksCounts {
            requests: records.jwks_requests.iter().filter(|t| within(t)).count(),
            delivered: records.deliveries.iter().filter(|(t, _)| within(t)).count(),
            failed: records.fetch_failures.iter().filter(|t| within(t)).count(),
        }
    }

    /// JWKS traffic over the whole run so far.
    pub(crate) fn jwks_totals(&self) -> JwksCounts {
        self.jwks_counts(self.start, Instant::now())
    }

    /// The shortest time between two JWKS requests that reached the proxy.
    pub(crate) fn min_jwks_gap(&self) -> Option<Duration> {
        let records = self.records();
        records
            .jwks_requests
            .windows(2)
            .map(|pair| pair[1].saturating_duration_since(pair[0]))
            .min()
    }

    /// Requests to the proxy other than the JWKS (the metadata at start-up), by path.
    pub(crate) fn other_requests(&self) -> Vec<(f64, String)> {
        let records = self.records();
        records
            .other_requests
            .iter()
            .map(|(t, p)| (self.offset(*t), p.clone()))
            .collect()
    }
}
