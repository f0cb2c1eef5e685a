//! Scope tokens (RFC 6749 §3.3).

/// Whether `scope` is a valid RFC 6749 §3.3 scope token: one or more of `%x21 / %x23-5B /
/// %x5D-7E` (printable ASCII except space, `"` and `\`).
///
/// ```
/// use mcpauth_rules::scope::is_valid_scope_token;
///
/// assert!(is_valid_scope_token("read:notes"));
/// assert!(!is_valid_scope_token("read notes"));
/// assert!(!is_valid_scope_token(""));
/// ```
pub fn is_valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Why `scope` is not a valid scope token, in words for an error message; `None` when it is.
pub fn scope_token_problem(scope: &str) -> Option<&'static str> {
    if scope.is_empty() {
        Some("a scope cannot be empty")
    } else if !is_valid_scope_token(scope) {
        Some("a scope token is printable ASCII without spaces, `\"` or `\\` (RFC 6749 §3.3)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_token_grammar() {
        for valid in [
            "a",
            "read:notes",
            "https://x/y.z",
            "!#$%&'()*+,-./[]^_`{|}~",
        ] {
            assert!(is_valid_scope_token(valid), "{valid}");
        }
        for invalid in ["", " ", "a b", "a\"b", "a\\b", "é", "a\tb", "a\u{7f}"] {
            assert!(!is_valid_scope_token(invalid), "{invalid:?}");
        }
    }
}
