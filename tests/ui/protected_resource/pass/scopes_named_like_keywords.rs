//! Scopes whose variant names would be keywords (raw-able or not), start with a digit, have no
//! letters, or would hide `Scope::ALL`: each still gets a usable variant and marker type, under
//! `#![deny(warnings, missing_docs)]`.
#![deny(warnings, missing_docs)]

mcpauth::auth_server! {
    /// The issuer.
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

/// Odd scopes.
#[mcpauth::protected_resource(
    resource = "https://api.example.com/odd",
    authorization_servers = [LOGTO],
    scopes = ["self", "super", "crate", "type", "fn", "match", "r#type", "2fa", "ALL", "*", "_"],
    scope_hierarchy = { "self" => ["super", "crate"] },
    login_scopes = ["type"],
    tool_scopes = { "fn" => ["fn"] },
)]
pub mod odd {}

fn main() {
    use odd::{Scope, scopes};
    let all = [
        Scope::Self_,
        Scope::Super,
        Scope::Crate,
        Scope::Type,
        Scope::Fn,
        Scope::Match,
        Scope::RType,
        Scope::S2fa,
        Scope::ALL_,
        Scope::Star,
        Scope::Underscore,
    ];
    assert_eq!(Scope::ALL, all);
    for scope in Scope::ALL {
        assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
    }
    assert_eq!(Scope::from(scopes::Self_), Scope::Self_);
    assert_eq!(scopes::ALL_::SCOPE, Scope::ALL_);
    let auth = mcpauth::McpAuth::resource_server([odd::protected_resource().unwrap()]).unwrap();
    let _layer = odd::require(&auth, [Scope::Self_, scopes::Crate.into()]).unwrap();
}
