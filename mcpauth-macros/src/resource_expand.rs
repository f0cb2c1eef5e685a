//! `#[protected_resource(...)]`: the items put into the user's module.
//!
//! With `valid == false` (compile errors were reported) the same items are emitted with bodies
//! that are never compiled into a program, so the user's code that names them still
//! type-checks and the only errors shown are the real ones.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::Setting;
use crate::members::MemberValue;
use crate::resource::Resource;

fn scope_enum(model: &Resource) -> TokenStream {
    let private = private(model);
    let variants: Vec<_> = model.scopes.iter().map(|s| &s.variant).collect();
    let values: Vec<_> = model.scopes.iter().map(|s| &s.value).collect();
    let docs: Vec<String> = values.iter().map(|v| format!("The `{v}` scope.")).collect();
    let count = variants.len();
    let krate = &model.krate;
    let markers = model.scopes.iter().map(|scope| {
        let variant = &scope.variant;
        let value = &scope.value;
        let implied_by = implied_by(model, value);
        let doc = format!("Marker type of the `{}` scope.", scope.value);
        quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
            pub struct #variant;

            impl #variant {
                /// The scope this marker stands for.
                pub const SCOPE: super::Scope = super::Scope::#variant;
            }

            impl ::core::convert::From<#variant> for super::Scope {
                fn from(_: #variant) -> Self {
                    super::Scope::#variant
                }
            }

            impl #krate::ScopeMarker for #variant {
                const SCOPE: &'static str = #value;
                const IMPLIED_BY: &'static [&'static str] = &[#(#implied_by),*];
            }
        }
    });
    quote! {
        /// The scopes of this protected resource (`scopes_supported`).
        #[allow(dead_code)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            #( #[doc = #docs] #variants, )*
        }

        #[allow(dead_code)]
        impl Scope {
            /// Every scope, in declaration order.
            pub const ALL: [Scope; #count] = [#(Scope::#variants),*];

            /// The scope as tokens and challenges spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    #(Scope::#variants => #values,)*
                }
            }
        }

        impl ::core::fmt::Display for Scope {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for Scope {
            type Err = #private::UnknownScope;

            fn from_str(scope: &str) -> ::core::result::Result<Self, Self::Err> {
                match scope {
                    #(#values => ::core::result::Result::Ok(Scope::#variants),)*
                    _ => ::core::result::Result::Err(#private::UnknownScope::new(scope, &[#(#values),*])),
                }
            }
        }

        impl #private::serde::Serialize for Scope {
            fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
            where
                S: #private::serde::Serializer,
            {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> #private::serde::Deserialize<'de> for Scope {
            fn deserialize<D>(deserializer: D) -> ::core::result::Result<Self, D::Error>
            where
                D: #private::serde::Deserializer<'de>,
            {
                let scope = <::std::string::String as #private::serde::Deserialize>::deserialize(deserializer)?;
                ::core::str::FromStr::from_str(&scope).map_err(<D::Error as #private::serde::de::Error>::custom)
            }
        }

        /// Marker types, one per scope of this resource.
        #[allow(dead_code)]
        pub mod scopes {
            #(#markers)*
        }
    }
}

/// The scopes that imply `scope` through the declared hierarchy (transitively).
fn implied_by(model: &Resource, scope: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![scope.to_owned()];
    while let Some(current) = frontier.pop() {
        for (broader, implied) in &model.hierarchy {
            let broader = broader.value();
            if implied.iter().any(|i| i.value() == current)
                && !found.contains(&broader)
                && broader != scope
            {
                found.push(broader.clone());
                frontier.push(broader);
            }
        }
    }
    found
}

/// `path` as seen from inside the module: relative paths (and `self::…`) get a `super::` in
/// front; `crate::…` and `::…` stay as they are.
fn from_inside(path: &syn::Path) -> TokenStream {
    let first = path.segments.first().map(|s| s.ident.to_string());
    let span = path.span();
    match first.as_deref() {
        _ if path.leading_colon.is_some() => quote!(#path),
        Some("crate") => quote!(#path),
        Some("self") => {
            let rest = path.segments.iter().skip(1);
            quote_spanned!(span=> super #(:: #rest)*)
        }
        _ => quote_spanned!(span=> super::#path),
    }
}

/// The hidden function, next to the module, that evaluates an `expr(…)` resource where the
/// user wrote it (so the expression's names resolve as the user expects).
pub(crate) fn expr_helper_name(module: &syn::Ident) -> syn::Ident {
    quote::format_ident!("__mcpauth_resource_of_{}", module)
}

fn private(model: &Resource) -> TokenStream {
    let krate = &model.krate;
    quote!(#krate::__private)
}

fn resource_fn(model: &Resource, module: &syn::Ident, valid: bool) -> TokenStream {
    let krate = &model.krate;
    let private = private(model);
    let result = quote!(::core::result::Result<&'static str, #krate::ConfigError>);
    let mut constants = TokenStream::new();
    let body = match &model.resource {
        _ if !valid => quote!(::core::unreachable!()),
        Some(Setting::Literal(_)) => quote!(::core::result::Result::Ok(RESOURCE)),
        Some(Setting::Env(var)) => quote! {
            static VALUE: ::std::sync::OnceLock<::core::result::Result<::std::string::String, #krate::ConfigError>> =
                ::std::sync::OnceLock::new();
            VALUE
                .get_or_init(|| #private::env_setting(#var).and_then(#private::check_resource))
                .as_deref()
                .map_err(::core::clone::Clone::clone)
        },
        Some(Setting::Expr(_)) => {
            let helper = expr_helper_name(module);
            quote! {
                static VALUE: ::std::sync::OnceLock<::core::result::Result<::std::string::String, #krate::ConfigError>> =
                    ::std::sync::OnceLock::new();
                VALUE
                    .get_or_init(|| #private::check_resource(super::#helper()))
                    .as_deref()
                    .map_err(::core::clone::Clone::clone)
            }
        }
        None => quote!(::core::unreachable!()),
    };
    if let Some(Setting::Literal(lit)) = &model.resource {
        let path = model.metadata_path.clone().unwrap_or_default();
        constants = quote! {
            /// The resource identifier.
            #[allow(dead_code)]
            pub const RESOURCE: &str = #lit;

            /// The path at which this resource's metadata is served (RFC 9728 §3.1).
            #[allow(dead_code)]
            pub const METADATA_PATH: &str = #path;
        };
    }
    quote! {
        #constants

        /// The resource identifier, checked (a start-up value is read once, then remembered).
        #[allow(dead_code)]
        pub fn resource() -> #result {
            #body
        }
    }
}

fn member_assignments(model: &Resource) -> TokenStream {
    model
        .members
        .iter()
        .map(|member| {
            let key = &member.key;
            match &member.value {
                MemberValue::Text(lit) => {
                    quote!(metadata.#key = ::core::option::Option::Some(::std::string::String::from(#lit));)
                }
                MemberValue::Strings(lits) => quote! {
                    metadata.#key = ::core::option::Option::Some(::std::vec![#(::std::string::String::from(#lits)),*]);
                },
                MemberValue::Flag(flag) => {
                    quote!(metadata.#key = ::core::option::Option::Some(#flag);)
                }
            }
        })
        .collect()
}

/// `path` as the user wrote it, for messages.
fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let leading = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{leading}{}", segments.join("::"))
}

/// The declared authorization servers, in order, as a constant, and a check evaluated at compile
/// time: two that name the same literal issuer fail it at the second one's name (the runtime
/// would refuse them when `McpAuth` is built).
fn servers_const(model: &Resource) -> TokenStream {
    let private = &private(model);
    let count = model.servers.len();
    let servers = model.servers.iter().map(|server| {
        let inside = from_inside(server);
        quote_spanned!(server.span()=> <#inside as #private::AuthServerDeclaration>::SERVER)
    });
    let checks: Vec<TokenStream> = model.servers.iter().enumerate().flat_map(|(later, server)| {
        model.servers[..later].iter().enumerate().map(move |(earlier, first)| {
            let message = format!(
                "`{}` has the same issuer as `{}`: a resource lists each authorization server once, so remove one of them",
                path_text(server),
                path_text(first),
            );
            quote_spanned! {server.span()=>
                if #private::same_issuer(SERVERS[#earlier].issuer, SERVERS[#later].issuer) {
                    ::core::panic!(#message);
                }
            }
        })
    }).collect();
    let check = (!checks.is_empty()).then(|| quote!(const _: () = { #(#checks)* };));
    quote! {
        const SERVERS: [#private::DeclaredServer; #count] = [#(#servers),*];
        #check
    }
}

fn config_fns(model: &Resource, valid: bool) -> TokenStream {
    let krate = &model.krate;
    let private = private(model);
    let result = |ty: TokenStream| quote!(::core::result::Result<#ty, #krate::ConfigError>);
    let (protected_body, metadata_body, router_body, require_body) = if valid {
        let servers = servers_const(model);
        let scopes = model.scopes.iter().map(|s| &s.lit);
        let count = model.scopes.len();
        let hierarchy = model
            .hierarchy
            .iter()
            .map(|(scope, implied)| quote!(.scope_implies(#scope, [#(#implied),*])));
        let members = member_assignments(model);
        (
            quote! {
                #servers
                let mut resource = #krate::ProtectedResource::new(resource()?);
                for server in SERVERS {
                    resource = resource.authorization_server((server.build)()?);
                }
                let scopes: [&str; #count] = [#(#scopes),*];
                let mut resource = resource
                    .scopes(scopes)
                    #(#hierarchy)*;
                let metadata = resource.metadata_mut();
                #members
                let _ = metadata;
                ::core::result::Result::Ok(resource)
            },
            quote! {
                let identifier = resource()?;
                let auth = #krate::McpAuth::resource_server([protected_resource()?])?;
                auth.resource_metadata(identifier)
                    .cloned()
                    .ok_or_else(|| #krate::ConfigError::UnknownResource {
                        resource: ::std::string::String::from(identifier),
                    })
            },
            quote!(::core::result::Result::Ok(#krate::McpAuth::resource_server([protected_resource()?])?.resource_metadata_router())),
            quote!(
                auth.bearer_auth(resource()?)?
                    .required_scopes(scopes.into_iter().map(Scope::as_str))
            ),
        )
    } else {
        let never = quote!(::core::unreachable!());
        (
            never.clone(),
            never.clone(),
            never.clone(),
            quote!({
                let _ = (auth, scopes);
                ::core::unreachable!()
            }),
        )
    };
    let login = &model.login_scopes;
    let list = |scopes: &[syn::LitStr]| quote!({ let scopes: &[&str] = &[#(#scopes),*]; scopes.iter().copied() });
    let tools = model.tool_scopes.iter().map(|(name, scopes)| {
        let scopes = list(scopes);
        quote!(.tool(#name, #scopes))
    });
    let methods = model.method_scopes.iter().map(|(name, scopes)| {
        let scopes = list(scopes);
        quote!(.method(#name, #scopes))
    });
    let operations_body = if valid {
        quote! {
            let login: &[&str] = &[#(#login),*];
            #krate::OperationScopes::new()
                .advertise(login.iter().copied())
                #(#tools)*
                #(#methods)*
        }
    } else {
        quote!(::core::unreachable!())
    };
    let protected = result(quote!(#krate::ProtectedResource));
    let metadata = result(quote!(#krate::ProtectedResourceMetadata));
    let router = result(quote!(#private::Router<S>));
    let layer = result(quote!(#krate::BearerAuthLayer));
    quote! {
        /// This resource's configuration, to hand to `McpAuth`.
        #[allow(dead_code)]
        pub fn protected_resource() -> #protected {
            #protected_body
        }

        /// The metadata served for this resource (RFC 9728).
        #[allow(dead_code)]
        pub fn metadata() -> #metadata {
            #metadata_body
        }

        /// A router serving this resource's metadata on its own (an `McpAuth` with several
        /// resources serves them all with `resource_metadata_router`).
        #[allow(dead_code)]
        pub fn metadata_router<S>() -> #router
        where
            S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            #router_body
        }

        /// The scopes per MCP operation declared with `tool_scopes`, `method_scopes` and
        /// `login_scopes`, for `BearerAuthLayer::operation_scopes`.
        #[allow(dead_code)]
        pub fn operation_scopes() -> #krate::OperationScopes {
            #operations_body
        }

        /// A bearer layer for this resource that requires every one of `scopes` (answering 403
        /// `insufficient_scope` naming them all otherwise; the scope hierarchy is honoured).
        #[allow(dead_code)]
        pub fn require<I>(auth: &#krate::McpAuth, scopes: I) -> #layer
        where
            I: ::core::iter::IntoIterator<Item = Scope>,
        {
            #require_body
        }
    }
}

/// The module with the generated items added.
pub(crate) fn expand(mut module: syn::ItemMod, model: &Resource, valid: bool) -> TokenStream {
    let generated = [
        scope_enum(model),
        resource_fn(model, &module.ident, valid),
        config_fns(model, valid),
    ];
    let generated: TokenStream = generated.into_iter().collect();
    if let Some((_, items)) = &mut module.content {
        items.push(syn::Item::Verbatim(generated));
    }
    let helper = match &model.resource {
        Some(Setting::Expr(expr)) => {
            let name = expr_helper_name(&module.ident);
            quote! {
                #[doc(hidden)]
                #[allow(non_snake_case)]
                fn #name() -> ::std::string::String {
                    ::core::convert::Into::<::std::string::String>::into(#expr)
                }
            }
        }
        _ => TokenStream::new(),
    };
    quote!(#helper #module)
}
