use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "https://api.example.com/notes ",
    authorization_servers = [LOGTO],
    scopes = ["read:notes"],
)]
pub mod notes {}

fn main() {}
