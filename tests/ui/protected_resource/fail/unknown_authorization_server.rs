use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "https://api.example.com/notes",
    authorization_servers = [KEYCLOAK],
)]
pub mod notes {}

fn main() {}
