//! The `Authorization` header parser (`bearer::bearer_token`).
//!
//! Input: one or more header values separated by `\n` (a value `HeaderValue::from_bytes`
//! refuses is skipped, as an HTTP server would never deliver it). Each input is parsed under a
//! small bound (64 bytes) and the default one (8 KiB).
//!
//! Invariants:
//! - an accepted token comes from exactly one header value no longer than the bound; it is a
//!   non-empty slice of that value (the same bytes, not a copy), matches the RFC 6750
//!   `b64token` grammar, and the value is `Bearer` (any case), one or more SP, the token, and
//!   only SP after it;
//! - nothing above the bound is accepted: a longer single value is refused as too large;
//! - several values are always refused;
//! - "no credentials" only for a value whose scheme is not `Bearer`;
//! - every refusal is a 400 `invalid_request` with a reason about the header, and the two
//!   bounds agree on every value within the smaller one.
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::bearer_token;
use mcpauth::{AuthError, AuthErrorReason, BearerAuthLayer};
use mcpauth_fuzz::is_b64token;

const SMALL: usize = 64;

fn check(headers: &HeaderMap, max_len: usize) -> Result<Option<String>, AuthErrorReason> {
    let values: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).iter().collect();
    match bearer_token(headers, max_len) {
        Ok(Some(token)) => {
            assert_eq!(values.len(), 1, "a token accepted from several headers");
            let value = values[0].as_bytes();
            assert!(value.len() <= max_len, "accepted above the bound");
            assert!(!token.is_empty());
            let start = token.as_ptr() as usize - value.as_ptr() as usize;
            assert!(
                start + token.len() <= value.len()
                    && &value[start..start + token.len()] == token.as_bytes(),
                "the token is not a slice of the header"
            );
            assert!(
                is_b64token(token.as_bytes()),
                "accepted outside b64token: {token:?}"
            );
            let (scheme, gap) = (&value[..6], &value[6..start]);
            assert!(
                scheme.eq_ignore_ascii_case(b"bearer"),
                "accepted with scheme {scheme:?}"
            );
            assert!(!gap.is_empty() && gap.iter().all(|&b| b == b' '));
            assert!(value[start + token.len()..].iter().all(|&b| b == b' '));
            Ok(Some(token.to_owned()))
        }
        Ok(None) => {
            assert!(values.len() <= 1, "several headers taken as no credentials");
            if let Some(value) = values.first() {
                let value = value.as_bytes();
                assert!(value.len() <= max_len, "no credentials above the bound");
                let scheme = value.split(|&b| b == b' ').next().unwrap_or_default();
                assert!(
                    !scheme.eq_ignore_ascii_case(b"bearer"),
                    "a Bearer value taken as no credentials"
                );
            }
            Ok(None)
        }
        Err(error) => {
            let reason = error.reason();
            assert!(
                matches!(error, AuthError::InvalidRequest { .. }),
                "a header refusal that is not invalid_request: {error:?}"
            );
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert!(
                matches!(
                    reason,
                    AuthErrorReason::MultipleAuthorizationHeaders
                        | AuthErrorReason::AuthorizationHeaderTooLarge
                        | AuthErrorReason::MalformedAuthorizationHeader
                        | AuthErrorReason::EmptyToken
                        | AuthErrorReason::InvalidTokenCharacters
                ),
                "{reason:?}"
            );
            if values.len() > 1 {
                assert_eq!(reason, AuthErrorReason::MultipleAuthorizationHeaders);
            } else if values[0].len() > max_len {
                assert_eq!(reason, AuthErrorReason::AuthorizationHeaderTooLarge);
            }
            Err(reason)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for value in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let small = check(&headers, SMALL);
    let default = check(&headers, BearerAuthLayer::DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES);
    let longest = headers
        .get_all(AUTHORIZATION)
        .iter()
        .map(HeaderValue::len)
        .max();
    if longest.unwrap_or(0) <= SMALL {
        assert_eq!(small, default, "the bound changed the outcome within it");
    } else if headers.get_all(AUTHORIZATION).iter().count() == 1 {
        assert_eq!(small, Err(AuthErrorReason::AuthorizationHeaderTooLarge));
    }
});
