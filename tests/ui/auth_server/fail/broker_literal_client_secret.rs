use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oidc("https://accounts.google.com"), client_id = "id", client_secret = "hunter2");
}

fn main() {}
