use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc(env(AUTH_ISSUER));
}

fn main() {}
