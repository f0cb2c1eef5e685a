//! Well-known URL derivation, in both directions.
//!
//! | issuer | RFC 8414 (inserted) | OpenID Connect (appended) |
//! |---|---|---|
//! | `https://a.com` | `https://a.com/.well-known/oauth-authorization-server` | `https://a.com/.well-known/openid-configuration` |
//! | `https://a.com/oidc` | `https://a.com/.well-known/oauth-authorization-server/oidc` | `https://a.com/oidc/.well-known/openid-configuration` |
//! | `https://a.com/oidc/` | same as above: the terminating `/` is removed first | same as above |
//!
//! Unlike the MCP Auth SDKs, issuers with a query, a fragment or credentials are refused (RFC
//! 8414 §2 forbids the first two) instead of being carried into the URL, and the issuer's path
//! is used as written (`//x` stays `//x`): the metadata's `issuer` must equal the configured
//! issuer byte for byte anyway.
//!
//! Protected-resource metadata (RFC 9728 §3.1) lives at
//! `/.well-known/oauth-protected-resource` followed by the resource's path
//! (`https://api.example.com/notes` → `/.well-known/oauth-protected-resource/notes`).

use url::Url;

use crate::metadata::AuthServerType;
use mcpauth_rules::url::{self as url_rules, UrlError};

/// The RFC 8414 well-known suffix.
pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known suffix.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub use mcpauth_rules::url::{OAUTH_PROTECTED_RESOURCE, protected_resource_metadata_path};

/// The issuer's path without its terminating `/`; empty for an issuer without a path.
fn trimmed_path(url: &Url) -> &str {
    url.path().strip_suffix('/').unwrap_or(url.path())
}

fn with_path(url: &Url, path: &str) -> Url {
    let mut url = url.clone();
    url.set_path(path);
    url
}

/// The RFC 8414 metadata URL of `issuer`: the well-known suffix inserted before its path.
///
/// ```
/// use mcpauth::discovery::well_known::oauth_authorization_server_url;
///
/// let url = oauth_authorization_server_url("https://auth.example.com/tenant1/").unwrap();
/// assert_eq!(
///     url.as_str(),
///     "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
/// );
/// ```
pub fn oauth_authorization_server_url(issuer: &str) -> Result<Url, UrlError> {
    let url = url_rules::parse_issuer(issuer)?;
    let path = format!("{OAUTH_AUTHORIZATION_SERVER}{}", trimmed_path(&url));
    Ok(with_path(&url, &path))
}

/// The OpenID Connect Discovery metadata URL of `issuer`: the well-known suffix appended to it.
///
/// ```
/// use mcpauth::discovery::well_known::openid_configuration_url;
///
/// let url = openid_configuration_url("https://auth.example.com/tenant1").unwrap();
/// assert_eq!(
///     url.as_str(),
///     "https://auth.example.com/tenant1/.well-known/openid-configuration"
/// );
/// ```
pub fn openid_configuration_url(issuer: &str) -> Result<Url, UrlError> {
    let url = url_rules::parse_issuer(issuer)?;
    let path = format!("{}{OPENID_CONFIGURATION}", trimmed_path(&url));
    Ok(with_path(&url, &path))
}

/// The OpenID Connect metadata URL with the suffix inserted before the issuer's path, the
/// second form MCP clients try (MCP 2025-11-25, "Authorization Server Metadata Discovery").
pub fn openid_configuration_inserted_url(issuer: &str) -> Result<Url, UrlError> {
    let url = url_rules::parse_issuer(issuer)?;
    let path = format!("{OPENID_CONFIGURATION}{}", trimmed_path(&url));
    Ok(with_path(&url, &path))
}

/// The metadata URL of `issuer` for one discovery type.
pub fn server_metadata_url(issuer: &str, server_type: AuthServerType) -> Result<Url, UrlError> {
    match server_type {
        AuthServerType::OAuth => oauth_authorization_server_url(issuer),
        AuthServerType::Oidc => openid_configuration_url(issuer),
    }
}

/// The URLs to probe for `issuer`'s metadata, in the order the MCP specification gives clients,
/// each with the type of document expected there.
///
/// With a path: RFC 8414 insertion, OpenID Connect insertion, OpenID Connect appending. Without
/// one the two OpenID Connect forms coincide, so there are two URLs.
///
/// ```
/// use mcpauth::discovery::well_known::discovery_urls;
///
/// let urls: Vec<String> = discovery_urls("https://a.example/t1")
///     .unwrap()
///     .into_iter()
///     .map(|(url, _)| url.to_string())
///     .collect();
/// assert_eq!(urls, [
///     "https://a.example/.well-known/oauth-authorization-server/t1",
///     "https://a.example/.well-known/openid-configuration/t1",
///     "https://a.example/t1/.well-known/openid-configuration",
/// ]);
/// ```
pub fn discovery_urls(issuer: &str) -> Result<Vec<(Url, AuthServerType)>, UrlError> {
    let url = url_rules::parse_issuer(issuer)?;
    let mut urls = vec![(
        oauth_authorization_server_url(issuer)?,
        AuthServerType::OAuth,
    )];
    if trimmed_path(&url).is_empty() {
        urls.push((openid_configuration_url(issuer)?, AuthServerType::Oidc));
    } else {
        urls.push((
            openid_configuration_inserted_url(issuer)?,
            AuthServerType::Oidc,
        ));
        urls.push((openid_configuration_url(issuer)?, AuthServerType::Oidc));
    }
    Ok(urls)
}

/// The issuer identifiers a well-known URL can have been derived from, if it has one of the
/// well-known forms: the issuer without and with a terminating `/` (both map to the same URL).
///
/// Used to check the `issuer` of a document fetched from an explicitly given well-known URL.
/// Returns `None` for a URL of no well-known form, or one with a query or fragment.
///
/// ```
/// use mcpauth::discovery::well_known::issuers_for_well_known_url;
///
/// let url = url::Url::parse("https://a.example/.well-known/oauth-authorization-server/t1").unwrap();
/// assert_eq!(
///     issuers_for_well_known_url(&url).unwrap(),
///     ["https://a.example/t1", "https://a.example/t1/"]
/// );
/// ```
pub fn issuers_for_well_known_url(url: &Url) -> Option<[String; 2]> {
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let path = url.path();
    let issuer_path = [OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION]
        .iter()
        .find_map(|suffix| {
            path.strip_prefix(suffix)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .or_else(|| path.strip_suffix(OPENID_CONFIGURATION))?;
    let issuer = with_path(url, issuer_path);
    // `Url` always serialises a root path as `/`; the issuer without a path has none.
    let bare = if issuer_path.is_empty() {
        issuer.as_str().trim_end_matches('/').to_owned()
    } else {
        issuer.as_str().to_owned()
    };
    let slashed = format!("{bare}/");
    Some([bare, slashed])
}

/// The URL of the protected-resource metadata of the resource identified by `resource`, the
/// value of `resource_metadata` in challenges.
///
/// `resource` must be a valid resource identifier: absolute https (http only on loopback), no
/// query, no fragment, no credentials.
///
/// ```
/// use mcpauth::discovery::well_known::protected_resource_metadata_url;
///
/// let url = protected_resource_metadata_url("https://api.example.com/notes").unwrap();
/// assert_eq!(
///     url.as_str(),
///     "https://api.example.com/.well-known/oauth-protected-resource/notes"
/// );
/// ```
pub fn protected_resource_metadata_url(resource: &str) -> Result<Url, UrlError> {
    let url = url_rules::parse_resource_identifier(resource)?;
    let path = protected_resource_metadata_path(&url);
    Ok(with_path(&url, &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(issuer: &str) -> Result<String, UrlError> {
        oauth_authorization_server_url(issuer).map(String::from)
    }

    fn oidc(issuer: &str) -> Result<String, UrlError> {
        openid_configuration_url(issuer).map(String::from)
    }

    #[test]
    fn authorization_server_urls_follow_the_reference_table() {
        let rows = [
            (
                "https://a.com",
                "https://a.com/.well-known/oauth-authorization-server",
                "https://a.com/.well-known/openid-configuration",
            ),
            (
                "https://a.com/",
                "https://a.com/.well-known/oauth-authorization-server",
                "https://a.com/.well-known/openid-configuration",
            ),
            (
                "https://a.com/oidc",
                "https://a.com/.well-known/oauth-authorization-server/oidc",
                "https://a.com/oidc/.well-known/openid-configuration",
            ),
            (
                "https://a.com/oidc/",
                "https://a.com/.well-known/oauth-authorization-server/oidc",
                "https://a.com/oidc/.well-known/openid-configuration",
            ),
            (
                "https://a.com/a/b/",
                "https://a.com/.well-known/oauth-authorization-server/a/b",
                "https://a.com/a/b/.well-known/openid-configuration",
            ),
            // The path is used as written: the document's issuer must equal it byte for byte.
            (
                "https://a.com//x",
                "https://a.com/.well-known/oauth-authorization-server//x",
                "https://a.com//x/.well-known/openid-configuration",
            ),
            (
                "http://localhost:3000/realms/r",
                "http://localhost:3000/.well-known/oauth-authorization-server/realms/r",
                "http://localhost:3000/realms/r/.well-known/openid-configuration",
            ),
            (
                "https://a.com:8443/t",
                "https://a.com:8443/.well-known/oauth-authorization-server/t",
                "https://a.com:8443/t/.well-known/openid-configuration",
            ),
            (
                "https://a.com/a%20b",
                "https://a.com/.well-known/oauth-authorization-server/a%20b",
                "https://a.com/a%20b/.well-known/openid-configuration",
            ),
        ];
        for (issuer, oauth_url, oidc_url) in rows {
            assert_eq!(oauth(issuer).unwrap(), oauth_url, "oauth {issuer}");
            assert_eq!(oidc(issuer).unwrap(), oidc_url, "oidc {issuer}");
        }
    }

    #[test]
    fn invalid_issuers_are_refused_with_the_reason() {
        type Expectation = fn(&UrlError) -> bool;
        let rows: [(&str, Expectation); 7] = [
            ("https://a.com/x?q=1", |e| {
                matches!(e, UrlError::HasQuery { .. })
            }),
            ("https://a.com/x#f", |e| {
                matches!(e, UrlError::HasFragment { .. })
            }),
            ("https://user:pw@a.com/x", |e| {
                matches!(e, UrlError::HasCredentials { .. })
            }),
            ("not a url", |e| matches!(e, UrlError::NotAbsolute { .. })),
            ("urn:x:y", |e| {
                matches!(e, UrlError::UnsupportedScheme { .. })
            }),
            ("/relative/path", |e| {
                matches!(e, UrlError::NotAbsolute { .. })
            }),
            ("http://auth.example.com", |e| {
                matches!(e, UrlError::InsecureHttp { .. })
            }),
        ];
        for (issuer, expected) in rows {
            for result in [oauth(issuer), oidc(issuer)] {
                let error = result.unwrap_err();
                assert!(expected(&error), "{issuer}: {error:?}");
                assert!(error.to_string().contains(issuer), "{error}");
            }
        }
    }

    #[test]
    fn probing_order_matches_the_mcp_specification() {
        let with_path: Vec<(String, AuthServerType)> = discovery_urls("https://a.com/tenant1/")
            .unwrap()
            .into_iter()
            .map(|(url, ty)| (url.into(), ty))
            .collect();
        assert_eq!(
            with_path,
            [
                (
                    "https://a.com/.well-known/oauth-authorization-server/tenant1".to_owned(),
                    AuthServerType::OAuth
                ),
                (
                    "https://a.com/.well-known/openid-configuration/tenant1".to_owned(),
                    AuthServerType::Oidc
                ),
                (
                    "https://a.com/tenant1/.well-known/openid-configuration".to_owned(),
                    AuthServerType::Oidc
                ),
            ]
        );
        let root: Vec<String> = discovery_urls("https://a.com")
            .unwrap()
            .into_iter()
            .map(|(url, _)| url.into())
            .collect();
        assert_eq!(
            root,
            [
                "https://a.com/.well-known/oauth-authorization-server",
                "https://a.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn issuers_are_recovered_from_well_known_urls() {
        let rows = [
            (
                "https://a.com/.well-known/oauth-authorization-server",
                "https://a.com",
            ),
            (
                "https://a.com/.well-known/openid-configuration",
                "https://a.com",
            ),
            (
                "https://a.com/.well-known/oauth-authorization-server/t/x",
                "https://a.com/t/x",
            ),
            (
                "https://a.com/.well-known/openid-configuration/t",
                "https://a.com/t",
            ),
            (
                "https://a.com/t/.well-known/openid-configuration",
                "https://a.com/t",
            ),
            (
                "http://127.0.0.1:8/.well-known/openid-configuration",
                "http://127.0.0.1:8",
            ),
        ];
        for (url, issuer) in rows {
            let [bare, slashed] = issuers_for_well_known_url(&Url::parse(url).unwrap()).unwrap();
            assert_eq!(bare, issuer, "{url}");
            assert_eq!(slashed, format!("{issuer}/"), "{url}");
            // And the forward direction lands on the same URL again.
            let forward = [
                oauth_authorization_server_url(&bare).unwrap(),
                openid_configuration_url(&bare).unwrap(),
                openid_configuration_inserted_url(&bare).unwrap(),
            ];
            assert!(forward.iter().any(|f| f.as_str() == url), "{url}");
        }
        for not_well_known in [
            "https://a.com/metadata.json",
            "https://a.com/.well-known/oauth-authorization-serverX",
            "https://a.com/.well-known/openid-configuration?x=1",
        ] {
            assert_eq!(
                issuers_for_well_known_url(&Url::parse(not_well_known).unwrap()),
                None,
                "{not_well_known}"
            );
        }
    }

    #[test]
    fn protected_resource_metadata_urls() {
        let rows = [
            (
                "https://example.com",
                "https://example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://example.com/",
                "https://example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://example.com/api/v1",
                "https://example.com/.well-known/oauth-protected-resource/api/v1",
            ),
            (
                "https://example.com/api/v1/",
                "https://example.com/.well-known/oauth-protected-resource/api/v1/",
            ),
            (
                "http://localhost:3000/foo",
                "http://localhost:3000/.well-known/oauth-protected-resource/foo",
            ),
            (
                "https://a.com:8443/x",
                "https://a.com:8443/.well-known/oauth-protected-resource/x",
            ),
            (
                "https://a.com/a%20b",
                "https://a.com/.well-known/oauth-protected-resource/a%20b",
            ),
        ];
        for (resource, expected) in rows {
            assert_eq!(
                protected_resource_metadata_url(resource).unwrap().as_str(),
                expected,
                "{resource}"
            );
        }
        for invalid in [
            "https://example.com/api/v1?foo=bar",
            "https://example.com/api/v1#baz",
            "https://user:pw@a.com:8443/x",
            "not a url",
            "urn:x:y",
            "http://example.com/notes",
        ] {
            assert!(
                protected_resource_metadata_url(invalid).is_err(),
                "{invalid}"
            );
        }
    }
}
