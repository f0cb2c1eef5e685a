use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc("https://a.example");
    pub LOGTO = oidc("https://b.example");
}

fn main() {}
