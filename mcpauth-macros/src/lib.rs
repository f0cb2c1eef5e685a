//! Procedural macros of [mcpauth](https://docs.rs/mcpauth): `auth_server!` and
//! `#[protected_resource(...)]`.
//!
//! Use them through the `mcpauth` crate (its default `macros` feature re-exports them and
//! documents them); this crate's version is pinned by `mcpauth`. Both macros have the same
//! shape: parse the input, check it into a small model (every check runs and every error is
//! collected, each spanned on the offending token), then expand the model. With errors they
//! still expand the declared items, so the rest of the crate type-checks and only the real
//! mistakes are reported. Set `MCPAUTH_MACROS_DEBUG=1` to print the expansions while compiling.

mod args;
mod broker;
mod errors;
mod members;
mod names;
mod resource;
mod resource_expand;
mod server;
mod server_expand;

use proc_macro::TokenStream;
use quote::quote;

use crate::errors::{Errors, with_help};
use crate::resource::ModuleCheck;

/// The expansion with every error in front of it (printed with `MCPAUTH_MACROS_DEBUG=1`).
fn output(name: &str, errors: &Errors, expanded: proc_macro2::TokenStream) -> TokenStream {
    let errors = errors.to_compile_errors();
    let output = quote!(#errors #expanded);
    if std::env::var_os("MCPAUTH_MACROS_DEBUG").is_some() {
        eprintln!("// {name} expansion\n{output}");
    }
    output.into()
}

/// Declares named authorization servers, checked at compile time.
///
/// ```text
/// mcpauth::auth_server! {
///     /// Docs of the declaration.
///     pub LOGTO = oidc("https://tenant.logto.app/oidc");          // OpenID Connect discovery
///     pub OTHER = oauth("https://auth.example.com/t1");             // RFC 8414 discovery
///     pub ANY = issuer(env("ISSUER"), type = env("ISSUER_TYPE"));   // type chosen at start-up
///     pub PROBED = discover("https://auth.example.com/t2");         // the MCP probing order
///     pub AT_URL = well_known("https://a.example/meta", issuer = "https://a.example", type = oauth);
///     pub QUIRKY = oidc("https://q.example", transpile = fix_metadata);
///     pub FIXED = metadata { issuer = "https://f.example", jwks_uri = "https://f.example/jwks", … };
///     pub BROKER = broker(                                          // this server's own broker
///         "https://mcp.example.com",
///         upstream = oidc("https://accounts.google.com"),           // or oauth(authorize = …, token = …, userinfo = …)
///         client_id = env("UPSTREAM_CLIENT_ID"),
///         client_secret = env("UPSTREAM_CLIENT_SECRET"),            // never a literal
///         scopes = ["openid", "email"],
///     );
///     pub GITHUB = broker(                                          // presets: github(), github_app(),
///         "https://mcp.example.com",                                // google(), entra(tenant = …)
///         upstream = github(),
///         client_id = env("GITHUB_CLIENT_ID"),
///         client_secret = env("GITHUB_CLIENT_SECRET"),
///     );
/// }
/// ```
///
/// A `broker(…)` (mcpauth's `broker` feature) also gets `NAME.upstream()` and `NAME.broker()`,
/// a `BrokerBuilder` with its issuer and identity provider filled in: add the resource, the
/// store and the keys, then `build().await`. Its `auth_server()` verifies with the keys of the
/// broker of that issuer built in this process. `upstream = expr(…)` takes a whole
/// `mcpauth::broker::Upstream` chosen at start-up.
///
/// The provider presets are those of `mcpauth::broker::Upstream`: `github()` and
/// `github_app()` (with `web = …, api = …` for GitHub Enterprise Server), `google()`, and
/// `entra(tenant = …)` (a tenant id, `"organizations"` or `"common"`; literal or `env(…)`).
/// Each needs `client_secret`; a literal tenant that is not a tenant id, a GitHub App given
/// scopes, and Entra ID scopes of two resources are compile errors.
///
/// Each declaration becomes a unit struct, to be named in
/// `#[protected_resource(authorization_servers = [...])]`, whose `auth_server()` method gives
/// the runtime's [`AuthServer`](https://docs.rs/mcpauth/latest/mcpauth/struct.AuthServer.html)
/// for hand-written configuration:
///
/// ```
/// use mcpauth::{McpAuth, ProtectedResource, auth_server};
///
/// auth_server! {
///     /// Our Logto tenant.
///     pub LOGTO = oidc("https://tenant.logto.app/oidc");
///     /// Read at start-up.
///     pub FROM_ENV = oauth(env("DOC_EXAMPLE_ISSUER"));
/// }
///
/// # fn main() -> Result<(), mcpauth::ConfigError> {
/// let logto = LOGTO.auth_server()?;
/// assert_eq!(logto.issuer(), "https://tenant.logto.app/oidc");
/// let auth = McpAuth::resource_server([
///     ProtectedResource::new("https://api.example.com/mcp").authorization_server(logto),
/// ])?;
/// # let _ = auth;
///
/// // A start-up value is read, and checked by the literals' rules, on each call.
/// assert_eq!(
///     FROM_ENV.auth_server().unwrap_err().to_string(),
///     "the environment variable DOC_EXAMPLE_ISSUER is not set (or empty): set it before starting",
/// );
/// # Ok(()) }
/// ```
///
/// Every literal is checked as the runtime checks it at start-up, or more strictly: URLs are
/// absolute, https unless loopback, without whitespace, credentials or fragment (issuers also
/// without query); static metadata has `issuer`, `jwks_uri` and the members RFC 8414 requires,
/// only members of `AuthorizationServerMetadata`, each value of its kind (URLs, strings without
/// stray whitespace, lists, booleans), and passes the MCP compatibility check (authorization
/// code with PKCE `S256`); `env("NAME")` names a variable a process can have. `env("NAME")` and
/// `expr(…)` values are read at start-up and checked there by the same rules, with the same
/// words. Start with `crate = "::name";` when `mcpauth` is a renamed dependency.
#[proc_macro]
pub fn auth_server(input: TokenStream) -> TokenStream {
    let declarations = match syn::parse::<server::Declarations>(input) {
        Ok(declarations) => declarations,
        Err(error) => return error.into_compile_error().into(),
    };
    let mut errors = Errors::default();
    let model = server::check(declarations, &mut errors);
    output("auth_server!", &errors, server_expand::expand(&model))
}

/// Turns an inline module into a protected resource, checked at compile time.
///
/// ```text
/// #[mcpauth::protected_resource(
///     resource = "https://api.example.com/notes",   // or env("NAME") / expr(…)
///     authorization_servers = [LOGTO],               // declared with auth_server!
///     scopes = ["read:notes", "write:notes", "admin:notes"],
///     scope_hierarchy = { "admin:notes" => ["read:notes", "write:notes"] },
///     tool_scopes = { "purge_notes" => ["admin:notes"] }, // per MCP tool (and method_scopes)
///     login_scopes = ["read:notes"],                 // named in 401 challenges
///     resource_name = "Notes",                       // and the other RFC 9728 members
/// )]
/// pub mod notes {}
/// ```
///
/// Generates inside the module: `Scope` (one variant per scope, `as_str`, `FromStr`, `Display`,
/// serde, `ALL`), `scopes::<Variant>` marker types, `RESOURCE` and `METADATA_PATH` for a literal
/// resource, and `resource()`, `protected_resource()`, `metadata()`, `metadata_router()`,
/// `require(&auth, [Scope::…])` (a bearer layer that only takes this resource's scopes) and
/// `operation_scopes()` (for `BearerAuthLayer::operation_scopes`). `crate = "::name"` names a
/// renamed `mcpauth` dependency.
///
/// Every mistake is a compile error at its token, all of them at once, and every literal is
/// checked as the runtime checks it at start-up, or more strictly: the resource identifier in
/// canonical form, URLs absolute and https unless loopback without stray whitespace, scopes as
/// RFC 6749 scope tokens listed once, every scope named elsewhere declared, tool and method names
/// non-empty without whitespace and each given once, and two authorization servers with the same
/// literal issuer refused (at the second one's name).
///
/// # Variant names
///
/// A scope's variant (and marker type) is always a usable identifier, made by these rules:
///
/// 1. the scope's ASCII letters and digits in UpperCamelCase, split at every other character
///    (`read:notes` → `ReadNotes`, `files.read-all` → `FilesReadAll`); a scope without letters
///    or digits spells out its characters (`*` → `Star`, `/` → `Slash`);
/// 2. a name starting with a digit gets an `S` in front (`2fa` → `S2fa`);
/// 3. a name that is a Rust keyword, or `ALL` (the enum's list of every scope), gets a `_` after
///    it: `self` and `Self` → `Self_`, `ALL` → `ALL_`. Names from rule 1 never contain `_`, so
///    no other scope has that name. (`super`, `crate`, `type` or `fn` become `Super`, `Crate`,
///    `Type` and `Fn`, which are not keywords.)
///
/// Two scopes that would get the same name (`read:notes` and `read_notes`) are a compile error.
///
/// ```
/// use mcpauth::{auth_server, protected_resource};
///
/// auth_server! {
///     /// The issuer.
///     pub LOGTO = oidc("https://tenant.logto.app/oidc");
/// }
///
/// /// An API with unusual scopes.
/// #[protected_resource(
///     resource = "https://api.example.com/mcp",
///     authorization_servers = [LOGTO],
///     scopes = ["read:notes", "self", "2fa", "*", "ALL"],
/// )]
/// pub mod api {}
///
/// # fn main() {
/// assert_eq!(api::Scope::ReadNotes.as_str(), "read:notes");
/// assert_eq!(api::Scope::Self_.as_str(), "self");
/// assert_eq!(api::Scope::S2fa.as_str(), "2fa");
/// assert_eq!("*".parse::<api::Scope>().ok(), Some(api::Scope::Star));
/// assert_eq!(api::Scope::ALL_.as_str(), "ALL");
/// assert_eq!(api::Scope::ALL.len(), 5);
/// # }
/// ```
#[proc_macro_attribute]
pub fn protected_resource(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    let args = match syn::parse::<args::Args>(attr) {
        Ok(args) => args,
        Err(error) => {
            let error = error.into_compile_error();
            return quote!(#error #item2).into();
        }
    };
    let Ok(module) = syn::parse::<syn::ItemMod>(item) else {
        let error = syn::Error::new(
            proc_macro2::Span::call_site(),
            with_help(
                "#[protected_resource] goes on a module",
                "write it on an inline module: `#[protected_resource(...)] pub mod notes {}`",
            ),
        )
        .into_compile_error();
        return quote!(#error #item2).into();
    };
    let mut errors = Errors::default();
    let model = resource::check(&args, &mut errors);
    let module_check = resource::check_module(&module, &mut errors);
    let expanded = match module_check {
        ModuleCheck::Extend => resource_expand::expand(module, &model, errors.is_empty()),
        ModuleCheck::Leave => quote!(#module),
    };
    output("#[protected_resource]", &errors, expanded)
}
