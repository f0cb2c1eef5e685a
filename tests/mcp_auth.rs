//! Every way building an `McpAuth` can be refused, and the configurations that are accepted.
#![allow(deprecated)] // the deprecated authorization-server mode is tested on purpose

use mcpauth::discovery::AuthServerConfigErrorCode;
use mcpauth::{
    AuthServer, AuthServerConfig, AuthServerType, AuthorizationServerMetadata,
    AuthorizationServerMode, ConfigError, McpAuth, ProtectedResource, ProtectedResourceMetadata,
    UrlError,
};

use mcpauth_tests::compatible_config;

const RESOURCE: &str = "https://api.example.com/notes";
const ISSUER: &str = "https://auth.example.com";

fn metadata(issuer: &str) -> AuthorizationServerMetadata {
    compatible_config(issuer).metadata
}

fn server(issuer: &str) -> AuthServerConfig {
    compatible_config(issuer)
}

fn resource(id: &str) -> ProtectedResource {
    ProtectedResource::new(id).authorization_server(server(ISSUER))
}

fn build(resources: Vec<ProtectedResource>) -> Result<McpAuth, ConfigError> {
    McpAuth::resource_server(resources)
}

#[test]
fn a_complete_configuration_is_accepted() {
    let auth = build(vec![
        resource(RESOURCE).scopes(["read:notes", "write:notes"]),
        // The same authorization server may serve several resources.
        resource("https://api.example.com/todos"),
        ProtectedResource::new("http://127.0.0.1:3001/mcp")
            .authorization_server(server(ISSUER))
            .authorization_server(AuthServer::discover(
                "https://other.example.com/t",
                AuthServerType::OAuth,
            )),
    ])
    .unwrap();
    assert_eq!(
        auth.resources().collect::<Vec<_>>(),
        [
            RESOURCE,
            "https://api.example.com/todos",
            "http://127.0.0.1:3001/mcp"
        ]
    );
    let served = auth.resource_metadata("http://127.0.0.1:3001/mcp").unwrap();
    assert_eq!(
        served.authorization_servers.as_deref(),
        Some(&[ISSUER.to_owned(), "https://other.example.com/t".to_owned()][..])
    );
    assert_eq!(
        auth.resource_metadata_url(RESOURCE).unwrap().as_str(),
        "https://api.example.com/.well-known/oauth-protected-resource/notes"
    );
    assert!(
        auth.resource_metadata("https://unknown.example.com")
            .is_none()
    );
}

#[test]
fn no_resource_is_refused() {
    let error = build(vec![]).unwrap_err();
    assert!(matches!(error, ConfigError::NoResources));
    assert_eq!(
        error.to_string(),
        "no protected resource is configured: add at least one"
    );
}

#[test]
fn invalid_resource_identifiers_are_refused_with_the_reason() {
    type Expectation = fn(&UrlError) -> bool;
    let rows: [(&str, Expectation, &str); 7] = [
        (
            "/notes",
            |e| matches!(e, UrlError::NotAbsolute { .. }),
            "is not an absolute URL",
        ),
        (
            "api.example.com/notes",
            |e| matches!(e, UrlError::NotAbsolute { .. }),
            "is not an absolute URL",
        ),
        (
            "https://api.example.com/notes#top",
            |e| matches!(e, UrlError::HasFragment { .. }),
            "has a fragment",
        ),
        (
            "https://api.example.com/notes?v=1",
            |e| matches!(e, UrlError::HasQuery { .. }),
            "has a query",
        ),
        (
            "http://api.example.com/notes",
            |e| matches!(e, UrlError::InsecureHttp { .. }),
            "uses http on a non-loopback host",
        ),
        (
            "ftp://api.example.com/notes",
            |e| matches!(e, UrlError::UnsupportedScheme { .. }),
            "uses the `ftp` scheme",
        ),
        (
            "https://me:pw@api.example.com/notes",
            |e| matches!(e, UrlError::HasCredentials { .. }),
            "carries credentials",
        ),
    ];
    for (identifier, expected, words) in rows {
        let error = build(vec![resource(identifier)]).unwrap_err();
        let ConfigError::InvalidResource(url_error) = &error else {
            panic!("{identifier}: {error:?}");
        };
        assert!(expected(url_error), "{identifier}: {url_error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("invalid resource identifier: `"),
            "{message}"
        );
        assert!(
            message.contains(identifier) && message.contains(words),
            "{message}"
        );
    }
    // Loopback http is fine.
    for loopback in [
        "http://localhost:3001/notes",
        "http://127.0.0.1/notes",
        "http://[::1]:8/x",
    ] {
        build(vec![resource(loopback)]).unwrap();
    }
}

#[test]
fn a_duplicate_resource_is_refused() {
    let error = build(vec![resource(RESOURCE), resource(RESOURCE)]).unwrap_err();
    assert!(matches!(&error, ConfigError::DuplicateResource { resource } if resource == RESOURCE));
    assert_eq!(
        error.to_string(),
        format!("the resource `{RESOURCE}` is configured twice")
    );
}

#[test]
fn a_resource_without_authorization_servers_is_refused() {
    let error = build(vec![ProtectedResource::new(RESOURCE)]).unwrap_err();
    assert!(matches!(error, ConfigError::NoAuthorizationServers { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "the resource `{RESOURCE}` has no authorization server: MCP requires at least one in its metadata"
        )
    );
}

#[test]
fn a_duplicate_issuer_within_one_resource_is_refused() {
    let error = build(vec![resource(RESOURCE).authorization_server(
        AuthServer::discover(ISSUER, AuthServerType::OAuth),
    )])
    .unwrap_err();
    assert!(
        matches!(&error, ConfigError::DuplicateAuthorizationServer { issuer, .. } if issuer == ISSUER)
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the authorization server `{ISSUER}` is configured twice for the resource `{RESOURCE}`"
        )
    );
}

#[test]
fn invalid_issuers_are_refused() {
    for issuer in [
        "http://auth.example.com",
        "https://auth.example.com/?tenant=1",
        "https://auth.example.com/#x",
        "auth.example.com",
    ] {
        let lazy = ProtectedResource::new(RESOURCE)
            .authorization_server(AuthServer::discover(issuer, AuthServerType::Oidc));
        let error = build(vec![lazy]).unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidIssuer(_)),
            "{issuer}: {error:?}"
        );
        assert!(
            error.to_string().starts_with("invalid issuer: `"),
            "{error}"
        );
        let static_server = ProtectedResource::new(RESOURCE).authorization_server(server(issuer));
        assert!(matches!(
            build(vec![static_server]),
            Err(ConfigError::InvalidIssuer(_))
        ));
    }
}

#[test]
fn invalid_and_repeated_scopes_are_refused() {
    let rows = [
        (
            vec!["read notes"],
            "read notes",
            "printable ASCII without spaces",
        ),
        (vec![""], "", "a scope cannot be empty"),
        (vec!["say\"hi\""], "say\"hi\"", "printable ASCII"),
        (vec!["read", "write", "read"], "read", "it is listed twice"),
    ];
    for (scopes, offending, reason) in rows {
        let error = build(vec![resource(RESOURCE).scopes(scopes)]).unwrap_err();
        let ConfigError::InvalidScope { scope, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(scope, offending);
        assert!(error.to_string().contains(reason), "{error}");
    }
}

#[test]
fn bearer_methods_other_than_header_are_refused() {
    let mut with_query = resource(RESOURCE);
    with_query.metadata_mut().bearer_methods_supported =
        Some(vec!["header".into(), "query".into()]);
    let error = build(vec![with_query]).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnsupportedBearerMethod { method, .. } if method == "query")
    );

    let mut explicit = resource(RESOURCE);
    explicit.metadata_mut().bearer_methods_supported = Some(vec!["header".into()]);
    build(vec![explicit]).unwrap();
}

#[test]
fn incompatible_static_servers_are_refused_unless_explicitly_accepted() {
    let mut no_pkce = metadata(ISSUER);
    no_pkce.code_challenge_methods_supported = None;
    no_pkce.response_types_supported = vec!["token".into()];
    let config = AuthServerConfig::new(AuthServerType::OAuth, no_pkce);

    let error = build(vec![
        ProtectedResource::new(RESOURCE).authorization_server(config.clone()),
    ])
    .unwrap_err();
    let ConfigError::IncompatibleAuthServer { issuer, validation } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(issuer, ISSUER);
    assert_eq!(
        validation.errors,
        [
            AuthServerConfigErrorCode::CodeResponseTypeNotSupported,
            AuthServerConfigErrorCode::PkceNotSupported
        ]
    );
    let message = error.to_string();
    assert!(
        message.contains("(code_response_type_not_supported)"),
        "{message}"
    );
    assert!(message.contains("skip_compatibility_check()"), "{message}");

    build(vec![ProtectedResource::new(RESOURCE).authorization_server(
        AuthServer::new(config).skip_compatibility_check(),
    )])
    .unwrap();
}

#[test]
fn metadata_at_root_needs_a_single_resource() {
    let error = McpAuth::builder()
        .protected_resource(resource(RESOURCE))
        .protected_resource(resource("https://api.example.com/todos"))
        .metadata_at_root(true)
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        ConfigError::RootMetadataNeedsOneResource { count: 2 }
    ));
    McpAuth::builder()
        .protected_resource(resource(RESOURCE))
        .metadata_at_root(true)
        .build()
        .unwrap();
}

#[test]
fn served_metadata_is_derived_from_the_configuration() {
    let mut document = ProtectedResourceMetadata::new(RESOURCE);
    document.authorization_servers = Some(vec!["https://ignored.example.com".into()]);
    document.resource_documentation = Some("https://api.example.com/docs".into());
    document
        .extra
        .insert("resource_name#fr".into(), "Notes".into());
    let auth = build(vec![
        ProtectedResource::from_metadata(document)
            .authorization_server(server(ISSUER))
            .scopes(Vec::<String>::new()),
    ])
    .unwrap();
    let served = serde_json::to_value(auth.resource_metadata(RESOURCE).unwrap()).unwrap();
    assert_eq!(
        served,
        serde_json::json!({
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
            "resource_documentation": "https://api.example.com/docs",
            "resource_name#fr": "Notes"
        })
    );
}

#[test]
fn the_deprecated_mode_is_its_own_type_and_checks_its_server() {
    let _router: axum::Router = AuthorizationServerMode::new(server(ISSUER))
        .unwrap()
        .router();

    // It checks its server like the resource mode does.
    let mut no_pkce = metadata(ISSUER);
    no_pkce.code_challenge_methods_supported = None;
    let error = AuthorizationServerMode::new(AuthServerConfig::new(AuthServerType::OAuth, no_pkce))
        .unwrap_err();
    assert!(matches!(error, ConfigError::IncompatibleAuthServer { .. }));
}

#[test]
fn scope_hierarchies_must_name_declared_scopes_and_have_no_cycle() {
    let scopes = ["read", "write", "admin"];
    let error = build(vec![
        resource(RESOURCE)
            .scopes(scopes)
            .scope_implies("admin", ["write"])
            .scope_implies("write", ["admin"]),
    ])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the scope hierarchy of the resource `{RESOURCE}` has a cycle: admin implies write implies admin"
        )
    );
    let error = build(vec![
        resource(RESOURCE)
            .scopes(scopes)
            .scope_implies("admin", ["delete"]),
    ])
    .unwrap_err();
    assert!(matches!(&error, ConfigError::UndeclaredScope { scope, .. } if scope == "delete"));
    build(vec![
        resource(RESOURCE)
            .scopes(scopes)
            .scope_implies("admin", ["read", "write"]),
    ])
    .unwrap();
}
