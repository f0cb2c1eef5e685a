//! `whoami`: the custom-verifier mode. Tokens are not verified locally but by asking the
//! authorization server — the OpenID Connect userinfo endpoint by default, or RFC 7662
//! introspection when `MCP_AUTH_INTROSPECTION_CLIENT_ID` and `_SECRET` are set — with the
//! `RemoteVerifier` defaults: one call per token however many requests carry it at once, each
//! answer cached until the token's expiry (at most 5 minutes, 10,000 tokens, 16 MiB), a refusal
//! remembered for 10 seconds, and at most 50 calls a second to the authorization server (503
//! with `Retry-After` beyond, for tokens without an answer). The `whoami` tool needs no scope:
//! in userinfo mode a token has none (the userinfo document is not trusted for them).
//!
//! ```text
//! cargo run -p whoami
//! ```
//!
//! An rmcp streamable-HTTP MCP server at `/mcp` with one tool, `whoami`, answering with the
//! caller's claims. Configuration as in `notes` (`MCP_AUTH_ISSUER`, `MCP_AUTH_ISSUER_TYPE`,
//! `MCP_RESOURCE_IDENTIFIER` default `http://127.0.0.1:3001/mcp`, `PORT`, `BIND`).
//!
//! Written with the runtime API, as a server whose configuration is read at start-up would be
//! (the other examples declare theirs with the macros).

use std::process::ExitCode;
use std::sync::Arc;

use example_support::{StartupError, deployment};
use mcpauth::discovery::{DiscoveryError, fetch_server_config};
use mcpauth::{
    AuthInfo, AuthServer, AuthServerType, ConfigError, McpAuth, ProtectedResource, RemoteVerifier,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};

/// The MCP server.
#[derive(Debug, Clone)]
struct Whoami {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Whoami {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// The caller's identity, as the authorization server describes it.
    #[tool(description = "Who is calling: the claims the authorization server gives for the token")]
    async fn whoami(&self, auth: AuthInfo) -> String {
        let claims: Value = auth.claims().clone().into();
        json!({ "subject": auth.subject(), "issuer": auth.issuer(), "claims": claims }).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Whoami {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Introspection when this server has client credentials for it, else userinfo.
async fn remote_verifier(
    issuer: &str,
    issuer_type: AuthServerType,
) -> Result<(RemoteVerifier, bool), StartupError> {
    let config = fetch_server_config(issuer, issuer_type).await?;
    let credentials = setting("MCP_AUTH_INTROSPECTION_CLIENT_ID")
        .zip(setting("MCP_AUTH_INTROSPECTION_CLIENT_SECRET"));
    let missing = |member: &str| {
        StartupError::Discovery(DiscoveryError::InvalidMetadata {
            url: issuer.to_owned(),
            reason: format!("no {member} to verify tokens with"),
        })
    };
    match (
        credentials,
        config.metadata.introspection_endpoint.as_deref(),
    ) {
        (Some((id, secret)), Some(endpoint)) => Ok((
            RemoteVerifier::introspection(issuer, endpoint, id, secret)?,
            true,
        )),
        (Some(_), None) => Err(missing("introspection_endpoint")),
        (None, _) => {
            let endpoint = config
                .metadata
                .userinfo_endpoint
                .as_deref()
                .ok_or_else(|| missing("userinfo_endpoint"))?;
            Ok((RemoteVerifier::userinfo(issuer, endpoint)?, false))
        }
    }
}

fn app(
    auth: &McpAuth,
    resource: &str,
    verifier: RemoteVerifier,
    audience_known: bool,
) -> Result<axum::Router, ConfigError> {
    let mut bearer = auth.bearer_auth(resource)?.verifier(verifier);
    if !audience_known {
        // Userinfo answers carry no audience: the token's audience cannot be checked here.
        bearer = bearer.skip_audience_check();
    }
    let mcp = StreamableHttpService::new(
        || Ok(Whoami::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    );
    Ok(axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(bearer)
        .merge(auth.resource_metadata_router()))
}

#[allow(clippy::print_stdout)] // the example talks to the person who started it
async fn run() -> Result<(), StartupError> {
    let deployment = deployment("/mcp").await?;
    let (issuer, resource) = (&deployment.issuer, &deployment.resource);
    let auth = McpAuth::resource_server([ProtectedResource::new(resource)
        .authorization_server(AuthServer::discover(issuer, deployment.issuer_type))
        .resource_name("Who am I")])?;
    let (verifier, introspection) = remote_verifier(issuer, deployment.issuer_type).await?;
    let app = app(&auth, resource, verifier, introspection)?;
    println!("whoami: listening on http://{}", deployment.bound);
    println!("whoami: MCP endpoint {}", deployment.resource);
    println!(
        "whoami: tokens verified by {}",
        if introspection {
            "introspection"
        } else {
            "userinfo"
        }
    );
    axum::serve(deployment.listener, app)
        .with_graceful_shutdown(example_support::shutdown_signal())
        .await
        .map_err(StartupError::Serve)
}

fn main() -> ExitCode {
    example_support::main("whoami", run())
}
