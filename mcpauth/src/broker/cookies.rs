//! The broker's two cookies: the browser nonce the consent form's CSRF token is bound to, and
//! the binding that ties an approved sign-in to the browser that approved it. Both are
//! `HttpOnly`, `SameSite=Lax` (the provider's redirect back is a top-level GET), and on an
//! https issuer `Secure` with the `__Host-` prefix (no domain, path `/`: no other host or path
//! can set or read them). On an http loopback issuer (development) they are plain.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie's full name for this issuer's scheme.
pub(crate) fn name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The value of the cookie `name` in the request, if exactly one is sent (two are ambiguous).
pub(crate) fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for header in headers.get_all(header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key == name {
                if found.is_some() {
                    return None;
                }
                found = Some(value);
            }
        }
    }
    found
}

/// A `Set-Cookie` value; `max_age` 0 deletes it.
pub(crate) fn set(
    name: &str,
    value: &str,
    max_age_seconds: u64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cookie_of_a_name_is_read_two_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(read(&headers, "b"), Some("2"));
        assert_eq!(read(&headers, "c"), None);
        headers.append(header::COOKIE, HeaderValue::from_static("b=3"));
        assert_eq!(read(&headers, "b"), None);
        assert_eq!(name(true, "x"), "__Host-x");
        let cookie = set("__Host-x", "v", 600, true).unwrap();
        assert_eq!(
            cookie,
            "__Host-x=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
