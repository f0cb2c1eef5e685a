//! Every kind of declaration, start-up values included.
#![deny(warnings, missing_docs)]

use mcpauth::auth_server;

fn fix(mut metadata: serde_json::Value) -> serde_json::Value {
    metadata["code_challenge_methods_supported"] = serde_json::json!(["S256"]);
    metadata
}

fn issuer_from_config() -> String {
    "https://config.example.com".to_owned()
}

auth_server! {
    /// Logto.
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
    pub KEYCLOAK = oauth("http://localhost:8080/realms/mcp", transpile = fix);
    pub PROBED = discover("https://auth.example.com/tenant1");
    pub AT_URL = well_known("https://a.example/meta.json", issuer = "https://a.example", type = oauth);
    pub FROM_ENV = oidc(env("UI_TEST_ISSUER_NOT_SET"));
    pub TYPE_FROM_ENV = issuer("https://typed.example", type = env("UI_TEST_TYPE_NOT_SET"));
    pub FROM_CODE = oidc(expr(issuer_from_config()));
    pub BAD_FROM_CODE = oidc(expr("http://not-loopback.example"));
    pub FIXED = metadata {
        type = oidc,
        issuer = "https://auth.example.com",
        authorization_endpoint = "https://auth.example.com/authorize",
        token_endpoint = "https://auth.example.com/token",
        jwks_uri = "https://auth.example.com/jwks",
        registration_endpoint = "https://auth.example.com/register",
        response_types_supported = ["code"],
        grant_types_supported = ["authorization_code", "refresh_token"],
        code_challenge_methods_supported = ["S256"],
        client_id_metadata_document_supported = true,
    };
}

fn main() {
    assert_eq!(LOGTO.auth_server().unwrap().issuer(), "https://tenant.logto.app/oidc");
    assert_eq!(KEYCLOAK.auth_server().unwrap().issuer(), "http://localhost:8080/realms/mcp");
    assert_eq!(PROBED.auth_server().unwrap().issuer(), "https://auth.example.com/tenant1");
    assert_eq!(AT_URL.auth_server().unwrap().issuer(), "https://a.example");
    assert_eq!(FROM_CODE.auth_server().unwrap().issuer(), "https://config.example.com");
    let fixed = FIXED.auth_server().unwrap();
    assert_eq!(fixed.config().unwrap().metadata.jwks_uri.as_deref(), Some("https://auth.example.com/jwks"));
    // Start-up values are checked at start-up, with the compile-time rules' words.
    assert_eq!(
        FROM_ENV.auth_server().unwrap_err().to_string(),
        "the environment variable UI_TEST_ISSUER_NOT_SET is not set (or empty): set it before starting"
    );
    assert_eq!(
        TYPE_FROM_ENV.auth_server().unwrap_err().to_string(),
        "the environment variable UI_TEST_TYPE_NOT_SET is not set (or empty): set it before starting"
    );
    assert_eq!(
        BAD_FROM_CODE.auth_server().unwrap_err().to_string(),
        "invalid issuer: `http://not-loopback.example` uses http on a non-loopback host: use https (http is only allowed for localhost, 127.0.0.0/8 and ::1)"
    );
}
