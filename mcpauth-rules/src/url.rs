//! The rules every URL mcpauth trusts must follow: issuer identifiers, resource identifiers and
//! the URLs it fetches from.
//!
//! One place decides what "https except loopback" means, so the runtime's configuration checks,
//! its discovery and the macros' compile-time checks give the same answer with the same words.

use std::net::IpAddr;

use url::{Host, Url};

use crate::canonical::{CanonicalUri, NotCanonical};

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The string does not parse as an absolute URL.
    #[error("`{url}` is not an absolute URL ({reason})")]
    NotAbsolute {
        /// The offending string.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// The string has whitespace or a control character somewhere. A URL parser would drop it
    /// silently, but identifiers are compared as written: an issuer with a trailing space never
    /// matches a token's `iss`.
    #[error("{url:?} contains whitespace or a control character: remove it")]
    StrayCharacter {
        /// The offending string.
        url: String,
    },
    /// The scheme is neither `https` nor `http`.
    #[error(
        "`{url}` uses the `{scheme}` scheme: only https (or http on a loopback host) is allowed"
    )]
    UnsupportedScheme {
        /// The offending URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// Plain `http` on a host that is not loopback.
    #[error(
        "`{url}` uses http on a non-loopback host: use https (http is only allowed for localhost, 127.0.0.0/8 and ::1)"
    )]
    InsecureHttp {
        /// The offending URL.
        url: String,
    },
    /// The URL has a fragment (`#…`).
    #[error("`{url}` has a fragment: remove the `#…` part")]
    HasFragment {
        /// The offending URL.
        url: String,
    },
    /// The URL has a query (`?…`).
    #[error("`{url}` has a query: remove the `?…` part")]
    HasQuery {
        /// The offending URL.
        url: String,
    },
    /// The URL carries a user name or password.
    #[error("`{url}` carries credentials (`user:password@`): remove them")]
    HasCredentials {
        /// The offending URL.
        url: String,
    },
    /// A resource identifier not written in MCP's canonical form.
    #[error(
        "`{url}` is not a canonical resource URI: it {reason}; write it as clients will (e.g. `https://api.example.com/mcp`)"
    )]
    NotCanonical {
        /// The offending URL.
        url: String,
        /// What is not canonical.
        reason: NotCanonical,
    },
}

/// Whether `url`'s host is a loopback host: `localhost`, `127.0.0.0/8` or `::1`.
///
/// Names under `.localhost` (and `localhost.` with its trailing dot) are not: whether they
/// resolve to this machine depends on the resolver, and one that asks DNS could send plain
/// `http` elsewhere.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses `raw` as an absolute http(s) URL that is https unless its host is loopback, and has no
/// whitespace or control character, no fragment and no credentials. Queries are allowed; callers
/// that forbid them say so.
pub fn parse_secure_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|error| UrlError::NotAbsolute {
        url: raw.to_owned(),
        reason: error.to_string(),
    })?;
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::StrayCharacter {
            url: raw.to_owned(),
        });
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(UrlError::InsecureHttp {
                url: raw.to_owned(),
            });
        }
        scheme => {
            return Err(UrlError::UnsupportedScheme {
                url: raw.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
    }
    if url.fragment().is_some() {
        return Err(UrlError::HasFragment {
            url: raw.to_owned(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::HasCredentials {
            url: raw.to_owned(),
        });
    }
    Ok(url)
}

/// Checks an issuer identifier (RFC 8414 §2: https, no query, no fragment) and parses it.
pub fn parse_issuer(raw: &str) -> Result<Url, UrlError> {
    without_query(raw, parse_secure_url(raw)?)
}

/// Checks a protected resource identifier (RFC 9728 §1.2 and MCP's canonical URI: absolute
/// https, no fragment; this crate also refuses a query, which RFC 9728 says it SHOULD NOT have
/// and which no well-known route could tell apart) and parses it.
///
/// The identifier must be written in canonical form (see [`CanonicalUri`]): audiences are
/// compared with it allowing only the differences MCP allows, so an identifier that a URL parser
/// would rewrite (`..` segments, numeric hosts, Unicode hosts…) could never be matched.
pub fn parse_resource_identifier(raw: &str) -> Result<Url, UrlError> {
    let url = without_query(raw, parse_secure_url(raw)?)?;
    let not_canonical = |reason| UrlError::NotCanonical {
        url: raw.to_owned(),
        reason,
    };
    let written = CanonicalUri::parse(raw).map_err(not_canonical)?;
    // The URL parser must read it as written (nothing it normalises beyond what MCP allows).
    let parsed = CanonicalUri::parse(url.as_str()).map_err(not_canonical)?;
    if !written.same_resource(&parsed) {
        return Err(not_canonical(NotCanonical::Host));
    }
    Ok(url)
}

fn without_query(raw: &str, url: Url) -> Result<Url, UrlError> {
    if url.query().is_some() {
        return Err(UrlError::HasQuery {
            url: raw.to_owned(),
        });
    }
    Ok(url)
}

/// The RFC 9728 well-known suffix.
pub const OAUTH_PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";

/// The path at which the protected-resource metadata of `resource` is served (RFC 9728 §3.1):
/// the well-known suffix followed by the resource's path; a root path adds nothing.
pub fn protected_resource_metadata_path(resource: &Url) -> String {
    let path = resource.path();
    if path == "/" {
        OAUTH_PROTECTED_RESOURCE.to_owned()
    } else {
        format!("{OAUTH_PROTECTED_RESOURCE}{path}")
    }
}

/// Whether two URLs have the same origin (scheme, host and port).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for loopback in [
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1/",
            "http://127.8.9.10/",
            "http://[::1]:3000/",
        ] {
            assert!(is_loopback(&Url::parse(loopback).unwrap()), "{loopback}");
        }
        for remote in [
            "http://example.com/",
            "http://localhost.example.com/",
            "http://api.localhost/",
            "http://localhost./",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://0.0.0.0/",
        ] {
            assert!(!is_loopback(&Url::parse(remote).unwrap()), "{remote}");
        }
    }

    #[test]
    fn secure_url_rules() {
        assert!(parse_secure_url("https://a.example/x?y=1").is_ok());
        assert!(parse_secure_url("http://127.0.0.1:9/x").is_ok());
        assert!(matches!(
            parse_secure_url("http://a.example/"),
            Err(UrlError::InsecureHttp { .. })
        ));
        assert!(matches!(
            parse_secure_url("ftp://a.example/"),
            Err(UrlError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_secure_url("/relative"),
            Err(UrlError::NotAbsolute { .. })
        ));
        assert!(matches!(
            parse_secure_url("https://a.example/#f"),
            Err(UrlError::HasFragment { .. })
        ));
        assert!(matches!(
            parse_secure_url("https://u:p@a.example/"),
            Err(UrlError::HasCredentials { .. })
        ));
        assert!(matches!(
            parse_issuer("https://a.example/?q"),
            Err(UrlError::HasQuery { .. })
        ));
    }

    #[test]
    fn stray_whitespace_is_refused_not_dropped() {
        for raw in [
            " https://a.example",
            "https://a.example ",
            "https://a.example/\n",
            "https://a.example/x\ty",
            "https://a.example/\u{a0}",
            "https://a.example/\u{7f}",
        ] {
            assert!(
                matches!(parse_secure_url(raw), Err(UrlError::StrayCharacter { .. })),
                "{raw:?}"
            );
            assert!(matches!(
                parse_issuer(raw),
                Err(UrlError::StrayCharacter { .. })
            ));
            assert!(matches!(
                parse_resource_identifier(raw),
                Err(UrlError::StrayCharacter { .. })
            ));
        }
        assert_eq!(
            parse_issuer("https://a.example ").unwrap_err().to_string(),
            "\"https://a.example \" contains whitespace or a control character: remove it"
        );
    }

    #[test]
    fn resource_identifiers_must_be_written_canonically() {
        for canonical in [
            "https://api.example.com/mcp",
            "https://api.example.com",
            "https://API.example.com:443/mcp/",
            "http://127.0.0.1:3001/notes",
            "http://[::1]:3001/notes",
        ] {
            assert!(parse_resource_identifier(canonical).is_ok(), "{canonical}");
        }
        for written in [
            "https://api.example.com/x/../mcp",
            "https://api.example.com/%2e%2e/mcp",
            "https://api.example.com\\mcp",
            "http://2130706433/mcp",
            "http://127.1/mcp",
            "https://bücher.example/mcp",
            "https://api.example.com./mcp",
            "https://api.example.com:/mcp",
        ] {
            assert!(
                matches!(
                    parse_resource_identifier(written),
                    Err(UrlError::NotCanonical { .. })
                ),
                "{written:?}: {:?}",
                parse_resource_identifier(written)
            );
        }
    }
}
