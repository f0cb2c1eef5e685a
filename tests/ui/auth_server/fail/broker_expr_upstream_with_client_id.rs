use mcpauth::auth_server;

auth_server! {
    pub B = broker("https://mcp.example.com", upstream = expr(mcpauth::broker::Upstream::oidc("https://a.example", "x")), client_id = "id");
}

fn main() {}
