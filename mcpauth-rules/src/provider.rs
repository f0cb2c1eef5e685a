//! What the broker's identity-provider presets require of their configuration: Microsoft Entra
//! ID tenants and scopes, and GitHub Apps' lack of scopes.

/// The tenant of Microsoft's personal accounts (`consumers`): an `organizations` sign-in never
/// comes from it.
pub const ENTRA_CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The scopes OpenID Connect defines; they name no resource at Entra ID.
const OIDC_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "address",
    "phone",
];

/// The resource Entra ID gives a scope written without one (`User.Read`): Microsoft Graph.
const GRAPH: &str = "https://graph.microsoft.com";

/// Which Entra ID tenants can sign in, as the tenant segment of the endpoints names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraTenantKind {
    /// One tenant, by its id (a GUID).
    Single,
    /// Any work or school account (`organizations`).
    Organizations,
    /// Any work, school or personal account (`common`).
    Common,
}

/// Why a preset's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// `consumers` was given as the Entra ID tenant.
    #[error(
        "the Entra ID tenant `consumers` is refused: its discovery document names the tenant `{ENTRA_CONSUMERS_TENANT}`; give that id to sign in personal Microsoft accounts only"
    )]
    EntraConsumers,
    /// The Entra ID tenant is neither `common`, `organizations` nor a tenant id.
    #[error(
        "the Entra ID tenant `{0}` is not a tenant id: give the directory (tenant) id, a GUID, or `organizations` or `common` (a domain name is refused: the discovery document names the tenant by its id, so the issuers would differ)"
    )]
    EntraTenant(String),
    /// Two scopes name different resources: Entra ID issues a token for one (AADSTS28000).
    #[error(
        "the scopes `{first}` and `{second}` are for different resources (`{first_resource}`, `{second_resource}`): Entra ID grants one resource per sign-in (AADSTS28000); keep the scopes of your own API (`api://…/…`)"
    )]
    EntraResources {
        /// A scope of the first resource.
        first: String,
        /// Its resource.
        first_resource: String,
        /// A scope of another resource.
        second: String,
        /// Its resource.
        second_resource: String,
    },
    /// Scopes were given for a GitHub App.
    #[error(
        "a GitHub App ignores scopes (its permissions are set in the App's settings): remove `{0}`"
    )]
    GitHubAppScope(String),
}

/// Whether `value` is a GUID in its usual text form (`8-4-4-4-12` hexadecimal digits).
///
/// ```
/// use mcpauth_rules::provider::is_guid;
///
/// assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
/// assert!(!is_guid("contoso.onmicrosoft.com"));
/// ```
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Classifies an Entra ID tenant as written in configuration: `common`, `organizations`, or a
/// tenant id (a GUID). `consumers` and domain names are refused.
///
/// ```
/// use mcpauth_rules::provider::{EntraTenantKind, entra_tenant};
///
/// assert_eq!(entra_tenant("organizations"), Ok(EntraTenantKind::Organizations));
/// assert_eq!(
///     entra_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"),
///     Ok(EntraTenantKind::Single)
/// );
/// assert!(entra_tenant("contoso.onmicrosoft.com").is_err());
/// ```
pub fn entra_tenant(tenant: &str) -> Result<EntraTenantKind, ProviderError> {
    match tenant {
        "common" => Ok(EntraTenantKind::Common),
        "organizations" => Ok(EntraTenantKind::Organizations),
        "consumers" => Err(ProviderError::EntraConsumers),
        id if is_guid(id) => Ok(EntraTenantKind::Single),
        other => Err(ProviderError::EntraTenant(other.to_owned())),
    }
}

/// The resource an Entra ID scope asks for: the part before the last `/` of a scope written
/// with a URI (`api://my-api/read` → `api://my-api`), Microsoft Graph for a bare name
/// (`User.Read`), and `None` for the OpenID Connect scopes.
///
/// ```
/// use mcpauth_rules::provider::entra_scope_resource;
///
/// assert_eq!(entra_scope_resource("api://my-api/todos.read").as_deref(), Some("api://my-api"));
/// assert_eq!(entra_scope_resource("User.Read").as_deref(), Some("https://graph.microsoft.com"));
/// assert_eq!(entra_scope_resource("offline_access"), None);
/// ```
pub fn entra_scope_resource(scope: &str) -> Option<String> {
    if OIDC_SCOPES.contains(&scope) {
        return None;
    }
    if scope.contains("://") {
        let resource = scope
            .rsplit_once('/')
            .map_or(scope, |(resource, _)| resource);
        // `api://my-api/` and `api://my-api` name the same resource.
        return Some(resource.trim_end_matches('/').to_owned());
    }
    Some(GRAPH.to_owned())
}

/// Checks that Entra ID scopes ask for one resource at most.
pub fn entra_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Result<(), ProviderError> {
    let mut first: Option<(&str, String)> = None;
    for scope in scopes {
        let Some(resource) = entra_scope_resource(scope) else {
            continue;
        };
        match &first {
            None => first = Some((scope, resource)),
            Some((first_scope, first_resource))
                if !first_resource.eq_ignore_ascii_case(&resource) =>
            {
                return Err(ProviderError::EntraResources {
                    first: (*first_scope).to_owned(),
                    first_resource: first_resource.clone(),
                    second: scope.to_owned(),
                    second_resource: resource,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks the scopes of a GitHub App: there are none to give.
pub fn github_app_scopes<'a>(
    scopes: impl IntoIterator<Item = &'a str>,
) -> Result<(), ProviderError> {
    match scopes.into_iter().next() {
        Some(scope) => Err(ProviderError::GitHubAppScope(scope.to_owned())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_common_organizations_or_ids() {
        assert_eq!(entra_tenant("common"), Ok(EntraTenantKind::Common));
        assert_eq!(
            entra_tenant(ENTRA_CONSUMERS_TENANT),
            Ok(EntraTenantKind::Single)
        );
        assert_eq!(
            entra_tenant("consumers"),
            Err(ProviderError::EntraConsumers)
        );
        for refused in [
            "",
            "Common",
            "contoso.onmicrosoft.com",
            "72f988bf86f141af91ab2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
        ] {
            assert!(entra_tenant(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn one_resource_per_sign_in() {
        assert!(entra_scopes(["openid", "profile", "offline_access"]).is_ok());
        assert!(entra_scopes(["openid", "api://a/read", "api://a/write"]).is_ok());
        assert!(entra_scopes(["api://a/read", "API://A/write"]).is_ok());
        assert!(entra_scopes(["User.Read", "Mail.Read"]).is_ok());
        assert!(entra_scopes(["https://graph.microsoft.com/User.Read", "Mail.Read"]).is_ok());
        let refused = entra_scopes(["openid", "api://a/read", "api://b/read"]).unwrap_err();
        assert_eq!(
            refused,
            ProviderError::EntraResources {
                first: "api://a/read".into(),
                first_resource: "api://a".into(),
                second: "api://b/read".into(),
                second_resource: "api://b".into(),
            }
        );
        assert!(entra_scopes(["api://a/read", "User.Read"]).is_err());
    }

    #[test]
    fn github_apps_take_no_scopes() {
        assert!(github_app_scopes([]).is_ok());
        assert_eq!(
            github_app_scopes(["repo"]),
            Err(ProviderError::GitHubAppScope("repo".into()))
        );
    }
}
