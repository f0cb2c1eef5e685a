//! `auth_server!`: named authorization servers, parsed and checked into a model. Every check runs
//! and every mistake is reported, each at its token; expansion (in `server_expand`) only turns
//! the model into items.
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
use mcpauth_rules::metadata::{self as members, AUTHORIZATION_SERVER_MEMBERS};
use mcpauth_rules::url as url_rules;
use proc_macro2::{Span, TokenStream};
use serde_json::{Map, Value as Json};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Token, Visibility, braced, parenthesized, token};

use crate::args::{Args, KeyCheck, Keys, Setting, Value, env_var, expr, known_args};
use crate::errors::{Errors, with_help};
use crate::members::{MemberValue, URL_HELP, member_value};
use crate::names::suggestion;

const KINDS: &[&str] = &[
    "broker",
    "oauth",
    "oidc",
    "issuer",
    "discover",
    "well_known",
    "metadata",
];

// ---- Syntax ----------------------------------------------------------------------------------

enum Body {
    Call(TokenStream),
    Fields(TokenStream),
}

/// One `vis NAME = kind(...)` or `vis NAME = metadata { ... }`, as written.
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

/// Every declaration of one invocation, as written, and the path of the mcpauth crate
/// (`crate = "…";` first, for a renamed dependency).
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
            let path: LitStr = input.parse()?;
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

// ---- Model -----------------------------------------------------------------------------------

/// The checked declarations.
pub(crate) struct Servers {
    pub(crate) krate: syn::Path,
    pub(crate) list: Vec<Server>,
}

/// One declared server. `source` is `None` when the declaration has errors: the name is still
/// declared, so code naming it type-checks.
pub(crate) struct Server {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) source: Option<Source>,
}

/// Where a server's metadata comes from.
pub(crate) enum Source {
    /// Fetched on first use.
    Discovered {
        issuer: Setting,
        method: Method,
        transpile: Option<syn::Path>,
    },
    /// Written out in the declaration (serialised, and checked, at compile time).
    Static {
        server_type: ServerType,
        issuer: LitStr,
        json: String,
    },
    /// The MCP server's own broker, in front of an identity provider.
    Broker(Box<crate::broker::BrokerModel>),
}

impl Source {
    /// The issuer, when it is a literal.
    pub(crate) fn literal_issuer(&self) -> Option<&LitStr> {
        match self {
            Self::Discovered { issuer, .. } => issuer.literal(),
            Self::Static { issuer, .. } => Some(issuer),
            Self::Broker(broker) => broker.issuer.literal(),
        }
    }
}

/// How a discovered server's metadata is found.
pub(crate) enum Method {
    /// The well-known URL of a type.
    Type(ServerType),
    /// The MCP probing order.
    Probe,
    /// An explicit metadata URL.
    WellKnown {
        url: Setting,
        server_type: ServerType,
    },
}

/// A discovery type.
pub(crate) enum ServerType {
    OAuth,
    Oidc,
    Env(LitStr),
    Expr(Box<syn::Expr>),
}

// ---- Checks ----------------------------------------------------------------------------------

/// Checks every declaration, collecting all errors. A name declared twice is reported at its
/// second declaration, which is left out.
pub(crate) fn check(declarations: Declarations, errors: &mut Errors) -> Servers {
    let mut list: Vec<Server> = Vec::new();
    for declaration in declarations.list {
        if list.iter().any(|server| server.name == declaration.name) {
            errors.at(
                &declaration.name,
                format!("`{}` is declared twice: rename one", declaration.name),
            );
            continue;
        }
        let before = errors.count();
        let source = check_declaration(&declaration, errors).filter(|_| errors.count() == before);
        list.push(Server {
            attrs: declaration.attrs,
            vis: declaration.vis,
            name: declaration.name,
            source,
        });
    }
    Servers {
        krate: declarations.krate,
        list,
    }
}

fn check_declaration(declaration: &Declaration, errors: &mut Errors) -> Option<Source> {
    let kind = declaration.kind.to_string();
    match (&declaration.body, kind.as_str()) {
        (Body::Fields(tokens), "metadata") => static_metadata(&declaration.kind, tokens, errors),
        (Body::Call(tokens), "oauth" | "oidc" | "issuer" | "discover" | "well_known") => {
            discovered(&declaration.kind, tokens, errors)
        }
        (Body::Call(tokens), "broker") => {
            let args: CallArgs = match syn::parse2(tokens.clone()) {
                Ok(args) => args,
                Err(error) => {
                    errors.push(error);
                    return None;
                }
            };
            crate::broker::check(&declaration.kind, &args.first, &args.rest, errors)
                .map(|model| Source::Broker(Box::new(model)))
        }
        (Body::Call(_), "metadata") => {
            errors.at(
                &declaration.kind,
                "static metadata is written in braces: `metadata { issuer = \"…\", … }`",
            );
            None
        }
        (Body::Fields(_), "oauth" | "oidc" | "issuer" | "discover" | "well_known" | "broker") => {
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
    }
}

/// The URL rules a setting follows, and the words for it.
#[derive(Clone, Copy)]
enum UrlRole {
    Issuer,
    MetadataUrl,
}

impl UrlRole {
    fn noun(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::MetadataUrl => "metadata URL",
        }
    }

    fn check(self, value: &str) -> Result<(), url_rules::UrlError> {
        match self {
            Self::Issuer => url_rules::parse_issuer(value).map(drop),
            Self::MetadataUrl => url_rules::parse_secure_url(value).map(drop),
        }
    }
}

/// A setting (literal, `env("…")` or `expr(…)`) holding a URL; a literal is checked now.
fn url_setting(value: &Value, what: &str, role: UrlRole, errors: &mut Errors) -> Option<Setting> {
    let setting = Setting::from_value(value, what, errors)?;
    if let Some(lit) = setting.literal()
        && let Err(error) = role.check(&lit.value())
    {
        errors.at(
            lit,
            with_help(format!("invalid {}: {error}", role.noun()), URL_HELP),
        );
    }
    Some(setting)
}

fn server_type(value: &Value, errors: &mut Errors) -> Option<ServerType> {
    match value {
        Value::Path(path) if path.is_ident("oauth") => Some(ServerType::OAuth),
        Value::Path(path) if path.is_ident("oidc") => Some(ServerType::Oidc),
        Value::Call(name, args) if name == "env" => {
            env_var(name, args, errors).map(ServerType::Env)
        }
        Value::Call(name, args) if name == "expr" => {
            expr(name, args, errors).map(|e| ServerType::Expr(Box::new(e)))
        }
        other => {
            errors.at_span(
                other.span(),
                "`type` is `oauth`, `oidc`, `env(\"NAME\")` or `expr(…)` (an `AuthServerType`)",
            );
            None
        }
    }
}

fn transpile(value: &Value, errors: &mut Errors) -> Option<syn::Path> {
    match value {
        Value::Path(path) => Some(path.clone()),
        other => {
            errors.at_span(
                other.span(),
                "`transpile` names a function `fn(serde_json::Value) -> serde_json::Value`: `transpile = fix_metadata`",
            );
            None
        }
    }
}

/// `oauth(…)`, `oidc(…)`, `issuer(…)`, `discover(…)` or `well_known(…)`.
fn discovered(kind: &Ident, tokens: &TokenStream, errors: &mut Errors) -> Option<Source> {
    let name = kind.to_string();
    let args: CallArgs = match syn::parse2(tokens.clone()) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let known: &[&str] = match name.as_str() {
        "well_known" => &["issuer", "type", "transpile"],
        "issuer" => &["type", "transpile"],
        _ => &["transpile"],
    };
    let unknown = |option: &str| format!("unknown option `{option}` of `{name}(…)`");
    let keys = Keys {
        known,
        unknown: &unknown,
        note: "",
    };
    let options = known_args(&args.rest, keys, errors);
    let option = |key: &str| options.iter().find(|a| a.key == key).map(|a| &a.value);
    // In the order they are written: the issuer or URL, then the options.
    let issuer_or_url = if name == "well_known" {
        url_setting(
            &args.first,
            "the metadata URL",
            UrlRole::MetadataUrl,
            errors,
        )
    } else {
        url_setting(&args.first, "the issuer", UrlRole::Issuer, errors)
    };
    let well_known_issuer = match option("issuer") {
        Some(value) => url_setting(value, "`issuer`", UrlRole::Issuer, errors),
        None if name == "well_known" => {
            errors.at(
                kind,
                "`well_known(…)` needs `issuer = \"https://…\"`: the issuer the document must name",
            );
            None
        }
        None => None,
    };
    let declared_type = match option("type") {
        Some(value) => server_type(value, errors),
        None if known.contains(&"type") => {
            errors.at(
                kind,
                format!("`{name}(…)` needs `type = oauth`, `oidc`, `env(\"NAME\")` or `expr(…)`"),
            );
            None
        }
        None => None,
    };
    let transpile = match option("transpile") {
        Some(value) => Some(transpile(value, errors)?),
        None => None,
    };
    let (issuer, method) = match name.as_str() {
        "well_known" => {
            let method = Method::WellKnown {
                url: issuer_or_url?,
                server_type: declared_type?,
            };
            (well_known_issuer?, method)
        }
        "oauth" => (issuer_or_url?, Method::Type(ServerType::OAuth)),
        "oidc" => (issuer_or_url?, Method::Type(ServerType::Oidc)),
        "issuer" => (issuer_or_url?, Method::Type(declared_type?)),
        _ => (issuer_or_url?, Method::Probe),
    };
    Some(Source::Discovered {
        issuer,
        method,
        transpile,
    })
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

/// Why static metadata needs a member (the ones RFC 8414 requires, and `jwks_uri`).
fn required_because(member: &str) -> &'static str {
    match member {
        "issuer" => "tokens are matched to their server by it",
        "jwks_uri" => "token signatures are verified with its keys",
        _ => "RFC 8414 requires it",
    }
}

/// `metadata { member = value, … }`: every member of the rules' table, checked by its kind, the
/// required ones present, and the whole compatible with MCP clients.
fn static_metadata(kind: &Ident, tokens: &TokenStream, errors: &mut Errors) -> Option<Source> {
    let args: Args = match syn::parse2(tokens.clone()) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let known: Vec<&str> = AUTHORIZATION_SERVER_MEMBERS
        .iter()
        .map(|m| m.name)
        .chain(["type"])
        .collect();
    let unknown = |name: &str| format!("unknown authorization server metadata member `{name}`");
    let mut key_check = KeyCheck::new(Keys {
        known: &known,
        unknown: &unknown,
        note: " (other members can be added at run time)",
    });
    let mut json = Map::new();
    let mut given: Vec<(String, Span)> = Vec::new();
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    let mut issuer = None;
    let mut declared_type = Some(ServerType::OAuth);
    for arg in &args.0 {
        let key = &arg.key;
        if !key_check.accept(key, errors) {
            continue;
        }
        let name = key.to_string();
        given.push((name.clone(), key.span()));
        if name == "type" {
            declared_type = server_type(&arg.value, errors);
            continue;
        }
        let Some(member) = members::find(AUTHORIZATION_SERVER_MEMBERS, &name) else {
            continue;
        };
        match member_value(member, key, &arg.value, errors) {
            Some(MemberValue::Text(lit)) => {
                if name == "issuer" {
                    issuer = Some(lit.clone());
                }
                json.insert(name, Json::String(lit.value()));
            }
            Some(MemberValue::Strings(lits)) => {
                let items: Vec<String> = lits.iter().map(LitStr::value).collect();
                json.insert(name.clone(), Json::from(items.clone()));
                lists.push((name, items));
            }
            Some(MemberValue::Flag(flag)) => {
                json.insert(name, Json::Bool(flag.value));
            }
            None => {}
        }
    }

    let kind_span = kind.span();
    let required = AUTHORIZATION_SERVER_MEMBERS
        .iter()
        .filter(|m| m.required)
        .map(|m| m.name)
        .chain(["jwks_uri"]);
    for required in required {
        if !given.iter().any(|(k, _)| k == required) {
            errors.at_span(
                kind_span,
                with_help(
                    format!(
                        "static metadata needs `{required}`: {}",
                        required_because(required)
                    ),
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
    // Without a usable `response_types_supported` its absence (or its own error) says enough.
    if list("response_types_supported").is_some()
        || !given.iter().any(|(k, _)| k == "response_types_supported")
    {
        for code in report.errors {
            let (member, help) = compatibility_help(code);
            if member == "response_types_supported" && list(member).is_none() {
                continue;
            }
            let span = given
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
    Some(Source::Static {
        server_type: declared_type?,
        issuer: issuer?,
        json: Json::Object(json).to_string(),
    })
}
