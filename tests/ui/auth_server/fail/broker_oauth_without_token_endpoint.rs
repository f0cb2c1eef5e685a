use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oauth(authorize = "https://p.example/authorize", userinfo = "https://p.example/user"), client_id = "id");
}

fn main() {}
