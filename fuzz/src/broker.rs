//! Independent statements of the broker's rules for the broker targets: the redirect URI rules
//! of the broker reference (§5: what a registered or requested redirect URI may be, and when a
//! requested one matches a registered one), a client ID metadata document URL's rules (CIMD §3),
//! and an `application/x-www-form-urlencoded` reader (WHATWG URL, "urlencoded parsing").
//!
//! Written from those texts, not from the crate: none of it calls or copies the broker's code.
//! The `url` crate stands in for the browser (what a browser makes of a URL), never for the
//! rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

/// Schemes a redirect must never use: they run script, read local resources, or are no
/// navigation that can deliver a code (reference §5 names `javascript`, `data`, `vbscript`,
/// `file`, `blob`; the rest are of the same kind).
/// The broker's documented policy adds schemes that cannot deliver a code to an application
/// (sockets, mail, telephony, archives, browser-internal resources).
pub const SCRIPT_SCHEMES: [&str; 18] = [
    "javascript",
    "vbscript",
    "livescript",
    "data",
    "file",
    "blob",
    "filesystem",
    "view-source",
    "about",
    "intent",
    "ws",
    "wss",
    "ftp",
    "mailto",
    "tel",
    "sms",
    "jar",
    "resource",
];

/// A URI cut as written (RFC 3986 §3): scheme, the authority after `//` (if any), the path,
/// whether a query and a fragment follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<'a> {
    /// Up to the first `:`, as written.
    pub scheme: &'a str,
    /// After `//` up to the next `/`, `?` or `#`.
    pub authority: Option<&'a str>,
    /// After the authority, up to `?` or `#`.
    pub path: &'a str,
    /// After the authority, up to `#`.
    pub path_and_query: &'a str,
    /// Whether a `#` appears.
    pub fragment: bool,
}

/// Cuts `uri` into its parts as written; `None` without a valid `scheme:` (RFC 3986 §3.1).
pub fn written(uri: &str) -> Option<Written<'_>> {
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let rest = &uri[colon + 1..];
    let fragment = rest.contains('#');
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path_and_query) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let path = path_and_query.split('?').next().unwrap_or_default();
    Some(Written {
        scheme,
        authority,
        path,
        path_and_query,
        fragment,
    })
}

/// Percent-decodes once; invalid escapes stay as written.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Whether a path segment is `.` or `..`, as written or percent-decoded.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = percent_decode(segment.as_bytes());
        decoded == b"." || decoded == b".."
    })
}

/// The host and port of an authority as written (no userinfo expected).
pub fn host_and_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    }
}

/// Whether a host as written is loopback (reference §5: `localhost`, any `127.0.0.0/8`,
/// `[::1]`), in the spelling a browser keeps: dotted-quad decimal, a bracketed IPv6 literal.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>() == Ok(Ipv6Addr::LOCALHOST);
    }
    host.parse::<Ipv4Addr>()
        .is_ok_and(|ip| ip.octets()[0] == 127)
}

/// Whether `uri` is an http(s) URI on a loopback host (as written).
pub fn is_loopback_uri(uri: &str) -> bool {
    written(uri).is_some_and(|w| {
        matches!(w.scheme.to_ascii_lowercase().as_str(), "http" | "https")
            && w.authority
                .is_some_and(|a| is_loopback_host(host_and_port(a).0))
    })
}

/// The rules every URI here must pass first: no whitespace, control character or backslash
/// (which browsers drop or read as `/`), a `scheme:`, and a URL a browser can parse; then its
/// parts as written and as the browser reads it.
fn readable(uri: &str) -> Result<(Written<'_>, url::Url), &'static str> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or a control character");
    }
    if uri.contains('\\') {
        return Err("a backslash");
    }
    let parts = written(uri).ok_or("not an absolute URI")?;
    let browser = url::Url::parse(uri).map_err(|_| "not a URL a browser reads")?;
    Ok((parts, browser))
}

/// The first rule of reference §5 (and RFC 6749 §3.1.2) that `uri` breaks, if any:
/// - no whitespace or control character anywhere, no backslash (browsers read it as `/`);
/// - an absolute URI (`scheme:` …) that a browser can parse;
/// - no script or local-resource scheme, in any case;
/// - no fragment, not even an empty one; no userinfo; no `.`/`..` segment, raw or
///   percent-encoded;
/// - http(s): a host, written as the browser reads it, and digits only after a `:`; plain http
///   only on a loopback host;
/// - any other scheme (a native application's: `cursor://`, `com.example.app:/cb`) is allowed.
pub fn redirect_uri_violation(uri: &str) -> Option<&'static str> {
    let (parts, browser) = match readable(uri) {
        Ok(read) => read,
        Err(rule) => return Some(rule),
    };
    let scheme = parts.scheme.to_ascii_lowercase();
    if SCRIPT_SCHEMES.contains(&scheme.as_str()) {
        return Some("a script or local-resource scheme");
    }
    if parts.fragment {
        return Some("a fragment");
    }
    if parts.authority.is_some_and(|a| a.contains('@')) {
        return Some("userinfo");
    }
    if has_dot_segment(parts.path) {
        return Some("a dot segment");
    }
    if scheme == "http" || scheme == "https" {
        let Some(authority) = parts.authority else {
            return Some("an http(s) URI without a host");
        };
        let (host, port) = host_and_port(authority);
        if host.is_empty() {
            return Some("an http(s) URI without a host");
        }
        if Some(host.to_ascii_lowercase().as_str()) != browser.host_str() {
            return Some("a host the browser reads differently");
        }
        if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
            return Some("a port that is not digits");
        }
        if scheme == "http" && !is_loopback_host(host) {
            return Some("plain http on a host that is not loopback");
        }
    }
    None
}

/// `uri` with its scheme and host lower-cased and its port removed: two loopback redirect URIs
/// name the same redirect when these are equal (reference §5: only the port is ignored).
pub fn without_port(uri: &str) -> Option<String> {
    let parts = written(uri)?;
    let authority = parts.authority?;
    let (host, _) = host_and_port(authority);
    Some(format!(
        "{}://{}{}",
        parts.scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        parts.path_and_query
    ))
}

/// Whether a requested redirect URI may stand for a registered one (reference §5): the same
/// string, or both loopback http(s) URIs equal but for the port. Both are assumed valid.
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    registered == requested
        || (is_loopback_uri(registered)
            && is_loopback_uri(requested)
            && without_port(registered).is_some()
            && without_port(registered) == without_port(requested))
}

/// The first rule of CIMD §3 (as the broker applies it, taking http too, for trusted hosts)
/// that a client id URL breaks: http(s); a host written as the browser reads it; a path other
/// than `/`; no fragment, userinfo, dot segment, whitespace, control character or backslash.
pub fn document_url_violation(client_id: &str) -> Option<&'static str> {
    let (parts, browser) = match readable(client_id) {
        Ok(read) => read,
        Err(rule) => return Some(rule),
    };
    if !matches!(parts.scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Some("not http(s)");
    }
    if parts.fragment {
        return Some("a fragment");
    }
    let Some(authority) = parts.authority else {
        return Some("no host");
    };
    if authority.contains('@') {
        return Some("userinfo");
    }
    let (host, _) = host_and_port(authority);
    if host.is_empty() || Some(host.to_ascii_lowercase().as_str()) != browser.host_str() {
        return Some("a host the browser reads differently");
    }
    if has_dot_segment(parts.path) {
        return Some("a dot segment");
    }
    if parts.path.is_empty() || parts.path == "/" {
        return Some("no path");
    }
    None
}

/// Reads an `application/x-www-form-urlencoded` string into its name/value pairs, in order
/// (WHATWG URL §5.1): `&`-separated, empty pieces skipped, split at the first `=`, `+` is a
/// space, percent-escapes decoded, then UTF-8 with replacement characters.
pub fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &b""[..]),
            };
            let decode = |bytes: &[u8]| {
                let plus: Vec<u8> = bytes
                    .iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect();
                String::from_utf8_lossy(&percent_decode(&plus)).into_owned()
            };
            (decode(name), decode(value))
        })
        .collect()
}

/// The first name of `pairs` that appears a second time (its second appearance), if any.
pub fn first_repeated(pairs: &[(String, String)]) -> Option<&str> {
    pairs.iter().enumerate().find_map(|(i, (name, _))| {
        pairs[..i]
            .iter()
            .any(|(earlier, _)| earlier == name)
            .then_some(name.as_str())
    })
}

/// Whether `c` is a Unicode `Bidi_Control` character (it reorders displayed text).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `s` is an RFC 6749 §3.3 scope token (`1*( %x21 / %x23-5B / %x5D-7E )`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Whether `s` is an absolute https URL (as a browser reads it).
pub fn is_https_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| u.scheme() == "https")
}

/// The array of strings `name` of accepted metadata, if present (it must be one).
pub fn string_list<'a>(members: &'a Map<String, Value>, name: &str) -> Option<Vec<&'a str>> {
    let values = members.get(name)?.as_array();
    let values = values.unwrap_or_else(|| panic!("an accepted {name} is no array"));
    Some(
        values
            .iter()
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| panic!("{name} holds a non-string"))
            })
            .collect(),
    )
}

/// Which default a client record's `application_type` takes when the metadata has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultApplicationType {
    /// `native` (dynamic registration: MCP clients mostly are).
    Native,
    /// `web` exactly when every redirect URI is https on a non-loopback host (metadata
    /// documents).
    FromRedirectUris,
}

/// The members a client record may have: nothing else, and never a secret.
const RECORD_MEMBERS: [&str; 9] = [
    "client_id",
    "client_name",
    "redirect_uris",
    "source",
    "application_type",
    "client_uri",
    "logo_uri",
    "scope",
    "registered_at",
];

/// Checks an accepted client's record against the metadata it was made from, by the rules
/// registration and metadata documents share (RFC 7591 §2, OpenID Connect Registration §2,
/// reference §2): 1–10 `redirect_uris`, each valid by [`redirect_uri_violation`], kept in order
/// without repeats; `application_type` `web` only with https redirect URIs on non-loopback
/// hosts, `native` otherwise or as `default` says; a non-blank `client_name` of at most 200
/// characters without control or bidirectional-control characters, kept as sent (a blank one
/// is no name); `client_uri` and `logo_uri` https; `scope` RFC 6749 tokens, kept once each in
/// order; a record with only its known members, none of them a secret.
pub fn check_client_record(
    members: &Map<String, Value>,
    record: &Value,
    default: DefaultApplicationType,
) {
    let record = record.as_object().expect("a record is a JSON object");
    for name in record.keys() {
        assert!(
            RECORD_MEMBERS.contains(&name.as_str()),
            "record member {name:?}"
        );
    }
    let uris: Vec<&str> = members["redirect_uris"]
        .as_array()
        .expect("redirect_uris is an array")
        .iter()
        .map(|u| u.as_str().expect("redirect_uris holds strings"))
        .collect();
    assert!(
        (1..=10).contains(&uris.len()),
        "{} redirect URIs",
        uris.len()
    );
    let mut kept: Vec<&str> = Vec::new();
    for uri in &uris {
        if let Some(rule) = redirect_uri_violation(uri) {
            panic!("redirect URI {uri:?} was accepted but breaks a rule: {rule}");
        }
        if !kept.contains(uri) {
            kept.push(uri);
        }
    }
    assert_eq!(
        record["redirect_uris"],
        Value::from(kept),
        "redirect_uris kept"
    );
    let all_web = uris.iter().all(|uri| {
        written(uri).is_some_and(|w| w.scheme.eq_ignore_ascii_case("https"))
            && !is_loopback_uri(uri)
    });
    let application_type = match members.get("application_type") {
        Some(given) => given.as_str().expect("application_type is a string"),
        None => match default {
            DefaultApplicationType::Native => "native",
            DefaultApplicationType::FromRedirectUris if all_web => "web",
            DefaultApplicationType::FromRedirectUris => "native",
        },
    };
    assert!(
        matches!(application_type, "web" | "native"),
        "{application_type:?}"
    );
    assert_eq!(record["application_type"], application_type);
    if application_type == "web" {
        assert!(
            all_web,
            "a web client with a loopback or non-https redirect: {uris:?}"
        );
    }
    match members.get("client_name") {
        Some(Value::String(name)) if !name.trim().is_empty() => {
            assert!(
                name.chars().count() <= 200,
                "client_name of {} characters",
                name.chars().count()
            );
            assert!(
                !name.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "client_name {name:?} has a control or bidi-control character"
            );
            assert_eq!(record["client_name"], name.as_str());
        }
        Some(Value::String(_)) | None => assert_eq!(record["client_name"], Value::Null),
        Some(other) => panic!("a client_name that is no string was accepted: {other}"),
    }
    for name in ["client_uri", "logo_uri"] {
        match members.get(name) {
            None => assert_eq!(record[name], Value::Null),
            Some(Value::String(uri)) => {
                assert!(is_https_url(uri), "{name} {uri:?} is not https");
                assert_eq!(record[name], uri.as_str());
            }
            Some(other) => panic!("a {name} that is no string was accepted: {other}"),
        }
    }
    match members.get("scope") {
        None => assert_eq!(record["scope"], Value::Null),
        Some(Value::String(scope)) => {
            let mut tokens: Vec<&str> = Vec::new();
            for token in scope.split(' ').filter(|t| !t.is_empty()) {
                assert!(is_scope_token(token), "scope token {token:?} was accepted");
                if !tokens.contains(&token) {
                    tokens.push(token);
                }
            }
            let expected = if tokens.is_empty() {
                Value::Null
            } else {
                tokens.join(" ").into()
            };
            assert_eq!(record["scope"], expected);
        }
        Some(other) => panic!("a scope that is no string was accepted: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_states_the_reference_examples() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://localhost/callback",
            "http://127.0.0.1:33418/",
            "http://[::1]:8080/cb",
            "cursor://anysphere.cursor-retrieval/oauth/user-server/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(redirect_uri_violation(ok), None, "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "https://example.com/cb#",
            "https://u@example.com/cb",
            "https://example.com/a/%2E%2e/b",
            "JavaScript:alert(1)",
            " https://example.com/cb",
            "http://127.1/cb",
            "https:/example.com/cb",
        ] {
            assert!(redirect_uri_violation(bad).is_some(), "{bad}");
        }
        assert!(redirect_uri_matches(
            "http://localhost/callback",
            "http://localhost:49152/callback"
        ));
        assert!(!redirect_uri_matches(
            "http://localhost/callback",
            "http://127.0.0.1:49152/callback"
        ));
        assert!(!redirect_uri_matches(
            "https://example.com:1/cb",
            "https://example.com:2/cb"
        ));
    }

    #[test]
    fn forms_are_read_as_browsers_write_them() {
        assert_eq!(
            form_pairs(b"a=1&&b&c=x+y%20z&a=%zz"),
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "x y z".into()),
                ("a".into(), "%zz".into())
            ]
        );
        assert_eq!(first_repeated(&form_pairs(b"a=1&b=2&b=3&a=4")), Some("b"));
    }
}

/// What a client ID metadata document's response headers allow, by the rules of RFC 9111 as
/// the broker applies them, stated on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRule {
    /// Not cached: `no-store` or `no-cache`, `max-age=0`, an unreadable `max-age`, or a
    /// `Cache-Control` field that is not visible ASCII (it might say `no-store`).
    NotCached,
    /// Cached for the first `max-age`, in seconds (before the bounds).
    MaxAge(u64),
    /// No `max-age`: the first `Expires` field decides (with `Date`).
    ByExpires,
    /// Neither: the default time.
    Default,
}

/// The rule the header fields `fields` (lower-case names, raw values, in order) select.
pub fn cache_rule(fields: &[(String, Vec<u8>)]) -> CacheRule {
    let cache_control: Vec<&[u8]> = fields
        .iter()
        .filter(|(name, _)| name == "cache-control")
        .map(|(_, value)| value.as_slice())
        .collect();
    let visible = |b: &u8| *b == b'\t' || (0x20..0x7f).contains(b);
    if cache_control.iter().any(|value| !value.iter().all(visible)) {
        return CacheRule::NotCached;
    }
    let is_space = |c: char| c == ' ' || c == '\t';
    let mut max_age = None;
    for value in cache_control {
        // Visible ASCII, so UTF-8.
        let text = std::str::from_utf8(value).unwrap_or_default();
        for directive in text.split(',') {
            let directive = directive.trim_matches(is_space);
            let (name, argument) = match directive.find('=') {
                Some(at) => (
                    &directive[..at],
                    Some(directive[at + 1..].trim_matches(is_space)),
                ),
                None => (directive, None),
            };
            let name = name.trim_matches(is_space).to_ascii_lowercase();
            if name == "no-store" || name == "no-cache" {
                return CacheRule::NotCached;
            }
            if name == "max-age" && max_age.is_none() {
                let Some(argument) = argument else {
                    return CacheRule::NotCached;
                };
                let bytes = argument.as_bytes();
                let digits =
                    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
                        &argument[1..argument.len() - 1]
                    } else {
                        argument
                    };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return CacheRule::NotCached;
                }
                // More digits than 64 bits hold: unreadable.
                let mut seconds: u64 = 0;
                for digit in digits.bytes() {
                    match seconds
                        .checked_mul(10)
                        .and_then(|s| s.checked_add(u64::from(digit - b'0')))
                    {
                        Some(next) => seconds = next,
                        None => return CacheRule::NotCached,
                    }
                }
                max_age = Some(seconds);
            }
        }
    }
    match max_age {
        Some(0) => CacheRule::NotCached,
        Some(seconds) => CacheRule::MaxAge(seconds),
        None if fields.iter().any(|(name, _)| name == "expires") => CacheRule::ByExpires,
        None => CacheRule::Default,
    }
}
