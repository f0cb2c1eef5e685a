//! Redirect URIs: which ones a client may register, and whether the one an authorization request
//! names is one of them (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1 and §4.1).
//!
//! The rules are checked on the string as written, not only on what a URL parser makes of it:
//! parsers drop whitespace, resolve `..` and rewrite hosts, so a check of the parsed URL alone
//! can approve a string that a browser or a native client reads differently.
//!
//! Matching is exact string equality, except for loopback redirect URIs, whose port is ignored
//! (native clients listen on whatever port is free); nothing else about them may differ.

use url::Url;

/// Schemes a redirect may never use, even for a native client: they run code in the browser
/// (`javascript`, `vbscript`, `data`, …), read local resources (`file`, `blob`, `filesystem`,
/// `view-source`), or are not navigations that can deliver a code (`ws`, `mailto`, …). Android's
/// `intent` can start any application, which defeats the point of registering one.
const REFUSED_SCHEMES: &[&str] = &[
    "javascript",
    "vbscript",
    "livescript",
    "data",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "ws",
    "wss",
    "ftp",
    "mailto",
    "tel",
    "sms",
    "jar",
    "resource",
    "intent",
];

/// Why a redirect URI was refused; each message names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedirectUriError {
    /// Whitespace or a control character anywhere (a parser would drop some silently).
    #[error("redirect URI {uri:?} contains whitespace or a control character")]
    StrayCharacter { uri: String },
    /// A backslash, which browsers read as `/` in http(s) URLs.
    #[error("redirect URI {uri:?} contains a backslash")]
    Backslash { uri: String },
    /// Not an absolute URI.
    #[error("redirect URI {uri:?} is not an absolute URI ({reason})")]
    NotAbsolute { uri: String, reason: String },
    /// A fragment, even an empty one (RFC 6749 §3.1.2).
    #[error("redirect URI {uri:?} has a fragment (`#…`); redirect URIs must not")]
    Fragment { uri: String },
    /// A user name or password in the authority.
    #[error("redirect URI {uri:?} carries user information (`…@`) in its authority")]
    UserInfo { uri: String },
    /// A `.` or `..` path segment, as written or percent-encoded.
    #[error("redirect URI {uri:?} has a `.` or `..` path segment (possibly percent-encoded)")]
    DotSegment { uri: String },
    /// A scheme that runs code or reads local resources.
    #[error(
        "redirect URI {uri:?} uses the `{scheme}` scheme, which is never allowed for redirects"
    )]
    UnsafeScheme { uri: String, scheme: String },
    /// Plain http to a host other than loopback.
    #[error(
        "redirect URI {uri:?} uses http on a host that is not loopback: use https (http is allowed only for localhost, 127.0.0.0/8 and [::1])"
    )]
    InsecureHttp { uri: String },
    /// An http(s) URI without `//host`.
    #[error("redirect URI {uri:?} has no host: write it as `{scheme}://host/path`")]
    MissingHost { uri: String, scheme: String },
    /// A host written in a form the parser rewrites (`127.1`, upper-case Unicode, `[::0001]`…):
    /// what the consent page shows must be what is written.
    #[error("redirect URI {uri:?} writes its host as `{written}`; write it as `{canonical}`")]
    NonCanonicalHost {
        uri: String,
        written: String,
        canonical: String,
    },
}

/// A redirect URI that passed every rule, with the string as written (what is compared and
/// redirected to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedirectUri {
    raw: String,
    scheme: String,
    /// The host as parsed (lower-case; IPv6 in brackets), for http(s) and custom schemes with
    /// an authority.
    host: Option<String>,
    /// Everything after the authority as written: path and query (the fragment is refused).
    path_and_query: String,
    loopback: bool,
}

/// The parts of a URI as written, before a parser normalises them (RFC 3986 §3).
#[derive(Debug, Clone, Copy)]
pub(super) struct RawParts<'a> {
    pub(super) authority: Option<&'a str>,
    pub(super) path: &'a str,
    pub(super) path_and_query: &'a str,
    pub(super) has_fragment: bool,
}

impl<'a> RawParts<'a> {
    /// Splits `raw` (already known to parse as an absolute URL) into its parts as written.
    pub(super) fn split(raw: &'a str) -> Self {
        let after_scheme = raw.split_once(':').map_or("", |(_, rest)| rest);
        let (before_fragment, has_fragment) = match after_scheme.split_once('#') {
            Some((before, _)) => (before, true),
            None => (after_scheme, false),
        };
        let (authority, path_and_query) = match before_fragment.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            None => (None, before_fragment),
        };
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path);
        Self {
            authority,
            path,
            path_and_query,
            has_fragment,
        }
    }

    /// The host as written: the authority without userinfo and port.
    pub(super) fn host(&self) -> Option<&'a str> {
        let authority = self.authority?;
        let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host_and_port.starts_with('[') {
            let end = host_and_port
                .find(']')
                .map_or(host_and_port.len(), |i| i + 1);
            Some(&host_and_port[..end])
        } else {
            Some(host_and_port.split(':').next().unwrap_or(host_and_port))
        }
    }

    /// Whether a path segment is `.` or `..`, as written or percent-encoded (`%2e`, `.%2E`…).
    pub(super) fn has_dot_segment(&self) -> bool {
        self.path.split('/').any(|segment| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".."
        })
    }
}

/// Whether `raw` has whitespace or a control character anywhere.
pub(super) fn has_stray_character(raw: &str) -> bool {
    raw.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks that an http(s) URL's host is present and written as the parser reads it.
pub(super) fn written_host_is_canonical(url: &Url, parts: &RawParts<'_>) -> Result<(), String> {
    let canonical = url.host_str().unwrap_or_default();
    match parts.host() {
        Some(written) if !written.is_empty() => {
            if written.to_ascii_lowercase() == canonical {
                Ok(())
            } else {
                Err(written.to_owned())
            }
        }
        _ => Err(String::new()),
    }
}

impl RedirectUri {
    /// Parses `s` and checks every rule; the string is kept as written.
    pub(crate) fn parse(s: &str) -> Result<Self, RedirectUriError> {
        let uri = || s.to_owned();
        // Before parsing: a URL parser trims and drops tabs and newlines, so ` javascript:` and
        // `java\tscript:` would otherwise reach the scheme check as `javascript`.
        if has_stray_character(s) {
            return Err(RedirectUriError::StrayCharacter { uri: uri() });
        }
        if s.contains('\\') {
            return Err(RedirectUriError::Backslash { uri: uri() });
        }
        let url = Url::parse(s).map_err(|error| RedirectUriError::NotAbsolute {
            uri: uri(),
            reason: error.to_string(),
        })?;
        let scheme = url.scheme().to_ascii_lowercase();
        if REFUSED_SCHEMES.contains(&scheme.as_str()) {
            return Err(RedirectUriError::UnsafeScheme { uri: uri(), scheme });
        }
        let parts = RawParts::split(s);
        if parts.has_fragment || url.fragment().is_some() {
            return Err(RedirectUriError::Fragment { uri: uri() });
        }
        if parts.authority.is_some_and(|a| a.contains('@'))
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(RedirectUriError::UserInfo { uri: uri() });
        }
        if parts.has_dot_segment() {
            return Err(RedirectUriError::DotSegment { uri: uri() });
        }
        let web = scheme == "http" || scheme == "https";
        let mut loopback = false;
        if web {
            if parts.authority.is_none() {
                return Err(RedirectUriError::MissingHost { uri: uri(), scheme });
            }
            if let Err(written) = written_host_is_canonical(&url, &parts) {
                if written.is_empty() {
                    return Err(RedirectUriError::MissingHost { uri: uri(), scheme });
                }
                return Err(RedirectUriError::NonCanonicalHost {
                    uri: uri(),
                    written,
                    canonical: url.host_str().unwrap_or_default().to_owned(),
                });
            }
            loopback = mcpauth_rules::url::is_loopback(&url);
            if scheme == "http" && !loopback {
                return Err(RedirectUriError::InsecureHttp { uri: uri() });
            }
        }
        Ok(Self {
            raw: s.to_owned(),
            host: url.host_str().map(str::to_owned),
            path_and_query: parts.path_and_query.to_owned(),
            scheme,
            loopback,
        })
    }

    /// Whether `requested` (from an authorization or token request) names this registered URI:
    /// the same string, or — both loopback, same scheme, same host as written (`localhost` is
    /// not `127.0.0.1`), same path and query byte for byte — a different port (RFC 8252 §7.3).
    /// A `requested` string that breaks a rule never matches.
    pub(crate) fn matches(&self, requested: &str) -> bool {
        let Ok(requested) = Self::parse(requested) else {
            return false;
        };
        if self.raw == requested.raw {
            return true;
        }
        self.loopback
            && requested.loopback
            && self.scheme == requested.scheme
            && self.host == requested.host
            && self.path_and_query == requested.path_and_query
    }

    /// The URI as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether it is an http(s) URI on a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`).
    pub(crate) fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// What the consent page shows as the destination: the host of an http(s) URI, the scheme
    /// of a custom one (`cursor`, `com.example.app`), which names the application that claims it.
    pub(crate) fn host(&self) -> &str {
        match &self.host {
            Some(host) if self.scheme == "http" || self.scheme == "https" => host,
            _ => &self.scheme,
        }
    }

    /// Whether the scheme is https (for `application_type` `web`).
    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn refused(s: &str) -> RedirectUriError {
        match RedirectUri::parse(s) {
            Ok(uri) => panic!("{s:?} should be refused, parsed as {uri:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn accepted_redirect_uris() {
        for s in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://vscode.dev/redirect",
            "https://example.com:8443/cb?x=1",
            "http://localhost/callback",
            "http://localhost:49152/callback",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
            "http://127.10.20.30:8080/cb",
            "http://[::1]:8080/cb",
            "https://localhost/cb",
            "cursor://anysphere.cursor-retrieval/oauth/user-server/callback",
            "vscode://vscode.github-authentication/did-authenticate",
            "claude://oauth/callback",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app:/cb",
        ] {
            assert_eq!(parse(s).as_str(), s);
        }
    }

    #[test]
    fn relative_and_malformed_uris_are_refused() {
        for s in ["/callback", "callback", "", "//example.com/cb", "https://"] {
            let error = refused(s);
            assert!(
                matches!(
                    error,
                    RedirectUriError::NotAbsolute { .. } | RedirectUriError::MissingHost { .. }
                ),
                "{s:?}: {error}"
            );
        }
    }

    #[test]
    fn fragments_even_empty_are_refused() {
        for s in [
            "https://example.com/cb#x",
            "https://example.com/cb#",
            "http://localhost/cb#",
            "cursor://cb#frag",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::Fragment { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn userinfo_is_refused() {
        for s in [
            "https://user@example.com/cb",
            "https://user:pw@example.com/cb",
            "https://@example.com/cb",
            "http://evil.com@localhost/cb",
            "cursor://user@host/cb",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::UserInfo { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn dot_segments_raw_or_encoded_are_refused() {
        for s in [
            "https://example.com/a/../b",
            "https://example.com/a/./b",
            "https://example.com/..",
            "https://example.com/a/%2e%2e/b",
            "https://example.com/a/%2E%2E/b",
            "https://example.com/a/.%2e/b",
            "https://example.com/a/%2E./b",
            "https://example.com/a/%2e/b",
            "http://localhost/%2e%2E/cb",
            "com.example.app:/../cb",
            "cursor://host/a/%2e%2e",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::DotSegment { .. }),
                "{s}"
            );
        }
        // Dots inside a segment, or in the query, are ordinary characters.
        parse("https://example.com/a..b/.well-known/cb?x=../y");
    }

    #[test]
    fn whitespace_and_control_characters_are_refused_anywhere() {
        for s in [
            " https://example.com/cb",
            "https://example.com/cb ",
            "https://exa mple.com/cb",
            "https://example.com/c\tb",
            "https://example.com/cb\n",
            "https://example.com/cb\r",
            "https://example.com/\u{0}cb",
            "https://example.com/\u{7f}",
            "https://example.com/\u{85}",
            "https://example.com/\u{a0}",
            "https://example.com/\u{2028}",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::StrayCharacter { .. }),
                "{s:?}"
            );
        }
        assert!(matches!(
            refused("https://example.com\\@evil.com/"),
            RedirectUriError::Backslash { .. }
        ));
    }

    #[test]
    fn script_and_unsafe_schemes_are_refused_in_any_spelling() {
        for s in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "JAVASCRIPT://example.com/%0aalert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "DATA:text/html;base64,PHNjcmlwdD4=",
            "file:///etc/passwd",
            "blob:https://example.com/uuid",
            "about:blank",
            "filesystem:https://example.com/temporary/x",
            "ws://localhost/cb",
            "wss://example.com/cb",
            "view-source:https://example.com/",
            "intent://cb#Intent;scheme=x;end",
        ] {
            let error = refused(s);
            assert!(
                matches!(error, RedirectUriError::UnsafeScheme { .. }),
                "{s}: {error}"
            );
        }
        // Whitespace tricks never get as far as the scheme check.
        for s in [
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{1}javascript:alert(1)",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::StrayCharacter { .. }),
                "{s:?}"
            );
        }
    }

    #[test]
    fn http_only_on_loopback() {
        for s in [
            "http://example.com/cb",
            "http://10.0.0.1/cb",
            "http://192.168.1.1:8080/cb",
            "http://localhost.example.com/cb",
            "http://localhost./cb",
            "http://foo.localhost/cb",
            "http://[::2]/cb",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::InsecureHttp { .. }),
                "{s}"
            );
        }
        assert!(parse("http://127.255.255.254/cb").is_loopback());
        assert!(parse("http://[::1]/cb").is_loopback());
        assert!(parse("http://LOCALHOST/cb").is_loopback());
        assert!(!parse("https://example.com/cb").is_loopback());
        assert!(!parse("cursor://localhost/cb").is_loopback());
    }

    #[test]
    fn hosts_in_spellings_the_parser_rewrites_are_refused() {
        for s in [
            "http://127.1/cb",
            "http://2130706433/cb",
            "http://0x7f.0.0.1/cb",
            "http://[::0001]/cb",
            "https://b\u{fc}cher.example/cb",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::NonCanonicalHost { .. }),
                "{s}"
            );
        }
        for s in [
            "https:example.com/cb",
            "https:/example.com/cb",
            "https:///cb",
        ] {
            assert!(
                matches!(refused(s), RedirectUriError::MissingHost { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn display_host() {
        assert_eq!(parse("https://claude.ai/api/cb").host(), "claude.ai");
        assert_eq!(parse("http://127.0.0.1:5/").host(), "127.0.0.1");
        assert_eq!(parse("http://[::1]/").host(), "[::1]");
        assert_eq!(
            parse("cursor://anysphere.cursor-retrieval/cb").host(),
            "cursor"
        );
        assert_eq!(parse("com.example.app:/cb").host(), "com.example.app");
    }

    #[test]
    fn loopback_ports_are_ignored_and_nothing_else() {
        let vscode = parse("http://127.0.0.1:33418/");
        assert!(vscode.matches("http://127.0.0.1:5555/"));
        assert!(vscode.matches("http://127.0.0.1/"));
        assert!(vscode.matches("http://127.0.0.1:33418/"));
        assert!(!vscode.matches("http://127.0.0.1:5555"), "path differs");
        assert!(!vscode.matches("http://127.0.0.1:5555/cb"));
        assert!(!vscode.matches("https://127.0.0.1:5555/"), "scheme differs");
        assert!(!vscode.matches("http://127.0.0.2:5555/"), "another host");
        assert!(!vscode.matches("http://localhost:5555/"));

        let claude_code = parse("http://localhost/callback");
        assert!(claude_code.matches("http://localhost:49152/callback"));
        assert!(!claude_code.matches("http://127.0.0.1:49152/callback"));
        assert!(!claude_code.matches("http://localhost:49152/callback/"));
        assert!(!claude_code.matches("http://localhost:49152/other"));
        assert!(!claude_code.matches("http://localhost:49152/callback?x=1"));
        assert!(!claude_code.matches("http://localhost:49152/Callback"));
        assert!(!parse("http://127.0.0.1/callback").matches("http://localhost:1/callback"));
        assert!(!parse("http://localhost/cb?a=1").matches("http://localhost:2/cb?a=2"));
        assert!(parse("http://localhost/cb?a=1").matches("http://localhost:2/cb?a=1"));
        assert!(parse("http://[::1]/cb").matches("http://[::1]:8080/cb"));
        assert!(!parse("http://[::1]/cb").matches("http://127.0.0.1:8080/cb"));

        // The requested URI must itself pass every rule.
        assert!(!claude_code.matches("http://localhost:49152/callback#x"));
        assert!(!claude_code.matches("http://user@localhost:49152/callback"));
        assert!(!claude_code.matches("http://localhost:49152/x/../callback"));
        assert!(!claude_code.matches(" http://localhost:49152/callback"));
    }

    #[test]
    fn everything_else_matches_exactly() {
        let web = parse("https://claude.ai/api/mcp/auth_callback");
        assert!(web.matches("https://claude.ai/api/mcp/auth_callback"));
        assert!(!web.matches("https://claude.ai/api/mcp/auth_callback/"));
        assert!(!web.matches("https://claude.ai:444/api/mcp/auth_callback"));
        assert!(!web.matches("https://claude.ai:443/api/mcp/auth_callback"));
        assert!(!web.matches("https://CLAUDE.ai/api/mcp/auth_callback"));
        assert!(!web.matches("https://claude.ai/api/mcp/auth_callback?x=1"));
        assert!(!web.matches("https://claude.ai/api/mcp/auth_%63allback"));
        assert!(!web.matches("https://evil.example/api/mcp/auth_callback"));

        let port = parse("https://example.com:8443/cb");
        assert!(!port.matches("https://example.com:9443/cb"), "not loopback");

        let slash = parse("http://127.0.0.1/");
        assert!(!slash.matches("http://127.0.0.1"));
        assert!(!parse("http://127.0.0.1").matches("http://127.0.0.1/"));

        let custom = parse("cursor://anysphere.cursor-retrieval/oauth/callback");
        assert!(custom.matches("cursor://anysphere.cursor-retrieval/oauth/callback"));
        assert!(!custom.matches("cursor://anysphere.cursor-retrieval:1/oauth/callback"));
        assert!(!custom.matches("Cursor://anysphere.cursor-retrieval/oauth/callback"));
    }

    /// Invariants over many generated strings (a small deterministic generator, not a crate).
    #[test]
    fn invariants_over_generated_strings() {
        const PIECES: &[&str] = &[
            "http",
            "https",
            "cursor",
            "javascript",
            "JaVaScript",
            ":",
            "//",
            "/",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "example.com",
            ":8080",
            ":1",
            "@",
            "#",
            "?",
            "a=1",
            "cb",
            ".",
            "..",
            "%2e",
            "%2E",
            " ",
            "\t",
            "\\",
            "x",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = 1 + next() % 8;
            let s: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let Ok(uri) = RedirectUri::parse(&s) else {
                continue;
            };
            parsed += 1;
            assert!(uri.matches(&s), "{s:?} matches itself");
            assert!(!has_stray_character(&s) && !s.contains('#') && !s.contains('\\'));
            assert!(!REFUSED_SCHEMES.contains(&uri.scheme.as_str()));
            if uri.scheme == "http" {
                assert!(uri.is_loopback(), "{s:?}");
            }
            let other: String = (0..1 + next() % 8)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if uri.matches(&other) && s != other {
                let other = RedirectUri::parse(&other).unwrap();
                assert!(
                    uri.is_loopback() && other.is_loopback(),
                    "{s:?} ~ {other:?}"
                );
                assert_eq!((&uri.scheme, &uri.host), (&other.scheme, &other.host));
                assert_eq!(uri.path_and_query, other.path_and_query);
            }
        }
        assert!(
            parsed > 100,
            "the generator should produce valid URIs ({parsed})"
        );
    }
}
