use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oidc("https://accounts.google.com"), client_id = "id", id = "my provider/1");
}

fn main() {}
