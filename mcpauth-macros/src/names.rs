//! Names: Rust identifiers derived from scope strings, and "did you mean" suggestions.

use proc_macro2::{Ident, Span};

/// The enum variant for a scope: its ASCII letters and digits in UpperCamelCase, splitting at
/// every other character (`read:notes` → `ReadNotes`, `files.read-all` → `FilesReadAll`). A
/// name that would start with a digit gets an `S` in front (`2fa` → `S2fa`). `None` when the
/// scope has no letter or digit.
pub(crate) fn variant_name(scope: &str) -> Option<String> {
    let mut name = String::new();
    for word in scope.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    if name.is_empty() {
        return None;
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'S');
    }
    Some(name)
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
        assert_eq!(variant_name("read:notes").as_deref(), Some("ReadNotes"));
        assert_eq!(
            variant_name("files.read-all").as_deref(),
            Some("FilesReadAll")
        );
        assert_eq!(
            variant_name("https://x.example/api").as_deref(),
            Some("HttpsXExampleApi")
        );
        assert_eq!(variant_name("2fa").as_deref(), Some("S2fa"));
        assert_eq!(variant_name("read_notes"), variant_name("read:notes"));
        assert_eq!(variant_name("!!!"), None);
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
