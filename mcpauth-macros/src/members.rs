//! Metadata members written out in a macro — static authorization-server metadata in
//! `auth_server!`, RFC 9728 members in `#[protected_resource]` — read and checked by the kind
//! the member table of `mcpauth-rules` gives them.

use mcpauth_rules::metadata::{Member, MemberKind};
use mcpauth_rules::url as url_rules;
use syn::{Ident, LitBool, LitStr};

use crate::args::{Value, expect_bool, expect_str, expect_str_list};
use crate::errors::{Errors, with_help};

/// A checked member value.
pub(crate) enum MemberValue {
    Text(LitStr),
    Strings(Vec<LitStr>),
    Flag(LitBool),
}

/// One member set in a macro, checked.
pub(crate) struct MemberSetting {
    pub(crate) key: Ident,
    pub(crate) value: MemberValue,
}

/// The help of every URL error.
pub(crate) const URL_HELP: &str = "use an absolute https URL (http only for loopback hosts)";

/// Reads `value` as `member` (written as `key`), reporting what does not fit its kind.
pub(crate) fn member_value(
    member: Member,
    key: &Ident,
    value: &Value,
    errors: &mut Errors,
) -> Option<MemberValue> {
    match member.kind {
        MemberKind::Issuer | MemberKind::Url => {
            let lit = expect_str(value, key, errors)?;
            let checked = if member.kind == MemberKind::Issuer {
                url_rules::parse_issuer(&lit.value()).map_err(|e| format!("invalid issuer: {e}"))
            } else {
                url_rules::parse_secure_url(&lit.value())
                    .map_err(|e| format!("invalid `{key}`: {e}"))
            };
            if let Err(problem) = checked {
                errors.at(lit, with_help(problem, URL_HELP));
            }
            Some(MemberValue::Text(lit.clone()))
        }
        MemberKind::Text => {
            let lit = expect_str(value, key, errors)?;
            check_text(key, lit, false, errors);
            Some(MemberValue::Text(lit.clone()))
        }
        MemberKind::Strings => {
            let items = expect_str_list(value, key, errors)?;
            for item in &items {
                check_text(key, item, true, errors);
            }
            Some(MemberValue::Strings(items.into_iter().cloned().collect()))
        }
        MemberKind::Flag => expect_bool(value, key, errors)
            .cloned()
            .map(MemberValue::Flag),
        // Not written as a member: each macro has its own keys for these.
        _ => None,
    }
}

/// Reports an empty string, or one with leading or trailing whitespace (a member's value, or an
/// item of its list).
fn check_text(key: &Ident, lit: &LitStr, in_list: bool, errors: &mut Errors) {
    let text = lit.value();
    let message = match (text.is_empty(), text.trim() != text, in_list) {
        (true, _, false) => format!("`{key}` is empty: give it a value or leave the member out"),
        (true, _, true) => format!("`{key}` lists an empty string: remove it"),
        (false, true, false) => format!("`{key}` has leading or trailing whitespace: remove it"),
        (false, true, true) => {
            format!("`{key}` lists {text:?}, with leading or trailing whitespace: remove it")
        }
        (false, false, _) => return,
    };
    errors.at(lit, message);
}
