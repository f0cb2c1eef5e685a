//! Declared brokers: an OpenID Connect upstream, a plain OAuth one, one given whole at start-up.
#![deny(warnings, missing_docs)]

use mcpauth::auth_server;
use mcpauth::broker::Upstream;

fn configured_upstream() -> Upstream {
    Upstream::oidc("https://accounts.example.com", "from-code").id("configured")
}

auth_server! {
    /// Google behind the broker.
    pub GOOGLE = broker(
        "https://mcp.example.com",
        upstream = oidc("https://accounts.google.com"),
        client_id = "client-id",
        client_secret = env("UI_TEST_SECRET_NOT_SET"),
        scopes = ["openid", "email"],
        id = "google",
    );
    pub GITHUB = broker(
        "http://127.0.0.1:3001",
        upstream = oauth(
            authorize = "https://github.com/login/oauth/authorize",
            token = "https://github.com/login/oauth/access_token",
            userinfo = "https://api.github.com/user",
        ),
        client_id = env("UI_TEST_CLIENT_ID_NOT_SET"),
        user_id_member = "id",
    );
    pub CONFIGURED = broker(expr("https://config.example.com".to_owned()), upstream = expr(configured_upstream()));
}

fn main() {
    assert_eq!(GOOGLE.auth_server().unwrap().issuer(), "https://mcp.example.com");
    assert_eq!(GITHUB.auth_server().unwrap().issuer(), "http://127.0.0.1:3001");
    assert_eq!(
        GOOGLE.upstream().unwrap_err().to_string(),
        "the environment variable UI_TEST_SECRET_NOT_SET is not set (or empty): set it before starting"
    );
    assert_eq!(
        GITHUB.broker().unwrap_err().to_string(),
        "the environment variable UI_TEST_CLIENT_ID_NOT_SET is not set (or empty): set it before starting"
    );
    assert_eq!(CONFIGURED.upstream().unwrap().id_name(), "configured");
    let _builder = CONFIGURED.broker().unwrap();
}
