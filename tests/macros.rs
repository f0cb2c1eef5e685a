//! The declarative configuration, used as a user would: servers declared with `auth_server!`,
//! a resource with `#[protected_resource]`, and the generated code's behaviour over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(warnings, missing_docs)]

use std::str::FromStr;

use mcpauth::{auth_server, protected_resource};

auth_server! {
    /// A fixed authorization server, written out in full.
    pub STATIC = metadata {
        issuer = "https://auth.example.com",
        authorization_endpoint = "https://auth.example.com/authorize",
        token_endpoint = "https://auth.example.com/token",
        jwks_uri = "https://auth.example.com/jwks",
        response_types_supported = ["code"],
        code_challenge_methods_supported = ["S256"],
        client_id_metadata_document_supported = true,
    };
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
    pub(crate) FROM_ENV = oauth(env("MCPAUTH_TEST_ISSUER_UNSET"));
}

/// The notes API.
#[protected_resource(
    resource = "https://api.example.com/notes",
    authorization_servers = [STATIC, LOGTO],
    scopes = ["read:notes", "write:notes", "admin:notes"],
    scope_hierarchy = { "admin:notes" => ["read:notes", "write:notes"] },
    resource_name = "Notes",
    resource_documentation = "https://api.example.com/docs",
)]
pub mod notes {}

#[test]
fn the_scope_enum_round_trips() {
    assert_eq!(notes::Scope::ALL.len(), 3);
    for scope in notes::Scope::ALL {
        assert_eq!(notes::Scope::from_str(scope.as_str()).unwrap(), scope);
        assert_eq!(scope.to_string(), scope.as_str());
        let json = serde_json::to_value(scope).unwrap();
        assert_eq!(json, scope.as_str());
        assert_eq!(serde_json::from_value::<notes::Scope>(json).unwrap(), scope);
    }
    assert_eq!(notes::Scope::ReadNotes.as_str(), "read:notes");
    assert_eq!(
        notes::Scope::from(notes::scopes::AdminNotes),
        notes::Scope::AdminNotes
    );
    let error = notes::Scope::from_str("read").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown scope \"read\": expected one of read:notes, write:notes, admin:notes"
    );
}

#[test]
fn constants_and_metadata() {
    assert_eq!(notes::RESOURCE, "https://api.example.com/notes");
    assert_eq!(
        notes::METADATA_PATH,
        "/.well-known/oauth-protected-resource/notes"
    );
    let metadata = serde_json::to_value(notes::metadata().unwrap()).unwrap();
    assert_eq!(
        metadata,
        serde_json::json!({
            "resource": "https://api.example.com/notes",
            "authorization_servers": ["https://auth.example.com", "https://tenant.logto.app/oidc"],
            "scopes_supported": ["read:notes", "write:notes", "admin:notes"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Notes",
            "resource_documentation": "https://api.example.com/docs"
        })
    );
}

#[test]
fn start_up_values_are_checked_at_start_up() {
    use mcpauth::__private::AuthServerDeclaration;
    let error = FROM_ENV::auth_server().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the environment variable MCPAUTH_TEST_ISSUER_UNSET is not set (or empty): set it before starting"
    );
}
