//! The broker's consent page in a real browser: headless Chromium (Debian's `chromium`) driven
//! by `interop/consent_browser.mjs` (puppeteer-core) opens an authorization request at the
//! `todo-broker` example, reads the consent page and answers it. The development identity
//! provider signs the user in automatically; the client's loopback redirect URI is a small
//! server of the test that records every query it receives.
//!
//! Needs Node.js and npm (`interop/node_modules` is installed from the lock file when missing)
//! and Chromium (`apt-get install -y chromium`, or `CHROMIUM=/path/to/chrome`). Screenshots of
//! the consent pages are kept in `<target>/tmp/consent-browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const CLIENT_NAME: &str = "Browser Test Client";
const LOOPBACK_WARNING: &str = "This application receives the answer on this computer";

/// One browser at a time: the machine is small, and the first test installs `node_modules`.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Settings of the example that would change what it runs; removed from its environment.
const EXAMPLE_SETTINGS: [&str; 14] = [
    "BIND",
    "MCP_RESOURCE_IDENTIFIER",
    "UPSTREAM_ISSUER",
    "UPSTREAM_AUTHORIZE_URL",
    "UPSTREAM_TOKEN_URL",
    "UPSTREAM_USERINFO_URL",
    "UPSTREAM_USER_ID_MEMBER",
    "UPSTREAM_CLIENT_ID",
    "UPSTREAM_CLIENT_SECRET",
    "UPSTREAM_SCOPES",
    "BROKER_SIGNING_KEY_FILE",
    "BROKER_STORAGE_KEY",
    "BROKER_COOKIE_KEY",
    "RUST_LOG",
];

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Chromium's path; a missing browser fails the test with what to install.
fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.exists(),
        "the browser test needs Chromium at {}: install it with `apt-get install -y chromium` \
         (or set CHROMIUM to a Chromium binary)",
        path.display()
    );
    path
}

/// Fails the test with what to install when Node.js is missing.
fn require_node() {
    let found = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "the browser test needs Node.js and npm: install them with `apt-get install -y nodejs npm`"
    );
}

fn ensure_node_modules() {
    let dir = interop_dir();
    if dir.join("node_modules/puppeteer-core").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm is needed for the interop tests");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Node.js, Chromium and `node_modules`, checked before anything is started.
async fn prerequisites() {
    require_node();
    chromium();
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .unwrap();
}

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consent-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped, unless the test is failing (it then keeps what to look
/// at).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The `todo-broker` example with its development identity provider; killed, then its store
/// and log removed, when dropped.
struct TodoBroker {
    _process: Process,
    _dir: ScratchDir,
    /// The broker's issuer (its origin).
    issuer: String,
    /// The MCP endpoint.
    mcp: String,
    /// The development identity provider's issuer.
    provider: String,
}

/// Starts `todo-broker` on an ephemeral loopback port with a fresh store, and waits for its
/// start-up lines.
fn todo_broker(name: &str) -> TodoBroker {
    let dir = artifacts_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = ScratchDir(dir.clone());
    let mut command = Command::new(env!("CARGO_BIN_EXE_todo-broker"));
    for setting in EXAMPLE_SETTINGS {
        command.env_remove(setting);
    }
    let mut process = command
        .env("PORT", "0")
        .env("BROKER_STORE", dir.join("broker-store"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .map(Process)
        .unwrap();
    let mut lines = BufReader::new(process.0.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut value = |prefix: &str| loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "todo-broker stopped before printing `{prefix}`: {seen:#?} (log: {})",
                dir.join("stderr.log").display()
            );
        };
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix(prefix) {
            break rest.to_owned();
        }
    };
    let listening = value("todo-broker: listening on ");
    let mcp = value("todo-broker: MCP endpoint ");
    let issuer = value("todo-broker: authorization server ");
    let dev = value("todo-broker: development identity provider at ");
    std::thread::spawn(move || lines.for_each(drop));
    assert!(listening.starts_with("http://127.0.0.1:"), "{listening}");
    assert_eq!(issuer, listening);
    assert_eq!(
        mcp,
        format!("{issuer}/mcp (give this URL to your MCP client)")
    );
    assert!(dev.starts_with("http://127.0.0.1:"), "{dev}");
    TodoBroker {
        _process: process,
        _dir: scratch,
        mcp: format!("{issuer}/mcp"),
        provider: dev.trim_end_matches(" (development only)").to_owned(),
        issuer,
    }
}

/// The client's redirect URI: records the query of every request to `/cb` and answers a small
/// page. Stopped when dropped.
struct Callback {
    url: String,
    received: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Callback {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = received.clone();
        let app = axum::Router::new()
            .route(
                "/cb",
                get(move |RawQuery(query): RawQuery| async move {
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(query.unwrap_or_default());
                    Html(
                        "<!doctype html><html lang=\"en\"><title>Browser Test Client</title>\
                         <p>Back at the client.</p></html>",
                    )
                }),
            )
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            received,
            server,
        }
    }

    /// The one query received, as name-value pairs in order; fails on none or several.
    fn only_query(&self) -> Vec<(String, String)> {
        let received = self
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(received.len(), 1, "the callback received {received:#?}");
        url::form_urlencoded::parse(received[0].as_bytes())
            .into_owned()
            .collect()
    }
}

/// The value of `name` in `pairs`; fails unless it is there exactly once.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "`{name}` in {pairs:?}");
    values[0]
}

fn random_base64url(bytes: usize) -> String {
    let mut buffer = vec![0; bytes];
    aws_lc_rs::rand::fill(&mut buffer).unwrap();
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A public client registered by DCR, and one authorization request of it.
struct Request {
    client_id: String,
    redirect_uri: String,
    verifier: String,
    state: String,
    url: String,
}

async fn authorization_request(
    http: &reqwest::Client,
    broker: &TodoBroker,
    redirect_uri: &str,
) -> Request {
    let response = http
        .post(format!("{}/register", broker.issuer))
        .json(&json!({ "client_name": CLIENT_NAME, "redirect_uris": [redirect_uri] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    assert_eq!(
        registered["redirect_uris"],
        json!([redirect_uri]),
        "{registered:#}"
    );
    assert_eq!(registered["client_name"], CLIENT_NAME, "{registered:#}");
    assert_eq!(
        registered["token_endpoint_auth_method"], "none",
        "{registered:#}"
    );
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    let verifier = random_base64url(32);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(digest);
    // Characters that must survive the round trip encoded.
    let state = format!("{}/+ &=", random_base64url(12));
    let mut url = url::Url::parse(&format!("{}/authorize", broker.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .append_pair("scope", "read:todos")
        .append_pair("resource", &broker.mcp);
    Request {
        client_id,
        redirect_uri: redirect_uri.to_owned(),
        verifier,
        state,
        url: url.into(),
    }
}

/// Runs `consent_browser.mjs` in `mode`; returns its report.
async fn browse(mode: &'static str, request: &Request, callback: &Callback) -> Value {
    let chromium = chromium().to_str().unwrap().to_owned();
    let args = [
        "consent_browser.mjs".to_owned(),
        mode.to_owned(),
        request.url.clone(),
        callback.url.clone(),
        artifacts_dir().to_str().unwrap().to_owned(),
    ];
    let stdout = tokio::task::spawn_blocking(move || {
        let output = Command::new("node")
            .args(args)
            .env("CHROMIUM", chromium)
            .current_dir(interop_dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert!(report["error"].is_null(), "{report:#}");
    let console = report["console"].as_array().unwrap();
    assert!(
        console
            .iter()
            .all(|line| !line.as_str().unwrap().contains("Content Security Policy")),
        "{console:#?}"
    );
    report
}

/// The consent page as Chromium showed it: the client (unverified), where the answer goes (with
/// the loopback warning), the scope, the identity provider, the MCP server, and one form that
/// posts the transaction and its CSRF token with an Allow and a Deny button.
fn assert_consent_page(page: &Value, broker: &TodoBroker) {
    assert_eq!(page["status"], 200, "{page:#}");
    assert!(
        page["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/consent?transaction=", broker.issuer)),
        "{page:#}"
    );
    assert!(
        page["csp"]
            .as_str()
            .unwrap()
            .starts_with("default-src 'none'; style-src 'unsafe-inline';"),
        "{page:#}"
    );
    let text = page["text"].as_str().unwrap();
    for shown in [
        CLIENT_NAME,
        "unverified",
        "127.0.0.1",
        LOOPBACK_WARNING,
        "read:todos",
        "the development identity provider",
        "Todo manager",
    ] {
        assert!(text.contains(shown), "`{shown}` is not on the page: {text}");
    }
    assert_eq!(page["scripts"], 0);
    assert_eq!(page["horizontalOverflow"], false, "{page:#}");

    let forms = page["forms"].as_array().unwrap();
    assert_eq!(forms.len(), 1, "{forms:#?}");
    let form = &forms[0];
    assert_eq!(form["method"], "post");
    assert_eq!(form["action"], "/consent");
    let fields = form["fields"].as_array().unwrap();
    let shape: Vec<(&str, &str, &str)> = fields
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap(),
                f["name"].as_str().unwrap(),
                if f["type"] == "hidden" {
                    ""
                } else {
                    f["value"].as_str().unwrap()
                },
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("hidden", "transaction", ""),
            ("hidden", "csrf", ""),
            ("submit", "decision", "approve"),
            ("submit", "decision", "deny"),
        ]
    );
    for button in &fields[2..] {
        assert_eq!(button["visible"], true, "{button:#}");
    }
    let transaction = page["url"].as_str().unwrap().rsplit('=').next().unwrap();
    assert_eq!(fields[0]["value"], transaction);
}

/// The redirects a navigation went through, as `METHOD url-without-query`.
fn redirects(navigation: &Value) -> Vec<String> {
    navigation["redirects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().split('?').next().unwrap().to_owned())
        .collect()
}

/// After Allow: the form's answer, the identity provider, the broker's callback, and the
/// client's redirect URI, where the page loaded.
fn assert_approved(navigation: &Value, broker: &TodoBroker, callback: &Callback) {
    assert_eq!(
        redirects(navigation),
        [
            format!("POST {}/consent", broker.issuer),
            format!("GET {}/authorize", broker.provider),
            format!("GET {}/callback/dev", broker.issuer),
        ],
        "{navigation:#}"
    );
    assert!(
        navigation["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}?code=", callback.url)),
        "{navigation:#}"
    );
    assert_eq!(navigation["status"], 200, "{navigation:#}");
    assert!(
        navigation["text"]
            .as_str()
            .unwrap()
            .contains("Back at the client."),
        "{navigation:#}"
    );
}

fn assert_screenshot(name: &str) -> PathBuf {
    let path = artifacts_dir().join(name);
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{}",
        path.display()
    );
    path
}

fn remove_screenshots(names: &[&str]) {
    for name in names {
        let _ = std::fs::remove_file(artifacts_dir().join(name));
    }
}

/// The client's code at the token endpoint: 200 with a bearer token for `read:todos`.
async fn redeem(
    http: &reqwest::Client,
    broker: &TodoBroker,
    request: &Request,
    code: &str,
) -> String {
    let response = http
        .post(format!("{}/token", broker.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &request.client_id),
            ("code", code),
            ("redirect_uri", &request.redirect_uri),
            ("code_verifier", &request.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer", "{tokens:#}");
    assert_eq!(tokens["scope"], "read:todos", "{tokens:#}");
    assert!(tokens["refresh_token"].is_string(), "{tokens:#}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// `initialize` at the MCP endpoint, with `token` when given.
async fn initialize(
    http: &reqwest::Client,
    broker: &TodoBroker,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut request = http
        .post(&broker.mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": CLIENT_NAME, "version": "1.0.0" },
            },
        }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the screenshot's path, for whoever runs the test
async fn approving_on_the_consent_page_delivers_a_code_that_redeems_for_a_working_token() {
    let _browser = BROWSER.lock().await;
    prerequisites().await;
    let broker = tokio::task::spawn_blocking(|| todo_broker("approve"))
        .await
        .unwrap();
    let callback = Callback::start().await;
    let http = http();
    let request = authorization_request(&http, &broker, &callback.url).await;
    remove_screenshots(&["consent-approve.png"]);

    let report = browse("approve", &request, &callback).await;
    let screenshot = assert_screenshot("consent-approve.png");
    eprintln!("consent page screenshot: {}", screenshot.display());
    assert_consent_page(&report["consent"][0], &broker);
    assert_approved(&report["final"], &broker, &callback);

    // The client's redirect URI got a code, its own state and the broker's issuer.
    let query = callback.only_query();
    let names: Vec<&str> = query.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"], "{query:?}");
    assert_eq!(param(&query, "state"), request.state);
    assert_eq!(param(&query, "iss"), broker.issuer);

    // Not yet signed in at the MCP server; then the code's token works there.
    let (status, _) = initialize(&http, &broker, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = redeem(&http, &broker, &request, param(&query, "code")).await;
    let (status, body) = initialize(&http, &broker, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"protocolVersion\""), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the screenshot's path, for whoever runs the test
async fn denying_on_the_consent_page_sends_access_denied_to_the_client() {
    let _browser = BROWSER.lock().await;
    prerequisites().await;
    let broker = tokio::task::spawn_blocking(|| todo_broker("deny"))
        .await
        .unwrap();
    let callback = Callback::start().await;
    let http = http();
    let request = authorization_request(&http, &broker, &callback.url).await;
    remove_screenshots(&["consent-deny.png"]);

    let report = browse("deny", &request, &callback).await;
    let screenshot = assert_screenshot("consent-deny.png");
    eprintln!("consent page screenshot: {}", screenshot.display());
    assert_consent_page(&report["consent"][0], &broker);
    // Straight back to the client: the identity provider is never asked.
    assert_eq!(
        redirects(&report["final"]),
        [format!("POST {}/consent", broker.issuer)],
        "{report:#}"
    );
    assert_eq!(report["final"]["status"], 200, "{report:#}");

    let query = callback.only_query();
    assert_eq!(param(&query, "error"), "access_denied");
    assert_eq!(param(&query, "state"), request.state);
    assert_eq!(param(&query, "iss"), broker.issuer);
    assert!(query.iter().all(|(name, _)| name != "code"), "{query:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the screenshots' paths, for whoever runs the test
async fn a_consent_page_loaded_twice_is_approved_from_the_first_tab_once() {
    let _browser = BROWSER.lock().await;
    prerequisites().await;
    let broker = tokio::task::spawn_blocking(|| todo_broker("twice"))
        .await
        .unwrap();
    let callback = Callback::start().await;
    let http = http();
    let request = authorization_request(&http, &broker, &callback.url).await;
    let shots = ["consent-twice-first.png", "consent-twice-second.png"];
    remove_screenshots(&shots);

    let report = browse("twice", &request, &callback).await;
    for name in shots {
        eprintln!(
            "consent page screenshot: {}",
            assert_screenshot(name).display()
        );
    }
    let (first, second) = (&report["consent"][0], &report["consent"][1]);
    assert_consent_page(first, &broker);
    assert_consent_page(second, &broker);
    // The same transaction, and the same CSRF token: the second load did not stale the first.
    assert_eq!(first["url"], second["url"]);
    assert_eq!(first["forms"][0]["fields"], second["forms"][0]["fields"]);

    // The first tab's approval went through to the client.
    assert_approved(&report["final"], &broker, &callback);
    let query = callback.only_query();
    assert_eq!(param(&query, "state"), request.state);
    assert_eq!(param(&query, "iss"), broker.issuer);
    let token = redeem(&http, &broker, &request, param(&query, "code")).await;
    let (status, body) = initialize(&http, &broker, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The second tab's copy, submitted afterwards, is spent: a page, no second redirect.
    let late = &report["late"];
    assert_eq!(late["status"], 400, "{late:#}");
    assert_eq!(redirects(late), Vec::<String>::new(), "{late:#}");
    assert_eq!(late["url"], format!("{}/consent", broker.issuer));
    assert!(
        late["text"]
            .as_str()
            .unwrap()
            .contains("This sign-in request has expired"),
        "{late:#}"
    );
    callback.only_query();
}
