use mcpauth::auth_server;

auth_server! {
    pub B = broker(
        "https://mcp.example.com",
        upstream = google("https://accounts.google.com"),
        client_id = "id",
        client_secret = env("SECRET"),
    );
}

fn main() {}
