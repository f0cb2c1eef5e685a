use mcpauth::auth_server;

auth_server! {
    pub B = broker(
        "https://mcp.example.com",
        upstream = github_app(),
        client_id = "id",
        client_secret = env("SECRET"),
        scopes = ["repo"],
    );
}

fn main() {}
