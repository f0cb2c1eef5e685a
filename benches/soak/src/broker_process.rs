//! The broker phase's processes: `todo-broker` (its own process, on a port chosen beforehand so
//! that a restart binds the same one), killed when dropped.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::BoxError;

/// How long a process may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A port free on 127.0.0.1 right now (for a process whose address must be known before it
/// starts, and kept across its restarts).
pub(crate) fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What a process said on standard error, by message, and its last lines.
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// `LEVEL target: message` (time and fields left out) → count.
    pub(crate) messages: BTreeMap<String, usize>,
    pub(crate) tail: Vec<String>,
}

/// How to start one `todo-broker` process.
#[derive(Debug, Clone)]
pub(crate) struct BrokerConfig {
    pub(crate) bin: String,
    /// A name for reports (`fjall`, `redis A`, …).
    pub(crate) name: String,
    pub(crate) port: u16,
    /// Its environment besides `PORT` (nothing else configuring it is inherited).
    pub(crate) env: Vec<(String, String)>,
}

/// A running `todo-broker`.
#[derive(Debug)]
pub(crate) struct BrokerProcess {
    child: Child,
    /// The identity provider callback it printed.
    pub(crate) callback: String,
}

/// The level, target and message of a `tracing` line.
fn message_of(line: &str) -> String {
    let mut words = line.split_whitespace();
    let _time = words.next();
    let kept: Vec<&str> = words.take_while(|w| !w.contains('=')).collect();
    kept.join(" ")
}

impl BrokerConfig {
    /// Starts it and waits until it listens (it prints its store last); standard error is
    /// counted into `said`.
    pub(crate) async fn start(&self, said: &Arc<Mutex<Said>>) -> Result<BrokerProcess, BoxError> {
        let mut command = Command::new(&self.bin);
        for (name, _) in std::env::vars() {
            let configures = ["UPSTREAM_", "BROKER_", "MCP_", "METRICS_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["PORT", "BIND", "RUST_LOG"].contains(&name.as_str());
            if configures {
                command.env_remove(name);
            }
        }
        command
            .env("PORT", self.port.to_string())
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin))?;
        if let Some(pipe) = child.stderr.take() {
            let said = said.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
                    *said.messages.entry(message_of(&line)).or_default() += 1;
                    said.tail.push(line);
                    if said.tail.len() > 20 {
                        said.tail.remove(0);
                    }
                }
            });
        }
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut callback = String::new();
        let ready = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("todo-broker: identity provider callback ") {
                    rest.clone_into(&mut callback);
                }
                if line.starts_with("todo-broker: store ") {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        };
        if !matches!(
            tokio::time::timeout(READY_TIMEOUT, ready).await,
            Ok(Ok(true))
        ) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let tail = said
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tail
                .join("\n");
            return Err(format!("todo-broker ({}) did not start: {tail}", self.name).into());
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(BrokerProcess { child, callback })
    }
}

impl BrokerProcess {
    /// Kills it with `SIGKILL` (no graceful shutdown, as in a crash) and waits until it is gone.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Whether it is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
