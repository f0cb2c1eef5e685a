//! Discovery over real HTTP on loopback: the well-known forms, the probing order, transpile,
//! issuer checks, bounds and every way a fetch can fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mcpauth::discovery::{
    DiscoveryError, FetchError, MetadataFetcher, discover_server_config, fetch_server_config,
    fetch_server_config_by_well_known_url,
};
use mcpauth::{AuthServer, AuthServerType, McpAuth, ProtectedResource, UrlError};
use mcpauth_tests::{Reply, StubServer, closed_port, compatible_metadata, silent_server};
use serde_json::json;

const OAUTH: &str = "/.well-known/oauth-authorization-server";
const OIDC: &str = "/.well-known/openid-configuration";

#[tokio::test]
async fn oauth_issuer_without_path_is_fetched_at_the_inserted_url() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(OAUTH, Reply::Json(compatible_metadata(&issuer)));

    let config = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap();
    assert_eq!(config.server_type, AuthServerType::OAuth);
    assert_eq!(config.metadata.issuer, issuer);
    assert_eq!(
        config.metadata.jwks_uri.as_deref(),
        Some(format!("{issuer}/jwks").as_str())
    );
    assert_eq!(stub.requests(), [OAUTH]);
}

#[tokio::test]
async fn oidc_issuer_without_path_is_fetched_at_the_appended_url() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(OIDC, Reply::Json(compatible_metadata(&issuer)));

    let config = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap();
    assert_eq!(config.server_type, AuthServerType::Oidc);
    assert_eq!(stub.requests(), [OIDC]);
}

#[tokio::test]
async fn issuers_with_paths_use_insertion_for_oauth_and_appending_for_oidc() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/tenant/a");
    stub.on(
        "/.well-known/oauth-authorization-server/tenant/a",
        Reply::Json(compatible_metadata(&issuer)),
    );
    stub.on(
        "/tenant/a/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );

    let oauth = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap();
    let oidc = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap();
    assert_eq!(oauth.metadata.issuer, issuer);
    assert_eq!(oidc.metadata.issuer, issuer);
    assert_eq!(
        stub.requests(),
        [
            "/.well-known/oauth-authorization-server/tenant/a",
            "/tenant/a/.well-known/openid-configuration"
        ]
    );
}

#[tokio::test]
async fn a_given_type_fetches_exactly_its_form_and_nothing_else() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/t");
    // Only the OIDC form exists; asking for OAuth must not fall back to it.
    stub.on(
        "/t/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );

    let error = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap_err();
    let url = stub.url("/.well-known/oauth-authorization-server/t");
    assert!(
        matches!(&error, DiscoveryError::Fetch(FetchError::Status { url: u, status, .. }) if *u == url && *status == StatusCode::NOT_FOUND),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("GET {url} failed: HTTP status 404 Not Found")
    );
    assert_eq!(
        stub.requests(),
        ["/.well-known/oauth-authorization-server/t"]
    );
}

#[tokio::test]
async fn probing_follows_the_mcp_order_and_the_first_usable_document_wins() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/tenant1");
    stub.on(
        "/.well-known/openid-configuration/tenant1",
        Reply::Raw(StatusCode::OK, "text/html", "<html>login</html>".into()),
    );
    stub.on(
        "/tenant1/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );

    let config = discover_server_config(&issuer).await.unwrap();
    assert_eq!(config.server_type, AuthServerType::Oidc);
    assert_eq!(
        stub.requests(),
        [
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration",
        ]
    );

    // When the first URL answers, nothing else is asked.
    let first = StubServer::start().await;
    let issuer = first.url("/tenant1");
    first.on(
        "/.well-known/oauth-authorization-server/tenant1",
        Reply::Json(compatible_metadata(&issuer)),
    );
    let config = discover_server_config(&issuer).await.unwrap();
    assert_eq!(config.server_type, AuthServerType::OAuth);
    assert_eq!(
        first.requests(),
        ["/.well-known/oauth-authorization-server/tenant1"]
    );
}

#[tokio::test]
async fn probing_a_root_issuer_tries_two_urls_and_reports_every_failure() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(
        OIDC,
        Reply::Json(compatible_metadata("https://someone.else")),
    );

    let error = discover_server_config(&issuer).await.unwrap_err();
    let DiscoveryError::NotFound {
        issuer: probed,
        attempts,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(probed, &issuer);
    assert_eq!(attempts.len(), 2);
    assert!(matches!(
        attempts[0],
        DiscoveryError::Fetch(FetchError::Status { .. })
    ));
    assert!(matches!(attempts[1], DiscoveryError::IssuerMismatch { .. }));
    let message = error.to_string();
    assert!(
        message.contains(&format!("(1) GET {}", stub.url(OAUTH))),
        "{message}"
    );
    assert!(
        message.contains(&format!("(2) the metadata at {}", stub.url(OIDC))),
        "{message}"
    );
    assert_eq!(stub.requests(), [OAUTH, OIDC]);
}

#[tokio::test]
async fn transpile_rewrites_the_raw_json_before_parsing_in_every_mode() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    // A quirky provider: no PKCE list, and the token endpoint under another name.
    let mut quirky = compatible_metadata(&issuer);
    let object = quirky.as_object_mut().unwrap();
    object.remove("code_challenge_methods_supported");
    let token = object.remove("token_endpoint").unwrap();
    object.insert("tokenEndpoint".into(), token);
    stub.on(OAUTH, Reply::Json(quirky.clone()));
    stub.on(OIDC, Reply::Json(quirky));

    // Without the fix the document is invalid, and the error names the URL and the field.
    let error = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::InvalidMetadata { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&stub.url(OAUTH)), "{message}");
    assert!(message.contains("token_endpoint"), "{message}");

    let fetcher = MetadataFetcher::builder()
        .transpile(|mut json| {
            let object = json.as_object_mut().unwrap();
            if let Some(token) = object.remove("tokenEndpoint") {
                object.insert("token_endpoint".into(), token);
            }
            object.insert("code_challenge_methods_supported".into(), json!(["S256"]));
            json
        })
        .build();
    let by_type = fetcher.fetch(&issuer, AuthServerType::Oidc).await.unwrap();
    let by_url = fetcher
        .fetch_by_well_known_url(&stub.url(OAUTH), AuthServerType::OAuth)
        .await
        .unwrap();
    let probed = fetcher.discover(&issuer).await.unwrap();
    for config in [by_type, by_url, probed] {
        assert_eq!(config.metadata.token_endpoint, format!("{issuer}/token"));
        assert_eq!(
            config.metadata.code_challenge_methods_supported,
            Some(vec!["S256".to_owned()])
        );
    }

    // A transpile function that returns something other than an object is reported.
    let broken = MetadataFetcher::builder()
        .transpile(|_| json!([1, 2]))
        .build();
    let error = broken
        .fetch(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the metadata at {} is invalid: the transpile function returned a JSON array, not an object",
            stub.url(OIDC)
        )
    );
}

#[tokio::test]
async fn the_fetched_issuer_must_equal_the_configured_issuer_exactly() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    // A trailing slash is a different issuer.
    stub.on(
        OIDC,
        Reply::Json(compatible_metadata(&format!("{issuer}/"))),
    );

    let error = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    let DiscoveryError::IssuerMismatch {
        url,
        expected,
        actual,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(url, &stub.url(OIDC));
    assert_eq!(expected, &issuer);
    assert_eq!(actual, &format!("{issuer}/"));
    assert_eq!(
        error.to_string(),
        format!(
            "the metadata at {} names issuer `{issuer}/`, but `{issuer}` was configured: they must be identical (RFC 8414 §3.3)",
            stub.url(OIDC)
        )
    );
}

#[tokio::test]
async fn error_statuses_are_reported_with_url_and_status() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(
        OIDC,
        Reply::Raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "boom".into(),
        ),
    );
    let error = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "GET {} failed: HTTP status 500 Internal Server Error",
            stub.url(OIDC)
        )
    );
    let error = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("GET {} failed: HTTP status 404 Not Found", stub.url(OAUTH))
    );
}

#[tokio::test]
async fn bodies_that_are_not_a_json_object_are_refused() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(
        OIDC,
        Reply::Raw(StatusCode::OK, "text/html", "<!doctype html>".into()),
    );
    stub.on(OAUTH, Reply::Json(json!([compatible_metadata(&issuer)])));

    let error = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Fetch(FetchError::NotJson { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "GET {} failed: the response is not JSON (",
            stub.url(OIDC)
        )),
        "{message}"
    );
    assert!(message.contains("content type: text/html"), "{message}");

    let error = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "GET {} failed: the response is a JSON array, not a JSON object",
            stub.url(OAUTH)
        )
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_content_length() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    let mut huge = compatible_metadata(&issuer);
    huge["padding"] = json!("x".repeat(300 * 1024));
    stub.on(OIDC, Reply::Json(huge.clone()));

    let error = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "GET {} failed: the response is larger than the 262144-byte limit",
            stub.url(OIDC)
        )
    );

    // A streamed body (no Content-Length) is cut off at the limit too.
    let streamed = axum::Router::new().route(
        OIDC,
        axum::routing::get(|| async {
            let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096]));
            axum::body::Body::from_stream(futures_util::stream::iter(chunks))
        }),
    );
    let server = mcpauth_tests::TestServer::start(streamed).await;
    let fetcher = MetadataFetcher::builder()
        .max_response_bytes(64 * 1024)
        .build();
    let error = fetcher
        .fetch(&server.url(""), AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoveryError::Fetch(FetchError::TooLarge { limit: 65536, .. })
        ),
        "{error:?}"
    );

    // Under the bound it is accepted.
    let roomy = MetadataFetcher::builder()
        .max_response_bytes(1024 * 1024)
        .build();
    assert!(roomy.fetch(&issuer, AuthServerType::Oidc).await.is_ok());
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout() {
    let (addr, _server) = silent_server().await;
    let fetcher = MetadataFetcher::builder()
        .timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let error = fetcher
        .fetch(&format!("http://{addr}"), AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, DiscoveryError::Fetch(FetchError::Timeout { timeout, .. }) if timeout == Duration::from_millis(300)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("GET http://{addr}{OIDC} failed: no complete answer within 300ms")
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error_naming_the_url() {
    let addr = closed_port().await;
    let error = fetch_server_config(&format!("http://{addr}"), AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Fetch(FetchError::Connection { .. })),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("GET http://{addr}{OIDC} failed: ")),
        "{error}"
    );
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() {
    let target = StubServer::start().await;
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    target.on(OIDC, Reply::Json(compatible_metadata(&issuer)));
    stub.on(OIDC, Reply::Redirect(target.url(OIDC)));

    let error = fetch_server_config(&issuer, AuthServerType::Oidc)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Fetch(FetchError::Redirect { .. })),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "GET {} failed: redirected to another origin ({}); only same-origin redirects are followed",
            stub.url(OIDC),
            target.url(OIDC)
        )
    );
    assert!(
        target.requests().is_empty(),
        "the other origin was contacted"
    );

    // Within the origin the redirect is followed.
    stub.on(OAUTH, Reply::Redirect("/metadata.json".into()));
    stub.on("/metadata.json", Reply::Json(compatible_metadata(&issuer)));
    let config = fetch_server_config(&issuer, AuthServerType::OAuth)
        .await
        .unwrap();
    assert_eq!(config.metadata.issuer, issuer);

    // A redirect loop ends.
    stub.on("/loop", Reply::Redirect("/loop".into()));
    let error = MetadataFetcher::new()
        .fetch_by_well_known_url_for_issuer(&stub.url("/loop"), AuthServerType::OAuth, &issuer)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("more than 5 redirects"),
        "{error}"
    );
}

#[tokio::test]
async fn https_is_required_except_on_loopback() {
    for issuer in ["http://auth.example.com", "http://10.0.0.1/tenant"] {
        let error = fetch_server_config(issuer, AuthServerType::Oidc)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoveryError::InvalidIssuer(UrlError::InsecureHttp { .. })
            ),
            "{error:?}"
        );
    }
    let error = fetch_server_config_by_well_known_url(
        "http://auth.example.com/.well-known/openid-configuration",
        AuthServerType::Oidc,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoveryError::Fetch(FetchError::InvalidUrl(UrlError::InsecureHttp { .. }))
        ),
        "{error:?}"
    );
    for bad in [
        "https://a.example/x?q=1",
        "https://a.example/#f",
        "not a url",
    ] {
        let error = fetch_server_config(bad, AuthServerType::OAuth)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoveryError::InvalidIssuer(_)),
            "{bad}: {error:?}"
        );
    }
}

#[tokio::test]
async fn well_known_urls_given_explicitly_check_the_issuer_they_imply() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/realm");
    stub.on(
        "/realm/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );
    stub.on(
        "/custom/metadata",
        Reply::Json(compatible_metadata(&issuer)),
    );
    stub.on(
        "/.well-known/oauth-authorization-server/other",
        Reply::Json(compatible_metadata(&issuer)),
    );

    let config = fetch_server_config_by_well_known_url(
        &stub.url("/realm/.well-known/openid-configuration"),
        AuthServerType::Oidc,
    )
    .await
    .unwrap();
    assert_eq!(config.metadata.issuer, issuer);

    // The document at the URL of issuer `/other` names `/realm`: refused.
    let error = fetch_server_config_by_well_known_url(
        &stub.url("/.well-known/oauth-authorization-server/other"),
        AuthServerType::OAuth,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::IssuerMismatch { .. }),
        "{error:?}"
    );

    // A URL of no well-known form needs the issuer named.
    let custom = stub.url("/custom/metadata");
    let error = fetch_server_config_by_well_known_url(&custom, AuthServerType::OAuth)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{custom} is not a well-known metadata URL, so its issuer cannot be checked: name the expected issuer"
        )
    );
    let config = MetadataFetcher::new()
        .fetch_by_well_known_url_for_issuer(&custom, AuthServerType::OAuth, &issuer)
        .await
        .unwrap();
    assert_eq!(config.server_type, AuthServerType::OAuth);
}

fn lazy_resource(server: AuthServer) -> McpAuth {
    McpAuth::resource_server([
        ProtectedResource::new("http://127.0.0.1:1/mcp").authorization_server(server)
    ])
    .unwrap()
}

#[tokio::test]
async fn lazy_servers_are_fetched_once_under_concurrent_first_use() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    stub.on(
        OIDC,
        Reply::SlowJson(Duration::from_millis(200), compatible_metadata(&issuer)),
    );
    let auth = lazy_resource(AuthServer::discover(&issuer, AuthServerType::Oidc));
    assert_eq!(stub.hits(OIDC), 0, "construction must not fetch");

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.discover_all().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(stub.hits(OIDC), 1);
    auth.discover_all().await.unwrap();
    assert_eq!(stub.hits(OIDC), 1, "the metadata is kept once fetched");
}

#[tokio::test]
async fn lazy_failures_are_not_cached() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/t");
    let path = "/.well-known/oauth-authorization-server/t";
    stub.on_sequence(
        path,
        vec![
            Reply::Raw(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "down".into()),
            Reply::Json(compatible_metadata(&issuer)),
        ],
    );
    let auth = lazy_resource(AuthServer::discover(&issuer, AuthServerType::OAuth));

    let first = auth.discover_all().await.unwrap_err();
    assert!(
        first.to_string().contains("503 Service Unavailable"),
        "{first}"
    );
    auth.discover_all().await.unwrap();
    assert_eq!(stub.hits(path), 2);
}

#[tokio::test]
async fn lazy_servers_can_probe_use_a_well_known_url_and_a_custom_fetcher() {
    let stub = StubServer::start().await;
    let issuer = stub.url("/p");
    stub.on(
        "/p/.well-known/openid-configuration",
        Reply::Json(compatible_metadata(&issuer)),
    );
    stub.on("/meta", Reply::Json(compatible_metadata(&issuer)));

    lazy_resource(AuthServer::probe(&issuer))
        .discover_all()
        .await
        .unwrap();
    lazy_resource(AuthServer::well_known_url(
        &issuer,
        stub.url("/meta"),
        AuthServerType::OAuth,
    ))
    .discover_all()
    .await
    .unwrap();

    let transpiled = Arc::new(AtomicUsize::new(0));
    let counter = transpiled.clone();
    let fetcher = MetadataFetcher::builder()
        .transpile(move |json| {
            counter.fetch_add(1, Ordering::SeqCst);
            json
        })
        .build();
    lazy_resource(AuthServer::probe(&issuer).fetcher(fetcher))
        .discover_all()
        .await
        .unwrap();
    assert_eq!(transpiled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lazy_servers_are_checked_for_mcp_compatibility_when_fetched() {
    let stub = StubServer::start().await;
    let issuer = stub.url("");
    let mut no_pkce = compatible_metadata(&issuer);
    no_pkce
        .as_object_mut()
        .unwrap()
        .remove("code_challenge_methods_supported");
    stub.on(OIDC, Reply::Json(no_pkce));

    let error = lazy_resource(AuthServer::discover(&issuer, AuthServerType::Oidc))
        .discover_all()
        .await
        .unwrap_err();
    let DiscoveryError::Incompatible {
        issuer: reported,
        validation,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(reported, &issuer);
    assert_eq!(
        validation.errors,
        [mcpauth::discovery::AuthServerConfigErrorCode::PkceNotSupported]
    );
    assert!(
        error.to_string().contains("(pkce_not_supported)"),
        "{error}"
    );

    lazy_resource(AuthServer::discover(&issuer, AuthServerType::Oidc).skip_compatibility_check())
        .discover_all()
        .await
        .unwrap();
}
