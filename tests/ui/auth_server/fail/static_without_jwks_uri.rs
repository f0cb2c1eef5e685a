use mcpauth::auth_server;

auth_server! {
    pub FIXED = metadata {
        issuer = "https://auth.example.com",
        authorization_endpoint = "https://auth.example.com/authorize",
        token_endpoint = "https://auth.example.com/token",
        response_types_supported = ["code"],
        code_challenge_methods_supported = ["S256"],
    };
}

fn main() {}
