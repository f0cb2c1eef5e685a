//! What the todo-broker's interop tests share: the external programs they need (Node.js with
//! `interop/node_modules`, the Python venv), child processes read line by line, the
//! `todo-broker` binary on a store of its own, a browser that walks the broker's pages by hand
//! (no redirect followed implicitly, cookies carried by hand), a GitHub-like identity provider,
//! a Redis server for replicas, and MCP tool calls.
// Each test file uses a part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) mod github_like;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// A real `redis-server` for `todo-broker` replicas, its append-only file on, so a restart
/// loses nothing it acknowledged.
pub(crate) fn start_redis() -> redis_test_server::RedisServer {
    redis_test_server::RedisServer::start_with(&["--appendonly", "yes"])
}

/// How long a process may take to print what it prints when it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Fails the test with one line naming what to install when `program` cannot be run.
pub(crate) fn require(program: &str, debian_packages: &str) {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        runs,
        "the interop tests need `{program}`: install it (Debian: apt-get install {debian_packages})"
    );
}

pub(crate) fn require_node() {
    require("node", "nodejs npm");
    require("npm", "nodejs npm");
}

/// `interop/node_modules`, installed from the lock file when missing.
pub(crate) fn ensure_node_modules() {
    require_node();
    let dir = interop_dir();
    if dir.join("node_modules/oidc-provider").exists()
        && dir.join("node_modules/@modelcontextprotocol/sdk").exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// The Python of `interop/.venv`, with the pinned `mcp` installed (created when missing).
pub(crate) fn python() -> PathBuf {
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import mcp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        require("python3", "python3 python3-venv");
        let venv = Command::new("python3")
            .args(["-m", "venv", ".venv"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(
            venv.success(),
            "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)"
        );
        let install = Command::new(dir.join(".venv/bin/pip"))
            .args(["install", "--quiet", "-r", "requirements.txt"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(
            install.success(),
            "pip install -r interop/requirements.txt failed"
        );
    }
    python
}

/// A directory of its own under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "todo-broker-interop-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on 127.0.0.1 right now: for a server whose address another server must know
/// before it starts (the identity provider registers the broker's callback URL).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped; its stdout is read line by line, its stderr kept for
/// failure messages.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(
    mut reader: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let handle = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    (text, handle)
}

impl Process {
    /// Starts `command` (named `name` in messages).
    pub(crate) fn spawn(name: &str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (stderr, _) = collect(child.stderr.take().unwrap());
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                record.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen,
            stderr,
        }
    }

    /// The next stdout lines up to the first for which `ready` holds (included); fails the test
    /// when the process ends or stays silent first.
    pub(crate) fn read_until(&mut self, ready: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = ready(&line);
                    read.push(line);
                    if done {
                        return read;
                    }
                }
                Err(error) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{} was not ready ({error}; exit status {status:?}); stdout: {read:?}; \
                         stderr:\n{}",
                        self.name,
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Every stdout line printed so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// What it wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client script (`program script args…` in `interop/`) to completion; returns the JSON
/// object it printed last. Fails the test with its output when it fails or runs too long.
pub(crate) fn run_script(program: &Path, script: &str, args: &[&str]) -> Value {
    let mut child = Command::new(program)
        .arg(script)
        .args(args)
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let (stdout, out_done) = collect(child.stdout.take().unwrap());
    let (stderr, err_done) = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = out_done.join();
    let _ = err_done.join();
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    assert!(
        status.is_some_and(|s| s.success()),
        "{script} failed ({status:?}):\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed {last:?}: {e}"))
}

/// A `todo-broker` process.
#[derive(Debug)]
pub(crate) struct TodoBroker {
    pub(crate) process: Process,
    /// The port it listens on, on 127.0.0.1.
    pub(crate) port: u16,
    /// `http://127.0.0.1:<port>`: the broker's issuer.
    pub(crate) origin: String,
    /// The MCP endpoint.
    pub(crate) mcp: String,
    /// The identity provider callback it printed.
    pub(crate) callback: String,
    /// The development identity provider's issuer, when it runs one.
    pub(crate) dev_issuer: Option<String>,
}

/// How to start `todo-broker`: its store and its environment (besides `PORT` and
/// `BROKER_STORE`; nothing is inherited from the test's own environment that could configure
/// it).
#[derive(Debug, Clone)]
pub(crate) struct BrokerConfig {
    pub(crate) store: PathBuf,
    pub(crate) env: Vec<(String, String)>,
}

impl BrokerConfig {
    /// `store`: the embedded store's file, or a Redis URL (as `BROKER_STORE` takes either).
    pub(crate) fn new(store: &Path) -> Self {
        Self {
            store: store.to_owned(),
            env: Vec::new(),
        }
    }

    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// In front of the GitHub-like provider `github` (its callback still to be registered).
    pub(crate) fn at_github_like(self, github: &github_like::GitHubLike) -> Self {
        self.env("UPSTREAM_AUTHORIZE_URL", &github.authorize_url())
            .env("UPSTREAM_TOKEN_URL", &github.token_url())
            .env("UPSTREAM_USERINFO_URL", &github.user_url())
            .env("UPSTREAM_USER_ID_MEMBER", "id")
            .env("UPSTREAM_CLIENT_ID", github.client_id())
            .env("UPSTREAM_CLIENT_SECRET", github.client_secret())
            .env("UPSTREAM_SCOPES", "read:user")
    }

    /// Starts it on `port` (0: an ephemeral one) and waits until it listens.
    pub(crate) fn start(&self, port: u16) -> TodoBroker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_todo-broker"));
        for (name, _) in std::env::vars() {
            let configures = ["UPSTREAM_", "BROKER_", "MCP_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["PORT", "BIND", "SSL_CERT_FILE", "SSL_CERT_DIR", "RUST_LOG"]
                    .contains(&name.as_str());
            if configures {
                command.env_remove(name);
            }
        }
        command
            .env("PORT", port.to_string())
            .env("BROKER_STORE", &self.store)
            .env("RUST_LOG", "info,mcpauth=info,rmcp=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut process = Process::spawn("todo-broker", command);
        let lines = process.read_until(|line| line.starts_with("todo-broker: store "));
        let value = |prefix: &str| {
            lines
                .iter()
                .find_map(|line| line.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("todo-broker printed no `{prefix}`: {lines:?}"))
                .to_owned()
        };
        let addr = value("todo-broker: listening on http://");
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        let origin = format!("http://127.0.0.1:{port}");
        let callback = value("todo-broker: identity provider callback ");
        let dev_issuer = if self.env.iter().any(|(k, _)| k.starts_with("UPSTREAM_")) {
            None
        } else {
            let line = process.read_until(|line| line.contains("development identity provider"));
            let last = line.last().unwrap();
            let issuer = last
                .split(" at ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("{last}"));
            Some(issuer.to_owned())
        };
        TodoBroker {
            process,
            port,
            mcp: format!("{origin}/mcp"),
            origin,
            callback,
            dev_issuer,
        }
    }
}

/// `BrokerConfig::start` off the async runtime's threads (it blocks until the process is ready).
pub(crate) async fn start_broker(config: &BrokerConfig, port: u16) -> TodoBroker {
    let config = config.clone();
    tokio::task::spawn_blocking(move || config.start(port))
        .await
        .unwrap()
}

/// Kills a process (as a crash would: no graceful shutdown) and waits until it is gone.
pub(crate) async fn kill(broker: TodoBroker) {
    tokio::task::spawn_blocking(move || drop(broker))
        .await
        .unwrap();
}

/// An HTTP client that never follows redirects and keeps no idle connection (a restarted server
/// must not meet a connection to its previous process).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A PKCE pair: (verifier, S256 challenge).
pub(crate) fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// The query parameters of a URL.
pub(crate) fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The claims of a JWT (not verified: the server under test verifies it).
pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The `Location` of a redirect, resolved against `base`.
pub(crate) fn location(response: &reqwest::Response, base: &str) -> String {
    assert!(
        response.status().is_redirection(),
        "{base}: expected a redirect, got {}",
        response.status()
    );
    let location = response.headers()[LOCATION].to_str().unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// A user's browser: cookies by name (every server here is on 127.0.0.1, and cookies do not
/// tell ports apart), no redirect followed by itself.
#[derive(Debug)]
pub(crate) struct Browser {
    http: reqwest::Client,
    pub(crate) cookies: BTreeMap<String, String>,
}

/// The consent page as the browser got it.
#[derive(Debug, Clone)]
pub(crate) struct ConsentPage {
    pub(crate) url: String,
    pub(crate) html: String,
    /// The form's action, resolved.
    pub(crate) action: String,
    /// Its hidden inputs.
    pub(crate) hidden: BTreeMap<String, String>,
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The values of `attribute="…"` right after each `prefix` in `html`.
fn attribute_after(html: &str, prefix: &str, attribute: &str) -> Vec<String> {
    html.split(prefix)
        .skip(1)
        .map(|part| {
            let value = part
                .split(&format!("{attribute}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no {attribute} after {prefix}"));
            unescape(value)
        })
        .collect()
}

impl Default for Browser {
    fn default() -> Self {
        Self {
            http: http_client(),
            cookies: BTreeMap::new(),
        }
    }
}

impl Browser {
    fn absorb(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let text = header.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            if text.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.absorb(&response);
        response
    }

    pub(crate) async fn post_form(
        &mut self,
        url: &str,
        form: &[(String, String)],
    ) -> reqwest::Response {
        let response = self
            .http
            .post(url)
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.absorb(&response);
        response
    }

    /// Whether a cookie whose name starts with `prefix` is kept.
    pub(crate) fn has_cookie(&self, prefix: &str) -> bool {
        self.cookies.keys().any(|name| name.starts_with(prefix))
    }

    /// Opens the authorization URL: it must answer 303 to the consent page; returns its URL.
    pub(crate) async fn authorize(&mut self, url: &str) -> String {
        let response = self.get(url).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
        let consent = location(&response, url);
        assert!(consent.contains("/consent?transaction="), "{consent}");
        consent
    }

    /// Loads the consent page: one form, posting to `/consent`, with hidden `transaction` and
    /// `csrf` and the two decisions.
    pub(crate) async fn load_consent(&mut self, url: &str) -> ConsentPage {
        let response = self.get(url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let html = response.text().await.unwrap();
        let actions = attribute_after(&html, "<form method=\"post\"", "action");
        assert_eq!(actions, ["/consent"], "one form: {html}");
        let names = attribute_after(&html, "<input type=\"hidden\"", "name");
        let values = attribute_after(&html, "<input type=\"hidden\"", "value");
        let hidden: BTreeMap<String, String> = names.into_iter().zip(values).collect();
        assert_eq!(
            hidden.keys().collect::<Vec<_>>(),
            ["csrf", "transaction"],
            "{html}"
        );
        let decisions =
            attribute_after(&html, "<button type=\"submit\" name=\"decision\"", "value");
        assert_eq!(decisions, ["approve", "deny"], "{html}");
        assert!(
            self.has_cookie("mcpauth-browser"),
            "the page set the nonce cookie"
        );
        let action = url::Url::parse(url)
            .unwrap()
            .join(&actions[0])
            .unwrap()
            .to_string();
        ConsentPage {
            url: url.to_owned(),
            html,
            action,
            hidden,
        }
    }

    /// Approves on the consent page: 303 to the identity provider, with the binding cookie set;
    /// returns the provider's authorization URL.
    pub(crate) async fn approve(&mut self, page: &ConsentPage) -> String {
        let mut form: Vec<(String, String)> = page
            .hidden
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        form.push(("decision".into(), "approve".into()));
        let response = self.post_form(&page.action, &form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(
            self.has_cookie("mcpauth-login-"),
            "the binding cookie is set"
        );
        location(&response, &page.action)
    }

    /// Follows the identity provider's redirects from `url` until it sends the browser to a URL
    /// under `callback`; returns that URL (not opened).
    pub(crate) async fn through_upstream(&mut self, url: &str, callback: &str) -> String {
        let mut url = url.to_owned();
        for _ in 0..20 {
            if url.starts_with(callback) {
                return url;
            }
            let response = self.get(&url).await;
            url = location(&response, &url);
        }
        panic!("the identity provider never sent the browser to {callback}");
    }

    /// Opens the broker's callback: 303 to the client's redirect URI; returns its query.
    pub(crate) async fn open_callback(
        &mut self,
        url: &str,
        redirect_uri: &str,
    ) -> HashMap<String, String> {
        let response = self.get(url).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
        let target = location(&response, url);
        assert!(target.starts_with(redirect_uri), "{target}");
        assert!(
            !self.has_cookie("mcpauth-login-"),
            "the binding cookie is cleared"
        );
        query(&target)
    }
}

/// What a client sends to sign a user in.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) verifier: String,
    pub(crate) challenge: String,
    pub(crate) scope: String,
    pub(crate) state: String,
}

impl Login {
    pub(crate) fn new(client_id: &str, redirect_uri: &str, scope: &str) -> Self {
        let (verifier, challenge) = pkce();
        let (_, state) = pkce();
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            verifier,
            challenge,
            scope: scope.to_owned(),
            state,
        }
    }

    /// The authorization request at `origin`, with `resource` (an MCP client sends it).
    pub(crate) fn authorization_url(&self, origin: &str, resource: &str) -> String {
        let mut url = url::Url::parse(&format!("{origin}/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_challenge", &self.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", &self.scope)
            .append_pair("resource", resource)
            .append_pair("state", &self.state);
        url.to_string()
    }

    /// The code redemption form.
    pub(crate) fn code_form(&self, code: &str, resource: &str) -> Vec<(String, String)> {
        [
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", &self.verifier),
            ("resource", resource),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }
}

/// A user signs in through `broker` for a newly registered client, the browser walking the
/// consent page and the identity provider (which signs its user in by itself); returns the
/// login and the broker's token answer.
pub(crate) async fn sign_in(broker: &TodoBroker, scope: &str) -> (Login, Value) {
    let redirect_uri = "http://127.0.0.1:53682/callback";
    let client_id = register(&broker.origin, redirect_uri).await;
    let login = Login::new(&client_id, redirect_uri, scope);
    let mut browser = Browser::default();
    let consent = browser
        .authorize(&login.authorization_url(&broker.origin, &broker.mcp))
        .await;
    let page = browser.load_consent(&consent).await;
    let upstream = browser.approve(&page).await;
    let callback = browser.through_upstream(&upstream, &broker.callback).await;
    let answer = browser.open_callback(&callback, redirect_uri).await;
    let (status, tokens) = token(
        &broker.origin,
        &login.code_form(&answer["code"], &broker.mcp),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (login, tokens)
}

/// Registers a public native client (RFC 7591) at `origin`; returns its id.
pub(crate) async fn register(origin: &str, redirect_uri: &str) -> String {
    let response = http_client()
        .post(format!("{origin}/register"))
        .json(&json!({
            "client_name": "mcpauth interop (Rust driver)",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["client_id"].as_str().unwrap().to_owned()
}

/// A POST to the token endpoint at `origin`: the status and the JSON answer.
pub(crate) async fn token(origin: &str, form: &[(String, String)]) -> (StatusCode, Value) {
    let response = http_client()
        .post(format!("{origin}/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A refresh at `origin`: the new token answer (status 200 asserted).
pub(crate) async fn refresh(origin: &str, client_id: &str, refresh_token: &str) -> Value {
    let form: Vec<(String, String)> = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh_token),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let (status, answer) = token(origin, &form).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Calls `tool` at the MCP endpoint `url` with `token` (a streamable HTTP session of rmcp's
/// client); the tool's JSON text, or the error.
pub(crate) async fn call_tool(
    url: &str,
    token: &str,
    tool: &str,
    arguments: Value,
) -> Result<Value, String> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .map_err(|e| e.to_string())?;
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = client.call_tool(params).await.map_err(|e| e.to_string());
    let _ = client.cancel().await;
    let result = serde_json::to_value(result?).unwrap();
    Ok(serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or("null")).unwrap())
}

/// What an MCP SDK's run through the broker must show, whatever the identity provider.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    /// The provider's authorization endpoint.
    pub(crate) upstream_authorize: &'a str,
    /// The broker's client id at the provider.
    pub(crate) upstream_client: &'a str,
    /// The subject of the broker's tokens (`<upstream id>|<user>`).
    pub(crate) subject: &'a str,
    /// The client's metadata document URL, when it uses one (else it registers).
    pub(crate) metadata_document: Option<&'a str>,
}

fn scopes_of(value: &Value) -> Vec<&str> {
    value.as_str().unwrap_or_default().split(' ').collect()
}

/// Checks the report of a client script (`ts_broker_client.mjs`, `py_broker_client.py`): each
/// sign-in walked the broker's pages and came back with `code`, `state` and the broker's `iss`;
/// the provider was asked for the broker's own sign-in (its client, its callback, its PKCE
/// challenge, never the MCP client's, never a `resource`); the first login asked for what the
/// 401 named, the step-up for the 403's scope on top; the tools ran as the provider's user;
/// every token request succeeded; the refresh rotated the refresh token.
pub(crate) fn check_sdk_run(results: &Value, broker: &TodoBroker, expected: &Expected<'_>) {
    let client_id = results["clientId"].as_str().unwrap();
    let issuer = results["metadataIssuer"].as_str().unwrap();
    assert_eq!(issuer.trim_end_matches('/'), broker.origin, "{results}");
    match expected.metadata_document {
        Some(url) => {
            assert_eq!(client_id, url, "the document URL is the client id");
            assert_eq!(results["registrations"], json!([]), "no registration");
        }
        None => assert_eq!(results["registrations"], json!([201]), "{results}"),
    }
    let logins = results["logins"].as_array().unwrap();
    assert_eq!(logins.len(), 2, "a login and a step-up: {results}");
    for login in logins {
        let request = &login["request"];
        assert_eq!(request["client_id"], client_id, "{login}");
        assert_eq!(
            request["resource"],
            broker.mcp.as_str(),
            "RFC 8707: {login}"
        );
        assert_eq!(request["code_challenge_method"], "S256", "{login}");
        assert_eq!(login["authorizeStatus"], 303, "{login}");
        assert_eq!(login["consentPath"], "/consent", "{login}");
        let consent = &login["consent"];
        assert_eq!(consent["status"], 200, "{login}");
        assert_eq!(consent["frameOptions"], "DENY", "{login}");
        assert_eq!(consent["hiddenInputs"], json!(["csrf", "transaction"]));
        assert_eq!(consent["decisions"], json!(["approve", "deny"]));
        assert_eq!(consent["nonceCookie"], true, "{login}");
        let badge = match expected.metadata_document {
            Some(url) => format!(
                "verified: {}",
                url::Url::parse(url).unwrap().host_str().unwrap()
            ),
            None => "unverified".to_owned(),
        };
        assert_eq!(consent["badge"], badge.as_str(), "{login}");
        assert_eq!(login["approvalStatus"], 303, "{login}");
        assert_eq!(login["bindingCookie"], true, "{login}");
        let upstream = &login["upstream"];
        assert_eq!(upstream["endpoint"], expected.upstream_authorize, "{login}");
        let sent = upstream["query"].as_object().unwrap();
        assert!(
            !sent.contains_key("resource"),
            "no resource upstream: {login}"
        );
        assert_eq!(sent["client_id"], expected.upstream_client, "{login}");
        assert_eq!(sent["redirect_uri"], broker.callback.as_str(), "{login}");
        assert_eq!(sent["code_challenge_method"], "S256", "{login}");
        assert_ne!(
            sent["code_challenge"], request["code_challenge"],
            "the broker's own PKCE upstream: {login}"
        );
        assert_ne!(sent["state"], request["state"], "{login}");
        assert_eq!(login["callback"], broker.callback.as_str(), "{login}");
        assert_eq!(login["callbackStatus"], 303, "{login}");
        assert_eq!(login["bindingCookieCleared"], true, "{login}");
        assert_eq!(login["answer"]["params"], json!(["code", "iss", "state"]));
        assert_eq!(login["answer"]["iss"], issuer, "RFC 9207: {login}");
        assert_eq!(login["stateMatches"], true, "{login}");
    }
    // The login asked for what the 401 challenge named; the step-up for the 403's on top.
    assert_eq!(logins[0]["request"]["scope"], "read:todos", "{results}");
    let step_up = scopes_of(&logins[1]["request"]["scope"]);
    assert!(
        step_up.contains(&"create:todos") && step_up.contains(&"read:todos"),
        "{results}"
    );
    let statuses = results["statuses"].as_array().unwrap();
    assert_eq!(statuses.first(), Some(&json!(401)), "{results}");
    assert!(statuses.contains(&json!(403)), "{results}");
    assert_eq!(statuses.last(), Some(&json!(200)), "{results}");
    assert_eq!(scopes_of(&results["scopeBeforeStepUp"]), ["read:todos"]);
    for scope in ["scopeAfterStepUp", "scopeAfterRefresh"] {
        let granted = scopes_of(&results[scope]);
        assert!(
            granted.contains(&"create:todos") && granted.contains(&"read:todos"),
            "{scope}: {results}"
        );
    }
    assert!(results["getTodos"]["todos"].is_array(), "{results}");
    for created in ["createTodo", "createTodoAfterRefresh"] {
        assert_eq!(results[created]["ownerId"], expected.subject, "{results}");
    }
    let listed = results["getTodosAfterRefresh"]["todos"].as_array().unwrap();
    assert!(
        listed.contains(&results["createTodo"]),
        "read:todos lists every todo: {results}"
    );
    let requests = results["tokenRequests"].as_array().unwrap();
    assert!(requests.iter().all(|r| r["status"] == 200), "{results}");
    let grants = |kind: &str| requests.iter().filter(|r| r["grantType"] == kind).count();
    assert_eq!(grants("authorization_code"), 2, "{results}");
    assert!(grants("refresh_token") >= 1, "{results}");
    assert_eq!(results["refreshTokenRotated"], true, "{results}");
    assert_eq!(results["accessTokenRenewed"], true, "{results}");
    let claims = &results["accessTokenClaims"];
    assert_eq!(claims["iss"], broker.origin.as_str(), "{claims}");
    assert_eq!(claims["aud"], broker.mcp.as_str(), "{claims}");
    assert_eq!(claims["sub"], expected.subject, "{claims}");
    assert_eq!(claims["client_id"], client_id, "{claims}");
}

/// A GitHub-like provider and a `todo-broker` in front of it on a store in `dir`, started; the
/// provider has the broker's callback registered.
pub(crate) async fn broker_at_github_like(
    github: &github_like::GitHubLike,
    dir: &TempDir,
) -> (BrokerConfig, TodoBroker) {
    let config = BrokerConfig::new(&dir.path().join("broker-store")).at_github_like(github);
    let broker = start_broker(&config, 0).await;
    github.set_callback(&broker.callback);
    (config, broker)
}
