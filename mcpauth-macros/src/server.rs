//! `auth_server!`: named authorization servers, parsed, checked and expanded.
//!
//! ```text
//! auth_server! {
//!     /// Our Logto tenant.
//!     pub LOGTO = oidc("https://tenant.logto.app/oidc");
//!     pub LOCAL = oauth(env("AUTH_ISSUER"), transpile = fix_metadata);
//!     pub PROBED = discover("https://auth.example.com/tenant");
//!     pub AT_URL = well_known("https://a.example/meta.json", issuer = "https://a.example", type = oauth);
//!     pub FIXED = metadata { issuer = "https://auth.example.com", jwks_uri = "…", … };
//! }
//! ```

use mcpauth_rules::compat::{AuthServerConfigErrorCode, CompatibilityInput, check_compatibility};
use mcpauth_rules::url as url_rules;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use serde_json::{Map, Value as Json};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Token, Visibility, braced, parenthesized, token};

use crate::args::{Args, Setting, Value, expect_str, expect_str_list};
use crate::ctxt::{Errors, with_help};
use crate::names::suggestion;

const KINDS: &[&str] = &[
    "oauth",
    "oidc",
    "issuer",
    "discover",
    "well_known",
    "metadata",
];

const TEXT_MEMBERS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "service_documentation",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "signed_metadata",
    "userinfo_endpoint",
    "end_session_endpoint",
];

const LIST_MEMBERS: &[&str] = &[
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "ui_locales_supported",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported",
    "protected_resources",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "userinfo_signing_alg_values_supported",
    "claims_supported",
];

const FLAG_MEMBERS: &[&str] = &[
    "authorization_response_iss_parameter_supported",
    "client_id_metadata_document_supported",
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
];

/// Members that are URLs (checked like every URL).
const URL_MEMBERS: &[&str] = &[
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "service_documentation",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
];

enum Body {
    Call(TokenStream),
    Fields(TokenStream),
}

/// One `vis NAME = kind(...)` or `vis NAME = metadata { ... }`.
struct Declaration {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    kind: Ident,
    body: Body,
}

impl Parse for Declaration {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let name = input.parse()?;
        input.parse::<Token![=]>()?;
        let kind: Ident = input.parse()?;
        let body = if input.peek(token::Brace) {
            let content;
            braced!(content in input);
            Body::Fields(content.parse()?)
        } else {
            let content;
            parenthesized!(content in input);
            Body::Call(content.parse()?)
        };
        Ok(Self {
            attrs,
            vis,
            name,
            kind,
            body,
        })
    }
}

/// Every declaration of one invocation, and the path of the mcpauth crate (`crate = "…";`
/// first, for a renamed dependency).
pub(crate) struct Declarations {
    krate: syn::Path,
    list: Vec<Declaration>,
}

impl Parse for Declarations {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut krate: syn::Path = syn::parse_quote!(::mcpauth);
        if input.peek(Token![crate]) && input.peek2(Token![=]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            let path: syn::LitStr = input.parse()?;
            krate = path.parse()?;
            input.parse::<Token![;]>()?;
        }
        let mut declarations = Vec::new();
        while !input.is_empty() {
            declarations.push(input.parse()?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![;]>()?;
        }
        Ok(Self {
            krate,
            list: declarations,
        })
    }
}

/// `issuer_or_url, key = value, …`
struct CallArgs {
    first: Value,
    rest: Args,
}

impl Parse for CallArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let first = input.parse()?;
        let rest = if input.is_empty() {
            Args(Vec::new())
        } else {
            input.parse::<Token![,]>()?;
            input.parse()?
        };
        Ok(Self { first, rest })
    }
}

/// The expression of a setting, checked at start-up by `check` unless it is a literal (checked
/// here by `literal_rule`).
fn setting_expr(
    private: &TokenStream,
    setting: &Setting,
    check: &str,
    literal_rule: fn(&str) -> Result<(), url_rules::UrlError>,
    what: &str,
    errors: &mut Errors,
) -> TokenStream {
    let check = Ident::new(check, Span::call_site());
    match setting {
        Setting::Literal(lit) => {
            if let Err(error) = literal_rule(&lit.value()) {
                errors.at(
                    lit,
                    with_help(
                        format!("invalid {what}: {error}"),
                        "use an absolute https URL (http only for loopback hosts)",
                    ),
                );
            }
            quote!(::std::string::String::from(#lit))
        }
        Setting::Env(var) => quote!(#private::#check(#private::env_setting(#var)?)?),
        Setting::Expr(expr) => {
            quote_spanned!(expr.span()=> #private::#check(::core::convert::Into::<::std::string::String>::into(#expr))?)
        }
    }
}

fn issuer_rule(value: &str) -> Result<(), url_rules::UrlError> {
    url_rules::parse_issuer(value).map(drop)
}

fn url_rule(value: &str) -> Result<(), url_rules::UrlError> {
    url_rules::parse_secure_url(value).map(drop)
}

fn server_type(private: &TokenStream, value: &Value, errors: &mut Errors) -> Option<TokenStream> {
    match value {
        Value::Path(path) if path.is_ident("oauth") => {
            Some(quote!(#private::AuthServerType::OAuth))
        }
        Value::Path(path) if path.is_ident("oidc") => Some(quote!(#private::AuthServerType::Oidc)),
        Value::Call(name, args) if name == "env" => {
            match syn::parse2::<syn::LitStr>(args.clone()) {
                Ok(var) => {
                    Some(quote!(#private::server_type_setting(#var, #private::env_setting(#var)?)?))
                }
                Err(_) => {
                    errors.at(
                        name,
                        "`env(…)` takes the variable's name as a string: `env(\"NAME\")`",
                    );
                    None
                }
            }
        }
        Value::Call(name, args) if name == "expr" => Some(quote_spanned! {name.span()=>
            ::core::convert::identity::<#private::AuthServerType>(#args)
        }),
        other => {
            errors.at_span(
                other.span(),
                "`type` is `oauth`, `oidc`, `env(\"NAME\")` or `expr(…)` (an `AuthServerType`)",
            );
            None
        }
    }
}

/// `transpile = path` among `args`, and errors for any key not in `allowed`.
fn options<'a>(
    args: &'a Args,
    allowed: &[&str],
    errors: &mut Errors,
) -> Vec<(&'a Ident, &'a Value)> {
    let mut seen: Vec<String> = Vec::new();
    let mut found = Vec::new();
    for arg in &args.0 {
        let name = arg.key.to_string();
        if seen.contains(&name) {
            errors.at(&arg.key, format!("`{name}` is given twice: keep one"));
        } else if !allowed.contains(&name.as_str()) {
            errors.at(
                &arg.key,
                with_help(
                    format!("unknown option `{name}`"),
                    suggestion(&name, allowed),
                ),
            );
        } else {
            found.push((&arg.key, &arg.value));
        }
        seen.push(name);
    }
    found
}

fn with_transpile(
    private: &TokenStream,
    server: TokenStream,
    transpile: Option<&Value>,
    errors: &mut Errors,
) -> TokenStream {
    match transpile {
        None => server,
        Some(Value::Path(path)) => {
            quote_spanned!(path.span()=> #private::with_transpile(#server, #path))
        }
        Some(other) => {
            errors.at_span(
                other.span(),
                "`transpile` names a function `fn(serde_json::Value) -> serde_json::Value`",
            );
            server
        }
    }
}

fn discovered(
    private: &TokenStream,
    declaration: &Declaration,
    tokens: &TokenStream,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let kind = declaration.kind.to_string();
    let args: CallArgs = match syn::parse2(tokens.clone()) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let allowed: &[&str] = match kind.as_str() {
        "well_known" => &["issuer", "type", "transpile"],
        "issuer" => &["type", "transpile"],
        _ => &["transpile"],
    };
    let options = options(&args.rest, allowed, errors);
    let option = |name: &str| options.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let server = match kind.as_str() {
        "oauth" | "oidc" | "discover" | "issuer" => {
            let issuer = Setting::from_value(&args.first, "the issuer", errors)?;
            let issuer = setting_expr(
                private,
                &issuer,
                "check_issuer",
                issuer_rule,
                "issuer",
                errors,
            );
            match kind.as_str() {
                "oauth" => {
                    quote!(#private::AuthServer::discover(#issuer, #private::AuthServerType::OAuth))
                }
                "oidc" => {
                    quote!(#private::AuthServer::discover(#issuer, #private::AuthServerType::Oidc))
                }
                "issuer" => {
                    let Some(declared_type) = option("type") else {
                        errors.at(
                            &declaration.kind,
                            "`issuer(…)` needs `type = oauth`, `oidc`, `env(\"NAME\")` or `expr(…)`",
                        );
                        return None;
                    };
                    let server_type = server_type(private, declared_type, errors)?;
                    quote!(#private::AuthServer::discover(#issuer, #server_type))
                }
                _ => quote!(#private::AuthServer::probe(#issuer)),
            }
        }
        _ => {
            let url = Setting::from_value(&args.first, "the metadata URL", errors)?;
            let url = setting_expr(private, &url, "check_url", url_rule, "metadata URL", errors);
            let Some(issuer) = option("issuer") else {
                errors.at(&declaration.kind, "`well_known(…)` needs `issuer = \"https://…\"`: the issuer the document must name");
                return None;
            };
            let issuer = Setting::from_value(issuer, "`issuer`", errors)?;
            let issuer = setting_expr(
                private,
                &issuer,
                "check_issuer",
                issuer_rule,
                "issuer",
                errors,
            );
            let Some(declared_type) = option("type") else {
                errors.at(
                    &declaration.kind,
                    "`well_known(…)` needs `type = oauth` or `type = oidc`",
                );
                return None;
            };
            let server_type = server_type(private, declared_type, errors)?;
            quote!(#private::AuthServer::well_known_url(#issuer, #url, #server_type))
        }
    };
    Some(with_transpile(private, server, option("transpile"), errors))
}

fn compatibility_help(code: AuthServerConfigErrorCode) -> (&'static str, &'static str) {
    match code {
        AuthServerConfigErrorCode::CodeResponseTypeNotSupported => (
            "response_types_supported",
            "add \"code\" to `response_types_supported`",
        ),
        AuthServerConfigErrorCode::AuthorizationCodeGrantNotSupported => (
            "grant_types_supported",
            "add \"authorization_code\" to `grant_types_supported`",
        ),
        _ => (
            "code_challenge_methods_supported",
            "add `code_challenge_methods_supported = [\"S256\"]`",
        ),
    }
}

fn static_metadata(
    private: &TokenStream,
    declaration: &Declaration,
    tokens: &TokenStream,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let args: Args = match syn::parse2(tokens.clone()) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let mut json = Map::new();
    let mut spans: Vec<(String, Span)> = Vec::new();
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    let mut server_type = quote!(#private::AuthServerType::OAuth);
    let known: Vec<&str> = TEXT_MEMBERS
        .iter()
        .chain(LIST_MEMBERS)
        .chain(FLAG_MEMBERS)
        .chain(&["type"])
        .copied()
        .collect();
    for arg in &args.0 {
        let key = &arg.key;
        let name = key.to_string();
        if spans.iter().any(|(k, _)| *k == name) {
            errors.at(key, format!("`{name}` is given twice: keep one"));
            continue;
        }
        spans.push((name.clone(), key.span()));
        if name == "type" {
            if let Some(tokens) = self::server_type(private, &arg.value, errors) {
                server_type = tokens;
            }
        } else if TEXT_MEMBERS.contains(&name.as_str()) {
            if let Some(lit) = expect_str(&arg.value, key, errors) {
                let value = lit.value();
                let problem = if name == "issuer" {
                    issuer_rule(&value)
                        .err()
                        .map(|e| format!("invalid issuer: {e}"))
                } else if URL_MEMBERS.contains(&name.as_str()) {
                    url_rule(&value)
                        .err()
                        .map(|e| format!("invalid `{name}`: {e}"))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    errors.at(
                        lit,
                        with_help(
                            problem,
                            "use an absolute https URL (http only for loopback hosts)",
                        ),
                    );
                }
                json.insert(name, Json::String(value));
            }
        } else if LIST_MEMBERS.contains(&name.as_str()) {
            if let Some(items) = expect_str_list(&arg.value, key, errors) {
                let items: Vec<String> = items.iter().map(|l| l.value()).collect();
                json.insert(name.clone(), Json::from(items.clone()));
                lists.push((name, items));
            }
        } else if FLAG_MEMBERS.contains(&name.as_str()) {
            match &arg.value {
                Value::Bool(flag) => {
                    json.insert(name, Json::Bool(flag.value));
                }
                other => errors.at_span(other.span(), format!("`{name}` takes `true` or `false`")),
            }
        } else {
            errors.at(
                key,
                with_help(
                    format!("unknown authorization server metadata member `{name}`"),
                    format!(
                        "{} (other members can be added at run time)",
                        suggestion(&name, &known)
                    ),
                ),
            );
        }
    }

    let kind_span = declaration.kind.span();
    for (required, why) in [
        ("issuer", "tokens are matched to their server by it"),
        ("jwks_uri", "token signatures are verified with its keys"),
        ("authorization_endpoint", "RFC 8414 requires it"),
        ("token_endpoint", "RFC 8414 requires it"),
        ("response_types_supported", "RFC 8414 requires it"),
    ] {
        if !spans.iter().any(|(k, _)| k == required) {
            errors.at_span(
                kind_span,
                with_help(
                    format!("static metadata needs `{required}`: {why}"),
                    format!("add `{required} = …`"),
                ),
            );
        }
    }
    let list = |name: &str| {
        lists
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    };
    let report = check_compatibility(&CompatibilityInput {
        response_types_supported: list("response_types_supported").unwrap_or(&[]),
        grant_types_supported: list("grant_types_supported"),
        code_challenge_methods_supported: list("code_challenge_methods_supported"),
        registration_endpoint: json.contains_key("registration_endpoint"),
        client_id_metadata_document_supported: json
            .get("client_id_metadata_document_supported")
            .and_then(Json::as_bool),
    });
    if list("response_types_supported").is_some()
        || !spans.iter().any(|(k, _)| k == "response_types_supported")
    {
        for code in report.errors {
            let (member, help) = compatibility_help(code);
            if member == "response_types_supported" && list(member).is_none() {
                continue; // already reported as missing
            }
            let span = spans
                .iter()
                .find(|(k, _)| k == member)
                .map_or(kind_span, |(_, span)| *span);
            errors.at_span(
                span,
                with_help(
                    format!(
                        "this authorization server is not compatible with MCP: {} ({})",
                        code.description(),
                        code.as_str()
                    ),
                    help,
                ),
            );
        }
    }
    let text = Json::Object(json).to_string();
    Some(quote!(#private::static_server(#server_type, #text)?))
}

fn expand_declaration(
    private: &TokenStream,
    declaration: &Declaration,
    errors: &mut Errors,
) -> TokenStream {
    let kind = declaration.kind.to_string();
    let server = match (&declaration.body, kind.as_str()) {
        (Body::Fields(tokens), "metadata") => static_metadata(private, declaration, tokens, errors),
        (Body::Call(tokens), "oauth" | "oidc" | "issuer" | "discover" | "well_known") => {
            discovered(private, declaration, tokens, errors)
        }
        (Body::Call(_), "metadata") => {
            errors.at(
                &declaration.kind,
                "static metadata is written in braces: `metadata { issuer = \"…\", … }`",
            );
            None
        }
        (Body::Fields(_), "oauth" | "oidc" | "issuer" | "discover" | "well_known") => {
            errors.at(
                &declaration.kind,
                format!("`{kind}` takes parentheses: `{kind}(\"https://…\")`"),
            );
            None
        }
        _ => {
            errors.at(
                &declaration.kind,
                with_help(
                    format!("unknown kind of authorization server `{kind}`"),
                    suggestion(&kind, KINDS),
                ),
            );
            None
        }
    };
    let Declaration {
        attrs, vis, name, ..
    } = declaration;
    let default_doc = format!("The authorization server `{name}`, declared with `auth_server!`.");
    let has_doc = attrs.iter().any(|a| a.path().is_ident("doc"));
    let doc = (!has_doc).then(|| quote!(#[doc = #default_doc]));
    let body = match server {
        Some(server) => quote! {
            let server = #server;
            ::core::result::Result::Ok(server)
        },
        None => quote!(::core::unreachable!()),
    };
    quote! {
        #(#attrs)*
        #doc
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #vis struct #name;

        impl #private::AuthServerDeclaration for #name {
            fn auth_server() -> ::core::result::Result<#private::AuthServer, #private::ConfigError> {
                #body
            }
        }
    }
}

/// Expands every declaration, collecting all errors.
pub(crate) fn expand(declarations: Declarations, errors: &mut Errors) -> TokenStream {
    let krate = &declarations.krate;
    let private = quote!(#krate::__private);
    let mut names: Vec<&Ident> = Vec::new();
    let mut output = TokenStream::new();
    for declaration in &declarations.list {
        if names.contains(&&declaration.name) {
            errors.at(
                &declaration.name,
                format!("`{}` is declared twice: rename one", declaration.name),
            );
            continue;
        }
        names.push(&declaration.name);
        output.extend(expand_declaration(&private, declaration, errors));
    }
    output
}
