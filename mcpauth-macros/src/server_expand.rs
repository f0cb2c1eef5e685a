//! `auth_server!`: the items each checked declaration becomes.
//!
//! A declaration with errors (its `source` is `None`) still becomes its struct, with a body that
//! is never compiled into a program, so the user's code naming it type-checks and the only
//! errors shown are the real ones.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::Setting;
use crate::broker::{BrokerModel, UpstreamModel};
use crate::server::{Method, Server, ServerType, Servers, Source};

/// Paths into the mcpauth crate.
struct Paths {
    krate: TokenStream,
    private: TokenStream,
}

/// Every declaration's items.
pub(crate) fn expand(servers: &Servers) -> TokenStream {
    let krate = &servers.krate;
    let paths = Paths {
        krate: quote!(#krate),
        private: quote!(#krate::__private),
    };
    servers
        .list
        .iter()
        .map(|server| expand_server(&paths, server))
        .collect()
}

fn expand_server(paths: &Paths, server: &Server) -> TokenStream {
    let Paths { krate, private } = paths;
    let Server {
        attrs,
        vis,
        name,
        source,
    } = server;
    let default_doc = format!("The authorization server `{name}`, declared with `auth_server!`.");
    let has_doc = attrs.iter().any(|a| a.path().is_ident("doc"));
    let doc = (!has_doc).then(|| quote!(#[doc = #default_doc]));
    let method_doc = format!(
        "The authorization server `{name}`, for `ProtectedResource::authorization_server`. Values \
         written as `env(\"…\")` or `expr(…)` are read and checked on each call, by the rules \
         literals were checked by at compile time."
    );
    let (issuer, body) = match source {
        Some(source) => {
            let issuer = match source.literal_issuer() {
                Some(lit) => quote!(::core::option::Option::Some(#lit)),
                None => quote!(::core::option::Option::None),
            };
            (issuer, build(paths, source))
        }
        None => (
            quote!(::core::option::Option::None),
            quote!(::core::unreachable!()),
        ),
    };
    let broker_methods = match source {
        Some(Source::Broker(broker)) => broker_methods(paths, vis, name, broker),
        _ => TokenStream::new(),
    };
    let result = quote!(::core::result::Result<#krate::AuthServer, #krate::ConfigError>);
    quote! {
        #(#attrs)*
        #doc
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #vis struct #name;

        impl #name {
            #[doc = #method_doc]
            #vis fn auth_server(&self) -> #result {
                #body
            }
        }

        #broker_methods

        impl #private::AuthServerDeclaration for #name {
            const SERVER: #private::DeclaredServer = #private::DeclaredServer {
                issuer: #issuer,
                build: || #name.auth_server(),
            };
        }
    }
}

/// A declared broker's `upstream()` and `broker()`.
fn broker_methods(
    paths: &Paths,
    vis: &syn::Visibility,
    name: &syn::Ident,
    broker: &BrokerModel,
) -> TokenStream {
    let Paths { krate, private } = paths;
    let issuer = setting_expr(paths, &broker.issuer, quote!(check_issuer));
    let spec = match &broker.upstream {
        UpstreamModel::Oidc { issuer } => {
            let issuer = setting_expr(paths, issuer, quote!(check_issuer));
            quote!(#private::UpstreamSpec::Oidc(#issuer))
        }
        UpstreamModel::OAuth {
            authorize,
            token,
            userinfo,
        } => {
            let authorize = setting_expr(paths, authorize, quote!(check_url));
            let token = setting_expr(paths, token, quote!(check_url));
            let userinfo = setting_expr(paths, userinfo, quote!(check_url));
            quote!(#private::UpstreamSpec::OAuth(#authorize, #token, #userinfo))
        }
        UpstreamModel::GitHub { app, urls } => {
            let urls = match urls {
                Some((web, api)) => {
                    let web = setting_expr(paths, web, quote!(check_issuer));
                    let api = setting_expr(paths, api, quote!(check_issuer));
                    quote!(::core::option::Option::Some((#web, #api)))
                }
                None => quote!(::core::option::Option::None),
            };
            quote!(#private::UpstreamSpec::GitHub(#app, #urls))
        }
        UpstreamModel::Google => quote!(#private::UpstreamSpec::Google),
        UpstreamModel::Entra { tenant } => {
            let tenant = setting_expr(paths, tenant, quote!(check_entra_tenant));
            quote!(#private::UpstreamSpec::Entra(#tenant))
        }
        UpstreamModel::Expr(expr) => quote_spanned! {expr.span()=>
            #private::UpstreamSpec::Given(::std::boxed::Box::new(::core::convert::identity::<#private::BrokerUpstream>(#expr)))
        },
    };
    let client_id = match &broker.client_id {
        Some(client_id) => setting_expr(paths, client_id, quote!(check_text)),
        None => quote!(::std::string::String::new()),
    };
    let client_secret = match &broker.client_secret {
        Some(secret) => {
            let secret = setting_expr(paths, secret, quote!(check_text));
            quote!(::core::option::Option::Some(#secret))
        }
        None => quote!(::core::option::Option::None),
    };
    let scopes = &broker.scopes;
    let optional = |lit: &Option<syn::LitStr>| match lit {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let id = optional(&broker.id);
    let user_id_member = optional(&broker.user_id_member);
    let config = quote!(#krate::ConfigError);
    let upstream_doc = format!(
        "The identity provider of the broker `{name}`. Values written as `env(\"…\")` or \
         `expr(…)` are read and checked on each call."
    );
    let broker_doc = format!(
        "A builder for the broker `{name}`, its issuer and identity provider filled in: add the \
         resource, the store and the keys, then `build().await`."
    );
    quote! {
        impl #name {
            #[doc = #upstream_doc]
            #vis fn upstream(&self) -> ::core::result::Result<#private::BrokerUpstream, #config> {
                ::core::result::Result::Ok(#private::broker_upstream::<()>(#private::UpstreamDeclaration {
                    spec: #spec,
                    client_id: #client_id,
                    client_secret: #client_secret,
                    scopes: &[#(#scopes),*],
                    id: #id,
                    user_id_member: #user_id_member,
                }))
            }

            #[doc = #broker_doc]
            #vis fn broker(&self) -> ::core::result::Result<#private::BrokerBuilder, #config> {
                ::core::result::Result::Ok(#private::broker_builder::<()>(#issuer, self.upstream()?))
            }
        }
    }
}

/// The body of `auth_server()`.
fn build(paths: &Paths, source: &Source) -> TokenStream {
    let Paths { krate, private } = paths;
    match source {
        Source::Broker(broker) => {
            let issuer = setting_expr(paths, &broker.issuer, quote!(check_issuer));
            quote! {
                ::core::result::Result::Ok(#private::broker_auth_server::<()>(#issuer))
            }
        }
        Source::Static {
            server_type, json, ..
        } => {
            let server_type = server_type_expr(paths, server_type);
            quote!(#private::static_server(#server_type, #json))
        }
        Source::Discovered {
            issuer,
            method,
            transpile,
        } => {
            let issuer = setting_expr(paths, issuer, quote!(check_issuer));
            let server = match method {
                Method::Type(server_type) => {
                    let server_type = server_type_expr(paths, server_type);
                    quote!(#krate::AuthServer::discover(#issuer, #server_type))
                }
                Method::Probe => quote!(#krate::AuthServer::probe(#issuer)),
                Method::WellKnown { url, server_type } => {
                    let url = setting_expr(paths, url, quote!(check_url));
                    let server_type = server_type_expr(paths, server_type);
                    quote!(#krate::AuthServer::well_known_url(#issuer, #url, #server_type))
                }
            };
            let server = match transpile {
                Some(path) => {
                    quote_spanned!(path.span()=> #private::with_transpile(#server, #path))
                }
                None => server,
            };
            quote! {
                let server = #server;
                ::core::result::Result::Ok(server)
            }
        }
    }
}

/// A string setting: a literal (checked at compile time), or a start-up value checked by the
/// runtime's `check` function.
fn setting_expr(paths: &Paths, setting: &Setting, check: TokenStream) -> TokenStream {
    let private = &paths.private;
    match setting {
        Setting::Literal(lit) => quote!(::std::string::String::from(#lit)),
        Setting::Env(var) => quote!(#private::#check(#private::env_setting(#var)?)?),
        Setting::Expr(expr) => quote_spanned! {expr.span()=>
            #private::#check(::core::convert::Into::<::std::string::String>::into(#expr))?
        },
    }
}

fn server_type_expr(paths: &Paths, server_type: &ServerType) -> TokenStream {
    let private = &paths.private;
    match server_type {
        ServerType::OAuth => quote!(#private::AuthServerType::OAuth),
        ServerType::Oidc => quote!(#private::AuthServerType::Oidc),
        ServerType::Env(var) => {
            quote!(#private::server_type_setting(#var, #private::env_setting(#var)?)?)
        }
        ServerType::Expr(expr) => quote_spanned! {expr.span()=>
            ::core::convert::identity::<#private::AuthServerType>(#expr)
        },
    }
}
