use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc("http://auth.example.com");
}

fn main() {}
