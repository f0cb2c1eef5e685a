//! Property tests (proptest): well-known URL derivation stays on the resource's or issuer's
//! origin and round-trips; scopes round-trip from configuration to the challenge and from the
//! token to `AuthInfo`; a token altered in any single byte is refused.

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

// ---------------------------------------------------------------------------------------------
// Audiences: only the differences MCP allows

/// A resource identifier in canonical form, as parts: https on a registered name, or http on
/// the loopback IPv4 address (so numeric-host spellings can be tried).
#[derive(Debug, Clone)]
struct ResourceParts {
    https: bool,
    host: String,
    port: Option<u16>,
    /// Empty, or `/`-led segments of unreserved characters, none of them `.` or `..`.
    path: String,
}

impl ResourceParts {
    fn render(&self, scheme: &str, host: &str, port: &str, path: &str) -> String {
        let _ = self;
        format!("{scheme}://{host}{port}{path}")
    }

    fn identifier(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        self.render(scheme, &self.host, &port, &self.path)
    }
}

fn resource_parts() -> impl Strategy<Value = ResourceParts> {
    let segment = "[a-z0-9_~-][a-zA-Z0-9._~-]{0,6}";
    (
        prop::bool::ANY,
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9-]{0,8}){1,2}",
        prop::option::of(1024u16..),
        prop::collection::vec(segment, 0..4),
    )
        .prop_map(|(https, name, port, segments)| ResourceParts {
            https,
            host: if https { name } else { "127.0.0.1".to_owned() },
            port,
            path: segments.iter().map(|s| format!("/{s}")).collect(),
        })
}

/// Changes MCP's comparison ignores, each applied or not.
#[derive(Debug, Clone)]
struct Allowed {
    upper_scheme: Vec<bool>,
    upper_host: Vec<bool>,
    explicit_default_port: bool,
    trailing_slash: bool,
}

fn allowed() -> impl Strategy<Value = Allowed> {
    (
        prop::collection::vec(prop::bool::ANY, 5),
        prop::collection::vec(prop::bool::ANY, 32),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(
            |(upper_scheme, upper_host, explicit_default_port, trailing_slash)| Allowed {
                upper_scheme,
                upper_host,
                explicit_default_port,
                trailing_slash,
            },
        )
}

/// Changes that make another string, which a URL parser may or may not read as the same
/// resource: never a match.
#[derive(Debug, Clone)]
enum Disallowed {
    /// `/x/..` inserted before segment `at`.
    DotDotSegment { at: usize, encoded: u8 },
    /// `/.` inserted before segment `at`.
    DotSegment { at: usize, encoded: bool },
    /// A whitespace or control character inserted at a byte position.
    Control { at: usize, which: u8 },
    /// A path `/` written as `\`.
    Backslash { at: usize },
    /// `user@` or `user:pw@` before the host.
    Userinfo { password: bool },
    /// `#` or `#x` after the path.
    Fragment { empty: bool },
    /// `?` or `?x` after the path.
    Query { empty: bool },
    /// An IPv4 host in another notation (integer, hexadecimal, short, zero-padded).
    NumericHost { form: u8 },
    /// A trailing dot on a registered name.
    HostTrailingDot,
    /// An unreserved path character percent-encoded.
    EncodedPathCharacter { at: usize },
    /// A path letter in the other case.
    PathCase { at: usize },
    /// Two trailing slashes.
    DoubleSlash,
    /// An extra segment, or the last one cut short (prefix matches).
    ExtraSegment,
    /// A port written with a leading zero.
    PaddedPort,
}

fn disallowed() -> impl Strategy<Value = Disallowed> {
    let at = 0usize..64;
    prop_oneof![
        (at.clone(), 0u8..4).prop_map(|(at, encoded)| Disallowed::DotDotSegment { at, encoded }),
        (at.clone(), prop::bool::ANY)
            .prop_map(|(at, encoded)| Disallowed::DotSegment { at, encoded }),
        (at.clone(), 0u8..6).prop_map(|(at, which)| Disallowed::Control { at, which }),
        at.clone().prop_map(|at| Disallowed::Backslash { at }),
        prop::bool::ANY.prop_map(|password| Disallowed::Userinfo { password }),
        prop::bool::ANY.prop_map(|empty| Disallowed::Fragment { empty }),
        prop::bool::ANY.prop_map(|empty| Disallowed::Query { empty }),
        (0u8..4).prop_map(|form| Disallowed::NumericHost { form }),
        Just(Disallowed::HostTrailingDot),
        at.clone()
            .prop_map(|at| Disallowed::EncodedPathCharacter { at }),
        at.prop_map(|at| Disallowed::PathCase { at }),
        Just(Disallowed::DoubleSlash),
        Just(Disallowed::ExtraSegment),
        Just(Disallowed::PaddedPort),
    ]
}

/// The audience: the resource with the allowed changes, then the disallowed one (`None` when
/// it does not apply to this resource, e.g. a numeric host for a registered name).
fn audience(
    resource: &ResourceParts,
    allowed: &Allowed,
    disallowed: Option<&Disallowed>,
) -> Option<String> {
    let flip = |text: &str, upper: &[bool]| -> String {
        text.chars()
            .zip(upper.iter().chain(std::iter::repeat(&false)))
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect()
    };
    let scheme = flip(
        if resource.https { "https" } else { "http" },
        &allowed.upper_scheme,
    );
    let mut host = flip(&resource.host, &allowed.upper_host);
    let default = if resource.https { 443 } else { 80 };
    let mut port = match resource.port {
        Some(port) => format!(":{port}"),
        None if allowed.explicit_default_port => format!(":{default}"),
        None => String::new(),
    };
    let mut path = resource.path.clone();
    let mut userinfo = "";
    let mut suffix = "";
    let segment_starts: Vec<usize> = path.match_indices('/').map(|(i, _)| i).collect();
    let pick = |at: usize, among: &[usize]| among.get(at % among.len().max(1)).copied();
    match disallowed {
        None => {}
        Some(Disallowed::DotDotSegment { at, encoded }) => {
            let dots = ["..", "%2e%2e", ".%2E", "%2E."][usize::from(*encoded)];
            let i = pick(*at, &segment_starts).unwrap_or(path.len());
            path.insert_str(i, &format!("/x/{dots}"));
        }
        Some(Disallowed::DotSegment { at, encoded }) => {
            let dot = if *encoded { "%2e" } else { "." };
            let i = pick(*at, &segment_starts).unwrap_or(path.len());
            path.insert_str(i, &format!("/{dot}"));
        }
        Some(Disallowed::Control { at, which }) => {
            let c = ['\t', '\n', '\r', ' ', '\0', '\u{7f}'][usize::from(*which)];
            let whole = format!("{scheme}://{host}{port}{path}");
            let i = at % (whole.len() + 1);
            let mut whole = whole;
            whole.insert(i, c);
            return Some(whole);
        }
        Some(Disallowed::Backslash { at }) => {
            let i = pick(*at, &segment_starts)?;
            path.replace_range(i..=i, "\\");
        }
        Some(Disallowed::Userinfo { password }) => {
            userinfo = if *password { "user:pw@" } else { "user@" };
        }
        Some(Disallowed::Fragment { empty }) => suffix = if *empty { "#" } else { "#x" },
        Some(Disallowed::Query { empty }) => suffix = if *empty { "?" } else { "?x" },
        Some(Disallowed::NumericHost { form }) => {
            if resource.https {
                return None;
            }
            host = ["2130706433", "0x7f.1", "127.1", "127.000.0.1"][usize::from(*form)].to_owned();
        }
        Some(Disallowed::HostTrailingDot) => host.push('.'),
        Some(Disallowed::EncodedPathCharacter { at }) => {
            let candidates: Vec<usize> = path
                .char_indices()
                .filter(|(_, c)| c.is_ascii_alphanumeric())
                .map(|(i, _)| i)
                .collect();
            let i = pick(*at, &candidates)?;
            let encoded = format!("%{:02X}", path.as_bytes()[i]);
            path.replace_range(i..=i, &encoded);
        }
        Some(Disallowed::PathCase { at }) => {
            let letters: Vec<usize> = path
                .char_indices()
                .filter(|(_, c)| c.is_ascii_alphabetic())
                .map(|(i, _)| i)
                .collect();
            let i = pick(*at, &letters)?;
            let c = path.as_bytes()[i] as char;
            let other = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            path.replace_range(i..=i, &other.to_string());
        }
        Some(Disallowed::DoubleSlash) => {
            return Some(format!("{scheme}://{host}{port}{path}//"));
        }
        Some(Disallowed::ExtraSegment) => match path.pop() {
            Some(_) if !path.ends_with('/') && !path.is_empty() => {}
            _ => path = format!("{}/more", resource.path),
        },
        Some(Disallowed::PaddedPort) => {
            let number = resource.port.unwrap_or(default);
            port = format!(":0{number}");
        }
    }
    if allowed.trailing_slash && !path.ends_with('/') {
        path.push('/');
    }
    Some(format!("{scheme}://{userinfo}{host}{port}{path}{suffix}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A token is accepted exactly when its audience differs from the resource identifier only
    /// by the changes MCP allows: the rule stated here by construction, not by the code's parser.
    #[test]
    fn an_audience_matches_exactly_when_only_allowed_changes_were_made(
        resource in resource_parts(),
        allowed in allowed(),
        disallowed in prop::option::of(disallowed()),
    ) {
        let audience = audience(&resource, &allowed, disallowed.as_ref());
        prop_assume!(audience.is_some());
        let audience = audience.unwrap_or_default();
        let identifier = resource.identifier();
        let (runtime, dev) = dev();
        let auth = McpAuth::resource_server([ProtectedResource::new(&identifier)
            .authorization_server(AuthServer::new(dev.config()))])
        .unwrap();
        let layer = auth.bearer_auth(&identifier).unwrap();
        let token = dev.token().audience(&audience).algorithm(DevAlgorithm::Es256).sign().unwrap();
        let result = runtime.block_on(layer.authenticate(&bearer(&token)));
        match &disallowed {
            None => prop_assert!(result.is_ok(), "{:?} refused at {}: {:?}", audience, identifier, result),
            Some(change) => prop_assert!(
                matches!(&result, Err(AuthError::InvalidToken { .. })),
                "{:?} ({:?}) accepted at {}", audience, change, identifier
            ),
        }
    }
}
