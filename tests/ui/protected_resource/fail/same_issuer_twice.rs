use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
    pub LOGTO_OAUTH = oauth("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "https://api.example.com/notes",
    authorization_servers = [LOGTO, LOGTO_OAUTH],
    scopes = ["read:notes"],
)]
pub mod notes {}

fn main() {}
