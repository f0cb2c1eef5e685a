//! `AuthInfo` as a parameter of an rmcp tool, behind the bearer layer with per-tool scopes, over
//! real HTTP with rmcp's own streamable-HTTP server and client.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, McpAuth, OperationScopes, ProtectedResource, Require, ScopeMarker};
use mcpauth_tests::parse_challenge;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, ServerCapabilities, ServerConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use tokio::net::TcpListener;

/// `mcp:admin` as a type (what `#[protected_resource]` generates for each scope).
struct Admin;

impl ScopeMarker for Admin {
    const SCOPE: &'static str = "mcp:admin";
    const IMPLIED_BY: &'static [&'static str] = &["mcp:root"];
}

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

    /// Says who is calling, from the verified token.
    #[tool(description = "The subject of the caller's access token")]
    async fn whoami(&self, auth: AuthInfo) -> String {
        format!("{} via {}", auth.subject(), auth.client_id().unwrap_or("?"))
    }

    /// Needs a scope of its own.
    #[tool(description = "An administrative operation")]
    async fn purge(&self, auth: AuthInfo) -> String {
        format!("purged by {}", auth.subject())
    }

    /// Checks its scope itself, with a typed parameter (no HTTP-level rule for it).
    #[tool(description = "Another administrative operation")]
    async fn audit(&self, admin: Require<Admin>) -> String {
        format!("audited by {}", admin.auth().subject())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Whoami {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The `Whoami` MCP server over rmcp's streamable HTTP (no SSE keep-alive, for quick tests).
fn whoami_service() -> StreamableHttpService<Whoami, LocalSessionManager> {
    StreamableHttpService::new(
        || Ok(Whoami::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    )
}

/// A listener on an ephemeral loopback port, the resource `http://<it>/mcp`, and an `McpAuth`
/// for it with `scopes`, trusting `dev`.
async fn mcp_resource(dev: &DevAuthServer, scopes: &[&str]) -> (TcpListener, String, McpAuth) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let auth = McpAuth::resource_server([ProtectedResource::new(&resource)
        .authorization_server(dev.config())
        .scopes(scopes.iter().copied())])
    .unwrap();
    (listener, resource, auth)
}

/// The MCP headers of one request the server received.
#[derive(Debug, Clone, PartialEq)]
struct SeenHeaders {
    protocol_version: Option<String>,
    method: Option<String>,
    name: Option<String>,
}

impl SeenHeaders {
    fn of(headers: &http::HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
        };
        Self {
            protocol_version: header("mcp-protocol-version"),
            method: header("mcp-method"),
            name: header("mcp-name"),
        }
    }
}

/// One POST as it crossed the wire, outside the bearer layer: what it declared, and the status
/// and `WWW-Authenticate` challenge it was answered with.
#[derive(Debug, Clone)]
struct Exchange {
    headers: SeenHeaders,
    status: u16,
    challenge: Option<String>,
}

type Exchanges = Arc<std::sync::Mutex<Vec<Exchange>>>;

/// `app` with every POST recorded into `exchanges`.
fn recorded(app: axum::Router, exchanges: &Exchanges) -> axum::Router {
    let exchanges = exchanges.clone();
    app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let exchanges = exchanges.clone();
            async move {
                if request.method() != http::Method::POST {
                    return next.run(request).await;
                }
                let headers = SeenHeaders::of(request.headers());
                let response = next.run(request).await;
                exchanges.lock().unwrap().push(Exchange {
                    headers,
                    status: response.status().as_u16(),
                    challenge: response
                        .headers()
                        .get(http::header::WWW_AUTHENTICATE)
                        .map(|v| v.to_str().unwrap().to_owned()),
                });
                response
            }
        },
    ))
}

/// Asserts that exactly one of `exchanges` was refused, with HTTP 403 and the
/// `insufficient_scope` challenge naming `scope` and the resource's metadata, and that every
/// other one succeeded.
fn assert_one_step_up_challenge(exchanges: &[Exchange], resource: &str, scope: &str) {
    let refused: Vec<&Exchange> = exchanges.iter().filter(|e| e.status >= 300).collect();
    assert_eq!(refused.len(), 1, "{exchanges:?}");
    assert_eq!(refused[0].status, 403, "{exchanges:?}");
    let (scheme, params) = parse_challenge(refused[0].challenge.as_deref().unwrap());
    assert_eq!(scheme, "Bearer");
    let metadata = resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        params,
        BTreeMap::from(
            [
                ("error", "insufficient_scope"),
                (
                    "error_description",
                    "The access token does not grant the scopes this request needs.",
                ),
                ("resource_metadata", metadata.as_str()),
                ("scope", scope),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        )
    );
    assert!(
        exchanges
            .iter()
            .all(|e| e.status >= 300 || e.challenge.is_none()),
        "{exchanges:?}"
    );
}

/// The text of a tool's result.
fn result_text(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(result).unwrap().to_string()
}

/// An rmcp client of `url` sending `token`, after the legacy `initialize` handshake.
async fn connect(url: &str, token: String) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tool_reads_the_verified_identity_and_each_tool_gets_its_scopes() {
    let dev = DevAuthServer::start().await.unwrap();
    let (listener, resource, auth) =
        mcp_resource(&dev, &["mcp:use", "mcp:admin", "mcp:root"]).await;
    let layer = auth
        .bearer_auth(&resource)
        .unwrap()
        .operation_scopes(
            OperationScopes::new()
                .baseline(["mcp:use"])
                .tool("purge", ["mcp:admin"]),
        )
        .unwrap();
    let exchanges = Exchanges::default();
    let app = axum::Router::new()
        .nest_service("/mcp", whoami_service())
        .layer(layer);
    let app = recorded(app, &exchanges).merge(auth.resource_metadata_router());
    let _server = mcpauth_tests::TestServer::serve(listener, app);

    let token = dev
        .token()
        .subject("alice")
        .client_id("inspector")
        .audience(&resource)
        .scopes(["mcp:use"])
        .sign()
        .unwrap();
    let client = connect(&resource, token).await;
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let text = result_text(&result);
    assert!(text.contains("alice via inspector"), "{text}");

    // `purge` needs mcp:admin: the HTTP layer answers 403 before the tool runs, naming every
    // scope the operation needs.
    let refused = client.call_tool(CallToolRequestParams::new("purge")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_one_step_up_challenge(&exchanges.lock().unwrap(), &resource, "mcp:use mcp:admin");
    // `audit` has no HTTP-level rule: the typed parameter refuses the call inside the server.
    let error = client
        .call_tool(CallToolRequestParams::new("audit"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("insufficient scope"), "{error}");
    client.cancel().await.unwrap();

    // A scope the marker lists as implying mcp:admin passes the typed check.
    let root = dev
        .token()
        .subject("root")
        .audience(&resource)
        .scopes(["mcp:use", "mcp:root"])
        .sign()
        .unwrap();
    let client = connect(&resource, root).await;
    let result = client
        .call_tool(CallToolRequestParams::new("audit"))
        .await
        .unwrap();
    assert!(result_text(&result).contains("audited by root"));
    client.cancel().await.unwrap();
}

/// Every protocol version the layer must serve, each with a client that speaks it: the rmcp
/// client offering 2025-06-18 and 2025-11-25 in the `initialize` handshake, and negotiating
/// 2026-07-28 with `server/discover` (whose requests carry `Mcp-Method`/`Mcp-Name` headers, checked
/// against their bodies). For each: the negotiated version is the one asked for, a permitted tool
/// runs, a tool needing a scope the token lacks meets the HTTP 403, and the version each request
/// declared is asserted as the server saw it.
#[tokio::test]
async fn clients_of_every_protocol_version_pass_the_per_operation_check() {
    use rmcp::ClientServiceExt;
    use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
    use rmcp::service::ClientLifecycleMode;

    let dev = DevAuthServer::start().await.unwrap();
    let (listener, resource, auth) = mcp_resource(&dev, &["mcp:use", "mcp:admin"]).await;
    let layer = auth
        .bearer_auth(&resource)
        .unwrap()
        .operation_scopes(OperationScopes::new().tool("purge", ["mcp:admin"]))
        .unwrap();
    let exchanges = Exchanges::default();
    let app = axum::Router::new()
        .nest_service("/mcp", whoami_service())
        .layer(layer);
    let _server = mcpauth_tests::TestServer::serve(listener, recorded(app, &exchanges));

    for version in [
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ] {
        exchanges.lock().unwrap().clear();
        let token = dev
            .token()
            .subject("carol")
            .audience(&resource)
            .sign()
            .unwrap();
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(resource.clone()).auth_header(token),
        );
        let modern = version == ProtocolVersion::V_2026_07_28;
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpauth-tests", "0.1.0"),
        );
        let client = if modern {
            info.serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version.clone()],
                },
            )
            .await
            .unwrap()
        } else {
            let info = info.with_protocol_version(version.clone());
            let client = info.serve(transport).await.unwrap();
            let negotiated = client.peer_info().unwrap().protocol_version.clone();
            assert_eq!(
                negotiated, version,
                "negotiated in the initialize handshake"
            );
            client
        };
        let result = client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap();
        assert!(result_text(&result).contains("carol"), "{version}");
        let refused = client.call_tool(CallToolRequestParams::new("purge")).await;
        assert!(refused.is_err(), "{version}: {refused:?}");
        client.cancel().await.unwrap();

        let exchanges = exchanges.lock().unwrap().clone();
        assert_one_step_up_challenge(&exchanges, &resource, "mcp:admin");
        let seen: Vec<&SeenHeaders> = exchanges.iter().map(|e| &e.headers).collect();
        let declaring = seen
            .iter()
            .filter(|h| h.protocol_version.as_deref() == Some(version.as_str()))
            .count();
        assert!(
            declaring >= 2,
            "{version}: requests declaring the version: {seen:?}"
        );
        // The 2026-07-28 requests name their operation in headers; the older ones do not.
        let named = |tool: &str| SeenHeaders {
            protocol_version: Some(version.to_string()),
            method: modern.then(|| "tools/call".to_owned()),
            name: modern.then(|| tool.to_owned()),
        };
        assert!(seen.contains(&&named("whoami")), "{version}: {seen:?}");
        let refused = exchanges.iter().find(|e| e.status == 403).unwrap();
        assert_eq!(refused.headers, named("purge"), "{version}: {seen:?}");
    }
}
