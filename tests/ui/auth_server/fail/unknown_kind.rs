use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oicd("https://tenant.logto.app/oidc");
}

fn main() {}
