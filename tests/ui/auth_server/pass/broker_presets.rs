//! Declared brokers with provider presets: GitHub (OAuth App, App, Enterprise Server), Google,
//! Entra ID by literal tenant and by one read at start-up.
#![deny(warnings, missing_docs)]

use mcpauth::auth_server;

auth_server! {
    /// GitHub.com, an OAuth App.
    pub GITHUB = broker(
        "https://mcp.example.com",
        upstream = github(),
        client_id = "Ov23liAbCdEfGhIjKlMn",
        client_secret = expr("from-a-vault"),
        scopes = ["read:user"],
    );
    /// A GitHub App on GitHub Enterprise Server.
    pub GITHUB_APP = broker(
        "https://mcp.example.com",
        upstream = github_app(web = "https://ghe.example.com", api = "https://ghe.example.com/api/v3"),
        client_id = "Iv23liAbCdEfGhIjKlMn",
        client_secret = expr("from-a-vault"),
        id = "ghe",
    );
    /// Google.
    pub GOOGLE = broker(
        "https://mcp.example.com",
        upstream = google(),
        client_id = "1234-abc.apps.googleusercontent.com",
        client_secret = expr("from-a-vault"),
    );
    /// Entra ID, any organization, with the scope of our own API.
    pub ENTRA = broker(
        "https://mcp.example.com",
        upstream = entra(tenant = "organizations"),
        client_id = "6731de76-14a6-49ae-97bc-6eba6914391e",
        client_secret = expr("from-a-vault"),
        scopes = ["api://todo-api/todos.read", "api://todo-api/todos.write"],
    );
    /// Entra ID, the tenant read at start-up.
    pub ENTRA_FROM_ENV = broker(
        "https://mcp.example.com",
        upstream = entra(tenant = env("UI_TEST_ENTRA_TENANT_NOT_SET")),
        client_id = "6731de76-14a6-49ae-97bc-6eba6914391e",
        client_secret = expr("from-a-vault"),
    );
    /// Entra ID, the tenant from configuration (a domain: refused at start-up).
    pub ENTRA_CONFIGURED = broker(
        "https://mcp.example.com",
        upstream = entra(tenant = expr(configured_tenant())),
        client_id = "6731de76-14a6-49ae-97bc-6eba6914391e",
        client_secret = expr("from-a-vault"),
    );
}

fn configured_tenant() -> String {
    "contoso.onmicrosoft.com".to_owned()
}

fn main() {
    assert_eq!(GITHUB.upstream().unwrap().id_name(), "github");
    assert_eq!(GITHUB_APP.upstream().unwrap().id_name(), "ghe");
    assert_eq!(GOOGLE.upstream().unwrap().id_name(), "google");
    assert_eq!(ENTRA.upstream().unwrap().id_name(), "entra");
    let _builder = ENTRA.broker().unwrap();
    assert_eq!(
        ENTRA_FROM_ENV.upstream().unwrap_err().to_string(),
        "the environment variable UI_TEST_ENTRA_TENANT_NOT_SET is not set (or empty): set it before starting"
    );
    let error = ENTRA_CONFIGURED.upstream().unwrap_err().to_string();
    assert!(error.contains("is not a tenant id"), "{error}");
}
