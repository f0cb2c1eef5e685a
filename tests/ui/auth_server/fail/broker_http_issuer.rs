use mcpauth::auth_server;

auth_server! {
    pub B = broker("http://mcp.example.com", upstream = oidc("https://accounts.google.com"), client_id = "id");
}

fn main() {}
