//! `todo-broker`: the todo manager's MCP server with the mcpauth broker as its authorization
//! server — for identity providers that cannot serve MCP clients themselves (no client ID
//! metadata documents, no dynamic registration, no resource indicators).
//!
//! ```text
//! cargo run -p todo-broker
//! ```
//!
//! The MCP endpoint is `/mcp`; the broker's issuer is its origin. MCP clients register (client
//! ID metadata document or dynamic registration), approve the request on the consent page, sign
//! in at the identity provider, and receive the broker's own tokens. Tools and scopes as in
//! `todo-manager`: `get_todos` and `delete_todo` need nothing (logins ask for `read:todos`),
//! `create_todo` needs `create:todos` (a 403 `insufficient_scope` makes the client step up).
//! One more tool, `whoami_upstream`, calls the identity provider's userinfo endpoint with the
//! user's own token there (which the broker keeps, renews, and never sends to the client) and
//! returns the provider's answer.
//!
//! Configuration (environment):
//! - the identity provider: `UPSTREAM_ISSUER` (OpenID Connect, discovered), or
//!   `UPSTREAM_AUTHORIZE_URL` + `UPSTREAM_TOKEN_URL` + `UPSTREAM_USERINFO_URL` (plain OAuth 2.0;
//!   `UPSTREAM_USER_ID_MEMBER` names the userinfo member that identifies the user, default
//!   `sub`); `UPSTREAM_CLIENT_ID`, `UPSTREAM_CLIENT_SECRET`, `UPSTREAM_SCOPES` (space-separated).
//!   Register the printed callback URL at the provider. Unset: a development identity provider
//!   runs in-process (no registration, no metadata documents, no resource indicators; it signs
//!   in a development user automatically).
//! - `MCP_RESOURCE_IDENTIFIER` (default `http://127.0.0.1:3001/mcp`), `PORT`, `BIND`.
//! - `BROKER_STORE`: where the state lives — the embedded store's directory (default
//!   `mcpauth-todo-broker/broker-store` under the system's temporary directory), or a Redis URL
//!   for several replicas sharing one state: `redis://[user:password@]host[:port][/db]`, or
//!   `rediss://…` for TLS. Printed at start-up (without the password). With Redis,
//!   `BROKER_REDIS_PREFIX` starts every key (default `mcpauth-todo-broker`); replicas behind one
//!   load balancer share the store, the prefix, `MCP_RESOURCE_IDENTIFIER` (their common public
//!   URL: it is the issuer) and the keys below. Redis should persist its data (`appendonly yes`)
//!   and evict nothing (`maxmemory-policy noeviction`).
//! - `BROKER_ACCESS_TOKEN_LIFETIME_SECS`: how long access tokens live (default 600).
//! - `BROKER_AUTHORIZATIONS_PER_SECOND`: authorization requests kept as sign-ins in progress
//!   per second (default 100, bursts of twice that; beyond, 503).
//! - keys (required on a non-loopback issuer): `BROKER_SIGNING_KEY_FILE` (a PKCS#8 PEM P-256 or
//!   Ed25519 private key), `BROKER_STORAGE_KEY` and `BROKER_COOKIE_KEY` (32 random bytes each,
//!   base64url). On loopback without them, development keys are generated once and kept in the
//!   store (with Redis, the first replica to start writes them and the others read them).
//! - `METRICS_BIND=host:port`: Prometheus metrics at `/metrics` on that address, a listener of
//!   its own (unset: none).
//! - key rotation, with the keys above: `BROKER_PUBLISHED_KEY_FILES` (comma-separated PEM files
//!   of signing keys published besides the signing one: the next key before it signs, then the
//!   old one for an access-token lifetime), `BROKER_PREVIOUS_STORAGE_KEYS` (old storage keys:
//!   upstream tokens they sealed are sealed again at their grant's next refresh) and
//!   `BROKER_PREVIOUS_COOKIE_KEYS` (old cookie keys, kept a few minutes so sign-ins in flight
//!   complete), each comma-separated base64url.
//! - `BROKER_CIMD_TRUST_HOST` (development and tests only): client ID metadata documents whose
//!   URL names one of these hosts are fetched from a fixed address, even on loopback or a
//!   private network, and over plain http too. A comma-separated list of `name=ip:port`
//!   (`client.localdev=127.0.0.1:8443`) or `ip:port` (the host is the address itself); a port
//!   written in the client id URL replaces the one given here. Unset: documents are fetched
//!   over https from public addresses only. The fetch trusts the system's certificate
//!   authorities (`SSL_CERT_FILE` names another bundle).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use example_support::todos::TodoList;
use example_support::{Listening, StartupError, invalid, listen, setting};
use mcpauth::broker::{
    Broker, BrokerKeys, BrokerStore, CimdOptions, FjallStore, RedisStore, SigningKey, Upstream,
};
use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, McpAuth, Require, auth_server, protected_resource};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

/// The identity provider chosen at start-up.
static UPSTREAM: OnceLock<Upstream> = OnceLock::new();

/// The identity provider for `auth_server!` `expr(…)` (set before the broker is built).
fn chosen_upstream() -> Upstream {
    UPSTREAM
        .get()
        .cloned()
        .unwrap_or_else(|| Upstream::oidc("http://unset.invalid", "unset"))
}

auth_server! {
    /// This server's own authorization server: the broker at its origin, in front of the
    /// identity provider chosen at start-up (`UPSTREAM_*`, or the development provider).
    pub TODO_BROKER = broker(expr(example_support::issuer()), upstream = expr(chosen_upstream()));
}

/// The todo manager's MCP endpoint as a protected resource, its tokens issued by the broker.
#[protected_resource(
    resource = expr(example_support::resource()),
    authorization_servers = [TODO_BROKER],
    scopes = ["create:todos", "read:todos", "delete:todos"],
    // Logins ask for read access; clients step up to create:todos when they first create one.
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

/// The MCP server: one per request (stateless), sharing the todos, the broker (for the
/// users' tokens at the identity provider) and an HTTP client to call the provider with.
#[derive(Debug, Clone)]
struct TodoBroker {
    todos: TodoList,
    broker: Broker,
    http: reqwest::Client,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TodoBroker {
    fn new(todos: TodoList, broker: Broker, http: reqwest::Client) -> Self {
        Self {
            todos,
            broker,
            http,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller's profile at the identity provider: its userinfo endpoint asked with the
    /// caller's upstream token. The provider's answer is returned; the token is not.
    #[tool(description = "Who you are at the identity provider you signed in with")]
    async fn whoami_upstream(&self, auth: AuthInfo) -> Result<String, ErrorData> {
        let token = self.broker.upstream_token(&auth).await?;
        let userinfo = self.broker.upstream_userinfo_url().await?.ok_or_else(|| {
            ErrorData::internal_error("the identity provider has no userinfo endpoint", None)
        })?;
        let unreachable = |e: reqwest::Error| {
            ErrorData::internal_error(
                format!("the identity provider cannot be reached: {e}"),
                None,
            )
        };
        let response = self
            .http
            .get(userinfo)
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ErrorData::internal_error(
                format!("the identity provider's userinfo endpoint answered {status}"),
                None,
            ));
        }
        let profile: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            ErrorData::internal_error("the identity provider's answer is not JSON", None)
        })?;
        Ok(profile.to_string())
    }

    /// Creates a todo owned by the caller.
    #[tool(description = "Create a new todo (needs the create:todos scope)")]
    async fn create_todo(
        &self,
        creator: Require<todos::scopes::CreateTodos>,
        Parameters(new): Parameters<CreateTodo>,
    ) -> String {
        let auth = creator.auth();
        self.todos.create(auth.subject(), new.content)
    }

    /// Lists todos: all of them with `read:todos`, else the caller's own.
    #[tool(description = "List todos (all with read:todos, else your own)")]
    async fn get_todos(&self, auth: AuthInfo) -> String {
        let all = auth.has_scope(todos::Scope::ReadTodos.as_str());
        self.todos.list(auth.subject(), all)
    }

    /// Deletes a todo: the caller's own, or any with `delete:todos`.
    #[tool(description = "Delete a todo (your own, or any with delete:todos)")]
    async fn delete_todo(
        &self,
        auth: AuthInfo,
        Parameters(target): Parameters<DeleteTodo>,
    ) -> String {
        let any = auth.has_scope(todos::Scope::DeleteTodos.as_str());
        self.todos.delete(auth.subject(), &target.id, any)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoBroker {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The identity provider: configured, or the development one started here.
async fn upstream(callback: &str) -> Result<(Upstream, Option<DevAuthServer>), StartupError> {
    let client_id = setting("UPSTREAM_CLIENT_ID");
    let with_client = |upstream: Upstream| {
        let upstream = match setting("UPSTREAM_CLIENT_SECRET") {
            Some(secret) => upstream.client_secret(secret),
            None => upstream,
        };
        match setting("UPSTREAM_SCOPES") {
            Some(scopes) => upstream.scopes(scopes.split_whitespace().map(str::to_owned)),
            None => upstream,
        }
    };
    if let Some(issuer) = setting("UPSTREAM_ISSUER") {
        let client_id = client_id.ok_or_else(|| missing("UPSTREAM_CLIENT_ID"))?;
        return Ok((with_client(Upstream::oidc(issuer, client_id)), None));
    }
    if let Some(authorize) = setting("UPSTREAM_AUTHORIZE_URL") {
        let token = setting("UPSTREAM_TOKEN_URL").ok_or_else(|| missing("UPSTREAM_TOKEN_URL"))?;
        let userinfo =
            setting("UPSTREAM_USERINFO_URL").ok_or_else(|| missing("UPSTREAM_USERINFO_URL"))?;
        let client_id = client_id.ok_or_else(|| missing("UPSTREAM_CLIENT_ID"))?;
        let mut upstream = Upstream::oauth(authorize, token, userinfo, client_id);
        if let Some(member) = setting("UPSTREAM_USER_ID_MEMBER") {
            upstream = upstream.user_id_member(member);
        }
        return Ok((with_client(upstream), None));
    }
    // The development identity provider: one confidential client, the broker's callback as
    // its only redirect URI, automatic sign-in of a development user.
    let secret = URL_SAFE_NO_PAD.encode(*b"todo-broker development secret!!");
    let dev = DevAuthServer::builder()
        .upstream_client("todo-broker", secret.clone())
        .upstream_redirect_uri(callback)
        .start()
        .await?;
    // `offline_access`: a refresh token, so the broker renews the user's token there when it
    // expires (for `whoami_upstream`).
    let upstream = Upstream::oidc(dev.issuer(), "todo-broker")
        .id("dev")
        .display_name("the development identity provider")
        .client_secret(secret)
        .scopes(["openid", "profile", "email", "offline_access"]);
    Ok((upstream, Some(dev)))
}

fn missing(name: &'static str) -> StartupError {
    invalid(
        name,
        "",
        "it is required with the other UPSTREAM_* settings",
    )
}

/// Keys from the environment, when given.
fn configured_keys() -> Result<Option<BrokerKeys>, StartupError> {
    let Some(path) = setting("BROKER_SIGNING_KEY_FILE") else {
        return Ok(None);
    };
    let pem =
        std::fs::read_to_string(&path).map_err(|e| invalid("BROKER_SIGNING_KEY_FILE", &path, e))?;
    let signing = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| invalid("BROKER_SIGNING_KEY_FILE", &path, e))?;
    let decode32 = |name: &'static str, value: &str| -> Result<[u8; 32], StartupError> {
        URL_SAFE_NO_PAD
            .decode(value.trim().trim_end_matches('='))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| invalid(name, "…", "expected 32 bytes, base64url"))
    };
    let key32 = |name: &'static str| -> Result<[u8; 32], StartupError> {
        let value = setting(name).ok_or_else(|| {
            invalid(
                name,
                "",
                "set 32 random bytes, base64url, with BROKER_SIGNING_KEY_FILE",
            )
        })?;
        decode32(name, &value)
    };
    let list = |name: &'static str| -> Vec<String> {
        setting(name)
            .map(|value| {
                value
                    .split(',')
                    .map(|item| item.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut keys = BrokerKeys::new(
        signing,
        key32("BROKER_STORAGE_KEY")?,
        key32("BROKER_COOKIE_KEY")?,
    );
    for path in list("BROKER_PUBLISHED_KEY_FILES") {
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| invalid("BROKER_PUBLISHED_KEY_FILES", &path, e))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| invalid("BROKER_PUBLISHED_KEY_FILES", &path, e))?;
        keys = keys.also_publish(key);
    }
    for value in list("BROKER_PREVIOUS_STORAGE_KEYS") {
        keys = keys.previous_storage_key(decode32("BROKER_PREVIOUS_STORAGE_KEYS", &value)?);
    }
    for value in list("BROKER_PREVIOUS_COOKIE_KEYS") {
        keys = keys.previous_cookie_key(decode32("BROKER_PREVIOUS_COOKIE_KEYS", &value)?);
    }
    Ok(Some(keys))
}

/// The client metadata document options: the default ones, plus the hosts trusted by
/// `BROKER_CIMD_TRUST_HOST`.
fn cimd_options() -> Result<CimdOptions, StartupError> {
    let mut options = CimdOptions::default();
    let Some(value) = setting("BROKER_CIMD_TRUST_HOST") else {
        return Ok(options);
    };
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // `name=addr`, or a bare address that is its own host name (`127.0.0.1:8443`).
        let (host, addr) = match entry.split_once('=') {
            Some((host, addr)) => (host.trim(), addr.trim()),
            None => ("", entry),
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| invalid("BROKER_CIMD_TRUST_HOST", &value, format!("`{entry}`: {e}")))?;
        let host = if host.is_empty() {
            // The form a URL's host takes: IPv6 addresses in brackets.
            match addr.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            }
        } else {
            host.to_owned()
        };
        options = options.trust_host(&host, addr);
    }
    Ok(options)
}

/// The store `BROKER_STORE` names, and how to print it.
async fn store() -> Result<(Arc<dyn BrokerStore>, String), StartupError> {
    let setting = setting("BROKER_STORE");
    if let Some(url) = setting
        .as_deref()
        .filter(|url| url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        let shown = without_password(url);
        let prefix = setting_or("BROKER_REDIS_PREFIX", "mcpauth-todo-broker");
        let store = RedisStore::connect(url, &prefix)
            .await
            .map_err(|e| invalid("BROKER_STORE", &shown, e))?;
        return Ok((Arc::new(store), format!("{shown} (prefix {prefix})")));
    }
    let path = match setting {
        Some(path) => PathBuf::from(path),
        None => std::env::temp_dir()
            .join("mcpauth-todo-broker")
            .join("broker-store"),
    };
    let shown = path.display().to_string();
    let store = FjallStore::open(&path).map_err(|e| invalid("BROKER_STORE", &shown, e))?;
    Ok((Arc::new(store), shown))
}

fn setting_or(name: &'static str, default: &str) -> String {
    setting(name).unwrap_or_else(|| default.to_owned())
}

/// A Redis URL with its password (if any) masked, for logs and errors.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `BROKER_ACCESS_TOKEN_LIFETIME_SECS`, when set.
fn access_token_lifetime() -> Result<Option<Duration>, StartupError> {
    Ok(positive_setting("BROKER_ACCESS_TOKEN_LIFETIME_SECS")?.map(Duration::from_secs))
}

/// `BROKER_AUTHORIZATIONS_PER_SECOND`, when set.
fn authorizations_per_second() -> Result<Option<u32>, StartupError> {
    let name = "BROKER_AUTHORIZATIONS_PER_SECOND";
    positive_setting(name)?
        .map(|rate| u32::try_from(rate).map_err(|_| invalid(name, &rate.to_string(), "too large")))
        .transpose()
}

/// A setting that must be a positive whole number, when set.
fn positive_setting(name: &'static str) -> Result<Option<u64>, StartupError> {
    let Some(value) = setting(name) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(number) if number > 0 => Ok(Some(number)),
        _ => Err(invalid(name, &value, "expected a positive whole number")),
    }
}

/// The MCP endpoint behind the bearer layer with per-tool scopes, the protected-resource
/// metadata, and the broker's routes.
fn app(auth: &McpAuth, broker: &Broker, resource: &str) -> Result<axum::Router, StartupError> {
    let bearer = todos::require(auth, [])?.operation_scopes(todos::operation_scopes())?;
    let origin = resource.split('/').take(3).collect::<Vec<_>>().join("/");
    let host = origin.rsplit('/').next().unwrap_or_default().to_owned();
    let todos = TodoList::default();
    let tools_broker = broker.clone();
    // The identity provider's API may want a User-Agent (GitHub's refuses calls without one).
    let http = reqwest::Client::builder()
        .user_agent(concat!("todo-broker/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| {
            mcpauth::broker::BrokerError::Config(format!("cannot build the HTTP client: {e}"))
        })?;
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        .with_allowed_hosts([host.as_str(), "localhost", "127.0.0.1"]);
    let mcp = StreamableHttpService::new(
        move || {
            Ok(TodoBroker::new(
                todos.clone(),
                tools_broker.clone(),
                http.clone(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Ok(axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(bearer)
        .merge(auth.resource_metadata_router())
        .merge(broker.router()))
}

#[allow(clippy::print_stdout)] // the example talks to the person who started it
async fn run() -> Result<(), StartupError> {
    let Listening {
        listener,
        bound,
        resource,
    } = listen("/mcp").await?;
    // The broker's issuer is the MCP server's origin.
    let issuer = resource.split('/').take(3).collect::<Vec<_>>().join("/");
    example_support::use_issuer(&issuer);
    // The callback is `<issuer>/callback/<upstream id>`; the development provider (id `dev`)
    // registers it before the broker exists.
    let (upstream, dev) = upstream(&format!("{issuer}/callback/dev")).await?;
    let _ = UPSTREAM.set(upstream);
    let (store, store_shown) = store().await?;
    let mut builder = TODO_BROKER
        .broker()?
        .resource(
            resource.clone(),
            todos::Scope::ALL.map(todos::Scope::as_str),
        )
        .server_name("Todo manager")
        .client_metadata_documents(cimd_options()?)
        .shared_store(store);
    if let Some(keys) = configured_keys()? {
        builder = builder.keys(keys);
    }
    if let Some(lifetime) = access_token_lifetime()? {
        builder = builder.access_token_lifetime(lifetime);
    }
    if let Some(rate) = authorizations_per_second()? {
        builder = builder.authorization_rate(rate);
    }
    let broker = builder.build().await?;
    let auth = McpAuth::resource_server([todos::protected_resource()?])?;
    let app = app(&auth, &broker, &resource)?;

    println!("todo-broker: listening on http://{bound}");
    println!("todo-broker: MCP endpoint {resource} (give this URL to your MCP client)");
    println!("todo-broker: authorization server {}", broker.issuer());
    println!(
        "todo-broker: identity provider callback {}",
        broker.callback_url()
    );
    println!("todo-broker: store {store_shown}");
    if let Some(dev) = &dev {
        println!(
            "todo-broker: development identity provider at {} (development only)",
            dev.issuer()
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(example_support::shutdown_signal())
        .await
        .map_err(StartupError::Serve)
}

fn main() -> ExitCode {
    example_support::main("todo-broker", run())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn redis_urls_are_shown_without_their_password() {
        for (url, shown) in [
            (
                "redis://broker:s3cret@redis.internal:6380/2",
                "redis://broker:***@redis.internal:6380/2",
            ),
            (
                "rediss://:s3cret@redis.internal",
                "rediss://:***@redis.internal",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://user@host/0", "redis://user@host/0"),
            ("redis://host/0?a=b@c", "redis://host/0?a=b@c"),
        ] {
            assert_eq!(without_password(url), shown);
        }
    }
}
