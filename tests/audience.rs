//! The audience rule over real HTTP: two protected resources on one origin, tokens minted by the
//! development authorization server with audiences that a URL parser would rewrite into the
//! other resource's (or its own) identifier. Only the differences MCP allows — scheme and host
//! case, an explicit default port, one trailing `/` — make an audience match.

use axum::routing::get;
use mcpauth::dev::DevAuthServer;
use mcpauth::{AuthInfo, McpAuth, ProtectedResource};
use std::collections::BTreeMap;

use mcpauth_tests::{TestServer, parse_challenge};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

struct TwoResources {
    server: TestServer,
    dev: DevAuthServer,
    /// `http://127.0.0.1:<port>`.
    origin: String,
    port: u16,
}

impl TwoResources {
    async fn start() -> Self {
        let dev = DevAuthServer::start().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let origin = format!("http://127.0.0.1:{port}");
        let public = format!("{origin}/public");
        let admin = format!("{origin}/admin");
        let auth = McpAuth::resource_server([
            ProtectedResource::new(&public).authorization_server(dev.config()),
            ProtectedResource::new(&admin).authorization_server(dev.config()),
        ])
        .unwrap();
        let whoami = || get(|auth: AuthInfo| async move { auth.subject().to_owned() });
        let app = axum::Router::new()
            .route("/public", whoami())
            .route_layer(auth.bearer_auth(&public).unwrap())
            .merge(
                axum::Router::new()
                    .route("/admin", whoami())
                    .route_layer(auth.bearer_auth(&admin).unwrap()),
            );
        Self {
            server: TestServer::serve(listener, app),
            dev,
            origin,
            port,
        }
    }

    /// The status, challenge and body `path` answers to a token whose `aud` is `audience`.
    async fn answer(&self, path: &str, audience: &str) -> (StatusCode, Option<String>, Value) {
        let token = self.dev.token().audience(audience).sign().unwrap();
        let response = reqwest::Client::new()
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, challenge, body)
    }

    async fn assert_refused(&self, path: &str, audience: &str) {
        let (status, challenge, body) = self.answer(path, audience).await;
        let case = format!("aud {audience:?} at {path}");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"], "invalid_token", "{case}");
        let (scheme, params) = parse_challenge(&challenge.unwrap_or_default());
        assert_eq!(scheme, "Bearer", "{case}");
        let metadata = format!("{}/.well-known/oauth-protected-resource{path}", self.origin);
        let expected = BTreeMap::from([
            ("error".to_owned(), "invalid_token".to_owned()),
            (
                "error_description".to_owned(),
                "The access token is invalid.".to_owned(),
            ),
            ("resource_metadata".to_owned(), metadata),
        ]);
        assert_eq!(params, expected, "{case}");
    }

    async fn assert_accepted(&self, path: &str, audience: &str) {
        let (status, challenge, body) = self.answer(path, audience).await;
        assert_eq!(status, StatusCode::OK, "aud {audience:?} at {path}: {body}");
        assert_eq!(challenge, None);
        assert_eq!(body, "dev-user", "the handler saw the token's subject");
    }
}

/// Each spelling in `templates` with `{o}` replaced by the origin's authority part and `{p}` by
/// the port, and its variants in upper-case scheme and host and with a trailing slash.
fn with_allowed_variants(templates: &[&str], port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for template in templates {
        let written = template
            .replace("{o}", &format!("127.0.0.1:{port}"))
            .replace("{p}", &port.to_string());
        out.push(written.clone());
        out.push(format!("{written}/"));
        out.push(written.replacen("http://", "HTTP://", 1));
        out.push(format!("{}/", written.replacen("http://", "hTTp://", 1)));
    }
    out
}

#[tokio::test]
async fn audiences_that_a_url_parser_would_rewrite_are_refused_at_every_resource() {
    let app = TwoResources::start().await;
    let port = app.port;
    // Spellings that collapse to `/admin` under WHATWG parsing.
    let rewritten_to_admin = with_allowed_variants(
        &[
            "http://{o}/public/../admin",
            "http://{o}/public/%2e%2e/admin",
            "http://{o}/public/%2E%2e/admin",
            "http://{o}/public/.%2e/admin",
            "http://{o}/public/./../admin",
            "http://{o}/./admin",
            "http://{o}/admin/.",
            "http://{o}/admin/x/..",
            "http://{o}/ad\tmin",
            "http://{o}/admin\n",
            "http://{o}/ad\rmin",
            " http://{o}/admin",
            "http://{o}\\admin",
            "http://{o}/public\\..\\admin",
            "http://user@{o}/admin",
            "http://user:pw@{o}/admin",
            "http://{o}/admin#",
            "http://{o}/admin#x",
            "http://2130706433:{p}/admin",
            "http://0x7f.1:{p}/admin",
            "http://0x7F000001:{p}/admin",
            "http://127.1:{p}/admin",
            "http://0177.0.0.1:{p}/admin",
            "http://127.0.0.01:{p}/admin",
            "http://127.0.0.1:0{p}/admin",
            "http://１２７.0.0.1:{p}/admin",
        ],
        port,
    );
    for audience in &rewritten_to_admin {
        // Never at the resource it was written to look like…
        app.assert_refused("/admin", audience).await;
        // …nor at the one whose path it starts with.
        app.assert_refused("/public", audience).await;
    }

    // The differences MCP allows are accepted, at the right resource only.
    let admin = format!("{}/admin", app.origin);
    for allowed in with_allowed_variants(&["http://{o}/admin"], port) {
        app.assert_accepted("/admin", &allowed).await;
        app.assert_refused("/public", &allowed).await;
    }
    app.assert_accepted("/admin", &format!("http://127.0.0.1:{port}/admin"))
        .await;
    app.assert_refused("/admin", &format!("{admin}//")).await;
    app.assert_refused("/admin", &format!("{}/ADMIN", app.origin))
        .await;
    app.assert_refused("/admin", &format!("{}/admin/x", app.origin))
        .await;
    app.assert_refused("/admin", &format!("{}/adm%69n", app.origin))
        .await;
}

#[tokio::test]
async fn non_canonical_resource_identifiers_are_refused_at_configuration() {
    for written in [
        "https://api.example.com/public/../admin",
        "https://api.example.com/public/%2e%2e/admin",
        "http://2130706433/admin",
        "http://127.1:3000/admin",
        "https://bücher.example/admin",
        "https://api.example.com./admin",
    ] {
        let error = McpAuth::resource_server([ProtectedResource::new(written)])
            .err()
            .unwrap_or_else(|| panic!("{written:?} was accepted"));
        assert!(
            error.to_string().contains("canonical"),
            "{written:?}: {error}"
        );
    }
}
