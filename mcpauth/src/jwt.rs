//! Splitting and decoding a JWS compact token (RFC 7515 §7.1) before its signature is checked,
//! and the header rules: no `none`, no HMAC, no `crit`, an access-token `typ`.
//!
//! Only `alg`, `kid`, `typ` and `crit` are read from the header. `jku`, `x5u` and `jwk` are
//! never looked at: keys come from the configured authorization server only.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth_error::{AuthError, AuthErrorReason};

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    /// Whether `crit` is present at all (even `null`, which is not a valid `crit` either).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Which `typ` header values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenTypePolicy {
    /// `at+jwt`, `application/at+jwt`, `JWT` or no `typ` (several providers send the last two).
    /// An ID token (often `JWT` too) is then kept out by the audience check: its `aud` is the
    /// client, never the resource.
    #[default]
    Lenient,
    /// RFC 9068 §4: only `at+jwt` or `application/at+jwt`.
    Strict,
}

impl TokenTypePolicy {
    fn accepts(self, typ: Option<&str>) -> bool {
        let is = |expected: &str| typ.is_some_and(|t| t.eq_ignore_ascii_case(expected));
        let access_token = is("at+jwt") || is("application/at+jwt");
        match self {
            Self::Strict => access_token,
            Self::Lenient => access_token || typ.is_none() || is("JWT"),
        }
    }

    /// Refuses a header `typ` this policy does not accept.
    pub(crate) fn check(self, typ: Option<&str>) -> Result<(), AuthError> {
        if self.accepts(typ) {
            return Ok(());
        }
        Err(AuthError::invalid_token(
            AuthErrorReason::InvalidTokenType,
            format!(
                "The token's typ {:?} is not an access-token type.",
                typ.unwrap_or("")
            ),
        ))
    }
}

/// A decoded, not yet verified JWT.
#[derive(Debug)]
pub(crate) struct UnverifiedJwt<'a> {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// The decoded payload (the JSON of `claims`).
    pub(crate) payload: Vec<u8>,
    /// `base64url(header) . base64url(payload)`: what the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: &'a str,
}

fn malformed(detail: impl Into<String>) -> AuthError {
    AuthError::invalid_token(AuthErrorReason::MalformedToken, detail)
}

fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| malformed(format!("The token's {what} is not base64url.")))
}

/// Decodes `token`, applying the header rules.
pub(crate) fn decode_unverified(
    token: &str,
    type_policy: TokenTypePolicy,
) -> Result<UnverifiedJwt<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "The token is not a JWT (three dot-separated parts).",
        ));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(malformed("The token has an empty part."));
    }
    let signing_input = &token[..header.len() + 1 + payload.len()];

    let header: RawHeader =
        serde_json::from_slice(&decode_segment(header, "header")?).map_err(|e| {
            malformed(format!(
                "The token's header is not a valid JOSE header: {e}."
            ))
        })?;
    if header.crit {
        return Err(AuthError::invalid_token(
            AuthErrorReason::UnsupportedCriticalHeader,
            "The token's header has a crit parameter, and no critical extension is supported.",
        ));
    }
    let unsupported =
        |why: String| AuthError::invalid_token(AuthErrorReason::UnsupportedAlgorithm, why);
    let algorithm = match Algorithm::from_str(&header.alg) {
        Ok(algorithm) if algorithm.family() == AlgorithmFamily::Hmac => {
            return Err(unsupported(format!(
                "The token uses {}: HMAC algorithms are refused (the keys are public).",
                header.alg
            )));
        }
        Ok(algorithm) => algorithm,
        Err(_) => {
            return Err(unsupported(format!(
                "The token's algorithm {:?} is not supported.",
                header.alg
            )));
        }
    };
    type_policy.check(header.typ.as_deref())?;

    let payload = decode_segment(payload, "payload")?;
    let claims: Value = serde_json::from_slice(&payload)
        .map_err(|e| malformed(format!("The token's payload is not JSON: {e}.")))?;
    let Value::Object(claims) = claims else {
        return Err(malformed("The token's payload is not a JSON object."));
    };
    if signature.is_empty() {
        return Err(malformed("The token is not signed."));
    }
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(malformed("The token's signature is not base64url."));
    }
    Ok(UnverifiedJwt {
        algorithm,
        kid: header.kid,
        typ: header.typ,
        claims,
        payload,
        signing_input,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn reason(token: &str) -> AuthErrorReason {
        decode_unverified(token, TokenTypePolicy::Lenient)
            .unwrap_err()
            .reason()
    }

    #[test]
    fn structure_and_header_rules() {
        use AuthErrorReason as R;
        let payload = b64(r#"{"iss":"x"}"#);
        let ok = format!(
            "{}.{payload}.c2ln",
            b64(r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#)
        );
        let jwt = decode_unverified(&ok, TokenTypePolicy::Strict).unwrap();
        assert_eq!(jwt.algorithm, Algorithm::RS256);
        assert_eq!(jwt.kid.as_deref(), Some("k"));
        assert_eq!(jwt.claims["iss"], "x");
        assert_eq!(jwt.signature, "c2ln");
        assert!(ok.starts_with(jwt.signing_input) && jwt.signing_input.ends_with(&payload));

        assert_eq!(reason("abc"), R::MalformedToken);
        assert_eq!(reason("a.b.c.d"), R::MalformedToken);
        assert_eq!(reason(&format!("!!.{payload}.c2ln")), R::MalformedToken);
        assert_eq!(
            reason(&format!("{}.{payload}.c2ln", b64("{nope"))),
            R::MalformedToken
        );
        assert_eq!(
            reason(&format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"RS256"}"#),
                b64("[1]")
            )),
            R::MalformedToken
        );
        assert_eq!(
            reason(&format!("{}.{payload}.c2ln", b64(r#"{"alg":"none"}"#))),
            R::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!("{}.{payload}.c2ln", b64(r#"{"alg":"HS256"}"#))),
            R::UnsupportedAlgorithm
        );
        assert_eq!(
            reason(&format!(
                "{}.{payload}.c2ln",
                b64(r#"{"alg":"RS256","crit":["exp"]}"#)
            )),
            R::UnsupportedCriticalHeader
        );
        assert_eq!(
            reason(&format!(
                "{}.{payload}.c2ln",
                b64(r#"{"alg":"RS256","typ":"id+jwt"}"#)
            )),
            R::InvalidTokenType
        );
        assert_eq!(
            reason(&format!("{}.{payload}.c2l=", b64(r#"{"alg":"RS256"}"#))),
            R::MalformedToken
        );
    }

    #[test]
    fn type_policies() {
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt"),
            Some("application/at+JWT"),
        ] {
            assert!(TokenTypePolicy::Lenient.accepts(typ), "{typ:?}");
        }
        for typ in [None, Some("JWT")] {
            assert!(!TokenTypePolicy::Strict.accepts(typ), "{typ:?}");
        }
        assert!(TokenTypePolicy::Strict.accepts(Some("application/at+jwt")));
        assert!(!TokenTypePolicy::Lenient.accepts(Some("dpop+jwt")));
    }
}
