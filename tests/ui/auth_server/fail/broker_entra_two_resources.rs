use mcpauth::auth_server;

auth_server! {
    pub B = broker(
        "https://mcp.example.com",
        upstream = entra(tenant = "organizations"),
        client_id = "id",
        client_secret = env("SECRET"),
        scopes = ["api://todo-api/todos.read", "User.Read"],
    );
}

fn main() {}
