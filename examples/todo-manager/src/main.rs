//! `todo-manager`: the MCP Auth SDKs' todo-manager sample in Rust — an rmcp streamable-HTTP MCP
//! server at `/mcp` whose tools need scopes.
//!
//! ```text
//! cargo run -p todo-manager
//! ```
//!
//! - `create_todo` needs `create:todos` (enforced at the HTTP layer: a token without it gets a
//!   403 `insufficient_scope` challenge, which MCP clients answer by stepping up);
//! - `get_todos` lists every todo with `read:todos`, else the caller's own;
//! - `delete_todo` deletes the caller's own todo, or any with `delete:todos`.
//!
//! Owners are the tokens' subjects. Configuration as in `notes` (`MCP_AUTH_ISSUER`,
//! `MCP_AUTH_ISSUER_TYPE`, `MCP_RESOURCE_IDENTIFIER` default `http://127.0.0.1:3001/mcp`, `PORT`,
//! `BIND`); without an issuer a development authorization server runs in-process.
//!
//! Browser-based MCP clients: `MCP_CORS_ORIGINS` lists the origins of the web pages that may
//! call `/mcp`, comma-separated serialized origins
//! (`MCP_CORS_ORIGINS=https://app.example,http://localhost:6274`). Their preflights are answered
//! without a token and they can read `WWW-Authenticate` and `Mcp-Session-Id`; unset (the
//! default), there is no CORS. Whatever the token, a request whose `Origin` is neither this
//! server's nor one of those is refused with 403 by the MCP transport (its DNS-rebinding and
//! cross-origin protection).

use std::process::ExitCode;
use std::sync::Arc;

use example_support::todos::TodoList;
use example_support::{StartupError, deployment};
use mcpauth::cors::McpCors;
use mcpauth::{AuthInfo, McpAuth, Require, auth_server, protected_resource};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

auth_server! {
    /// The authorization server: `MCP_AUTH_ISSUER` (of type `MCP_AUTH_ISSUER_TYPE`), or the
    /// development server started in-process.
    pub TODO_ISSUER = issuer(
        expr(example_support::issuer()),
        type = expr(example_support::issuer_type())
    );
}

/// The todo manager's MCP endpoint as a protected resource.
#[protected_resource(
    resource = expr(example_support::resource()),
    authorization_servers = [TODO_ISSUER],
    scopes = ["create:todos", "read:todos", "delete:todos"],
    // Nothing is required to list or delete your own todos: clients log in asking for read
    // access, and step up to create:todos when they first create a todo.
    login_scopes = ["read:todos"],
    tool_scopes = { "create_todo" => ["create:todos"] },
    resource_name = "Todo manager",
)]
pub mod todos {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct CreateTodo {
    /// What to do.
    content: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct DeleteTodo {
    /// The todo's id.
    id: String,
}

/// The MCP server: one per request (stateless), sharing the store.
#[derive(Debug, Clone)]
struct TodoManager {
    store: TodoList,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TodoManager {
    fn new(store: TodoList) -> Self {
        Self {
            store,
            tool_router: Self::tool_router(),
        }
    }

    /// Creates a todo owned by the caller.
    #[tool(description = "Create a new todo (needs the create:todos scope)")]
    async fn create_todo(
        &self,
        creator: Require<todos::scopes::CreateTodos>,
        Parameters(new): Parameters<CreateTodo>,
    ) -> String {
        let auth = creator.auth();
        self.store.create(auth.subject(), new.content)
    }

    /// Lists todos: all of them with `read:todos`, else the caller's own.
    #[tool(description = "List todos (all with read:todos, else your own)")]
    async fn get_todos(&self, auth: AuthInfo) -> String {
        let all = auth.has_scope(todos::Scope::ReadTodos.as_str());
        self.store.list(auth.subject(), all)
    }

    /// Deletes a todo: the caller's own, or any with `delete:todos`.
    #[tool(description = "Delete a todo (your own, or any with delete:todos)")]
    async fn delete_todo(
        &self,
        auth: AuthInfo,
        Parameters(target): Parameters<DeleteTodo>,
    ) -> String {
        let any = auth.has_scope(todos::Scope::DeleteTodos.as_str());
        self.store.delete(auth.subject(), &target.id, any)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoManager {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// An origin as rmcp's allow-list reads it: with its port (rmcp takes an entry without one for
/// "any port").
fn with_port(origin: &str) -> String {
    let authority = origin
        .split_once("://")
        .map_or(origin, |(_, authority)| authority);
    let after_host = authority.rfind(']').unwrap_or(0);
    if authority[after_host..].contains(':') {
        origin.to_owned()
    } else if origin.starts_with("https://") {
        format!("{origin}:443")
    } else {
        format!("{origin}:80")
    }
}

/// The application: the metadata, and `/mcp` behind the bearer layer with per-tool scopes; CORS,
/// when configured, outside both.
fn app(
    auth: &McpAuth,
    resource: &str,
    cors: Option<McpCors>,
) -> Result<axum::Router, StartupError> {
    let bearer = todos::require(auth, [])?.operation_scopes(todos::operation_scopes())?;
    let origin = resource.split('/').take(3).collect::<Vec<_>>().join("/");
    let host = origin.rsplit('/').next().unwrap_or_default().to_owned();
    // The transport's own check, on every request that reaches it: this server's origin and the
    // CORS origins; any other `Origin` is refused (403), token or not.
    let origins = std::iter::once(origin.as_str())
        .chain(cors.iter().flat_map(McpCors::origins))
        .map(with_port)
        .collect::<Vec<_>>();
    let store = TodoList::default();
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        .with_allowed_hosts([host.as_str(), "localhost", "127.0.0.1"])
        .with_allowed_origins(origins);
    let mcp = StreamableHttpService::new(
        move || Ok(TodoManager::new(store.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(bearer)
        .merge(auth.resource_metadata_router());
    Ok(match cors {
        Some(cors) => app.layer(cors),
        None => app,
    })
}

#[allow(clippy::print_stdout)] // the example talks to the person who started it
async fn run() -> Result<(), StartupError> {
    let cors = example_support::cors()?;
    let deployment = deployment("/mcp").await?;
    let (bound, resource) = (deployment.bound, &deployment.resource);
    let auth = McpAuth::resource_server([todos::protected_resource()?])?;
    auth.discover_all().await?;
    let allowed = cors
        .as_ref()
        .map(|cors| cors.origins().collect::<Vec<_>>().join(" "));
    let app = app(&auth, resource, cors)?;
    let metadata_url = auth
        .resource_metadata_url(resource)
        .map(ToString::to_string)
        .unwrap_or_default();

    println!("todo-manager: listening on http://{bound}");
    println!("todo-manager: MCP endpoint {resource}");
    println!("todo-manager: metadata: curl -s {metadata_url}");
    if let Some(dev) = &deployment.dev {
        println!(
            "todo-manager: development authorization server at {} (development only)",
            dev.issuer()
        );
    }
    if let Some(allowed) = allowed {
        println!("todo-manager: CORS for {allowed}");
    }
    axum::serve(deployment.listener, app)
        .with_graceful_shutdown(example_support::shutdown_signal())
        .await
        .map_err(StartupError::Serve)
}

fn main() -> ExitCode {
    example_support::main("todo-manager", run())
}
