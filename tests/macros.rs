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
    use mcpauth::__private::AuthServerDeclaration;
    let error = FROM_ENV::auth_server().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the environment variable MCPAUTH_TEST_ISSUER_UNSET is not set (or empty): set it before starting"
    );
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
