//! The macros work when the runtime is a renamed dependency (`auth = { package = "mcpauth" }`),
//! given `crate = "::auth"`. Compiling this crate is most of the test.

auth::auth_server! {
    crate = "::auth";
    /// The issuer.
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

/// The MCP endpoint.
#[auth::protected_resource(
    crate = "::auth",
    resource = "https://api.example.com/mcp",
    authorization_servers = [LOGTO],
    scopes = ["tools:call"],
)]
pub mod mcp {}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_code_names_the_renamed_crate() {
        assert_eq!(super::mcp::Scope::ToolsCall.as_str(), "tools:call");
        assert_eq!(
            super::mcp::resource().ok(),
            Some("https://api.example.com/mcp")
        );
        let metadata = super::mcp::metadata().ok();
        assert_eq!(
            metadata.and_then(|m| m.authorization_servers),
            Some(vec!["https://tenant.logto.app/oidc".to_owned()])
        );
    }
}
