use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc(env("AUTH ISSUER"));
}

fn main() {}
