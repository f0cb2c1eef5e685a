//! The steady load: `wrk` on `GET /notes`, one run per segment (a phase has two: its first
//! seconds, when a rotation or the server's return may still be settling, and the rest).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::checker::is_key_refusal;
use crate::timeline::Timeline;
use crate::{BoxError, Settings};

/// What one wrk run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct WrkRun {
    pub(crate) seconds: u64,
    pub(crate) requests: u64,
    pub(crate) duration_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) socket_errors: u64,
    /// `200`, or `status:reason` for refusals → count.
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Refusals by the second of the wall clock they arrived in: (second, status, reason) →
    /// count.
    refusals: BTreeMap<(u64, u16, String), u64>,
    /// Refusals for want of a key in seconds when notes could not have the key yet.
    allowed: u64,
}

impl WrkRun {
    pub(crate) fn ok(&self) -> u64 {
        self.outcomes.get("200").copied().unwrap_or(0)
    }

    /// Refusals allowed: for want of the key, in a second that started while notes could not
    /// have the key of `epoch` yet (see [`Timeline::keys_available`]; judged per second, so
    /// up to one second after the key became available is allowed too).
    fn judge(&mut self, timeline: &Timeline, epoch: usize) {
        self.allowed = self
            .refusals
            .iter()
            .filter(|((second, status, reason), _)| {
                is_key_refusal(*status, reason)
                    && !timeline.keys_available(epoch, timeline.instant_at_unix(*second))
            })
            .map(|(_, n)| n)
            .sum();
    }

    pub(crate) fn allowed(&self) -> u64 {
        self.allowed
    }

    /// Wrong answers: every refusal but the allowed ones, and requests notes did not answer.
    pub(crate) fn wrong(&self) -> u64 {
        let answered: u64 = self.outcomes.values().sum();
        answered - self.ok() - self.allowed + self.socket_errors
    }

    pub(crate) fn requests_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

/// Runs wrk for `seconds` with the tokens of `tokens_file` (valid tokens of `epoch`'s keys),
/// and judges its refusals against `timeline`.
pub(crate) async fn run(
    settings: &Settings,
    url: &str,
    tokens_file: &Path,
    seconds: u64,
    (timeline, epoch): (&Timeline, usize),
) -> Result<WrkRun, BoxError> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", settings.threads))
        .arg(format!("-c{}", settings.connections))
        .arg(format!("-d{seconds}s"))
        .arg(format!("--timeout={}s", settings.wrk_timeout))
        .arg("--latency")
        .arg("-s")
        .arg(&settings.lua)
        .arg(url)
        .env("TOKENS_FILE", tokens_file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout.lines().find_map(|l| l.strip_prefix("WRK_RESULT "));
    let outcomes = stdout.lines().find_map(|l| l.strip_prefix("WRK_OUTCOMES"));
    let (Some(result), Some(outcomes)) = (result, outcomes) else {
        return Err(format!(
            "no result from wrk: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    };
    let pairs = |text: &str| -> Vec<(String, u64)> {
        text.split_whitespace()
            .filter_map(|pair| pair.rsplit_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect()
    };
    let numbers: BTreeMap<String, u64> = pairs(result).into_iter().collect();
    let get = |name: &str| numbers.get(name).copied().unwrap_or(0);
    let mut run = WrkRun {
        seconds,
        requests: get("requests"),
        duration_us: get("duration_us"),
        p99_us: get("p99_us"),
        max_us: get("max_us"),
        socket_errors: get("connect_errors")
            + get("read_errors")
            + get("write_errors")
            + get("timeouts"),
        ..WrkRun::default()
    };
    // `200=n`, or `status:reason@second=n` for refusals.
    for (key, count) in pairs(outcomes) {
        let (outcome, second) = match key.split_once('@') {
            Some((outcome, second)) => (outcome, second.parse().ok()),
            None => (key.as_str(), None),
        };
        *run.outcomes.entry(outcome.to_owned()).or_default() += count;
        if let (Some(second), Some((status, reason))) = (second, outcome.split_once(':')) {
            let status = status.parse().unwrap_or(0);
            *run.refusals
                .entry((second, status, reason.to_owned()))
                .or_default() += count;
        }
    }
    run.judge(timeline, epoch);
    Ok(run)
}
