use mcpauth::auth_server;

auth_server! {
    pub B = broker(
        "https://mcp.example.com",
        upstream = github(web = "http://ghe.example.com", api = "https://ghe.example.com/api/v3"),
        client_id = "id",
        client_secret = env("SECRET"),
    );
}

fn main() {}
