//! Property tests (proptest): well-known URL derivation stays on the resource's or issuer's
//! origin and round-trips; scopes round-trip from configuration to the challenge and from the
//! token to `AuthInfo`; a token altered in any single byte is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::discovery::well_known;
use mcpauth::{AuthError, AuthServer, BearerAuthLayer, McpAuth, ProtectedResource};
use mcpauth_tests::parse_challenge;
use proptest::prelude::*;
use url::Url;

// ---------------------------------------------------------------------------------------------
// Well-known URLs

/// A host: a registered name, IPv4 or IPv6 literal (loopback ones allow http).
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        Just("127.0.0.1".to_owned()),
        Just("[::1]".to_owned()),
        Just("localhost".to_owned()),
        Just("EXAMPLE.com".to_owned()),
    ]
}

/// Path segments, including ones URL parsing treats specially (dots, escapes, empty).
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[A-Za-z0-9._~-]{1,8}",
            Just("".to_owned()),
            Just(".well-known".to_owned()),
            Just("%2F".to_owned()),
            Just("a%20b".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
        ],
        0..4,
    )
    .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>())
}

/// An absolute URL for an issuer or a resource (https, or http on loopback hosts).
fn base_url() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        host(),
        prop::option::of(1u16..),
        path(),
        prop::bool::ANY,
    )
        .prop_map(|(https, host, port, path, slash)| {
            let scheme = if https { "https" } else { "http" };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let slash = if slash && !path.ends_with('/') {
                "/"
            } else {
                ""
            };
            format!("{scheme}://{host}{port}{path}{slash}")
        })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The RFC 9728 metadata URL of a resource: same origin, the well-known prefix inserted
    /// before the resource's path (§3.1: only a slash right after the host is dropped; a
    /// trailing slash of a longer path is part of the identifier), nothing else.
    #[test]
    fn protected_resource_metadata_urls_stay_on_the_resource_origin(resource in base_url()) {
        let Ok(metadata) = well_known::protected_resource_metadata_url(&resource) else {
            return Ok(()); // refused (http off loopback, …): nothing derived
        };
        let parsed = Url::parse(&resource).unwrap();
        prop_assert!(same_origin(&metadata, &parsed), "{resource} -> {metadata}");
        prop_assert!(metadata.query().is_none() && metadata.fragment().is_none());
        let rest = metadata
            .path()
            .strip_prefix("/.well-known/oauth-protected-resource")
            .unwrap_or_else(|| panic!("{metadata}"));
        let resource_path = if parsed.path() == "/" { "" } else { parsed.path() };
        prop_assert_eq!(rest, resource_path, "{} -> {}", resource, metadata);
    }

    /// Every URL probed for an issuer is on its origin, and maps back to the issuer.
    #[test]
    fn metadata_urls_of_an_issuer_stay_on_its_origin_and_round_trip(issuer in base_url()) {
        let Ok(urls) = well_known::discovery_urls(&issuer) else {
            return Ok(());
        };
        let parsed = Url::parse(&issuer).unwrap();
        for (url, _) in urls {
            prop_assert!(same_origin(&url, &parsed), "{issuer} -> {url}");
            let back = well_known::issuers_for_well_known_url(&url)
                .unwrap_or_else(|| panic!("{url} is not recognised as a well-known URL"));
            prop_assert!(
                back.iter().any(|b| *b == parsed.as_str() || *b == parsed.as_str().trim_end_matches('/')),
                "{issuer} -> {url} -> {back:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes and tokens, through the real layer

/// A development authorization server kept for the whole test binary, on its own runtime.
fn dev() -> &'static (tokio::runtime::Runtime, DevAuthServer) {
    static DEV: OnceLock<(tokio::runtime::Runtime, DevAuthServer)> = OnceLock::new();
    DEV.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dev = runtime.block_on(DevAuthServer::start()).unwrap();
        (runtime, dev)
    })
}

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn layer(scopes: &[String], required: &[String]) -> BearerAuthLayer {
    let (_, dev) = dev();
    let auth = McpAuth::resource_server([ProtectedResource::new(RESOURCE)
        .authorization_server(AuthServer::new(dev.config()))
        .scopes(scopes.iter().cloned())])
    .unwrap();
    auth.bearer_auth(RESOURCE)
        .unwrap()
        .required_scopes(required.iter().cloned())
        .unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

/// RFC 6749 scope tokens: `%x21 / %x23-5B / %x5D-7E`, distinct.
fn scope_list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[!#-\\[\\]-~]{1,10}", 1..5)
        .prop_map(|set| set.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The scopes a route requires come back, in order, in the 403 challenge's `scope` and the
    /// body; the scopes a token grants come back from `AuthInfo::scopes` without repeats.
    #[test]
    fn scopes_round_trip_through_the_challenge_and_the_token(
        scopes in scope_list(),
        repeat in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let (runtime, dev) = dev();
        let layer = layer(&scopes, &scopes);

        let bare = dev.token().audience(RESOURCE).algorithm(DevAlgorithm::Es256).sign().unwrap();
        let error = runtime.block_on(layer.authenticate(&bearer(&bare))).unwrap_err();
        prop_assert!(matches!(error, AuthError::InsufficientScope { .. }), "{error:?}");
        let response = layer.error_response(&error);
        prop_assert_eq!(response.status().as_u16(), 403);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        let (scheme, params) = parse_challenge(&challenge);
        prop_assert_eq!(scheme, "Bearer");
        prop_assert_eq!(&params["error"], "insufficient_scope");
        let named: Vec<&str> = params["scope"].split(' ').collect();
        prop_assert_eq!(named, scopes.iter().map(String::as_str).collect::<Vec<_>>());
        let body = runtime.block_on(axum::body::to_bytes(response.into_body(), usize::MAX)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(&body["error"], "insufficient_scope");
        prop_assert_eq!(&body["scope"], &scopes.join(" "));
        prop_assert_eq!(&body["missing_scopes"], &serde_json::json!(scopes));

        // Granted with repeats (the claim as an authorization server might send it).
        let mut granted = scopes.clone();
        for index in &repeat {
            granted.push(scopes[index.index(scopes.len())].clone());
        }
        let token = dev
            .token()
            .audience(RESOURCE)
            .algorithm(DevAlgorithm::Es256)
            .claim("scope", granted.join(" "))
            .sign()
            .unwrap();
        let info = runtime.block_on(layer.authenticate(&bearer(&token))).unwrap().unwrap();
        prop_assert_eq!(info.scopes(), scopes.as_slice());
    }
}

/// One token per algorithm, minted once.
fn tokens() -> &'static [String; 3] {
    static TOKENS: OnceLock<[String; 3]> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let (_, dev) = dev();
        [
            DevAlgorithm::Rs256,
            DevAlgorithm::Es256,
            DevAlgorithm::EdDsa,
        ]
        .map(|algorithm| {
            dev.token()
                .audience(RESOURCE)
                .scopes(["read"])
                .algorithm(algorithm)
                .sign()
                .unwrap()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single byte of a valid token changed (to any other byte a header can carry) makes
    /// it refused: header, payload and signature, including the last base64url character,
    /// whose spare bits must not be ignored.
    #[test]
    fn a_token_altered_in_any_single_byte_is_refused(
        which in 0usize..3,
        position in any::<prop::sample::Index>(),
        byte in 0x21u8..0x7f,
    ) {
        let (runtime, _) = dev();
        static LAYER: OnceLock<BearerAuthLayer> = OnceLock::new();
        let layer = LAYER.get_or_init(|| layer(&["read".to_owned()], &["read".to_owned()]));
        let token = &tokens()[which];
        // The untouched token passes (and is cached: the altered one must not hit it).
        prop_assert!(runtime.block_on(layer.authenticate(&bearer(token))).is_ok());

        let mut altered = token.clone().into_bytes();
        let i = position.index(altered.len());
        prop_assume!(altered[i] != byte);
        altered[i] = byte;
        let altered = String::from_utf8(altered).unwrap();
        let result = runtime.block_on(layer.authenticate(&bearer(&altered)));
        prop_assert!(result.is_err(), "byte {} of {} set to {:?} was accepted", i, ["RS256", "ES256", "EdDSA"][which], byte as char);
    }
}

/// The last character of a base64url segment carries spare bits (2 or 4) that a lenient decoder
/// ignores; a token differing only there must be refused too. Every alphabet character, at the
/// end of every segment, of every algorithm's token.
#[test]
fn the_spare_bits_of_each_segments_last_character_count() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (runtime, _) = dev();
    let layer = layer(&["read".to_owned()], &["read".to_owned()]);
    for token in tokens() {
        let ends: Vec<usize> = token
            .match_indices('.')
            .map(|(dot, _)| dot - 1)
            .chain([token.len() - 1])
            .collect();
        for end in ends {
            for &c in ALPHABET {
                if token.as_bytes()[end] == c {
                    continue;
                }
                let mut altered = token.clone().into_bytes();
                altered[end] = c;
                let altered = String::from_utf8(altered).unwrap();
                let result = runtime.block_on(layer.authenticate(&bearer(&altered)));
                assert!(
                    result.is_err(),
                    "accepted with {:?} at {end}: {altered}",
                    c as char
                );
            }
        }
    }
}
