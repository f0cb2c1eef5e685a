use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oidc("http://accounts.example.com"), client_id = "id");
}

fn main() {}
