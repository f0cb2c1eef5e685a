//! `AuthInfo` as a parameter of an rmcp tool, behind the bearer layer with per-tool scopes, over
//! real HTTP with rmcp's own streamable-HTTP server and client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, McpAuth, OperationScopes, ProtectedResource, Require, ScopeMarker};
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
    let service = whoami_service();
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(layer)
        .merge(auth.resource_metadata_router().unwrap());
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
    let text = serde_json::to_value(&result).unwrap();
    assert!(text.to_string().contains("alice via inspector"), "{text}");

    // `purge` needs mcp:admin: the HTTP layer answers 403 before the tool runs.
    let refused = client.call_tool(CallToolRequestParams::new("purge")).await;
    let error = refused.unwrap_err().to_string();
    assert!(
        error.contains("403") || error.to_lowercase().contains("insufficient"),
        "{error}"
    );
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
    assert!(
        serde_json::to_value(&result)
            .unwrap()
            .to_string()
            .contains("audited by root")
    );
    client.cancel().await.unwrap();
}

/// The MCP headers of one request the server received.
#[derive(Debug, Clone, PartialEq)]
struct SeenHeaders {
    protocol_version: Option<String>,
    method: Option<String>,
    name: Option<String>,
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
    let service = whoami_service();
    // Record the MCP headers of every POST, outside the bearer layer.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<SeenHeaders>::new()));
    let record = {
        let seen = seen.clone();
        axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let seen = seen.clone();
                async move {
                    if request.method() == http::Method::POST {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap_or("?").to_owned())
                        };
                        seen.lock().unwrap().push(SeenHeaders {
                            protocol_version: header("mcp-protocol-version"),
                            method: header("mcp-method"),
                            name: header("mcp-name"),
                        });
                    }
                    next.run(request).await
                }
            },
        )
    };
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(layer)
        .layer(record);
    let _server = mcpauth_tests::TestServer::serve(listener, app);

    for version in [
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ] {
        seen.lock().unwrap().clear();
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
        assert!(
            serde_json::to_value(&result)
                .unwrap()
                .to_string()
                .contains("carol"),
            "{version}"
        );
        let refused = client
            .call_tool(CallToolRequestParams::new("purge"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("403") || refused.to_lowercase().contains("insufficient"),
            "{version}: {refused}"
        );
        client.cancel().await.unwrap();

        let seen = seen.lock().unwrap().clone();
        let calls: Vec<&SeenHeaders> = seen
            .iter()
            .filter(|h| h.protocol_version.as_deref() == Some(version.as_str()))
            .collect();
        assert!(
            calls.len() >= 2,
            "{version}: requests declaring the version: {seen:?}"
        );
        // The 2026-07-28 requests name their operation in headers; the older ones do not.
        let named = |tool: &str| SeenHeaders {
            protocol_version: Some(version.to_string()),
            method: modern.then(|| "tools/call".to_owned()),
            name: modern.then(|| tool.to_owned()),
        };
        assert!(seen.contains(&named("whoami")), "{version}: {seen:?}");
        assert!(seen.contains(&named("purge")), "{version}: {seen:?}");
    }
}
