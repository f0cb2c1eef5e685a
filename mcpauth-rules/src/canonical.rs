//! MCP's canonical server URI, read strictly: the only differences two resource URIs may have and
//! still name the same resource are the ones MCP allows — scheme and host in another ASCII case,
//! an explicit default port, one trailing `/`. Nothing else is normalised.
//!
//! A general URL parser (WHATWG) resolves `..` and `%2e%2e` segments, drops tabs and newlines,
//! turns `\` into `/`, rewrites `2130706433` or `0x7f.1` into dotted IPv4 and maps Unicode hosts
//! to ASCII. Comparing after such a parse lets a token for `https://h/public/../admin` through at
//! `https://h/admin`. Here such a URI is not canonical at all: it never names any resource.

use std::net::Ipv6Addr;

/// Why a URI is not in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotCanonical {
    /// A character outside printable ASCII (whitespace, a control character, non-ASCII text).
    Character,
    /// A `\`.
    Backslash,
    /// A character that URIs never carry unencoded (`"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`).
    Unencoded,
    /// A `%` not followed by two hexadecimal digits.
    BadPercentEncoding,
    /// Not `http://` or `https://` followed by an authority.
    Scheme,
    /// A user name or password (`…@`).
    Userinfo,
    /// A query (`?…`).
    Query,
    /// A fragment (`#…`).
    Fragment,
    /// No host.
    EmptyHost,
    /// A host not written as it is serialised: a number in another notation than dotted-quad
    /// decimal, an empty label or trailing dot, a character outside letters, digits, `-` and `_`,
    /// an IPv6 literal in a non-canonical spelling.
    Host,
    /// A port that is empty, has a leading zero or is out of range.
    Port,
    /// A `.` or `..` path segment, raw or percent-encoded.
    DotSegment,
    /// A percent-encoded `/` or `\` in the path (a server decoding it would see other segments).
    EncodedSeparator,
}

impl NotCanonical {
    /// What is wrong, as a phrase ("has a `..` segment").
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Character => {
                "contains whitespace, a control character or a character outside printable ASCII"
            }
            Self::Backslash => "contains `\\`",
            Self::Unencoded => "contains a character that must be percent-encoded",
            Self::BadPercentEncoding => "has a `%` not followed by two hexadecimal digits",
            Self::Scheme => "does not start with `https://` or `http://`",
            Self::Userinfo => "carries a user name or password (`…@`)",
            Self::Query => "has a query (`?…`)",
            Self::Fragment => "has a fragment (`#…`)",
            Self::EmptyHost => "has no host",
            Self::Host => {
                "has a host not written in canonical form (dotted-quad IPv4, compressed IPv6, or a name of letters, digits, `-` and `_` without empty labels)"
            }
            Self::Port => "has an empty, zero-padded or out-of-range port",
            Self::DotSegment => "has a `.` or `..` path segment (raw or percent-encoded)",
            Self::EncodedSeparator => "has a percent-encoded `/` or `\\` in its path",
        }
    }
}

impl std::fmt::Display for NotCanonical {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A resource URI in canonical form, split into what the comparison looks at (borrowed from the
/// text it was parsed from).
///
/// ```
/// use mcpauth_rules::canonical::CanonicalUri;
///
/// let resource = CanonicalUri::parse("https://api.example.com/mcp").unwrap();
/// let same = CanonicalUri::parse("HTTPS://API.example.com:443/mcp/").unwrap();
/// assert!(resource.same_resource(&same));
/// assert!(CanonicalUri::parse("https://api.example.com/x/../mcp").is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CanonicalUri<'a> {
    https: bool,
    host: &'a str,
    /// `None` for the scheme's default port, written or not.
    port: Option<u16>,
    /// The path without one trailing `/` (so `""` for the root).
    path: &'a str,
}

impl<'a> CanonicalUri<'a> {
    /// Parses `raw` if it is an absolute `http(s)` URI in canonical form.
    pub fn parse(raw: &'a str) -> Result<Self, NotCanonical> {
        check_characters(raw)?;
        let (scheme, rest) = raw.split_once("://").ok_or(NotCanonical::Scheme)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(NotCanonical::Scheme);
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        if authority.contains('@') {
            return Err(NotCanonical::Userinfo);
        }
        let (host, port) = split_authority(authority)?;
        check_host(host)?;
        let default_port = if https { 443 } else { 80 };
        let port = port
            .map(parse_port)
            .transpose()?
            .filter(|p| *p != default_port);
        check_path(path)?;
        Ok(Self {
            https,
            host,
            port,
            path: path.strip_suffix('/').unwrap_or(path),
        })
    }

    /// Whether both name the same resource: scheme and host equal without regard to ASCII case,
    /// ports equal after the default is dropped, paths equal byte for byte after one trailing
    /// `/` is dropped.
    pub fn same_resource(&self, other: &CanonicalUri<'_>) -> bool {
        self.https == other.https
            && self.port == other.port
            && self.path == other.path
            && self.host.eq_ignore_ascii_case(other.host)
    }
}

fn check_characters(raw: &str) -> Result<(), NotCanonical> {
    let bytes = raw.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'!'..=b'~' => {}
            _ => return Err(NotCanonical::Character),
        }
        match byte {
            b'\\' => return Err(NotCanonical::Backslash),
            b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}' => {
                return Err(NotCanonical::Unencoded);
            }
            b'#' => return Err(NotCanonical::Fragment),
            b'?' => return Err(NotCanonical::Query),
            b'%' => {
                let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(at + 1) && hex(at + 2)) {
                    return Err(NotCanonical::BadPercentEncoding);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
fn split_authority(authority: &str) -> Result<(&str, Option<&str>), NotCanonical> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(NotCanonical::Host)? + 1;
        let (host, rest) = authority.split_at(end);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or(NotCanonical::Host)?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(NotCanonical::EmptyHost);
    }
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, NotCanonical> {
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if !digits || port.starts_with('0') {
        return Err(NotCanonical::Port);
    }
    port.parse().map_err(|_| NotCanonical::Port)
}

fn check_host(host: &str) -> Result<(), NotCanonical> {
    if let Some(literal) = host.strip_prefix('[') {
        let literal = literal.strip_suffix(']').ok_or(NotCanonical::Host)?;
        // The compressed lower-case spelling (RFC 5952) is the serialised one; embedded IPv4
        // notation and zone identifiers are not.
        let canonical = literal
            .parse::<Ipv6Addr>()
            .ok()
            .filter(|_| !literal.contains('.'))
            .is_some_and(|ip| ip.to_string().eq_ignore_ascii_case(literal));
        return if canonical {
            Ok(())
        } else {
            Err(NotCanonical::Host)
        };
    }
    let labels = || host.split('.');
    let name_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !labels().all(name_label) {
        return Err(NotCanonical::Host);
    }
    // A host whose last label is a number (decimal, or `0x` hexadecimal) is an IPv4 address to a
    // URL parser: only the dotted-quad decimal spelling is its canonical form.
    let last = labels().next_back().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .get(..2)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("0x"));
    if numeric && !is_dotted_quad(host) {
        return Err(NotCanonical::Host);
    }
    Ok(())
}

fn is_dotted_quad(host: &str) -> bool {
    let octet = |part: &str| {
        !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.parse::<u8>().is_ok()
    };
    host.split('.').count() == 4 && host.split('.').all(octet)
}

fn check_path(path: &str) -> Result<(), NotCanonical> {
    for segment in path.split('/') {
        let mut dots = 0;
        let mut other = false;
        let mut rest = segment;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                dots += 1;
                rest = after;
            } else if let Some(encoded) = rest.get(..3).filter(|e| e.starts_with('%')) {
                if encoded.eq_ignore_ascii_case("%2e") {
                    dots += 1;
                } else if encoded.eq_ignore_ascii_case("%2f") || encoded.eq_ignore_ascii_case("%5c")
                {
                    return Err(NotCanonical::EncodedSeparator);
                } else {
                    other = true;
                }
                rest = &rest[3..];
            } else {
                other = true;
                let next = rest.char_indices().nth(1).map_or(rest.len(), |(at, _)| at);
                rest = &rest[next..];
            }
        }
        if !other && (dots == 1 || dots == 2) {
            return Err(NotCanonical::DotSegment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        CanonicalUri::parse(a)
            .unwrap()
            .same_resource(&CanonicalUri::parse(b).unwrap())
    }

    #[test]
    fn only_the_allowed_differences_name_the_same_resource() {
        let resource = "https://api.example.com/mcp";
        for variant in [
            "https://api.example.com/mcp",
            "https://api.example.com/mcp/",
            "HTTPS://API.EXAMPLE.COM/mcp",
            "https://api.example.com:443/mcp",
            "hTTpS://Api.Example.Com:443/mcp/",
        ] {
            assert!(same(resource, variant), "{variant}");
        }
        for other in [
            "https://api.example.com/MCP",
            "https://api.example.com/mcp//",
            "https://api.example.com/mcp/x",
            "https://api.example.com/mc%70",
            "http://api.example.com/mcp",
            "https://api.example.com:8443/mcp",
            "http://api.example.com:443/mcp",
        ] {
            assert!(!same(resource, other), "{other}");
        }
        assert!(same("https://h", "https://h/"));
        assert!(same("http://127.0.0.1:80/", "http://127.0.0.1"));
        assert!(same("http://[::1]:3000/x", "http://[::1]:3000/x/"));
    }

    #[test]
    fn non_canonical_spellings_are_refused() {
        use NotCanonical as N;
        for (uri, reason) in [
            ("https://h/public/../admin", N::DotSegment),
            ("https://h/public/%2e%2e/admin", N::DotSegment),
            ("https://h/public/.%2E/admin", N::DotSegment),
            ("https://h/admin/.", N::DotSegment),
            ("https://h/./admin", N::DotSegment),
            ("https://h/public%2f..%2fadmin", N::EncodedSeparator),
            ("https://h/public%5C..%5Cadmin", N::EncodedSeparator),
            ("https://h/ad\tmin", N::Character),
            ("https://h/admin\n", N::Character),
            (" https://h/admin", N::Character),
            ("https://h/admin ", N::Character),
            ("https://h\\admin", N::Backslash),
            ("https://h/adm{in", N::Unencoded),
            ("https://h/%zz", N::BadPercentEncoding),
            ("https://h/%2", N::BadPercentEncoding),
            ("https://u@h/admin", N::Userinfo),
            ("https://u:p@h/admin", N::Userinfo),
            ("https://h/admin#x", N::Fragment),
            ("https://h/admin?x", N::Query),
            ("ftp://h/admin", N::Scheme),
            ("//h/admin", N::Scheme),
            ("https:/h/admin", N::Scheme),
            ("https:///admin", N::EmptyHost),
            ("https://2130706433/admin", N::Host),
            ("https://0x7f.1/admin", N::Host),
            ("https://127.1/admin", N::Host),
            ("https://127.000.0.1/admin", N::Host),
            ("https://256.0.0.1/admin", N::Host),
            ("https://h./admin", N::Host),
            ("https://h..x/admin", N::Host),
            ("https://xn--h-ja%41/admin", N::Host),
            ("https://bücher.example/admin", N::Character),
            ("https://[0:0:0:0:0:0:0:1]/admin", N::Host),
            ("https://[::ffff:127.0.0.1]/admin", N::Host),
            ("https://[::1%25eth0]/admin", N::Host),
            ("https://[::1/admin", N::Host),
            ("https://h:/admin", N::Port),
            ("https://h:0443/admin", N::Port),
            ("https://h:65536/admin", N::Port),
            ("https://h:+1/admin", N::Port),
        ] {
            assert_eq!(CanonicalUri::parse(uri).err(), Some(reason), "{uri:?}");
        }
    }

    #[test]
    fn dots_inside_segments_are_ordinary_characters() {
        for uri in [
            "https://h/a.b",
            "https://h/.well-known/x",
            "https://h/.../x",
            "https://h/..a",
            "https://h/a%2e",
            "https://[::1]/",
            "https://[2001:db8::1]:8443/x",
            "https://10.0.0.1/x",
            "https://a_b.example/x",
            "https://xn--bcher-kva.example/",
        ] {
            assert!(CanonicalUri::parse(uri).is_ok(), "{uri}");
        }
    }
}
