//! A browser-based MCP client in a real browser: headless Chromium (Debian's `chromium`) driven
//! by `interop/browser_client.mjs` (puppeteer-core) loads a page served from a second loopback
//! origin, where the official MCP TypeScript SDK (bundled with esbuild) calls the todo-manager
//! cross-origin. The page meets the 401 challenge, registers and logs in at the development
//! authorization server the todo-manager starts (full-page redirects, PKCE), calls `get_todos`,
//! meets the 403 step-up challenge on `create_todo`, logs in again for the wider scope, and
//! succeeds. Everything the page reads crosses CORS: the challenges, the session id, the
//! authorization server's metadata and token answers.
//!
//! Needs Node.js and npm (`interop/node_modules` is installed from the lock file when missing)
//! and Chromium (`apt-get install -y chromium`, or `CHROMIUM=/path/to/chrome`). The screenshot
//! of the page's final state is kept at `<target>/tmp/browser-client/final-state.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

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

fn ensure_node_modules() {
    let dir = interop_dir();
    let installed = ["@modelcontextprotocol/sdk", "puppeteer-core", "esbuild"]
        .iter()
        .all(|package| dir.join("node_modules").join(package).exists());
    if installed {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm is needed for the interop tests");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs `node args…` in `interop/` to completion; returns its stdout, failing on a non-zero exit.
fn node(args: &[&str]) -> String {
    let output = Command::new("node")
        .args(args)
        .current_dir(interop_dir())
        .output()
        .expect("node is needed for the interop tests");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "node {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The todo-manager process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    issuer: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the todo-manager with its development authorization server, allowing `page_origin`.
fn todo_manager(page_origin: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo-manager"))
        .env_remove("MCP_AUTH_ISSUER")
        .env_remove("MCP_AUTH_ISSUER_TYPE")
        .env_remove("MCP_RESOURCE_IDENTIFIER")
        .env_remove("BIND")
        .env("PORT", "0")
        .env("MCP_CORS_ORIGINS", page_origin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    let listening = next();
    let endpoint = next();
    let _metadata = next();
    let dev = next();
    let cors = next();
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        listening.starts_with("todo-manager: listening on http://127.0.0.1:"),
        "{listening}"
    );
    assert_eq!(cors, format!("todo-manager: CORS for {page_origin}"));
    Server {
        child,
        url: endpoint
            .strip_prefix("todo-manager: MCP endpoint ")
            .unwrap()
            .to_owned(),
        issuer: dev
            .strip_prefix("todo-manager: development authorization server at ")
            .and_then(|rest| rest.strip_suffix(" (development only)"))
            .unwrap_or_else(|| panic!("{dev}"))
            .to_owned(),
    }
}

/// Serves the page, its bundled script and its configuration on `listener`.
fn serve_page(listener: tokio::net::TcpListener, bundle: Vec<u8>, mcp_url: String) {
    let html = std::fs::read_to_string(interop_dir().join("browser/index.html")).unwrap();
    let page = move || {
        let html = html.clone();
        async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html) }
    };
    let app = axum::Router::new()
        .route("/", get(page.clone()))
        .route("/callback", get(page))
        .route(
            "/client.js",
            get(move || async move {
                ([(header::CONTENT_TYPE, "text/javascript")], bundle).into_response()
            }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/config.json",
            get(move || async move { Json(json!({ "mcpUrl": mcp_url })) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn screenshot_path() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-client");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("final-state.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the screenshot's path, for whoever runs the test
async fn a_web_page_on_another_origin_logs_in_steps_up_and_calls_tools_in_chromium() {
    let chromium = chromium();
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .unwrap();
    let bundle_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-client/client.js");
    std::fs::create_dir_all(bundle_path.parent().unwrap()).unwrap();
    {
        let out = bundle_path.to_str().unwrap().to_owned();
        tokio::task::spawn_blocking(move || node(&["browser/build.mjs", &out]))
            .await
            .unwrap();
    }
    let bundle = std::fs::read(&bundle_path).unwrap();

    // The page's origin: a second loopback port, allowed by the todo-manager's CORS layer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", listener.local_addr().unwrap());
    let server = {
        let origin = page_origin.clone();
        tokio::task::spawn_blocking(move || todo_manager(&origin))
            .await
            .unwrap()
    };
    assert_ne!(
        page_origin,
        server.url.trim_end_matches("/mcp"),
        "two origins"
    );
    serve_page(listener, bundle, server.url.clone());

    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let stdout = {
        let page = format!("{page_origin}/");
        let shot = screenshot.to_str().unwrap().to_owned();
        let chromium = chromium.to_str().unwrap().to_owned();
        tokio::task::spawn_blocking(move || {
            let output = Command::new("node")
                .args(["browser_client.mjs", &page, &shot])
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
        .unwrap()
    };
    eprintln!("browser client screenshot: {}", screenshot.display());
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(report["error"].is_null(), "{report:#}");
    let run = &report["result"];

    // The page ran on its own origin and talked to the todo-manager on another.
    assert_eq!(run["pageOrigin"], page_origin);
    assert_eq!(run["mcpOrigin"], server.url.trim_end_matches("/mcp"));

    // What the page could read of the MCP endpoint's answers: the 401 login challenge first,
    // the 403 step-up challenge on create_todo, successes otherwise, and the session id.
    let exchanges = run["exchanges"].as_array().unwrap();
    let posts: Vec<&Value> = exchanges.iter().filter(|e| e["method"] == "POST").collect();
    let metadata = server
        .url
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        posts.first().copied(),
        Some(&json!({
            "method": "POST",
            "status": 401,
            "challenge": format!("Bearer resource_metadata=\"{metadata}\", scope=\"read:todos\""),
        })),
        "{exchanges:#?}"
    );
    let step_up = json!({
        "method": "POST",
        "status": 403,
        "challenge": format!(
            "Bearer error=\"insufficient_scope\", error_description=\"The access token does not \
             grant the scopes this request needs.\", resource_metadata=\"{metadata}\", \
             scope=\"create:todos\""
        ),
    });
    assert!(posts.contains(&&step_up), "{exchanges:#?}");
    let statuses: Vec<u64> = posts
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 202, 401, 403].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert_eq!(run["sessionIdReadable"], true);

    // The scopes asked: the 401's, then the 403's; at the development authorization server, for
    // this resource, with PKCE, back to the page's own origin.
    let authorizations = run["authorizations"].as_array().unwrap();
    let scopes: Vec<&str> = authorizations
        .iter()
        .map(|a| a["scope"].as_str().unwrap())
        .collect();
    assert_eq!(
        scopes,
        ["read:todos", "create:todos"],
        "{authorizations:#?}"
    );
    for authorization in authorizations {
        assert_eq!(
            authorization["endpoint"],
            format!("{}/authorize", server.issuer)
        );
        assert_eq!(authorization["resource"], server.url);
        assert_eq!(authorization["codeChallengeMethod"], "S256");
        assert_eq!(
            authorization["redirectUri"],
            format!("{page_origin}/callback")
        );
    }
    assert_eq!(run["issuers"], json!([server.issuer, server.issuer]));
    assert_eq!(run["tokenScopes"], json!(["read:todos", "create:todos"]));
    // Registered cross-origin at the authorization server (dynamic client registration).
    assert!(run["registeredClient"].is_string(), "{run:#}");

    // The tools: nothing at first, then the todo the page created, owned by the logged-in user.
    assert_eq!(run["getTodos"], json!({"todos": []}));
    assert_eq!(run["createTodo"]["content"], "from a web page");
    assert_eq!(run["createTodo"]["ownerId"], "dev-user");
    assert_eq!(run["finalTodos"], json!({"todos": [run["createTodo"]]}));

    // Two round trips through the authorization server, each back on the page's callback.
    let navigations: Vec<&str> = report["navigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let callbacks = navigations
        .iter()
        .filter(|n| n.starts_with(&format!("{page_origin}/callback?code=")))
        .count();
    assert_eq!(callbacks, 2, "{navigations:#?}");

    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}
