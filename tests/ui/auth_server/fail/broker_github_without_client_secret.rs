use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = github(), client_id = "id");
}

fn main() {}
