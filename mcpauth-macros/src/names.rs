//! Names: Rust identifiers derived from scope strings, and "did you mean" suggestions.

use proc_macro2::{Ident, Span};

/// Names the generated `Scope` enum already uses for its own items; a variant named so would
/// hide them (`Scope::ALL` would be the variant, not the list of every scope).
const TAKEN_BY_SCOPE: &[&str] = &["ALL"];

/// The enum variant (and marker type) for a scope, always a usable identifier:
///
/// 1. the scope's ASCII letters and digits in UpperCamelCase, splitting at every other character
///    (`read:notes` → `ReadNotes`, `files.read-all` → `FilesReadAll`); a scope without letters
///    or digits spells out its characters instead (`*` → `Star`, `/` → `Slash`);
/// 2. a name that would start with a digit gets an `S` in front (`2fa` → `S2fa`);
/// 3. a name that is a Rust keyword, raw-able or not, or that the `Scope` enum uses itself, gets
///    a `_` after it (`self` and `Self` → `Self_`, `ALL` → `ALL_`).
///
/// Names from rule 1 never contain `_`, so rule 3 never makes a name another scope has.
pub(crate) fn variant_name(scope: &str) -> String {
    let mut name = String::new();
    for word in scope.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    if name.is_empty() {
        name = scope.chars().map(punctuation_name).collect();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'S');
    }
    if is_keyword(&name) || TAKEN_BY_SCOPE.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// Whether `name` is a Rust keyword (strict or reserved), which cannot be an enum variant as it
/// is; `self`, `Self`, `super` and `crate` cannot even be raw identifiers. (A name from
/// [`variant_name`] starts with an upper-case letter, so in practice this is `Self`.)
fn is_keyword(name: &str) -> bool {
    syn::parse_str::<syn::Ident>(name).is_err()
}

/// The word for a character of a scope without letters or digits.
fn punctuation_name(c: char) -> &'static str {
    match c {
        '!' => "Bang",
        '#' => "Hash",
        '$' => "Dollar",
        '%' => "Percent",
        '&' => "Ampersand",
        '\'' => "Apostrophe",
        '(' => "OpenParen",
        ')' => "CloseParen",
        '*' => "Star",
        '+' => "Plus",
        ',' => "Comma",
        '-' => "Dash",
        '.' => "Dot",
        '/' => "Slash",
        ':' => "Colon",
        ';' => "Semicolon",
        '<' => "Less",
        '=' => "Equals",
        '>' => "Greater",
        '?' => "Question",
        '@' => "At",
        '[' => "OpenBracket",
        ']' => "CloseBracket",
        '^' => "Caret",
        '_' => "Underscore",
        '`' => "Backtick",
        '{' => "OpenBrace",
        '|' => "Pipe",
        '}' => "CloseBrace",
        '~' => "Tilde",
        // Not in a valid scope token (checked before naming).
        _ => "Char",
    }
}

/// An identifier at `span`.
pub(crate) fn ident(name: &str, span: Span) -> Ident {
    Ident::new(name, span)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The closest of `candidates` to `given`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (distance(given, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or the list of what is allowed.
pub(crate) fn suggestion(given: &str, candidates: &[&str]) -> String {
    match closest(given, candidates) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!("expected one of: {}", candidates.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(variant_name("read:notes"), "ReadNotes");
        assert_eq!(variant_name("files.read-all"), "FilesReadAll");
        assert_eq!(variant_name("https://x.example/api"), "HttpsXExampleApi");
        assert_eq!(variant_name("2fa"), "S2fa");
        assert_eq!(variant_name("read_notes"), variant_name("read:notes"));
        assert_eq!(variant_name("*"), "Star");
        assert_eq!(variant_name("!!!"), "BangBangBang");
        assert_eq!(variant_name("_"), "Underscore");
    }

    #[test]
    fn keywords_and_the_enum_own_names_get_a_suffix() {
        for (scope, variant) in [
            ("self", "Self_"),
            ("Self", "Self_"),
            ("ALL", "ALL_"),
            ("super", "Super"),
            ("crate", "Crate"),
            ("type", "Type"),
            ("fn", "Fn"),
            ("r#type", "RType"),
            ("all", "All"),
        ] {
            assert_eq!(variant_name(scope), variant, "{scope}");
        }
    }

    #[test]
    fn every_scope_character_gives_an_identifier() {
        // Every character a scope token may hold, alone and after a digit.
        for byte in (0x21..=0x7e_u8).filter(|b| *b != b'"' && *b != b'\\') {
            let c = char::from(byte);
            for scope in [c.to_string(), format!("1{c}"), format!("{c}self")] {
                let name = variant_name(&scope);
                assert!(
                    syn::parse_str::<syn::Ident>(&name).is_ok(),
                    "{scope:?} → {name:?}"
                );
            }
        }
        // And every keyword, in the case a variant name has.
        for keyword in [
            "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
            "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod",
            "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
            "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
            "box", "do", "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized",
            "virtual", "yield",
        ] {
            let name = variant_name(keyword);
            assert!(
                syn::parse_str::<syn::Ident>(&name).is_ok(),
                "{keyword:?} → {name:?}"
            );
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("scope", &["scopes", "resource"]), Some("scopes"));
        assert_eq!(
            closest("resorce", &["scopes", "resource"]),
            Some("resource")
        );
        assert_eq!(closest("zzzzzzzz", &["scopes", "resource"]), None);
    }
}
