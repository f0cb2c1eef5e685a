use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oauth("https://auth.example.com/?tenant=1");
}

fn main() {}
