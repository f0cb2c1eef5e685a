//! Reading the bearer token from the `Authorization` header (RFC 6750 §2.1, RFC 7235 §2.1).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::auth_error::{AuthError, AuthErrorReason};

/// The default bound on the `Authorization` header's length.
pub(crate) const DEFAULT_MAX_AUTHORIZATION_HEADER_BYTES: usize = 8 * 1024;

/// Whether `b` may appear in a `b64token` before its padding: `ALPHA / DIGIT / "-" / "." /
/// "_" / "~" / "+" / "/"`. Written without branches so a whole token is checked in a few
/// vector instructions (it is read on every request).
fn is_token_byte(b: u8) -> bool {
    // "-", ".", "/" and the digits are one run, 0x2D..=0x39.
    let run = b.wrapping_sub(b'-') < 13;
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let symbol = (b == b'_') | (b == b'~') | (b == b'+');
    run | letter | symbol
}

/// Whether `token` matches `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
/// *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && body.iter().fold(true, |all, &b| all & is_token_byte(b))
}

/// The bearer token of a request.
///
/// `Ok(None)` when there are no credentials (no `Authorization` header, or one with another
/// scheme). Malformed bearer credentials are `invalid_request` errors: several `Authorization`
/// headers, a header longer than `max_len`, `Bearer` without a token, more than one token, or
/// characters outside the `b64token` grammar. The scheme is matched without regard to case;
/// one or more spaces may separate it from the token.
pub(crate) fn bearer_token(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            AuthErrorReason::MultipleAuthorizationHeaders,
            "The request has more than one Authorization header.",
        ));
    }
    if value.len() > max_len {
        return Err(AuthError::invalid_request(
            AuthErrorReason::AuthorizationHeaderTooLarge,
            format!("The Authorization header is longer than {max_len} bytes."),
        ));
    }
    let malformed = || {
        AuthError::invalid_request(
            AuthErrorReason::MalformedAuthorizationHeader,
            "The Authorization header is not of the form \"Bearer <token>\".",
        )
    };
    let value = value.as_bytes();
    // The usual form, `Bearer <token>` with one space, in one pass: a token that matches the
    // grammar is visible ASCII, so nothing else needs checking.
    if let Some((scheme, token)) = value.split_at_checked(7)
        && scheme.eq_ignore_ascii_case(b"bearer ")
        && is_b64token(token)
    {
        return std::str::from_utf8(token)
            .map(Some)
            .map_err(|_| malformed());
    }
    // Any other form: two branch-free passes over the bytes (visible ASCII, then the token's
    // grammar); the rest only looks at the edges.
    let visible = value.iter().fold(true, |all, &b| {
        all & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    });
    if !visible {
        return Err(malformed());
    }
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme carries no bearer credentials: challenge as if none were sent.
        return Ok(None);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let end = rest
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |last| last + 1);
    let token = &rest[start..end];
    if token.is_empty() {
        return Err(AuthError::invalid_request(
            AuthErrorReason::EmptyToken,
            "The Authorization header has the Bearer scheme but no token.",
        ));
    }
    if !is_b64token(token) {
        if token.iter().any(|&b| b == b' ' || b == b'\t') {
            return Err(malformed());
        }
        return Err(AuthError::invalid_request(
            AuthErrorReason::InvalidTokenCharacters,
            "The bearer token has characters outside the RFC 6750 token grammar.",
        ));
    }
    // Only ASCII passed the grammar, so this is valid UTF-8.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn token(values: &[&[u8]]) -> Result<Option<String>, AuthErrorReason> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        bearer_token(&headers, 64)
            .map(|t| t.map(str::to_owned))
            .map_err(|e| e.reason())
    }

    #[test]
    fn token_bytes_are_exactly_the_grammar_s() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_token_byte(b), expected, "{b:#04x}");
        }
    }

    #[test]
    fn header_grammar() {
        use AuthErrorReason as R;
        assert_eq!(token(&[]), Ok(None));
        assert_eq!(token(&[b"Basic dXNlcjpwdw=="]), Ok(None));
        assert_eq!(token(&[b"Digest"]), Ok(None));
        assert_eq!(
            token(&[b"Bearer abc.def-ghi_~+/=="]),
            Ok(Some("abc.def-ghi_~+/==".into()))
        );
        assert_eq!(token(&[b"bEaReR abc"]), Ok(Some("abc".into())));
        assert_eq!(token(&[b"Bearer   abc"]), Ok(Some("abc".into())));
        assert_eq!(token(&[b"Bearer"]), Err(R::EmptyToken));
        assert_eq!(token(&[b"Bearer "]), Err(R::EmptyToken));
        assert_eq!(
            token(&[b"Bearer a b"]),
            Err(R::MalformedAuthorizationHeader)
        );
        assert_eq!(token(&[b"Bearer a,b"]), Err(R::InvalidTokenCharacters));
        assert_eq!(token(&[b"Bearer ==="]), Err(R::InvalidTokenCharacters));
        assert_eq!(token(&[b"Bearer a=b"]), Err(R::InvalidTokenCharacters));
        assert_eq!(
            token(&[b"Bearer \xc3\xa9"]),
            Err(R::MalformedAuthorizationHeader)
        );
        assert_eq!(
            token(&[b"Bearer a", b"Bearer b"]),
            Err(R::MultipleAuthorizationHeaders)
        );
        // The usual form and its neighbours, which take the general path.
        assert_eq!(token(&[b"Bearer abc "]), Ok(Some("abc".into())));
        assert_eq!(token(&[b"Bearer\tabc"]), Ok(None));
        assert_eq!(token(&[b"Bearer= abc"]), Ok(None));
        assert_eq!(
            token(&[b"Bearer abc\t"]),
            Err(R::MalformedAuthorizationHeader)
        );
        let long = format!("Bearer {}", "a".repeat(64));
        assert_eq!(
            token(&[long.as_bytes()]),
            Err(R::AuthorizationHeaderTooLarge)
        );
    }
}
