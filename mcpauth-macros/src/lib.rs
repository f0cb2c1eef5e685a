//! Procedural macros of [mcpauth](https://docs.rs/mcpauth): `auth_server!` and
//! `#[protected_resource(...)]`.
//!
//! Use them through the `mcpauth` crate (its default `macros` feature re-exports them and
//! documents them); this crate's version is pinned by `mcpauth`. Each macro parses its input into
//! a small model, checks it (collecting every error, each spanned on the offending token), then
//! expands; with errors it still expands the declared items, so the rest of the crate
//! type-checks and only the real mistakes are reported. Set `MCPAUTH_MACROS_DEBUG=1` to print
//! the expansions while compiling.

mod args;
mod ctxt;
mod names;
mod resource;
mod resource_expand;
mod server;

use proc_macro::TokenStream;
use quote::quote;

use crate::ctxt::{Errors, with_help};

fn debug(name: &str, output: &proc_macro2::TokenStream) {
    if std::env::var_os("MCPAUTH_MACROS_DEBUG").is_some() {
        eprintln!("// {name} expansion\n{output}");
    }
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
/// }
/// ```
///
/// Each declaration becomes a unit struct implementing the runtime's declaration trait, to be
/// named in `#[protected_resource(authorization_servers = [...])]`. Literal URLs are checked
/// (absolute, https unless loopback, issuers without query or fragment); static metadata is
/// checked for MCP compatibility and for `issuer` and `jwks_uri`. `env("NAME")` and `expr(…)`
/// values are checked at start-up by the same rules. Start with `crate = "::name";` when
/// `mcpauth` is a renamed dependency.
#[proc_macro]
pub fn auth_server(input: TokenStream) -> TokenStream {
    let declarations = match syn::parse::<server::Declarations>(input) {
        Ok(declarations) => declarations,
        Err(error) => return error.into_compile_error().into(),
    };
    let mut errors = Errors::default();
    let expanded = server::expand(declarations, &mut errors);
    let output = {
        let errors = errors.to_compile_errors();
        quote!(#errors #expanded)
    };
    debug("auth_server!", &output);
    output.into()
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
/// `operation_scopes()` (for `BearerAuthLayer::operation_scopes`). Every
/// mistake is a compile error at its token, all of them at once. `crate = "::name"` names a
/// renamed `mcpauth` dependency.
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
    let module = match syn::parse::<syn::ItemMod>(item) {
        Ok(module) => module,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                with_help(
                    "#[protected_resource] goes on a module",
                    "write it on an inline module: `#[protected_resource(...)] pub mod notes {}`",
                ),
            )
            .into_compile_error();
            return quote!(#error #item2).into();
        }
    };
    let mut errors = Errors::default();
    let model = resource::parse(args, &mut errors);
    let mut name_taken = false;
    match &module.content {
        None => errors.at(
            &module.ident,
            with_help(
                "#[protected_resource] needs an inline module",
                format!(
                    "write `mod {} {{}}` instead of `mod {};`",
                    module.ident, module.ident
                ),
            ),
        ),
        Some((_, items)) => {
            for item in items {
                if let Some(ident) = item_ident(item)
                    && resource::GENERATED.contains(&ident.to_string().as_str())
                {
                    name_taken = true;
                    errors.at(
                            ident,
                            format!("`{ident}` is generated by #[protected_resource] in this module: rename yours"),
                        );
                }
            }
        }
    }
    let valid = errors.is_empty();
    // With a name taken, generating would only add "defined twice" errors: leave the module be.
    let expanded = if name_taken {
        quote!(#module)
    } else {
        resource_expand::expand(module, &model, valid)
    };
    let errors = errors.to_compile_errors();
    let output = quote!(#errors #expanded);
    debug("#[protected_resource]", &output);
    output.into()
}

fn item_ident(item: &syn::Item) -> Option<&syn::Ident> {
    match item {
        syn::Item::Const(i) => Some(&i.ident),
        syn::Item::Enum(i) => Some(&i.ident),
        syn::Item::Fn(i) => Some(&i.sig.ident),
        syn::Item::Mod(i) => Some(&i.ident),
        syn::Item::Static(i) => Some(&i.ident),
        syn::Item::Struct(i) => Some(&i.ident),
        syn::Item::Trait(i) => Some(&i.ident),
        syn::Item::Type(i) => Some(&i.ident),
        syn::Item::Union(i) => Some(&i.ident),
        _ => None,
    }
}
