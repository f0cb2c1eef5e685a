use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc(expr());
}

fn main() {}
