use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oidc("https://accounts.google.com"));
}

fn main() {}
