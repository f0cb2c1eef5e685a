//! A real `redis-server` for the workspace's tests and its soak run: on 127.0.0.1 at a port of
//! its own, in a directory of its own, stopped when dropped.
//!
//! ```no_run
//! use redis_test_server::RedisServer;
//!
//! // Its append-only file on, so a restart loses nothing it acknowledged.
//! let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
//! println!("{}", server.url());
//! server.restart();
//! ```
//!
//! A test fixture: the panicking calls fail the test that could not get its server, with the
//! reason; [`RedisServer::try_start`] returns it instead.
#![allow(clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer its first `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stopping server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A port free when asked may be taken before the server binds it: this many are tried.
const PORT_ATTEMPTS: usize = 5;

/// A running `redis-server` (RDB snapshots off; more configuration from the caller).
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// The directory is removed when the server is dropped (it was made for it).
    remove_dir: bool,
    args: Vec<String>,
}

impl RedisServer {
    /// A server without persistence, in a temporary directory; panics when it cannot start.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with more configuration (`["--appendonly", "yes"]`), in a temporary directory;
    /// panics when it cannot start.
    pub fn start_with(args: &[&str]) -> Self {
        Self::try_start(args, None).unwrap_or_else(|error| panic!("{error}"))
    }

    /// A server with `args`, in `dir` (kept when it is dropped) or a temporary directory of its
    /// own (removed); why not when it cannot start.
    pub fn try_start(args: &[&str], dir: Option<&Path>) -> Result<Self, String> {
        let (dir, remove_dir) = match dir {
            Some(dir) => (dir.to_owned(), false),
            None => (unique_temp_dir(), true),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            remove_dir,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            if server.launch()? {
                return Ok(server);
            }
        }
        Err("redis-server did not start on a free port".into())
    }

    /// Whether `redis-server` can be run here.
    pub fn installed() -> bool {
        Self::version().is_some()
    }

    /// What `redis-server --version` prints, when it can be run.
    pub fn version() -> Option<String> {
        let output = Command::new("redis-server")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server as a shutdown does (`SIGTERM`: Redis writes out its append-only file
    /// first), so what it acknowledged survives a restart; killed if it takes too long.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops it and starts it again on the same port, with the same directory and
    /// configuration; panics when it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        match self.launch() {
            Ok(true) => {}
            Ok(false) => panic!("redis-server did not restart on port {}", self.port),
            Err(error) => panic!("{error}"),
        }
    }

    /// Sends `signal` to the process: `STOP` freezes it (it accepts and answers nothing while
    /// its connections stay open), `CONT` resumes it.
    pub fn signal(&self, signal: &str) {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("redis-server is not running"));
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "kill -{signal} failed"
        );
    }

    /// Starts the process on `self.port`: `Ok(true)` once it answers, `Ok(false)` when it
    /// exited or did not answer in time (the port may have been taken).
    fn launch(&mut self) -> Result<bool, String> {
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(
                    "this needs `redis-server` (Debian: apt-get install redis-server)".into(),
                );
            }
            Err(error) => return Err(format!("cannot start redis-server: {error}")),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return Ok(false);
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(false)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A directory name no other server of this or another process uses.
fn unique_temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    std::env::temp_dir().join(format!(
        "redis-test-server-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free port on 127.0.0.1: {error}"))
}

/// Whether the server answers a `PING` (a refusal for want of credentials is an answer; a
/// server still loading its data is not ready).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 8];
    match stream.read(&mut answer) {
        Ok(n) => answer[..n].starts_with(b"+PONG") || answer[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server starts, answers, stops, comes back on the same port with what its append-only
    /// file kept, and takes its temporary directory with it when dropped.
    #[test]
    fn starts_restarts_and_cleans_up() {
        assert!(RedisServer::installed(), "this needs `redis-server`");
        let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
        let port = server.port();
        assert!(ping(port));
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        let dir = server.dir.clone();
        server.stop();
        assert!(!ping(port));
        server.restart();
        assert_eq!(server.port(), port);
        assert!(ping(port));
        drop(server);
        assert!(!dir.exists());
    }
}
