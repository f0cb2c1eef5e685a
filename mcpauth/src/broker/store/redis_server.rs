//! A real `redis-server` for the store's tests: on 127.0.0.1 at a port of its own, in a
//! temporary directory of its own, stopped (and the directory removed) when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisStore;

/// How long a server may take to answer its first `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub(super) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// A server without persistence.
    pub(super) fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with more configuration (`["--appendonly", "yes"]`).
    pub(super) fn start_with(args: &[&str]) -> Self {
        let name = super::super::secrets::random_token(12).unwrap();
        let dir = std::env::temp_dir().join(format!("mcpauth-redis-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        // A port free when asked may be taken before the server binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port");
    }

    /// Starts the process on `self.port`; `true` once it answers.
    fn launch(&mut self) -> bool {
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
                panic!("the Redis tests need `redis-server` (Debian: apt-get install redis-server)")
            }
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(super) async fn store(&self, prefix: &str) -> RedisStore {
        RedisStore::connect(&self.url(), prefix).await.unwrap()
    }

    /// Stops the server as a shutdown does (`SIGTERM`: Redis writes out its append-only file
    /// first), so what it acknowledged survives a restart; killed if it takes too long.
    pub(super) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again on the same port and directory.
    pub(super) fn restart(&mut self) {
        self.stop();
        assert!(self.launch(), "redis-server did not restart");
    }

    /// Freezes (`STOP`) or resumes (`CONT`) the process: a server that accepts nothing and
    /// answers nothing while its connections stay open.
    pub(super) fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A plain connection of the test's own, to look at the keys behind the store's back.
    pub(super) fn inspect(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
