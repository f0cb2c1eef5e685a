//! `#[protected_resource(...)]`: parsing the attribute into a checked model. Every check runs and
//! every mistake is reported, each at its token; expansion (in `resource_expand`) sees the model
//! and whether it is valid.

use std::collections::{HashMap, HashSet};

use mcpauth_rules::hierarchy::{HierarchyError, ScopeHierarchy};
use mcpauth_rules::scope::scope_token_problem;
use mcpauth_rules::url as url_rules;
use proc_macro2::Span;
use syn::{Ident, LitBool, LitStr};

use crate::args::{Args, Setting, Value, expect_str, expect_str_list};
use crate::ctxt::{Errors, with_help};
use crate::names::{ident, suggestion, variant_name};

const KEYS: &[&str] = &[
    "resource",
    "authorization_servers",
    "scopes",
    "scope_hierarchy",
    "resource_name",
    "resource_documentation",
    "resource_policy_uri",
    "resource_tos_uri",
    "jwks_uri",
    "resource_signing_alg_values_supported",
    "authorization_details_types_supported",
    "dpop_signing_alg_values_supported",
    "tls_client_certificate_bound_access_tokens",
    "dpop_bound_access_tokens_required",
    "tool_scopes",
    "method_scopes",
    "login_scopes",
    "crate",
];

/// The names the expansion puts in the module; a user item with one of them would clash.
pub(crate) const GENERATED: &[&str] = &[
    "Scope",
    "scopes",
    "RESOURCE",
    "METADATA_PATH",
    "resource",
    "protected_resource",
    "metadata",
    "metadata_router",
    "require",
    "operation_scopes",
];

/// One declared scope.
pub(crate) struct ScopeDef {
    pub(crate) lit: LitStr,
    pub(crate) value: String,
    pub(crate) variant: Ident,
}

/// An RFC 9728 member set in the attribute.
pub(crate) enum Member {
    Text(Ident, LitStr),
    List(Ident, Vec<LitStr>),
    Flag(Ident, LitBool),
}

/// The checked attribute.
pub(crate) struct Resource {
    pub(crate) krate: syn::Path,
    pub(crate) resource: Option<Setting>,
    /// The metadata path, when the resource is a valid literal.
    pub(crate) metadata_path: Option<String>,
    pub(crate) servers: Vec<syn::Path>,
    pub(crate) scopes: Vec<ScopeDef>,
    pub(crate) hierarchy: Vec<(LitStr, Vec<LitStr>)>,
    /// Scopes per tool (`tools/call` name) and per JSON-RPC method.
    pub(crate) tool_scopes: Vec<(LitStr, Vec<LitStr>)>,
    pub(crate) method_scopes: Vec<(LitStr, Vec<LitStr>)>,
    /// Scopes named in 401 challenges (what to ask for at login).
    pub(crate) login_scopes: Vec<LitStr>,
    pub(crate) members: Vec<Member>,
}

fn url_member(lit: &LitStr, errors: &mut Errors) {
    if let Err(error) = url_rules::parse_secure_url(&lit.value()) {
        errors.at(
            lit,
            with_help(
                error,
                "use an absolute https URL (http only for loopback hosts)",
            ),
        );
    }
}

fn check_resource_literal(lit: &LitStr, errors: &mut Errors) -> Option<String> {
    match url_rules::parse_resource_identifier(&lit.value()) {
        Ok(url) => Some(url_rules::protected_resource_metadata_path(&url)),
        Err(error) => {
            errors.at(
                lit,
                with_help(
                    format!("invalid resource identifier: {error}"),
                    "the resource is the absolute URL clients use, like \"https://api.example.com/mcp\"",
                ),
            );
            None
        }
    }
}

fn parse_scopes(list: Vec<&LitStr>, errors: &mut Errors) -> Vec<ScopeDef> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut variants: HashMap<String, String> = HashMap::new();
    let mut scopes = Vec::new();
    for lit in list {
        let value = lit.value();
        if let Some(problem) = scope_token_problem(&value) {
            errors.at(
                lit,
                with_help(
                    format!("invalid scope {value:?}: {problem}"),
                    "a scope is one token like \"read:notes\"",
                ),
            );
            continue;
        }
        if !seen.insert(value.clone()) {
            errors.at(
                lit,
                format!("the scope {value:?} is listed twice: remove one"),
            );
            continue;
        }
        let Some(variant) = variant_name(&value) else {
            errors.at(
                lit,
                format!(
                    "the scope {value:?} has no letter or digit to name its `Scope` variant after"
                ),
            );
            continue;
        };
        if let Some(first) = variants.get(&variant) {
            errors.at(
                lit,
                with_help(
                    format!("the scopes {first:?} and {value:?} would both be `Scope::{variant}`"),
                    "scopes must differ in their letters and digits, not only in punctuation",
                ),
            );
            continue;
        }
        variants.insert(variant.clone(), value.clone());
        scopes.push(ScopeDef {
            variant: ident(&variant, lit.span()),
            lit: lit.clone(),
            value,
        });
    }
    scopes
}

/// Whether `lit` names a declared scope; reports it (with a suggestion) when not.
fn declared_scope(lit: &LitStr, scopes: &[ScopeDef], errors: &mut Errors) -> bool {
    let known = scopes.iter().any(|s| s.value == lit.value());
    if !known {
        let names: Vec<&str> = scopes.iter().map(|s| s.value.as_str()).collect();
        errors.at(
            lit,
            with_help(
                format!("the scope {:?} is not declared in `scopes`", lit.value()),
                suggestion(&lit.value(), &names),
            ),
        );
    }
    known
}

/// `{ "name" => ["scope", …], … }` where every scope is declared.
fn parse_scope_map(
    value: &Value,
    key: &Ident,
    scopes: &[ScopeDef],
    errors: &mut Errors,
) -> Vec<(LitStr, Vec<LitStr>)> {
    let Value::Map(_, entries) = value else {
        errors.at_span(
            value.span(),
            format!("`{key}` takes a map: `{key} = {{ \"create_todo\" => [\"create:todos\"] }}`"),
        );
        return Vec::new();
    };
    let mut map = Vec::new();
    for (name, listed) in entries {
        if let Some(list) = expect_str_list(listed, key, errors) {
            let list = list
                .into_iter()
                .filter(|lit| declared_scope(lit, scopes, errors))
                .cloned()
                .collect();
            map.push((name.clone(), list));
        }
    }
    map
}

fn parse_hierarchy(
    value: &Value,
    scopes: &[ScopeDef],
    errors: &mut Errors,
) -> Vec<(LitStr, Vec<LitStr>)> {
    let Value::Map(_, entries) = value else {
        errors.at_span(
            value.span(),
            "`scope_hierarchy` takes a map: `scope_hierarchy = { \"admin\" => [\"read\", \"write\"] }`",
        );
        return Vec::new();
    };
    let declared = |lit: &LitStr, errors: &mut Errors| declared_scope(lit, scopes, errors);
    let mut hierarchy = Vec::new();
    for (scope, implied) in entries {
        let key_ok = declared(scope, errors);
        let mut list = Vec::new();
        match implied {
            Value::List(_, items) => {
                for item in items {
                    match item {
                        Value::Str(lit) => {
                            if declared(lit, errors) {
                                list.push(lit.clone());
                            }
                        }
                        other => errors.at_span(other.span(), "implied scopes are string literals"),
                    }
                }
            }
            other => errors.at_span(
                other.span(),
                "a scope implies a list of scopes: `\"admin\" => [\"read\"]`",
            ),
        }
        if key_ok {
            hierarchy.push((scope.clone(), list));
        }
    }
    let edges: Vec<(String, Vec<String>)> = hierarchy
        .iter()
        .map(|(scope, implied)| (scope.value(), implied.iter().map(LitStr::value).collect()))
        .collect();
    if let Err(HierarchyError::Cycle(cycle)) = ScopeHierarchy::build(&[], &edges) {
        let at = hierarchy
            .iter()
            .find(|(scope, _)| Some(&scope.value()) == cycle.first())
            .map_or(value.span(), |(scope, _)| scope.span());
        errors.at_span(
            at,
            with_help(
                format!(
                    "the scope hierarchy has a cycle: {}",
                    cycle.join(" implies ")
                ),
                "a broader scope implies narrower ones; two scopes cannot imply each other",
            ),
        );
    }
    hierarchy
}

fn parse_servers(value: &Value, errors: &mut Errors) -> Vec<syn::Path> {
    let Value::List(span, items) = value else {
        errors.at_span(
            value.span(),
            "`authorization_servers` takes a list of names declared with `auth_server!`: `authorization_servers = [LOGTO]`",
        );
        return Vec::new();
    };
    let mut servers: Vec<syn::Path> = Vec::new();
    for item in items {
        match item {
            Value::Path(path) => {
                if servers.iter().any(|p| p == path) {
                    errors.at(path, "this authorization server is listed twice: remove one");
                } else {
                    servers.push(path.clone());
                }
            }
            other => errors.at_span(
                other.span(),
                with_help(
                    format!("authorization servers are named, not given as {}", other.kind()),
                    "declare the server with `auth_server! { pub NAME = oidc(\"https://issuer\"); }` and list `NAME`",
                ),
            ),
        }
    }
    if items.is_empty() {
        errors.at_span(
            *span,
            "a protected resource needs at least one authorization server: list one declared with `auth_server!`",
        );
    }
    servers
}

/// Parses and checks the attribute; errors go to `errors`, the model keeps what was valid.
pub(crate) fn parse(args: Args, errors: &mut Errors) -> Resource {
    let mut model = Resource {
        krate: syn::parse_quote!(::mcpauth),
        resource: None,
        metadata_path: None,
        servers: Vec::new(),
        scopes: Vec::new(),
        hierarchy: Vec::new(),
        tool_scopes: Vec::new(),
        method_scopes: Vec::new(),
        login_scopes: Vec::new(),
        members: Vec::new(),
    };
    let mut seen: Vec<Ident> = Vec::new();
    let mut has_servers = false;
    let mut hierarchy_value = None;
    let mut operation_values: Vec<(&Ident, &Value)> = Vec::new();
    for arg in &args.0 {
        let key = &arg.key;
        let name = key.to_string();
        if seen.iter().any(|k| *k == name) {
            errors.at(key, format!("`{name}` is given twice: keep one"));
            continue;
        }
        seen.push(key.clone());
        match name.as_str() {
            "crate" => {
                if let Some(lit) = expect_str(&arg.value, key, errors) {
                    match lit.parse::<syn::Path>() {
                        Ok(path) => model.krate = path,
                        Err(_) => errors.at(
                            lit,
                            "`crate` takes the path of the mcpauth crate, like \"::mcpauth\"",
                        ),
                    }
                }
            }
            "resource" => {
                model.resource = Setting::from_value(&arg.value, "`resource`", errors);
                if let Some(Setting::Literal(lit)) = &model.resource {
                    model.metadata_path = check_resource_literal(lit, errors);
                }
            }
            "authorization_servers" => {
                has_servers = true;
                model.servers = parse_servers(&arg.value, errors);
            }
            "scopes" => {
                if let Some(list) = expect_str_list(&arg.value, key, errors) {
                    model.scopes = parse_scopes(list, errors);
                }
            }
            "scope_hierarchy" => hierarchy_value = Some(&arg.value),
            "tool_scopes" | "method_scopes" | "login_scopes" => {
                operation_values.push((key, &arg.value))
            }
            "resource_name" => {
                if let Some(lit) = expect_str(&arg.value, key, errors) {
                    model.members.push(Member::Text(key.clone(), lit.clone()));
                }
            }
            "resource_documentation" | "resource_policy_uri" | "resource_tos_uri" | "jwks_uri" => {
                if let Some(lit) = expect_str(&arg.value, key, errors) {
                    url_member(lit, errors);
                    model.members.push(Member::Text(key.clone(), lit.clone()));
                }
            }
            "resource_signing_alg_values_supported"
            | "authorization_details_types_supported"
            | "dpop_signing_alg_values_supported" => {
                if let Some(list) = expect_str_list(&arg.value, key, errors) {
                    model.members.push(Member::List(
                        key.clone(),
                        list.into_iter().cloned().collect(),
                    ));
                }
            }
            "tls_client_certificate_bound_access_tokens" | "dpop_bound_access_tokens_required" => {
                match &arg.value {
                    Value::Bool(flag) => {
                        model.members.push(Member::Flag(key.clone(), flag.clone()))
                    }
                    other => {
                        errors.at_span(other.span(), format!("`{name}` takes `true` or `false`"))
                    }
                }
            }
            _ => errors.at(
                key,
                with_help(
                    format!("unknown key `{name}` in #[protected_resource]"),
                    suggestion(&name, KEYS),
                ),
            ),
        }
    }
    if let Some(value) = hierarchy_value {
        model.hierarchy = parse_hierarchy(value, &model.scopes, errors);
    }
    for (key, value) in operation_values {
        let declared =
            |lit: &LitStr, errors: &mut Errors| declared_scope(lit, &model.scopes, errors);
        if key == "login_scopes" {
            if let Some(list) = expect_str_list(value, key, errors) {
                model.login_scopes = list
                    .into_iter()
                    .filter(|lit| declared(lit, errors))
                    .cloned()
                    .collect();
            }
            continue;
        }
        let parsed = parse_scope_map(value, key, &model.scopes, errors);
        if key == "tool_scopes" {
            model.tool_scopes = parsed;
        } else {
            model.method_scopes = parsed;
        }
    }
    if model.resource.is_none() && !seen.iter().any(|k| k == "resource") {
        errors.at_span(
            Span::call_site(),
            with_help(
                "missing `resource`: the protected resource's identifier",
                "add `resource = \"https://api.example.com/mcp\"` (or `env(\"NAME\")` to read it at start-up)",
            ),
        );
    }
    if !has_servers {
        errors.at_span(
            Span::call_site(),
            with_help(
                "missing `authorization_servers`: MCP requires at least one",
                "add `authorization_servers = [NAME]` with a server declared by `auth_server!`",
            ),
        );
    }
    model
}
