use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "https://api.example.com/todos",
    authorization_servers = [LOGTO],
    scopes = ["read:todos", "create:todos"],
    login_scopes = ["read:todo"],
    tool_scopes = { "create_todo" => ["create:todo"] },
)]
pub mod todos {}

fn main() {}
