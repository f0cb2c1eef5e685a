//! The `notes` example as its own process, pointed at the fault proxy's issuer.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::BoxError;
use crate::timeline::Timeline;

/// What notes says on standard error, by message.
#[derive(Debug, Default)]
pub(crate) struct Stderr {
    /// Lines by their level and message (timestamp and fields left out).
    pub(crate) messages: BTreeMap<String, usize>,
    /// The last few lines as they were.
    pub(crate) tail: Vec<String>,
}

/// A running notes.
#[derive(Debug)]
pub(crate) struct Notes {
    child: Child,
    pub(crate) pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    pub(crate) resource: String,
    pub(crate) stderr: Arc<Mutex<Stderr>>,
}

/// The level and message of a `tracing` line (`<time>  WARN target: message key=value …`).
fn message_of(line: &str) -> String {
    let mut words = line.split_whitespace();
    let _time = words.next();
    let kept: Vec<&str> = words.take_while(|w| !w.contains('=')).collect();
    kept.join(" ")
}

impl Notes {
    /// Starts `bin` (on `cpu`, if given) with `PORT=0` and the issuer, and waits for it to
    /// listen.
    pub(crate) async fn start(
        bin: &str,
        cpu: Option<&str>,
        issuer: &str,
        timeline: Arc<Timeline>,
    ) -> Result<Self, BoxError> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.args(["-c", cpu, bin]);
                command
            }
            None => Command::new(bin),
        };
        command
            .env_remove("BIND")
            .env_remove("RUST_LOG")
            .env_remove("MCP_RESOURCE_IDENTIFIER")
            .env("PORT", "0")
            .env("MCP_AUTH_ISSUER", issuer)
            // The checker judges refusals by their precise reason.
            .env("MCP_AUTH_ERROR_DETAILS", "1")
            .env("MCP_AUTH_ISSUER_TYPE", "oidc")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let pid = child.id().ok_or("notes exited at once")?;

        let stderr = Arc::new(Mutex::new(Stderr::default()));
        if let Some(pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("key set unavailable") {
                        timeline.fetch_failed();
                    }
                    let mut stderr = stderr.lock().unwrap_or_else(PoisonError::into_inner);
                    *stderr.messages.entry(message_of(&line)).or_default() += 1;
                    stderr.tail.push(line);
                    if stderr.tail.len() > 20 {
                        stderr.tail.remove(0);
                    }
                }
            });
        }

        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut resource) = (None, None);
        let started = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("notes: listening on ") {
                    url = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("notes: resource ") {
                    resource = Some(rest.to_owned());
                } else if line.starts_with("notes: metadata:") {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        };
        let started = tokio::time::timeout(Duration::from_secs(30), started).await;
        if !matches!(started, Ok(Ok(true))) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let said = stderr
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tail
                .join("\n");
            return Err(format!("notes did not start: {said}").into());
        }
        // Keep reading, so that notes never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (Some(url), Some(resource)) = (url, resource) else {
            return Err("notes did not print its address and resource".into());
        };
        Ok(Self {
            child,
            pid,
            url,
            resource,
            stderr,
        })
    }

    /// `(VmRSS, VmHWM)` in KiB.
    pub(crate) fn memory(&self) -> Result<(u64, u64), BoxError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss), Some(hwm)) => Ok((rss, hwm)),
            _ => Err("no VmRSS/VmHWM in /proc/<notes>/status".into()),
        }
    }

    /// Whether it is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
