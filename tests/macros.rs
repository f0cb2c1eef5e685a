//! The declarative configuration, used as a user would: servers declared with `auth_server!`,
//! a resource with `#[protected_resource]`, and the generated code's behaviour over real HTTP.
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
    let error = FROM_ENV.auth_server().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the environment variable MCPAUTH_TEST_ISSUER_UNSET is not set (or empty): set it before starting"
    );
}

#[test]
fn a_declared_server_is_an_auth_server() {
    let logto = LOGTO.auth_server().unwrap();
    assert_eq!(logto.issuer(), "https://tenant.logto.app/oidc");
    assert!(logto.config().is_none(), "discovered on first use");
    let fixed = STATIC.auth_server().unwrap();
    let metadata = &fixed.config().unwrap().metadata;
    assert_eq!(
        metadata.jwks_uri.as_deref(),
        Some("https://auth.example.com/jwks")
    );
    assert_eq!(metadata.client_id_metadata_document_supported, Some(true));
    // The same configuration by hand as through #[protected_resource].
    let by_hand = mcpauth::ProtectedResource::new("https://api.example.com/notes")
        .authorization_server(fixed)
        .authorization_server(logto);
    let generated = notes::protected_resource().unwrap();
    let issuers = |r: &mcpauth::ProtectedResource| -> Vec<String> {
        r.auth_servers()
            .iter()
            .map(|s| s.issuer().to_owned())
            .collect()
    };
    assert_eq!(issuers(&by_hand), issuers(&generated));
}

/// Scopes whose names are keywords, start with a digit, have no letters, or would hide the
/// enum's own `ALL`.
#[protected_resource(
    resource = "https://api.example.com/odd",
    authorization_servers = [LOGTO],
    scopes = [
        "self", "super", "crate", "type", "fn", "async", "match", "dyn", "r#type", "2fa", "ALL",
        "*", "_", "/", "scope", "read:notes",
    ],
    scope_hierarchy = { "self" => ["super"], "*" => ["self", "ALL"] },
    tool_scopes = { "fn" => ["fn", "async"] },
)]
pub mod odd {}

#[test]
fn every_valid_scope_has_a_variant_and_round_trips() {
    use odd::Scope;
    let expected = [
        (Scope::Self_, "self"),
        (Scope::Super, "super"),
        (Scope::Crate, "crate"),
        (Scope::Type, "type"),
        (Scope::Fn, "fn"),
        (Scope::Async, "async"),
        (Scope::Match, "match"),
        (Scope::Dyn, "dyn"),
        (Scope::RType, "r#type"),
        (Scope::S2fa, "2fa"),
        (Scope::ALL_, "ALL"),
        (Scope::Star, "*"),
        (Scope::Underscore, "_"),
        (Scope::Slash, "/"),
        (Scope::Scope, "scope"),
        (Scope::ReadNotes, "read:notes"),
    ];
    assert_eq!(Scope::ALL.len(), expected.len());
    for ((variant, text), scope) in expected.into_iter().zip(Scope::ALL) {
        assert_eq!(variant, scope, "declaration order");
        assert_eq!(variant.as_str(), text);
        assert_eq!(Scope::from_str(text).unwrap(), variant);
        assert_eq!(Scope::from_str(variant.as_str()).unwrap(), variant);
        assert_eq!(variant.to_string(), text);
        let json = serde_json::to_value(variant).unwrap();
        assert_eq!(serde_json::from_value::<Scope>(json).unwrap(), variant);
    }
    assert_eq!(Scope::from(odd::scopes::Self_), Scope::Self_);
    assert_eq!(odd::scopes::ALL_::SCOPE, Scope::ALL_);
    assert_eq!(<odd::scopes::Fn as mcpauth::ScopeMarker>::SCOPE, "fn");
    assert_eq!(
        <odd::scopes::Super as mcpauth::ScopeMarker>::IMPLIED_BY,
        &["self", "*"]
    );
    let auth = mcpauth::McpAuth::resource_server([odd::protected_resource().unwrap()]).unwrap();
    odd::require(&auth, [Scope::Self_, Scope::Star])
        .unwrap()
        .operation_scopes(odd::operation_scopes())
        .unwrap();
}

mod over_http {
    //! The typed scope requirement over real HTTP, against the development server.
    use std::sync::OnceLock;

    use mcpauth::dev::DevAuthServer;
    use mcpauth::{auth_server, protected_resource};
    use reqwest::StatusCode;
    use tokio::net::TcpListener;

    static ISSUER: OnceLock<String> = OnceLock::new();
    static RESOURCE: OnceLock<String> = OnceLock::new();

    fn issuer() -> String {
        ISSUER.get().cloned().unwrap_or_default()
    }

    fn resource() -> String {
        RESOURCE.get().cloned().unwrap_or_default()
    }

    auth_server! {
        /// The development server of this test, found by OpenID Connect discovery.
        pub(crate) DEV = oidc(expr(issuer()));
    }

    /// Notes, at an address known only at run time.
    #[protected_resource(
        resource = expr(resource()),
        authorization_servers = [DEV],
        scopes = ["read:notes", "write:notes", "admin:notes"],
        scope_hierarchy = { "admin:notes" => ["write:notes"], "write:notes" => ["read:notes"] },
    )]
    pub(crate) mod notes {}

    #[tokio::test]
    async fn required_scopes_answer_200_or_403_naming_every_missing_scope() {
        let dev = DevAuthServer::start().await.unwrap();
        ISSUER.set(dev.issuer().to_owned()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        RESOURCE
            .set(format!("http://{}/notes", listener.local_addr().unwrap()))
            .unwrap();

        let auth =
            mcpauth::McpAuth::resource_server([notes::protected_resource().unwrap()]).unwrap();
        let read = notes::require(&auth, [notes::Scope::ReadNotes]).unwrap();
        let both = notes::require(
            &auth,
            [notes::Scope::ReadNotes, notes::scopes::AdminNotes.into()],
        )
        .unwrap();
        let app = axum::Router::new()
            .route(
                "/notes",
                axum::routing::get(|| async { "read" }).route_layer(read),
            )
            .route(
                "/notes/admin",
                axum::routing::get(|| async { "admin" }).route_layer(both),
            )
            .merge(notes::metadata_router().unwrap());
        let server = mcpauth_tests::TestServer::serve(listener, app);

        let resource = resource();
        let client = reqwest::Client::new();
        let get = |path: &'static str, scope: &'static str| {
            let token = dev
                .token()
                .audience(&resource)
                .claim("scope", scope)
                .sign()
                .unwrap();
            client.get(server.url(path)).bearer_auth(token).send()
        };
        assert_eq!(
            get("/notes", "read:notes").await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            get("/notes", "admin:notes").await.unwrap().status(),
            StatusCode::OK,
            "admin implies read"
        );
        assert_eq!(
            get("/notes/admin", "admin:notes").await.unwrap().status(),
            StatusCode::OK
        );
        let refused = get("/notes/admin", "write:notes").await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let (_, params) =
            mcpauth_tests::parse_challenge(refused.headers()["www-authenticate"].to_str().unwrap());
        assert_eq!(params["error"], "insufficient_scope");
        assert_eq!(params["scope"], "read:notes admin:notes");
        assert_eq!(
            params["resource_metadata"],
            server.url("/.well-known/oauth-protected-resource/notes")
        );
        let metadata: serde_json::Value =
            reqwest::get(server.url("/.well-known/oauth-protected-resource/notes"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(metadata["resource"], resource);
        assert_eq!(metadata["authorization_servers"][0], dev.issuer());
    }
}
