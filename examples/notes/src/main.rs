//! `notes`: the mcpauth guide's running example, an MCP resource server for a notes API.
//!
//! ```text
//! cargo run -p notes
//! ```
//!
//! Configuration (environment):
//! - `MCP_AUTH_ISSUER`: the authorization server's issuer. Unset: a development authorization
//!   server is started in-process, and a token for the notes resource is printed as two lines
//!   to paste into a shell (`export TOKEN=…`, then a `curl` request with it).
//! - `MCP_AUTH_ISSUER_TYPE`: `oidc` (default) or `oauth`; exactly that well-known form is fetched.
//! - `MCP_RESOURCE_IDENTIFIER`: the resource identifier (default `http://127.0.0.1:<port>/notes`,
//!   that is `http://127.0.0.1:3001/notes` with the default port).
//! - `PORT` (default 3001) on 127.0.0.1, or `BIND=host:port`.
//! - `MCP_AUTH_ERROR_DETAILS=1`: refusals name their precise cause (description and `reason`
//!   code) — for development and test harnesses; off by default.
//! - `MCP_CORS_ORIGINS`: origins of web pages that may call the API from a browser,
//!   comma-separated serialized origins (`https://app.example,http://localhost:5173`). Their
//!   preflights are answered without a token and they can read the challenges; unset (the
//!   default): no CORS, and browsers keep other origins' pages out.
//!
//! Any start-up failure exits with status 1 and one line on standard error.
//!
//! The authorization server and the resource are declared with `auth_server!` and
//! `#[protected_resource]`; their deployment values (issuer, type, resource identifier) come from
//! the environment at start-up and are checked by the same rules as literals.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use example_support::{StartupError, deployment};
use mcpauth::cors::McpCors;
use mcpauth::{AuthInfo, ConfigError, McpAuth, auth_server, protected_resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

auth_server! {
    /// The authorization server: `MCP_AUTH_ISSUER` (of type `MCP_AUTH_ISSUER_TYPE`), or the
    /// development server started in-process.
    pub NOTES_ISSUER = issuer(
        expr(example_support::issuer()),
        type = expr(example_support::issuer_type())
    );
}

/// The notes API as a protected resource.
#[protected_resource(
    resource = expr(example_support::resource()),
    authorization_servers = [NOTES_ISSUER],
    scopes = ["read:notes", "write:notes"],
    resource_name = "Notes",
)]
pub mod notes {}

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

/// The application: the metadata, and `/notes` behind one bearer layer per scope; CORS, when
/// configured, outside them all.
fn notes_app(auth: &McpAuth, cors: Option<McpCors>) -> Result<Router, ConfigError> {
    let details = std::env::var("MCP_AUTH_ERROR_DETAILS").is_ok_and(|v| v == "1" || v == "true");
    let read = notes::require(auth, [notes::Scope::ReadNotes])?.show_error_details(details);
    let write = notes::require(auth, [notes::Scope::WriteNotes])?.show_error_details(details);
    let app = Router::new()
        .route("/notes", get(list_notes).route_layer(read))
        .route("/notes", post(add_note).route_layer(write))
        .with_state(Notes::default())
        .merge(auth.resource_metadata_router());
    Ok(match cors {
        Some(cors) => app.layer(cors),
        None => app,
    })
}

#[allow(clippy::print_stdout)] // the example talks to the person who started it
async fn run() -> Result<(), StartupError> {
    let cors = example_support::cors()?;
    let deployment = deployment("/notes").await?;
    let (bound, resource) = (deployment.bound, &deployment.resource);

    let auth = McpAuth::resource_server([notes::protected_resource()?])?;
    // Fetch and check the authorization server's metadata now: fail at start-up, not later.
    auth.discover_all().await?;
    let allowed = cors
        .as_ref()
        .map(|cors| cors.origins().collect::<Vec<_>>().join(" "));
    let app = notes_app(&auth, cors)?;
    let metadata_url = auth
        .resource_metadata_url(resource)
        .map(ToString::to_string)
        .unwrap_or_default();

    println!("notes: listening on http://{bound}");
    println!("notes: resource {resource}");
    println!("notes: metadata: curl -s {metadata_url}");
    if let Some(dev) = &deployment.dev {
        let token = dev
            .token()
            .subject("dev-user")
            .audience(resource)
            .scopes(notes::Scope::ALL.map(notes::Scope::as_str))
            .sign()?;
        println!(
            "notes: development authorization server at {} (development only)",
            dev.issuer()
        );
        // Two lines to paste into a shell as they are: the token in `TOKEN`, then a request
        // with it (a token is base64url and dots: nothing in it needs quoting).
        println!(
            "notes: a token (read:notes write:notes, valid 1 h) and a request with it, to paste into a shell:"
        );
        println!("export TOKEN={token}");
        println!("curl -s -H \"Authorization: Bearer $TOKEN\" http://{bound}/notes");
    }
    if let Some(allowed) = allowed {
        println!("notes: CORS for {allowed}");
    }

    axum::serve(deployment.listener, app)
        .with_graceful_shutdown(example_support::shutdown_signal())
        .await
        .map_err(StartupError::Serve)
}

fn main() -> ExitCode {
    example_support::main("notes", run())
}
