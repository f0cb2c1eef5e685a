use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "https://api.example.com/notes",
    authorization_servers = [LOGTO],
    resource_name = "",
    dpop_signing_alg_values_supported = [""],
)]
pub mod notes {}

fn main() {}
