//! The `key = value, …` syntax shared by both macros, parsed into a small tree the checks can
//! point into: string and boolean literals, `[lists]`, `{ "key" => value }` maps, `name(…)`
//! calls (`env("VAR")`, `expr(…)`, `oidc(…)`), and paths (names of declarations).

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, LitBool, LitStr, Token, braced, bracketed, parenthesized, token};

use crate::ctxt::{Errors, with_help};

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
            Self::Path(path) => path.span(),
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

/// A deployment value: a literal checked at compile time, or a value read at start-up.
pub(crate) enum Setting {
    Literal(LitStr),
    Env(LitStr),
    Expr(syn::Expr),
}

impl Setting {
    /// Reads a setting from `value`, reporting anything else.
    pub(crate) fn from_value(value: &Value, what: &str, errors: &mut Errors) -> Option<Self> {
        match value {
            Value::Str(lit) => Some(Self::Literal(lit.clone())),
            Value::Call(name, args) if name == "env" => match syn::parse2::<LitStr>(args.clone()) {
                Ok(var) => Some(Self::Env(var)),
                Err(_) => {
                    errors.at(
                        name,
                        "`env(…)` takes the variable's name as a string: `env(\"NAME\")`",
                    );
                    None
                }
            },
            Value::Call(name, args) if name == "expr" => {
                match syn::parse2::<syn::Expr>(args.clone()) {
                    Ok(expr) => Some(Self::Expr(expr)),
                    Err(error) => {
                        errors.push(error);
                        None
                    }
                }
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
                format!("`{key}` takes a string literal, not {}", other.kind()),
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
                format!("`{key}` lists string literals, not {}", other.kind()),
            ),
        }
    }
    Some(strings)
}
