//! `auth_server!`'s `broker(…)` kind: the MCP server as its own authorization server in front
//! of an identity provider, checked into a model (expanded in `server_expand`).
//!
//! ```text
//! pub TODO = broker(
//!     "https://mcp.example.com",                       // the broker's issuer
//!     upstream = oidc(env("UPSTREAM_ISSUER")),          // or oauth(authorize = …, token = …, userinfo = …)
//!     client_id = env("UPSTREAM_CLIENT_ID"),
//!     client_secret = env("UPSTREAM_CLIENT_SECRET"),    // never a literal
//!     scopes = ["openid", "email"],
//!     id = "google",
//! );
//! pub CONFIGURED = broker(env("BROKER_ISSUER"), upstream = expr(my_upstream()));  // an `Upstream`
//! pub GITHUB = broker("https://mcp.example.com", upstream = github(), client_id = …, client_secret = env(…));
//! ```
//!
//! The presets `github()` / `github_app()` (optionally `web = …, api = …` for GitHub Enterprise
//! Server), `google()` and `entra(tenant = …)` expand to `Upstream::github(…)` and its
//! siblings; their rules (a client secret, a tenant id, one Entra resource, no scopes for a
//! GitHub App) are checked here on literals and at start-up on the rest.

use mcpauth_rules::provider as provider_rules;
use mcpauth_rules::scope::is_valid_scope_token;
use mcpauth_rules::url as url_rules;
use syn::{Ident, LitStr};

use crate::args::{Args, Keys, Setting, Value, expect_str, expect_str_list, expr, known_args};
use crate::errors::{Errors, with_help};
use crate::members::URL_HELP;
use crate::names::suggestion;

/// The identity provider a declared broker signs users in at.
pub(crate) enum UpstreamModel {
    /// An OpenID Connect provider, by issuer.
    Oidc { issuer: Setting },
    /// A plain OAuth 2.0 provider, by endpoints.
    OAuth {
        authorize: Setting,
        token: Setting,
        userinfo: Setting,
    },
    /// GitHub: an OAuth App, or a GitHub App (`app`); web and API base URLs for GitHub
    /// Enterprise Server.
    GitHub {
        app: bool,
        urls: Option<(Setting, Setting)>,
    },
    /// Google.
    Google,
    /// Microsoft Entra ID.
    Entra { tenant: Setting },
    /// An expression of type `mcpauth::broker::Upstream`, evaluated at start-up (the provider
    /// chosen by configuration, with its client).
    Expr(Box<syn::Expr>),
}

impl UpstreamModel {
    /// For a preset: how it is written, and the provider's name.
    fn preset(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::GitHub { app: false, .. } => Some(("github()", "GitHub")),
            Self::GitHub { app: true, .. } => Some(("github_app()", "GitHub")),
            Self::Google => Some(("google()", "Google")),
            Self::Entra { .. } => Some(("entra(…)", "Entra ID")),
            Self::Oidc { .. } | Self::OAuth { .. } | Self::Expr(_) => None,
        }
    }
}

/// A checked `broker(…)` declaration.
pub(crate) struct BrokerModel {
    pub(crate) issuer: Setting,
    pub(crate) upstream: UpstreamModel,
    /// `None` only with an `expr(…)` upstream, which carries its client.
    pub(crate) client_id: Option<Setting>,
    pub(crate) client_secret: Option<Setting>,
    pub(crate) scopes: Vec<LitStr>,
    pub(crate) id: Option<LitStr>,
    pub(crate) user_id_member: Option<LitStr>,
}

const OPTIONS: &[&str] = &[
    "upstream",
    "client_id",
    "client_secret",
    "scopes",
    "id",
    "user_id_member",
];

const UPSTREAM_KINDS: &[&str] = &[
    "oidc",
    "oauth",
    "github",
    "github_app",
    "google",
    "entra",
    "expr",
];

const UPSTREAM_HELP: &str = "`upstream` is `github()`, `github_app()`, `google()`, `entra(tenant = \"…\")`, `oidc(\"https://issuer\")` or `oauth(authorize = \"…\", token = \"…\", userinfo = \"…\")`";

/// `"…"`, `env("…")` or `expr(…)` holding a URL checked by `check` when literal.
fn url(
    value: &Value,
    what: &str,
    check: fn(&str) -> Result<(), url_rules::UrlError>,
    errors: &mut Errors,
) -> Option<Setting> {
    let setting = Setting::from_value(value, what, errors)?;
    if let Some(lit) = setting.literal()
        && let Err(error) = check(&lit.value())
    {
        errors.at(lit, with_help(format!("invalid {what}: {error}"), URL_HELP));
    }
    Some(setting)
}

fn issuer_rule(value: &str) -> Result<(), url_rules::UrlError> {
    url_rules::parse_issuer(value).map(drop)
}

fn url_rule(value: &str) -> Result<(), url_rules::UrlError> {
    url_rules::parse_secure_url(value).map(drop)
}

/// `upstream = oidc(…)`, `oauth(authorize = …, token = …, userinfo = …)`, a preset or `expr(…)`.
fn upstream(value: &Value, errors: &mut Errors) -> Option<UpstreamModel> {
    let Value::Call(kind, tokens) = value else {
        errors.at_span(value.span(), UPSTREAM_HELP);
        return None;
    };
    match kind.to_string().as_str() {
        "expr" => expr(kind, tokens, errors).map(|e| UpstreamModel::Expr(Box::new(e))),
        "oidc" => {
            let first: Value = match syn::parse2(tokens.clone()) {
                Ok(value) => value,
                Err(error) => {
                    errors.push(error);
                    return None;
                }
            };
            let issuer = url(&first, "upstream issuer", issuer_rule, errors)?;
            Some(UpstreamModel::Oidc { issuer })
        }
        "oauth" => {
            let args: Args = match syn::parse2(tokens.clone()) {
                Ok(args) => args,
                Err(error) => {
                    errors.push(error);
                    return None;
                }
            };
            let unknown = |option: &str| format!("unknown endpoint `{option}` of `oauth(…)`");
            let keys = Keys {
                known: &["authorize", "token", "userinfo"],
                unknown: &unknown,
                note: "",
            };
            let given = known_args(&args, keys, errors);
            let mut endpoint = |name: &str| match given.iter().find(|arg| arg.key == name) {
                Some(arg) => url(&arg.value, &format!("`{name}` URL"), url_rule, errors),
                None => {
                    errors.at(
                            kind,
                            format!("`oauth(…)` needs `{name} = \"https://…\"`: the provider's {name} endpoint"),
                        );
                    None
                }
            };
            let authorize = endpoint("authorize");
            let token = endpoint("token");
            let userinfo = endpoint("userinfo");
            Some(UpstreamModel::OAuth {
                authorize: authorize?,
                token: token?,
                userinfo: userinfo?,
            })
        }
        "github" | "github_app" => github(kind, tokens, errors),
        "google" => {
            if !tokens.is_empty() {
                errors.at(
                    kind,
                    with_help(
                        "`google()` takes no arguments",
                        "for a stand-in in tests, `upstream = expr(Upstream::google(…).google_base_url(…))`",
                    ),
                );
            }
            Some(UpstreamModel::Google)
        }
        "entra" => entra(kind, tokens, errors),
        other => {
            errors.at(
                kind,
                with_help(
                    format!("unknown kind of identity provider `{other}`"),
                    suggestion(other, UPSTREAM_KINDS),
                ),
            );
            None
        }
    }
}

/// The `key = value, …` inside a preset's parentheses.
fn call_args(tokens: &proc_macro2::TokenStream, errors: &mut Errors) -> Option<Args> {
    match syn::parse2(tokens.clone()) {
        Ok(args) => Some(args),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

/// `github()`, `github_app()`, with `web = …, api = …` together or not at all.
fn github(
    kind: &Ident,
    tokens: &proc_macro2::TokenStream,
    errors: &mut Errors,
) -> Option<UpstreamModel> {
    let app = kind == "github_app";
    let args = call_args(tokens, errors)?;
    let unknown = |option: &str| format!("unknown option `{option}` of `{kind}(…)`");
    let keys = Keys {
        known: &["web", "api"],
        unknown: &unknown,
        note: " (`web` and `api` are GitHub Enterprise Server's base URLs)",
    };
    let given = known_args(&args, keys, errors);
    let find = |name: &str| given.iter().find(|arg| arg.key == name);
    let urls = match (find("web"), find("api")) {
        (None, None) => None,
        (Some(web), Some(api)) => {
            let web = url(&web.value, "GitHub web URL", base_url_rule, errors);
            let api = url(&api.value, "GitHub API URL", base_url_rule, errors);
            Some((web?, api?))
        }
        (Some(one), None) | (None, Some(one)) => {
            errors.at(
                &one.key,
                with_help(
                    "GitHub Enterprise Server needs both base URLs",
                    "`web = \"https://github.example.com\", api = \"https://github.example.com/api/v3\"`",
                ),
            );
            return None;
        }
    };
    Some(UpstreamModel::GitHub { app, urls })
}

fn base_url_rule(value: &str) -> Result<(), url_rules::UrlError> {
    url_rules::parse_issuer(value).map(drop)
}

/// `entra(tenant = "…")`: a tenant id, `organizations` or `common`.
fn entra(
    kind: &Ident,
    tokens: &proc_macro2::TokenStream,
    errors: &mut Errors,
) -> Option<UpstreamModel> {
    let args = call_args(tokens, errors)?;
    let unknown = |option: &str| format!("unknown option `{option}` of `entra(…)`");
    let keys = Keys {
        known: &["tenant"],
        unknown: &unknown,
        note: "",
    };
    let given = known_args(&args, keys, errors);
    let Some(arg) = given.iter().find(|arg| arg.key == "tenant") else {
        // A misspelt `tenant` was reported already: one mistake, one error.
        if given.len() < args.0.len() {
            return None;
        }
        errors.at(
            kind,
            with_help(
                "`entra(…)` needs `tenant = …`: the directory (tenant) id, `organizations` or `common`",
                "`entra(tenant = env(\"ENTRA_TENANT_ID\"))`",
            ),
        );
        return None;
    };
    let tenant = Setting::from_value(&arg.value, "`tenant`", errors)?;
    if let Some(lit) = tenant.literal()
        && let Err(error) = provider_rules::entra_tenant(&lit.value())
    {
        errors.at(lit, error);
    }
    Some(UpstreamModel::Entra { tenant })
}

/// Checks `broker(issuer, upstream = …, client_id = …, …)`.
pub(crate) fn check(
    kind: &Ident,
    first: &Value,
    rest: &Args,
    errors: &mut Errors,
) -> Option<BrokerModel> {
    let unknown = |option: &str| format!("unknown option `{option}` of `broker(…)`");
    let keys = Keys {
        known: OPTIONS,
        unknown: &unknown,
        note: "",
    };
    let options = known_args(rest, keys, errors);
    let option = |key: &str| options.iter().find(|a| a.key == key);
    let issuer = url(first, "broker issuer", issuer_rule, errors);
    let upstream = match option("upstream") {
        Some(arg) => upstream(&arg.value, errors),
        None => {
            errors.at(
                kind,
                with_help(
                    "`broker(…)` needs `upstream = …`: the identity provider users sign in at",
                    UPSTREAM_HELP,
                ),
            );
            None
        }
    };
    if let Some(UpstreamModel::Expr(_)) = &upstream {
        // The value carries its client and options; a second source would be ambiguous.
        for arg in &options {
            if arg.key != "upstream" {
                errors.at(
                    &arg.key,
                    format!(
                        "`{}` is set on the `Upstream` that `upstream = expr(…)` gives, not here",
                        arg.key
                    ),
                );
            }
        }
    }
    let expr_upstream = matches!(upstream, Some(UpstreamModel::Expr(_)));
    let client_id = match option("client_id") {
        _ if expr_upstream => None,
        Some(arg) => {
            let setting = Setting::from_value(&arg.value, "`client_id`", errors);
            if let Some(lit) = setting.as_ref().and_then(Setting::literal)
                && lit.value().trim().is_empty()
            {
                errors.at(
                    lit,
                    "`client_id` is empty: the broker's client id at the identity provider",
                );
            }
            setting
        }
        None => {
            if upstream.is_some() {
                errors.at(
                    kind,
                    "`broker(…)` needs `client_id = …`: the broker's client id at the identity provider",
                );
            }
            None
        }
    };
    let client_secret = match option("client_secret") {
        Some(arg) => match &arg.value {
            Value::Str(lit) => {
                errors.at(
                    lit,
                    with_help(
                        "a client secret does not belong in source code",
                        "read it at start-up: `client_secret = env(\"UPSTREAM_CLIENT_SECRET\")` or `expr(…)`",
                    ),
                );
                None
            }
            value => Setting::from_value(value, "`client_secret`", errors),
        },
        None => None,
    };
    if let Some((preset, provider)) = upstream.as_ref().and_then(UpstreamModel::preset)
        && option("client_secret").is_none()
    {
        errors.at(
            kind,
            with_help(
                format!("`{preset}` needs `client_secret = …`: {provider} requires the secret of the broker's client"),
                "`client_secret = env(\"UPSTREAM_CLIENT_SECRET\")`",
            ),
        );
    }
    let mut scopes = Vec::new();
    if let Some(arg) = option("scopes")
        && let Some(list) = expect_str_list(&arg.value, &arg.key, errors)
    {
        for lit in list {
            let scope = lit.value();
            if !is_valid_scope_token(&scope) {
                errors.at(
                    lit,
                    "invalid scope: a scope is one or more printable ASCII characters without spaces, `\"` or `\\`",
                );
            } else if scopes.iter().any(|s: &LitStr| s.value() == scope) {
                errors.at(lit, format!("the scope `{scope}` is listed twice"));
            } else {
                scopes.push(lit.clone());
            }
        }
    }
    match &upstream {
        Some(UpstreamModel::GitHub { app: true, .. }) => {
            if let Some(first) = scopes.first()
                && let Err(error) = provider_rules::github_app_scopes([first.value().as_str()])
            {
                errors.at(first, error);
            }
        }
        Some(UpstreamModel::Entra { .. }) => {
            // Reported at the first scope of a second resource.
            let values: Vec<String> = scopes.iter().map(LitStr::value).collect();
            if let Err(error) = provider_rules::entra_scopes(values.iter().map(String::as_str))
                && let provider_rules::ProviderError::EntraResources { second, .. } = &error
                && let Some(lit) = scopes.iter().find(|lit| lit.value() == *second)
            {
                errors.at(lit, error);
            }
        }
        _ => {}
    }
    let id = match option("id") {
        Some(arg) => {
            let lit = expect_str(&arg.value, &arg.key, errors);
            if let Some(lit) = lit {
                let value = lit.value();
                let ok = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                if !ok {
                    errors.at(
                        lit,
                        "`id` names the callback path and prefixes user ids: use letters, digits, `-`, `.` or `_`",
                    );
                }
            }
            lit.cloned()
        }
        None => None,
    };
    let user_id_member = match option("user_id_member") {
        Some(arg) => expect_str(&arg.value, &arg.key, errors).cloned(),
        None => None,
    };
    if client_id.is_none() && !expr_upstream {
        return None;
    }
    Some(BrokerModel {
        issuer: issuer?,
        upstream: upstream?,
        client_id,
        client_secret,
        scopes,
        id,
        user_id_member,
    })
}
