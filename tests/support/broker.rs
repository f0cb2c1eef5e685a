//! A broker in front of a development identity provider, on real loopback HTTP, and a driver
//! that plays an MCP client and its user's browser step by step (no redirect followed
//! implicitly, cookies carried by hand) so tests can stop, replay or tamper at any step.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth::broker::{Broker, BrokerBuilder, BrokerStore, MemoryStore, Upstream, UpstreamToken};
use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, McpAuth, OperationScopes, ProtectedResource};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::TestServer;

/// The scopes of the test resource.
pub const SCOPES: [&str; 3] = ["read:todos", "create:todos", "delete:todos"];
/// The upstream client the broker uses at the development provider.
pub const UPSTREAM_CLIENT: &str = "broker-upstream";
/// Its secret.
pub const UPSTREAM_SECRET: &str = "upstream-secret-0123456789";

/// An MCP server whose authorization server is the broker.
#[derive(Debug)]
pub struct BrokerFixture {
    /// The MCP server (broker routes, metadata, `/mcp`).
    pub server: TestServer,
    /// The development identity provider (started even when another provider is used).
    pub upstream: DevAuthServer,
    /// The origin the browser is sent to for sign-in.
    pub upstream_origin: String,
    /// The broker.
    pub broker: Broker,
    /// The protected resource (`<origin>/mcp`).
    pub resource: String,
    /// The broker's issuer (the origin).
    pub issuer: String,
    /// The HTTP client (never follows redirects).
    pub http: reqwest::Client,
}

/// Configures the broker further.
pub type Configure = Box<dyn FnOnce(BrokerBuilder) -> BrokerBuilder + Send>;

/// How to build a fixture.
pub struct FixtureOptions {
    /// The broker's store (default: in memory).
    pub store: Arc<dyn BrokerStore>,
    /// Configures the broker further.
    pub configure: Configure,
    /// The broker's view of the identity provider (default: the development provider by
    /// discovery); given the provider and the broker's callback.
    pub upstream_config: fn(&DevAuthServer) -> Upstream,
    /// Listen here (to restart on the same address); default an ephemeral port.
    pub listener: Option<TcpListener>,
    /// Reuse this identity provider (restarts).
    pub upstream: Option<DevAuthServer>,
    /// The issuer's path (`""`: the origin).
    pub issuer_path: &'static str,
    /// Another identity provider than the development one (a preset's stand-in): used instead
    /// of `upstream_config`.
    pub custom_upstream: Option<CustomUpstream>,
}

/// A broker's view of an identity provider other than the development one.
#[derive(Debug)]
pub struct CustomUpstream {
    /// The provider's configuration.
    pub upstream: Upstream,
    /// The origin its authorization endpoint is on (where the approval redirects).
    pub origin: String,
}

impl std::fmt::Debug for FixtureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureOptions").finish_non_exhaustive()
    }
}

/// The development provider as an OpenID Connect upstream, found by discovery.
pub fn dev_upstream(upstream: &DevAuthServer) -> Upstream {
    Upstream::oidc(upstream.issuer(), UPSTREAM_CLIENT)
        .id("dev")
        .client_secret(UPSTREAM_SECRET)
        .scopes(["openid", "email", "offline_access"])
}

impl FixtureOptions {
    /// Options that configure the broker with `configure`.
    pub fn configured(
        configure: impl FnOnce(BrokerBuilder) -> BrokerBuilder + Send + 'static,
    ) -> Self {
        Self {
            configure: Box::new(configure),
            ..Self::default()
        }
    }
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            configure: Box::new(|builder| builder),
            upstream_config: dev_upstream,
            listener: None,
            upstream: None,
            issuer_path: "",
            custom_upstream: None,
        }
    }
}

/// A listener for a broker on an ephemeral loopback port, and its issuer: known before an
/// identity provider's stand-in starts, which needs the broker's callback.
pub async fn bind_issuer() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    (listener, issuer)
}

/// A client that does not follow redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Echoes who called and with which scopes; `tools/call` of `create_todo` needs `create:todos`
/// at the bearer layer.
async fn mcp(auth: AuthInfo) -> Json<Value> {
    Json(json!({
        "subject": auth.subject(),
        "client_id": auth.client_id(),
        "scopes": auth.scopes(),
        "issuer": auth.issuer(),
    }))
}

/// The state of `/upstream`: the broker, and the development provider's userinfo endpoint
/// when it is the upstream.
#[derive(Clone)]
struct UpstreamRoute {
    broker: Broker,
    userinfo: Option<String>,
    http: reqwest::Client,
}

impl FromRef<UpstreamRoute> for Broker {
    fn from_ref(route: &UpstreamRoute) -> Self {
        route.broker.clone()
    }
}

/// What a handler holding an upstream token shows of it: never the token, a fingerprint.
pub fn fingerprint(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

/// A tool that calls the provider for the user: the upstream token's fingerprint, expiry and
/// scopes, and (at the development provider) what its userinfo endpoint answers to it.
async fn upstream_tool(State(route): State<UpstreamRoute>, token: UpstreamToken) -> Json<Value> {
    let userinfo = match &route.userinfo {
        Some(url) => {
            let response = route
                .http
                .get(url)
                .bearer_auth(token.expose_secret())
                .send()
                .await
                .unwrap();
            json!({
                "status": response.status().as_u16(),
                "body": response.json::<Value>().await.unwrap_or(Value::Null),
            })
        }
        None => Value::Null,
    };
    let expires_at = token.expires_at().map(|at| {
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    });
    Json(json!({
        "fingerprint": fingerprint(token.expose_secret()),
        "expires_at": expires_at,
        "scopes": token.scopes(),
        "userinfo": userinfo,
    }))
}

impl BrokerFixture {
    /// A broker with default options.
    pub async fn start() -> Self {
        Self::start_with(FixtureOptions::default()).await
    }

    /// A broker on `listener` in front of `upstream` (a stand-in whose authorization endpoint
    /// is on `origin`).
    pub async fn at(listener: TcpListener, upstream: Upstream, origin: &str) -> Self {
        Self::start_with(FixtureOptions {
            listener: Some(listener),
            custom_upstream: Some(CustomUpstream {
                upstream,
                origin: origin.to_owned(),
            }),
            ..FixtureOptions::default()
        })
        .await
    }

    /// A broker with `options`.
    pub async fn start_with(options: FixtureOptions) -> Self {
        let listener = match options.listener {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let origin = format!("http://{addr}");
        let issuer = format!("{origin}{}", options.issuer_path);
        let resource = format!("{origin}/mcp");
        let callback = format!("{issuer}/callback/dev");
        let upstream = match options.upstream {
            Some(upstream) => upstream,
            None => DevAuthServer::builder()
                .upstream_client(UPSTREAM_CLIENT, UPSTREAM_SECRET)
                .upstream_redirect_uri(&callback)
                .start()
                .await
                .unwrap(),
        };
        let (upstream_config, upstream_origin, userinfo) = match options.custom_upstream {
            Some(custom) => (custom.upstream, custom.origin, None),
            None => (
                (options.upstream_config)(&upstream),
                upstream.issuer().to_owned(),
                upstream.metadata().userinfo_endpoint.clone(),
            ),
        };
        let builder = Broker::builder(issuer.clone())
            .resource(resource.clone(), SCOPES)
            .upstream(upstream_config)
            .server_name("Test todos")
            .shared_store(options.store);
        let broker = (options.configure)(builder).build().await.unwrap();
        let auth = McpAuth::builder()
            .protected_resource(
                ProtectedResource::new(resource.clone())
                    .authorization_server(broker.auth_server())
                    .scopes(SCOPES),
            )
            .build()
            .unwrap();
        let operations = OperationScopes::new()
            .advertise(["read:todos"])
            .tool("create_todo", ["create:todos"]);
        let bearer = auth
            .bearer_auth(&resource)
            .unwrap()
            .operation_scopes(operations)
            .unwrap()
            // Same process, same clock: expiry is checked exactly, so tests can wait it out.
            .leeway(std::time::Duration::ZERO);
        let upstream_route = axum::Router::new()
            .route("/upstream", get(upstream_tool))
            .with_state(UpstreamRoute {
                broker: broker.clone(),
                userinfo,
                http: reqwest::Client::new(),
            })
            .layer(
                auth.bearer_auth(&resource)
                    .unwrap()
                    .leeway(std::time::Duration::ZERO),
            );
        let app = axum::Router::new()
            .route("/mcp", post(mcp))
            .layer(bearer)
            .merge(upstream_route)
            .merge(auth.resource_metadata_router())
            .merge(broker.router());
        let server = TestServer::serve(listener, app);
        Self {
            server,
            upstream,
            upstream_origin,
            broker,
            resource,
            issuer,
            http: http_client(),
        }
    }

    /// Stops the broker and its MCP server, and gives back what a restart on the same address
    /// needs: the listener, bound again, and the upstream (still running).
    pub async fn stop(self) -> (TcpListener, DevAuthServer) {
        let addr = self.server.addr;
        let Self {
            server,
            upstream,
            broker,
            ..
        } = self;
        drop(server);
        drop(broker);
        // A store's file is released when its last handle goes.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        (TcpListener::bind(addr).await.unwrap(), upstream)
    }

    /// GETs `url` and reads its JSON body, which must come with 200.
    pub async fn get_json(&self, url: &str) -> Value {
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        response.json().await.unwrap()
    }

    /// `<issuer>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The origin + `path`.
    pub fn origin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// Registers a public client (DCR) with these redirect URIs; returns its id.
    pub async fn register(&self, redirect_uris: &[&str]) -> String {
        let response = self
            .http
            .post(self.url("/register"))
            .json(&json!({
                "client_name": "Test client",
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": "none",
                "application_type": "native",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// Calls `/mcp` with `token` and a `tools/call` of `tool`.
    pub async fn call_tool(&self, token: &str, tool: &str) -> reqwest::Response {
        self.http
            .post(self.origin_url("/mcp"))
            .bearer_auth(token)
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": { "name": tool, "arguments": {} }
            }))
            .send()
            .await
            .unwrap()
    }

    /// `GET /upstream` with `token`: a tool's view of the caller's upstream token (see
    /// [`fingerprint`]); the status, `WWW-Authenticate` and `Retry-After`, and the body.
    pub async fn upstream_tool(&self, token: &str) -> UpstreamAnswer {
        let response = self
            .http
            .get(self.origin_url("/upstream"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        UpstreamAnswer {
            status: response.status(),
            challenge: header(reqwest::header::WWW_AUTHENTICATE),
            retry_after: header(reqwest::header::RETRY_AFTER),
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    /// A POST to the token endpoint with `form`.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "token answers are never cached"
        );
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// What `/upstream` answered.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    /// The status.
    pub status: StatusCode,
    /// `WWW-Authenticate`, if any.
    pub challenge: Option<String>,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// The JSON body (`Null` if none).
    pub body: Value,
}

impl UpstreamAnswer {
    /// Asserts the answer of a tool whose caller's sign-in has ended: 401, a Bearer challenge
    /// with `error="invalid_token"` and the body's description, no `Retry-After`.
    pub fn assert_sign_in_ended(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:?}", self.body);
        assert_eq!(self.body["error"], "invalid_token", "{:?}", self.body);
        let description = self.body["error_description"].as_str().unwrap();
        let (scheme, params) = crate::parse_challenge(self.challenge.as_deref().unwrap());
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["error"], "invalid_token");
        assert_eq!(params["error_description"], description);
        assert_eq!(self.retry_after, None);
    }

    /// Asserts a retryable refusal: 503 `temporarily_unavailable`, `Retry-After: 5`, no
    /// challenge.
    pub fn assert_unavailable(&self) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            self.body
        );
        assert_eq!(
            self.body["error"], "temporarily_unavailable",
            "{:?}",
            self.body
        );
        assert_eq!(self.retry_after.as_deref(), Some("5"));
        assert_eq!(self.challenge, None);
    }
}

/// A JWT's header or payload (`part` 0 or 1), decoded, not verified: what the broker wrote.
pub fn jwt_part(jwt: &str, part: usize) -> Value {
    let encoded = jwt.split('.').nth(part).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

/// A PKCE pair: (verifier, S256 challenge), computed here independently of the broker.
pub fn pkce() -> (String, String) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let verifier = format!("verifier-{n:020}-0123456789abcdefghijklmnopqrstuvwxyz");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// The query parameters of a URL.
pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A browser's cookie jar, by hand: name → value, from `Set-Cookie` answers.
#[derive(Debug, Default, Clone)]
pub struct Jar(pub HashMap<String, String>);

impl Jar {
    /// Keeps the cookies a response sets (and drops those it deletes).
    pub fn absorb(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let text = header.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// The `Cookie` header value.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The authorization request a client sends.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri` (`None`: not sent).
    pub redirect_uri: Option<String>,
    /// `code_challenge`.
    pub challenge: Option<String>,
    /// `code_challenge_method`.
    pub method: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// More parameters.
    pub extra: Vec<(String, String)>,
}

impl AuthorizeRequest {
    /// A well-formed request.
    pub fn new(client_id: &str, redirect_uri: &str, challenge: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: Some(redirect_uri.to_owned()),
            challenge: Some(challenge.to_owned()),
            method: Some("S256".into()),
            scope: Some("read:todos".into()),
            resource: None,
            state: Some("client-state-1".into()),
            extra: Vec::new(),
        }
    }

    /// The URL at `issuer`.
    pub fn url(&self, issuer: &str) -> String {
        let mut url = url::Url::parse(&format!("{issuer}/authorize")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &self.client_id);
            for (name, value) in [
                ("redirect_uri", &self.redirect_uri),
                ("code_challenge", &self.challenge),
                ("code_challenge_method", &self.method),
                ("scope", &self.scope),
                ("resource", &self.resource),
                ("state", &self.state),
            ] {
                if let Some(value) = value {
                    q.append_pair(name, value);
                }
            }
            for (name, value) in &self.extra {
                q.append_pair(name, value);
            }
        }
        url.to_string()
    }
}

/// The consent page as a browser got it.
#[derive(Debug, Clone)]
pub struct ConsentPage {
    /// The page URL.
    pub url: String,
    /// The HTML.
    pub html: String,
    /// Hidden inputs of the form.
    pub hidden: HashMap<String, String>,
}

/// Reads `name="…" value="…"` hidden inputs (the page's own markup, escaped values).
pub fn hidden_inputs(html: &str) -> HashMap<String, String> {
    let mut inputs = HashMap::new();
    for part in html.split("<input type=\"hidden\" ").skip(1) {
        let name = part
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        inputs.insert(
            name.to_owned(),
            value.replace("&quot;", "\"").replace("&amp;", "&"),
        );
    }
    inputs
}

impl BrokerFixture {
    /// `GET /authorize`: must redirect to the consent page; returns it (loaded with `jar`).
    pub async fn open_consent(&self, request: &AuthorizeRequest, jar: &mut Jar) -> ConsentPage {
        let response = self
            .http
            .get(request.url(&self.issuer))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "authorize redirects to consent"
        );
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        let path = self.issuer.trim_start_matches(&self.origin_url(""));
        assert!(
            location.starts_with(&format!("{path}/consent?")),
            "{location}"
        );
        self.load_consent(&self.origin_url(&location), jar).await
    }

    /// Loads a consent page URL with `jar`.
    pub async fn load_consent(&self, url: &str, jar: &mut Jar) -> ConsentPage {
        let response = self
            .http
            .get(url)
            .header(COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        jar.absorb(&response);
        let html = response.text().await.unwrap();
        ConsentPage {
            url: url.to_owned(),
            hidden: hidden_inputs(&html),
            html,
        }
    }

    /// Posts the consent form with `decision`; returns the raw answer.
    pub async fn answer_consent(
        &self,
        page: &ConsentPage,
        decision: &str,
        jar: &mut Jar,
    ) -> reqwest::Response {
        let mut form: Vec<(String, String)> = page
            .hidden
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        form.push(("decision".into(), decision.into()));
        let response = self
            .http
            .post(self.url("/consent"))
            .header(COOKIE, jar.header())
            .form(&form)
            .send()
            .await
            .unwrap();
        jar.absorb(&response);
        response
    }

    /// Follows an approval's 303 through the identity provider (automatic sign-in) back to the
    /// broker's callback; returns the callback URL the browser would open.
    pub async fn through_upstream(&self, approval: reqwest::Response) -> String {
        assert_eq!(
            approval.status(),
            StatusCode::SEE_OTHER,
            "approval redirects upstream"
        );
        let upstream_url = approval.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            upstream_url.starts_with(&self.upstream_origin),
            "{upstream_url}"
        );
        let params = query(&upstream_url);
        assert!(
            !params.contains_key("resource"),
            "the MCP resource is never forwarded"
        );
        let answer = self.http.get(&upstream_url).send().await.unwrap();
        assert!(answer.status().is_redirection(), "{}", answer.status());
        answer.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    /// Opens the callback URL with `jar`; returns the raw answer.
    pub async fn open_callback(&self, callback: &str, jar: &mut Jar) -> reqwest::Response {
        let response = self
            .http
            .get(callback)
            .header(COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        jar.absorb(&response);
        response
    }

    /// The whole browser part: authorize, consent approved, provider, callback. Returns the
    /// client redirect's query (`code`, `state`, `iss`).
    pub async fn authorize_code(&self, request: &AuthorizeRequest) -> HashMap<String, String> {
        let mut jar = Jar::default();
        let page = self.open_consent(request, &mut jar).await;
        let approval = self.answer_consent(&page, "approve", &mut jar).await;
        let callback = self.through_upstream(approval).await;
        let response = self.open_callback(&callback, &mut jar).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        let expected = request.redirect_uri.clone().unwrap_or_default();
        assert!(location.starts_with(&expected), "{location}");
        query(&location)
    }

    /// A `refresh_token` grant with `refresh_token` (a JSON string, as the token answer has it).
    pub async fn refresh(&self, client_id: &str, refresh_token: &Value) -> (StatusCode, Value) {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token.as_str().unwrap()),
        ])
        .await
    }

    /// Registers a client, signs in, redeems the code: (client id, token answer).
    pub async fn login(&self, scope: &str) -> (String, Value) {
        let redirect = "http://127.0.0.1:9/callback";
        let client_id = self.register(&[redirect]).await;
        let (verifier, challenge) = pkce();
        let mut request = AuthorizeRequest::new(&client_id, redirect, &challenge);
        request.scope = Some(scope.to_owned());
        let answer = self.authorize_code(&request).await;
        let (status, tokens) = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &answer["code"]),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        (client_id, tokens)
    }

    /// The `AuthInfo` the bearer layer would make of one of the broker's access tokens (its
    /// claims read, not verified): for asking the broker directly, as a tool holding it does.
    pub fn auth_info(&self, jwt: &str) -> AuthInfo {
        let Value::Object(claims) = jwt_part(jwt, 1) else {
            panic!("an access token whose claims are not an object: {jwt}");
        };
        AuthInfo::builder(jwt, self.issuer.clone(), claims["sub"].as_str().unwrap())
            .client_id(claims["client_id"].as_str().unwrap())
            .claims(claims)
            .build()
    }
}
