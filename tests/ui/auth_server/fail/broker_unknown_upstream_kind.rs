use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = oidcc("https://accounts.google.com"), client_id = "id");
}

fn main() {}
