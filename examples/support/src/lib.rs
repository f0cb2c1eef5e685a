//! Start-up plumbing shared by the examples: settings from the environment, the development
//! authorization server when no issuer is configured, and one-line start-up errors.
//!
//! - `MCP_AUTH_ISSUER`: the issuer; unset, a development authorization server starts in-process.
//! - `MCP_AUTH_ISSUER_TYPE`: `oidc` (default) or `oauth`; exactly that well-known form is fetched.
//! - `MCP_RESOURCE_IDENTIFIER`: the resource identifier (default: the example's path on loopback
//!   at the port actually bound).
//! - `PORT` (default 3001) on 127.0.0.1, or `BIND=host:port`.
//! - `MCP_CORS_ORIGINS`: the origins of web pages allowed to call the server from a browser,
//!   comma-separated (`https://app.example,http://localhost:6274`); unset: no CORS.
//! - `METRICS_BIND=host:port` (`127.0.0.1:9464`): Prometheus metrics at `/metrics` on that
//!   address (see [`metrics`]); unset: none.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::OnceLock;

use mcpauth::cors::{McpCors, mcp_cors};
use mcpauth::dev::{DevAuthServer, DevServerError};
use mcpauth::discovery::DiscoveryError;
use mcpauth::{AuthServerType, ConfigError};
use tokio::net::TcpListener;

pub mod metrics;
pub mod todos;

/// The port when neither `PORT` nor `BIND` is set.
pub const DEFAULT_PORT: u16 = 3001;

// The macro-based examples read their deployment values through `expr(…)`, which call the
// functions below; `whoami` shows the same without any of this, with the runtime API.
static ISSUER: OnceLock<(String, AuthServerType)> = OnceLock::new();
static RESOURCE: OnceLock<String> = OnceLock::new();

/// The issuer in use (for `auth_server!` `expr(…)`); empty before [`deployment`].
pub fn issuer() -> String {
    ISSUER
        .get()
        .map(|(issuer, _)| issuer.clone())
        .unwrap_or_default()
}

/// Sets the issuer [`issuer`] gives (an example whose authorization server is its own broker);
/// the first call wins.
pub fn use_issuer(issuer: &str) {
    let _ = ISSUER.set((issuer.to_owned(), AuthServerType::OAuth));
}

/// The issuer's discovery type (for `auth_server!` `expr(…)`).
pub fn issuer_type() -> AuthServerType {
    ISSUER
        .get()
        .map_or(AuthServerType::Oidc, |(_, server_type)| *server_type)
}

/// The resource identifier in use (for `#[protected_resource]` `expr(…)`).
pub fn resource() -> String {
    RESOURCE.get().cloned().unwrap_or_default()
}

/// Why an example could not start; each message names what failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A setting has an unusable value.
    #[error("{name}={value:?} is invalid: {reason}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The development authorization server failed.
    #[error("cannot start the development authorization server: {0}")]
    DevServer(#[from] DevServerError),
    /// The authorization server's metadata could not be had or used.
    #[error("cannot use the authorization server: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The broker could not be configured.
    #[error("cannot start the broker: {0}")]
    Broker(#[from] mcpauth::broker::BrokerError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The value of an environment variable, `None` when unset or blank.
pub fn setting(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The error for a setting whose value cannot be used.
pub fn invalid(name: &'static str, value: &str, reason: impl ToString) -> StartupError {
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

/// The CORS layer for the origins in `MCP_CORS_ORIGINS` (comma-separated serialized origins;
/// spaces around the commas and empty items are ignored), or `None` when it is unset or blank.
pub fn cors() -> Result<Option<McpCors>, StartupError> {
    let Some(value) = setting("MCP_CORS_ORIGINS") else {
        return Ok(None);
    };
    let origins = value.split(',').map(str::trim).filter(|o| !o.is_empty());
    mcp_cors(origins)
        .map(Some)
        .map_err(|error| invalid("MCP_CORS_ORIGINS", &value, error))
}

/// Where and as what an example runs.
#[derive(Debug)]
pub struct Deployment {
    /// The bound listener.
    pub listener: TcpListener,
    /// Its address.
    pub bound: SocketAddr,
    /// The resource identifier.
    pub resource: String,
    /// The authorization server's issuer (`MCP_AUTH_ISSUER`, or the development server's).
    pub issuer: String,
    /// How its metadata is discovered.
    pub issuer_type: AuthServerType,
    /// The development authorization server, when no issuer was configured.
    pub dev: Option<DevAuthServer>,
}

/// A bound listener and the resource identifier served on it.
#[derive(Debug)]
pub struct Listening {
    /// The bound listener.
    pub listener: TcpListener,
    /// Its address.
    pub bound: SocketAddr,
    /// The resource identifier (`MCP_RESOURCE_IDENTIFIER`, or `path` on loopback at the bound
    /// port).
    pub resource: String,
}

/// A listener on `addr`, and the address it got (the port chosen when `addr`'s is 0).
pub(crate) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Binds (`PORT`/`BIND`) and settles the resource identifier.
pub async fn listen(path: &str) -> Result<Listening, StartupError> {
    let (listener, bound) = bind(bind_address()?).await?;
    let resource = setting("MCP_RESOURCE_IDENTIFIER").unwrap_or_else(|| {
        let port = bound.port();
        match bound {
            SocketAddr::V6(v6) if v6.ip().is_loopback() => format!("http://[::1]:{port}{path}"),
            _ => format!("http://127.0.0.1:{port}{path}"),
        }
    });
    let _ = RESOURCE.set(resource.clone());
    Ok(Listening {
        listener,
        bound,
        resource,
    })
}

/// Reads the settings, binds, and starts the development authorization server when no issuer
/// is configured; the default resource identifier is `path` on loopback at the bound port.
pub async fn deployment(path: &str) -> Result<Deployment, StartupError> {
    let server_type: AuthServerType = match setting("MCP_AUTH_ISSUER_TYPE") {
        Some(value) => value
            .parse()
            .map_err(|e| invalid("MCP_AUTH_ISSUER_TYPE", &value, e))?,
        None => AuthServerType::Oidc,
    };
    let Listening {
        listener,
        bound,
        resource,
    } = listen(path).await?;
    let (issuer, issuer_type, dev) = match setting("MCP_AUTH_ISSUER") {
        None => {
            let dev = DevAuthServer::start().await?;
            (dev.issuer().to_owned(), AuthServerType::Oidc, Some(dev))
        }
        Some(issuer) => (issuer, server_type, None),
    };
    let _ = ISSUER.set((issuer.clone(), issuer_type));
    Ok(Deployment {
        listener,
        bound,
        resource,
        issuer,
        issuer_type,
        dev,
    })
}

/// Runs an example: logs to standard error, and turns a start-up failure into one line
/// (`<name>: error: …`) and exit status 1.
pub fn main<F>(name: &str, run: F) -> ExitCode
where
    F: Future<Output = Result<(), StartupError>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The embedded store's engine reports each file it writes at info.
                .unwrap_or_else(|_| "info,mcpauth=warn,rmcp=warn,fjall=warn,lsm_tree=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    #[allow(clippy::print_stdout)] // the examples print their addresses for the person who ran them
    let with_metrics = async {
        if let Some(addr) = metrics::serve_from_env().await? {
            println!("{name}: metrics at http://{addr}/metrics");
        }
        run.await
    };
    match runtime.block_on(with_metrics) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C).
pub async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
