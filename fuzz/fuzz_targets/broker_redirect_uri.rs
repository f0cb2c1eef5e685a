//! The broker's redirect URI rules (`RedirectUri::parse` and `matches`), as registration, client
//! metadata documents and authorization requests run them.
//!
//! Input: UTF-8 text; up to the first `\n` a registered URI, after it a requested one (which
//! may hold further `\n`s). Without a `\n`, the one URI is both.
//!
//! Invariants, against `mcpauth_fuzz::broker` (reference §5 restated independently):
//! - whatever parses breaks no rule of §5: no whitespace, control character or backslash; an
//!   absolute URI; no script or local-resource scheme (any case); no fragment, no userinfo, no
//!   `.`/`..` segment raw or percent-encoded; an http(s) URI has a host written as the browser
//!   reads it, a numeric port, and is plain http only on a loopback host (`localhost`,
//!   `127.0.0.0/8`, `[::1]`); custom schemes are otherwise allowed;
//! - and everything that breaks none of them parses (the rules are the whole policy);
//! - what parses round-trips: it is kept as written, and parsing what it serializes to gives
//!   the same URI (the same loopback-ness, https-ness and shown host), which matches itself;
//! - the shown host is the written host (lower-cased) for http(s), the scheme otherwise;
//! - `matches` agrees with the rule of §5: a requested URI stands for a registered one exactly
//!   when it is valid and either the same string or both are loopback http(s) URIs equal but for
//!   the port (scheme and host case aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::ParsedRedirectUri;
use mcpauth_fuzz::broker::{
    host_and_port, is_loopback_uri, redirect_uri_matches, redirect_uri_violation, written,
};

/// Checks one URI on its own; returns it when it parses.
fn check(uri: &str) -> Option<ParsedRedirectUri> {
    let parsed = ParsedRedirectUri::parse(uri);
    let parsed = match (parsed, redirect_uri_violation(uri)) {
        (Ok(parsed), None) => parsed,
        (Err(_), Some(_)) => return None,
        (Ok(_), Some(rule)) => {
            panic!("{uri:?} was accepted but breaks a redirect URI rule: {rule}")
        }
        (Err(error), None) => {
            panic!("{uri:?} breaks no redirect URI rule but was refused: {error}")
        }
    };
    assert_eq!(parsed.as_str(), uri, "an accepted URI is kept as written");
    let again = ParsedRedirectUri::parse(parsed.as_str())
        .unwrap_or_else(|e| panic!("{uri:?} does not parse again: {e}"));
    assert_eq!(again, parsed, "{uri:?} does not round-trip");
    assert!(
        parsed.matches(parsed.as_str()),
        "{uri:?} does not match itself"
    );
    assert_eq!(
        parsed.is_loopback(),
        is_loopback_uri(uri),
        "{uri:?} loopback"
    );
    let parts = written(uri).expect("a valid URI has a scheme");
    let scheme = parts.scheme.to_ascii_lowercase();
    assert_eq!(parsed.is_https(), scheme == "https", "{uri:?} https");
    let shown = match parts.authority {
        Some(authority) if scheme == "http" || scheme == "https" => {
            host_and_port(authority).0.to_ascii_lowercase()
        }
        _ => scheme,
    };
    assert_eq!(parsed.host(), shown, "{uri:?}: the host shown");
    Some(parsed)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (registered, requested) = text.split_once('\n').unwrap_or((text, text));
    let parsed_requested = check(requested);
    let Some(registered_uri) = check(registered) else {
        return;
    };
    let matched = registered_uri.matches(requested);
    let expected = parsed_requested.is_some() && redirect_uri_matches(registered, requested);
    assert_eq!(
        matched, expected,
        "registered {registered:?}, requested {requested:?}: matches says {matched}"
    );
});
