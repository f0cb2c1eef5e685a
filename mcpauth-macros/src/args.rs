//! The `key = value, …` syntax shared by both macros, parsed into a small tree the checks can
//! point into: string and boolean literals, `[lists]`, `{ "key" => value }` maps, `name(…)`
//! calls (`env("VAR")`, `expr(…)`, `oidc(…)`), and paths (names of declarations). Also the
//! checks every macro applies to that syntax the same way: each key once and known, `env("…")`
//! and `expr(…)`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitBool, LitStr, Token, braced, bracketed, parenthesized, token};

use crate::errors::{Errors, with_help};
use crate::names::suggestion;

/// One value.
pub(crate) enum Value {
    Str(LitStr),
    Bool(LitBool),
    List(Span, Vec<Value>),
    Map(Span, Vec<(LitStr, Value)>),
    Call(Ident, TokenStream),
    Path(syn::Path),
}

impl Value {
    pub(crate) fn span(&self) -> Span {
        match self {
            Self::Str(lit) => lit.span(),
            Self::Bool(lit) => lit.span,
            Self::List(span, _) | Self::Map(span, _) => *span,
            Self::Call(name, _) => name.span(),
            Self::Path(path) => syn::spanned::Spanned::span(path),
        }
    }

    /// What kind of value this is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Bool(_) => "a boolean",
            Self::List(..) => "a list",
            Self::Map(..) => "a map",
            Self::Call(..) => "a call",
            Self::Path(_) => "a name",
        }
    }
}

impl Parse for Value {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return input.parse().map(Self::Str);
        }
        if input.peek(LitBool) {
            return input.parse().map(Self::Bool);
        }
        if input.peek(token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let items = Punctuated::<Value, Token![,]>::parse_terminated(&content)?;
            return Ok(Self::List(bracket.span.join(), items.into_iter().collect()));
        }
        if input.peek(token::Brace) {
            let content;
            let brace = braced!(content in input);
            let entries = Punctuated::<MapEntry, Token![,]>::parse_terminated(&content)?;
            let entries = entries.into_iter().map(|e| (e.key, e.value)).collect();
            return Ok(Self::Map(brace.span.join(), entries));
        }
        if input.peek(Ident::peek_any) && input.peek2(token::Paren) {
            let name = Ident::parse_any(input)?;
            let content;
            parenthesized!(content in input);
            return Ok(Self::Call(name, content.parse()?));
        }
        input.parse().map(Self::Path)
    }
}

struct MapEntry {
    key: LitStr,
    value: Value,
}

impl Parse for MapEntry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.parse()?;
        input.parse::<Token![=>]>()?;
        let value = input.parse()?;
        Ok(Self { key, value })
    }
}

/// One `key = value`.
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Self { key, value })
    }
}

/// `key = value, …` (a trailing comma is fine).
pub(crate) struct Args(pub(crate) Vec<Arg>);

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(Self(args.into_iter().collect()))
    }
}

/// The keys a `key = value, …` list may have, and how an unknown one is reported.
pub(crate) struct Keys<'a> {
    /// Every key that exists.
    pub(crate) known: &'a [&'a str],
    /// The message for an unknown key, given its name.
    pub(crate) unknown: &'a dyn Fn(&str) -> String,
    /// Appended to the "did you mean" help (empty, or starting with a space).
    pub(crate) note: &'a str,
}

/// Checks the keys of one `key = value, …` list as they come, so errors stay in source order.
pub(crate) struct KeyCheck<'a> {
    keys: Keys<'a>,
    seen: Vec<String>,
}

impl<'a> KeyCheck<'a> {
    pub(crate) fn new(keys: Keys<'a>) -> Self {
        Self {
            keys,
            seen: Vec::new(),
        }
    }

    /// Whether `key` is known and not given before. A repeated key is reported at its second
    /// occurrence, an unknown one with the closest known key.
    pub(crate) fn accept(&mut self, key: &Ident, errors: &mut Errors) -> bool {
        let name = key.unraw().to_string();
        if self.seen.contains(&name) {
            errors.at(key, format!("`{name}` is given twice: keep one"));
            return false;
        }
        self.seen.push(name.clone());
        if self.keys.known.contains(&name.as_str()) {
            return true;
        }
        errors.at(
            key,
            with_help(
                (self.keys.unknown)(&name),
                format!("{}{}", suggestion(&name, self.keys.known), self.keys.note),
            ),
        );
        false
    }
}

/// The arguments whose key is known, each key once (see [`KeyCheck::accept`]).
pub(crate) fn known_args<'a>(args: &'a Args, keys: Keys<'_>, errors: &mut Errors) -> Vec<&'a Arg> {
    let mut check = KeyCheck::new(keys);
    args.0
        .iter()
        .filter(|arg| check.accept(&arg.key, errors))
        .collect()
}

/// The entries of a `{ "key" => value }` map, each key once: a repeated key is reported at its
/// second occurrence (`what` names a key: "the tool") and not returned.
pub(crate) fn distinct_entries<'a>(
    entries: &'a [(LitStr, Value)],
    what: &str,
    fix: &str,
    errors: &mut Errors,
) -> Vec<&'a (LitStr, Value)> {
    let mut seen: Vec<String> = Vec::new();
    let mut found = Vec::new();
    for entry in entries {
        let key = entry.0.value();
        if seen.contains(&key) {
            errors.at(&entry.0, format!("{what} {key:?} is listed twice: {fix}"));
        } else {
            seen.push(key);
            found.push(entry);
        }
    }
    found
}

/// A deployment value: a literal checked at compile time, or a value read at start-up.
pub(crate) enum Setting {
    Literal(LitStr),
    Env(LitStr),
    Expr(Box<syn::Expr>),
}

impl Setting {
    /// Reads a setting from `value`, reporting anything else.
    pub(crate) fn from_value(value: &Value, what: &str, errors: &mut Errors) -> Option<Self> {
        match value {
            Value::Str(lit) => Some(Self::Literal(lit.clone())),
            Value::Call(name, args) if name == "env" => env_var(name, args, errors).map(Self::Env),
            Value::Call(name, args) if name == "expr" => {
                expr(name, args, errors).map(|e| Self::Expr(Box::new(e)))
            }
            other => {
                errors.at_span(
                    other.span(),
                    with_help(
                        format!("{what} must be a string literal, `env(\"NAME\")` or `expr(…)`, not {}", other.kind()),
                        "a literal is checked at compile time; the other two are read and checked at start-up",
                    ),
                );
                None
            }
        }
    }

    /// The literal, when the setting is one.
    pub(crate) fn literal(&self) -> Option<&LitStr> {
        match self {
            Self::Literal(lit) => Some(lit),
            Self::Env(_) | Self::Expr(_) => None,
        }
    }
}

/// The variable named by `env("NAME")` (`tokens` being what is inside the parentheses), or an
/// error: the name must be one string literal, and a name a process environment can hold.
pub(crate) fn env_var(call: &Ident, tokens: &TokenStream, errors: &mut Errors) -> Option<LitStr> {
    let Ok(var) = syn::parse2::<LitStr>(tokens.clone()) else {
        errors.at(
            call,
            "`env(…)` takes the variable's name as a string: `env(\"NAME\")`",
        );
        return None;
    };
    let name = var.value();
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name.contains(['=', '\0']) {
        Some("no environment variable can have `=` or a NUL character in its name")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it has whitespace or a control character")
    } else {
        None
    };
    if let Some(problem) = problem {
        errors.at(
            &var,
            with_help(
                format!("invalid environment variable name {name:?}: {problem}"),
                "write the name as the shell sets it, like `env(\"AUTH_ISSUER\")`",
            ),
        );
        return None;
    }
    Some(var)
}

/// The expression of `expr(…)`, or an error.
pub(crate) fn expr(call: &Ident, tokens: &TokenStream, errors: &mut Errors) -> Option<syn::Expr> {
    if tokens.is_empty() {
        errors.at(
            call,
            "`expr(…)` takes an expression evaluated at start-up: `expr(config().issuer)`",
        );
        return None;
    }
    match syn::parse2::<syn::Expr>(tokens.clone()) {
        Ok(expr) => Some(expr),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

/// A string literal value, or an error.
pub(crate) fn expect_str<'a>(
    value: &'a Value,
    key: &Ident,
    errors: &mut Errors,
) -> Option<&'a LitStr> {
    match value {
        Value::Str(lit) => Some(lit),
        other => {
            errors.at_span(
                other.span(),
                format!(
                    "`{key}` takes a string literal, not {}: `{key} = \"…\"`",
                    other.kind()
                ),
            );
            None
        }
    }
}

/// A list of string literals, or an error for each item that is not one.
pub(crate) fn expect_str_list<'a>(
    value: &'a Value,
    key: &Ident,
    errors: &mut Errors,
) -> Option<Vec<&'a LitStr>> {
    let Value::List(_, items) = value else {
        errors.at_span(
            value.span(),
            format!("`{key}` takes a list of string literals: `{key} = [\"…\", \"…\"]`"),
        );
        return None;
    };
    let mut strings = Vec::new();
    for item in items {
        match item {
            Value::Str(lit) => strings.push(lit),
            other => errors.at_span(
                other.span(),
                format!(
                    "`{key}` lists string literals, not {}: write it in quotes",
                    other.kind()
                ),
            ),
        }
    }
    Some(strings)
}

/// A boolean literal, or an error.
pub(crate) fn expect_bool<'a>(
    value: &'a Value,
    key: &Ident,
    errors: &mut Errors,
) -> Option<&'a LitBool> {
    match value {
        Value::Bool(flag) => Some(flag),
        other => {
            errors.at_span(
                other.span(),
                format!("`{key}` takes `true` or `false`, not {}", other.kind()),
            );
            None
        }
    }
}
