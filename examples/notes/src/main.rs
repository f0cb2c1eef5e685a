//! `notes`: the mcpauth guide's running example, an MCP resource server for a notes API.
//!
//! ```text
//! cargo run -p notes
//! ```
//!
//! Configuration (environment):
//! - `MCP_AUTH_ISSUER`: the authorization server's issuer. Unset: a development authorization
//!   server is started in-process and a token for the notes resource is printed.
//! - `MCP_AUTH_ISSUER_TYPE`: `oidc` (default) or `oauth`; exactly that well-known form is fetched.
//! - `MCP_RESOURCE_IDENTIFIER`: the resource identifier (default `http://127.0.0.1:<port>/notes`,
//!   that is `http://127.0.0.1:3001/notes` with the default port).
//! - `PORT` (default 3001) on 127.0.0.1, or `BIND=host:port`.
//!
//! Any start-up failure exits with status 1 and one line on standard error.
//!
//! The authorization server and the resource are declared with `auth_server!` and
//! `#[protected_resource]`; their deployment values (issuer, type, resource identifier) come from
//! the environment at start-up and are checked by the same rules as literals.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mcpauth::dev::DevAuthServer;
use mcpauth::{
    AuthInfo, AuthServerType, ConfigError, DiscoveryError, McpAuth, auth_server, protected_resource,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const DEFAULT_PORT: u16 = 3001;

/// The deployment values the declarations read, set once at start-up before first use.
static ISSUER: OnceLock<(String, AuthServerType)> = OnceLock::new();
static RESOURCE: OnceLock<String> = OnceLock::new();

fn issuer() -> String {
    ISSUER
        .get()
        .map(|(issuer, _)| issuer.clone())
        .unwrap_or_default()
}

fn issuer_type() -> AuthServerType {
    ISSUER
        .get()
        .map_or(AuthServerType::Oidc, |(_, server_type)| *server_type)
}

fn resource_identifier() -> String {
    RESOURCE.get().cloned().unwrap_or_default()
}

auth_server! {
    /// The authorization server: `MCP_AUTH_ISSUER` (of type `MCP_AUTH_ISSUER_TYPE`), or the
    /// development server started in-process.
    pub NOTES_ISSUER = issuer(expr(issuer()), type = expr(issuer_type()));
}

/// The notes API as a protected resource.
#[protected_resource(
    resource = expr(resource_identifier()),
    authorization_servers = [NOTES_ISSUER],
    scopes = ["read:notes", "write:notes"],
    resource_name = "Notes",
)]
pub mod notes {}

/// Why the server could not start; each message names what failed and why.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("{name}={value:?} is invalid: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the development authorization server: {0}")]
    DevServer(#[from] mcpauth::dev::DevServerError),
    #[error("cannot use the authorization server: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

fn setting(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn invalid(name: &'static str, value: &str, reason: impl ToString) -> StartupError {
    StartupError::Setting {
        name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn bind_address() -> Result<SocketAddr, StartupError> {
    if let Some(bind) = setting("BIND") {
        return bind.parse().map_err(|e| invalid("BIND", &bind, e));
    }
    let port = match setting("PORT") {
        Some(port) => port.parse().map_err(|e| invalid("PORT", &port, e))?,
        None => DEFAULT_PORT,
    };
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// The default resource identifier: the notes path on loopback at the port actually bound.
fn default_resource(bound: SocketAddr) -> String {
    let port = bound.port();
    match bound {
        SocketAddr::V6(v6) if v6.ip().is_loopback() => format!("http://[::1]:{port}/notes"),
        _ => format!("http://127.0.0.1:{port}/notes"),
    }
}

/// One note, owned by the subject that wrote it.
#[derive(Debug, Clone, Serialize)]
struct Note {
    id: usize,
    owner: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct NewNote {
    text: String,
}

type Notes = Arc<Mutex<Vec<Note>>>;

/// `GET /notes` (needs `read:notes`): the caller's notes. `POST /notes` (needs
/// `write:notes`): adds one. Both answer with the caller's subject.
async fn list_notes(State(notes): State<Notes>, auth: AuthInfo) -> Json<Value> {
    let notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
    let mine: Vec<&Note> = notes.iter().filter(|n| n.owner == auth.subject()).collect();
    Json(json!({ "subject": auth.subject(), "notes": mine }))
}

async fn add_note(
    State(notes): State<Notes>,
    auth: AuthInfo,
    Json(new): Json<NewNote>,
) -> (StatusCode, Json<Value>) {
    let mut notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
    let note = Note {
        id: notes.len() + 1,
        owner: auth.subject().to_owned(),
        text: new.text,
    };
    notes.push(note.clone());
    (
        StatusCode::CREATED,
        Json(json!({ "subject": auth.subject(), "note": note })),
    )
}

/// The application: the metadata, and `/notes` behind one bearer layer per scope.
fn notes_app(auth: &McpAuth) -> Result<Router, ConfigError> {
    let read = notes::require(auth, [notes::Scope::ReadNotes])?;
    let write = notes::require(auth, [notes::Scope::WriteNotes])?;
    let app = Router::new()
        .route("/notes", get(list_notes).route_layer(read))
        .route("/notes", post(add_note).route_layer(write))
        .with_state(Notes::default());
    Ok(app.merge(auth.resource_metadata_router()?))
}

#[allow(clippy::print_stdout)] // the example talks to the person who started it
async fn run() -> Result<(), StartupError> {
    let server_type: AuthServerType = match setting("MCP_AUTH_ISSUER_TYPE") {
        Some(value) => value
            .parse()
            .map_err(|e| invalid("MCP_AUTH_ISSUER_TYPE", &value, e))?,
        None => AuthServerType::Oidc,
    };
    let addr = bind_address()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let resource = setting("MCP_RESOURCE_IDENTIFIER").unwrap_or_else(|| default_resource(bound));
    let _ = RESOURCE.set(resource.clone());

    // Without an issuer, run a development authorization server in this process.
    let dev = match setting("MCP_AUTH_ISSUER") {
        None => {
            let dev = DevAuthServer::start().await?;
            let _ = ISSUER.set((dev.issuer().to_owned(), AuthServerType::Oidc));
            Some(dev)
        }
        Some(issuer) => {
            let _ = ISSUER.set((issuer, server_type));
            None
        }
    };

    let auth = McpAuth::resource_server([notes::protected_resource()?])?;
    // Fetch and check the authorization server's metadata now: fail at start-up, not later.
    auth.discover_all().await?;
    let app = notes_app(&auth)?;
    let metadata_url = auth
        .resource_metadata_url(&resource)
        .map(ToString::to_string)
        .unwrap_or_default();

    println!("notes: listening on http://{bound}");
    println!("notes: resource {resource}");
    println!("notes: metadata: curl -s {metadata_url}");
    if let Some(dev) = &dev {
        let token = dev
            .token()
            .subject("dev-user")
            .audience(&resource)
            .scopes(notes::Scope::ALL.map(notes::Scope::as_str))
            .sign()?;
        println!(
            "notes: development authorization server at {} (development only)",
            dev.issuer()
        );
        println!("notes: token (read:notes write:notes, valid 1 h): {token}");
        println!("notes: try: curl -s -H \"Authorization: Bearer $TOKEN\" http://{bound}/notes");
    }

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(StartupError::Serve)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "notes=info,mcpauth=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notes: error: {error}");
            ExitCode::FAILURE
        }
    }
}
