//! Reading and checking access-token claims (RFC 7519 §4.1, RFC 9068 §2.2): time claims with
//! leeway, the audience against the canonical resource identifier, scopes, client ID.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpauth_rules::canonical::CanonicalUri;
use serde_json::{Map, Value};

use crate::auth_error::{AuthError, AuthErrorReason};

fn invalid_claim(name: &str, expected: &str) -> AuthError {
    AuthError::invalid_token(
        AuthErrorReason::InvalidClaim,
        format!("The token's {name} claim is not {expected}."),
    )
}

/// A NumericDate claim: seconds since the epoch, integer or fractional.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| invalid_claim(name, "a NumericDate")),
        Some(_) => Err(invalid_claim(name, "a NumericDate")),
    }
}

/// A string claim.
pub(crate) fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_claim(name, "a string")),
    }
}

/// Seconds since the epoch, now.
pub(crate) fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A token's validity period: `exp` (required) and `nbf` (when present).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    pub(crate) exp: f64,
    pub(crate) nbf: Option<f64>,
}

/// Checks `exp` (required) and `nbf` (when present) against `now` with `leeway`.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: f64,
    leeway: Duration,
) -> Result<Validity, AuthError> {
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(AuthError::invalid_token(
            AuthErrorReason::MissingExpiry,
            "The token has no exp claim; tokens without expiry are refused.",
        ));
    };
    if now > exp + leeway.as_secs_f64() {
        return Err(AuthError::invalid_token(
            AuthErrorReason::Expired,
            format!("The token expired {:.0} s ago.", now - exp),
        ));
    }
    let nbf = numeric_date(claims, "nbf")?;
    check_not_before(nbf, now, leeway)?;
    Ok(Validity { exp, nbf })
}

/// Checks `nbf` (when present) against `now` with `leeway`.
pub(crate) fn check_not_before(
    nbf: Option<f64>,
    now: f64,
    leeway: Duration,
) -> Result<(), AuthError> {
    match nbf {
        Some(nbf) if now + leeway.as_secs_f64() < nbf => Err(AuthError::invalid_token(
            AuthErrorReason::NotYetValid,
            format!("The token is not valid for another {:.0} s.", nbf - now),
        )),
        _ => Ok(()),
    }
}

/// The audiences of a token (`aud` as a string or an array of strings).
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid_claim("aud", "a string or an array of strings")),
        Some(_) => Err(invalid_claim("aud", "a string or an array of strings")),
    }
}

/// The audience a token must contain: the resource identifier, compared by MCP's canonical-URI
/// rule (scheme and host without regard to ASCII case, an explicit default port equal to none,
/// one trailing `/` ignored — nothing else; see [`CanonicalUri`]). An audience that is not
/// itself in canonical form (a `..` segment, whitespace, a backslash, userinfo, a numeric host in
/// another notation…) never matches, and nothing matches by prefix.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedAudience {
    /// The configured identifier, already checked to be canonical.
    exact: String,
}

impl ExpectedAudience {
    pub(crate) fn new(resource: &str) -> Self {
        Self {
            exact: resource.to_owned(),
        }
    }

    pub(crate) fn matches(&self, audience: &str) -> bool {
        if audience == self.exact {
            return true;
        }
        match (
            CanonicalUri::parse(&self.exact),
            CanonicalUri::parse(audience),
        ) {
            (Ok(expected), Ok(audience)) => expected.same_resource(&audience),
            _ => false,
        }
    }

    pub(crate) fn check(&self, audiences: &[String]) -> Result<(), AuthError> {
        if audiences.iter().any(|a| self.matches(a)) {
            return Ok(());
        }
        Err(AuthError::invalid_token(
            AuthErrorReason::InvalidAudience,
            format!(
                "The token's audience {audiences:?} does not include this resource ({}).",
                self.exact
            ),
        ))
    }
}

fn push_scopes(scopes: &mut Vec<String>, value: &Value, name: &str) -> Result<(), AuthError> {
    let mut push = |scope: &str| {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    match value {
        Value::String(list) => list.split(' ').for_each(&mut push),
        Value::Array(items) => {
            for item in items {
                let Some(scope) = item.as_str() else {
                    return Err(invalid_claim(name, "a string or an array of strings"));
                };
                push(scope);
            }
        }
        _ => return Err(invalid_claim(name, "a string or an array of strings")),
    }
    Ok(())
}

/// The claims scopes are read from unless an authorization server is configured otherwise:
/// `scope` (RFC 9068, space-delimited) and `scp` (an array, as Entra ID and Okta send it).
pub(crate) const DEFAULT_SCOPE_CLAIMS: [&str; 2] = ["scope", "scp"];

/// The granted scopes from the claims `names`, in that order (each a space-delimited string or
/// an array of strings), without repeats.
pub(crate) fn scopes<S: AsRef<str>>(
    claims: &Map<String, Value>,
    names: &[S],
) -> Result<Vec<String>, AuthError> {
    let mut scopes = Vec::new();
    for name in names {
        let name = name.as_ref();
        if let Some(value) = claims.get(name) {
            push_scopes(&mut scopes, value, name)?;
        }
    }
    Ok(scopes)
}

/// The client the token was issued to: `client_id`, else `azp`.
pub(crate) fn client_id(claims: &Map<String, Value>) -> Result<Option<String>, AuthError> {
    Ok(match string_claim(claims, "client_id")? {
        Some(id) => Some(id.to_owned()),
        None => string_claim(claims, "azp")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn time_claims_with_leeway_and_fractions() {
        let leeway = Duration::from_secs(60);
        let now = 1_000_000.0;
        assert_eq!(
            check_times(&claims(json!({"exp": 1_000_100})), now, leeway)
                .unwrap()
                .exp,
            1_000_100.0
        );
        assert_eq!(
            check_times(&claims(json!({"exp": 999_950.5})), now, leeway)
                .unwrap()
                .exp,
            999_950.5
        );
        let reason = |c: Value| check_times(&claims(c), now, leeway).unwrap_err().reason();
        assert_eq!(reason(json!({"exp": 999_900})), AuthErrorReason::Expired);
        assert_eq!(reason(json!({})), AuthErrorReason::MissingExpiry);
        assert_eq!(
            reason(json!({"exp": "soon"})),
            AuthErrorReason::InvalidClaim
        );
        assert_eq!(
            reason(json!({"exp": 1_000_100, "nbf": 1_000_100})),
            AuthErrorReason::NotYetValid
        );
        assert!(
            check_times(
                &claims(json!({"exp": 1_000_100, "nbf": 1_000_030})),
                now,
                leeway
            )
            .is_ok()
        );
    }

    #[test]
    fn audience_matching_is_canonical_never_prefix() {
        let expected = ExpectedAudience::new("https://api.example.com/mcp");
        for matching in [
            "https://api.example.com/mcp",
            "https://api.example.com/mcp/",
            "HTTPS://API.EXAMPLE.COM/mcp",
            "https://api.example.com:443/mcp",
        ] {
            assert!(expected.matches(matching), "{matching}");
        }
        for other in [
            "https://api.example.com",
            "https://api.example.com/",
            "https://api.example.com/mcp/x",
            "https://api.example.com/MCP",
            "https://api.example.com/mcpx",
            "http://api.example.com/mcp",
            "https://api.example.com:8443/mcp",
            "https://api.example.com/mcp#x",
            "api.example.com/mcp",
        ] {
            assert!(!expected.matches(other), "{other}");
        }
        let root = ExpectedAudience::new("https://api.example.com");
        assert!(root.matches("https://api.example.com/"));
        assert!(!root.matches("https://api.example.com/x"));
    }

    #[test]
    fn audiences_a_url_parser_would_rewrite_never_match() {
        let admin = ExpectedAudience::new("https://h.example/admin");
        let loopback = ExpectedAudience::new("http://127.0.0.1:8080/admin");
        for aud in [
            "https://h.example/public/../admin",
            "https://h.example/public/%2e%2e/admin",
            "https://h.example/public/%2E./admin",
            "https://h.example/./admin",
            "https://h.example/admin/.",
            "https://h.example/admin/x/..",
            "https://h.example/ad\tmin",
            "https://h.example/adm\nin",
            "https://h.example/admin ",
            " https://h.example/admin",
            "https://h.example\\admin",
            "https://user@h.example/admin",
            "https://h.example/admin#",
            "https://h.example./admin",
            "https://H.EXAMPLE/public/../admin/",
            "HTTPS://h.example:443/public/%2e%2e/admin/",
        ] {
            assert!(!admin.matches(aud), "{aud:?}");
        }
        for aud in [
            "http://2130706433:8080/admin",
            "http://0x7f.1:8080/admin",
            "http://127.1:8080/admin",
            "http://0177.0.0.1:8080/admin",
            "http://127.0.0.1:08080/admin",
        ] {
            assert!(!loopback.matches(aud), "{aud:?}");
        }
    }

    #[test]
    fn scopes_from_every_claim_without_repeats() {
        let c = claims(json!({"scope": "a  b", "scp": ["b", "c"], "scopes": "d"}));
        assert_eq!(scopes(&c, &DEFAULT_SCOPE_CLAIMS).unwrap(), ["a", "b", "c"]);
        assert_eq!(scopes(&c, &["scopes", "scope"]).unwrap(), ["d", "a", "b"]);
        // One named claim (a userinfo member), read alone.
        let answer = claims(json!({"scope": "a b", "roles": ["x", "y", "x"], "n": 1}));
        assert_eq!(scopes(&answer, &["roles"]).unwrap(), ["x", "y"]);
        assert!(scopes(&answer, &["missing"]).unwrap().is_empty());
        assert!(scopes(&answer, &["n"]).is_err());
        assert!(scopes(&claims(json!({"scp": [1]})), &DEFAULT_SCOPE_CLAIMS).is_err());
        assert!(
            scopes(&claims(json!({})), &DEFAULT_SCOPE_CLAIMS)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn client_id_falls_back_to_azp() {
        assert_eq!(
            client_id(&claims(json!({"azp": "a"}))).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            client_id(&claims(json!({"client_id": "c", "azp": "a"})))
                .unwrap()
                .as_deref(),
            Some("c")
        );
        assert!(client_id(&claims(json!({"client_id": 5}))).is_err());
    }
}
