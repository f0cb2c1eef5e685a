use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc ");
}

fn main() {}
