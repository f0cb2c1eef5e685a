//! The steady load: `wrk` on `GET /notes`, one run per segment (a phase has two: its first
//! seconds, when a rotation or the server's return may still be settling, and the rest).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

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
    /// Whether every request had to succeed (notes held the keys when it started).
    pub(crate) strict: bool,
}

/// The refusals a valid token may get while notes does not have its key yet.
pub(crate) const ALLOWED_REFUSALS: [&str; 3] = [
    "401:unknown_key",
    "401:invalid_signature",
    "503:keys_unavailable",
];

impl WrkRun {
    pub(crate) fn ok(&self) -> u64 {
        self.outcomes.get("200").copied().unwrap_or(0)
    }

    /// Refusals allowed in a non-strict segment.
    pub(crate) fn allowed(&self) -> u64 {
        if self.strict {
            return 0;
        }
        ALLOWED_REFUSALS
            .iter()
            .filter_map(|k| self.outcomes.get(*k))
            .sum()
    }

    /// Wrong answers: every refusal in a strict segment, refusals of another kind in the
    /// others, and requests notes did not answer.
    pub(crate) fn wrong(&self) -> u64 {
        let answered: u64 = self.outcomes.values().sum();
        answered - self.ok() - self.allowed() + self.socket_errors
    }

    pub(crate) fn requests_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

/// Runs wrk for `seconds` with the tokens of `tokens_file`.
pub(crate) async fn run(
    settings: &Settings,
    url: &str,
    tokens_file: &Path,
    seconds: u64,
    strict: bool,
) -> Result<WrkRun, BoxError> {
    let mut command = match &settings.load_cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpu, "wrk"]);
            command
        }
        None => Command::new("wrk"),
    };
    command
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
        .kill_on_drop(true);
    let output = command
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
    let pairs = |text: &str| -> BTreeMap<String, u64> {
        text.split_whitespace()
            .filter_map(|pair| pair.rsplit_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect()
    };
    let numbers = pairs(result);
    let get = |name: &str| numbers.get(name).copied().unwrap_or(0);
    Ok(WrkRun {
        seconds,
        requests: get("requests"),
        duration_us: get("duration_us"),
        p99_us: get("p99_us"),
        max_us: get("max_us"),
        socket_errors: get("connect_errors")
            + get("read_errors")
            + get("write_errors")
            + get("timeouts"),
        outcomes: pairs(outcomes),
        strict,
    })
}
