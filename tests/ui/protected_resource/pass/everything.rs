//! Every key, in a nested module, under `#![deny(warnings, missing_docs)]`, next to user items
//! with the names generated code uses.
#![deny(warnings, missing_docs)]

use std::str::FromStr;

/// A user type named like the generated enum, outside the module.
#[allow(dead_code)]
pub struct Scope;

mcpauth::auth_server! {
    /// The issuer.
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

/// Where the servers live.
pub mod api {
    /// The notes resource.
    #[mcpauth::protected_resource(
        resource = "https://api.example.com/notes/",
        authorization_servers = [crate::LOGTO],
        scopes = ["read:notes", "write:notes", "admin:notes", "2fa"],
        scope_hierarchy = { "admin:notes" => ["read:notes", "write:notes"] },
        login_scopes = ["read:notes"],
        tool_scopes = { "add_note" => ["write:notes"], "purge" => ["admin:notes"] },
        method_scopes = { "resources/read" => ["read:notes"] },
        resource_name = "Notes",
        resource_documentation = "https://api.example.com/docs",
        resource_policy_uri = "https://api.example.com/policy",
        resource_tos_uri = "https://api.example.com/tos",
        jwks_uri = "https://api.example.com/jwks",
        resource_signing_alg_values_supported = ["ES256"],
        authorization_details_types_supported = ["notes"],
        dpop_signing_alg_values_supported = ["ES256"],
        tls_client_certificate_bound_access_tokens = false,
        dpop_bound_access_tokens_required = false,
        signed_metadata = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
        crate = "::mcpauth",
    )]
    pub mod notes {
        /// A user item inside the module.
        pub const KEPT: bool = true;
        /// User items shadowing prelude and std names inside the module.
        #[allow(dead_code)]
        pub struct Result;
        /// Another.
        #[allow(dead_code)]
        pub struct Option;
        /// Another.
        #[allow(dead_code)]
        pub struct String;
        /// Another.
        #[allow(dead_code)]
        pub struct Vec;
        /// Another.
        #[allow(dead_code)]
        pub mod core {}
        /// Another.
        #[allow(dead_code)]
        pub mod std {}
        /// Another.
        #[allow(dead_code)]
        pub mod mcpauth {}
    }
}

fn main() {
    use api::notes;
    assert!(notes::KEPT);
    assert_eq!(notes::METADATA_PATH, "/.well-known/oauth-protected-resource/notes/");
    assert_eq!(notes::Scope::from_str("2fa").unwrap(), notes::Scope::S2fa);
    assert_eq!(notes::scopes::ReadNotes::SCOPE, notes::Scope::ReadNotes);
    let metadata = notes::metadata().unwrap();
    assert_eq!(metadata.resource, "https://api.example.com/notes/");
    assert_eq!(metadata.dpop_bound_access_tokens_required, Some(false));
    assert_eq!(metadata.resource_signing_alg_values_supported, Some(vec!["ES256".to_owned()]));
    let auth = mcpauth::McpAuth::resource_server([notes::protected_resource().unwrap()]).unwrap();
    let _layer = notes::require(&auth, [notes::Scope::AdminNotes]).unwrap();
    let _per_tool = notes::require(&auth, [])
        .unwrap()
        .operation_scopes(notes::operation_scopes())
        .unwrap();
    assert_eq!(metadata.signed_metadata.as_deref(), Some("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"));
    let _router: axum::Router = notes::metadata_router().unwrap();
}
