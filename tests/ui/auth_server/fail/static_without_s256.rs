use mcpauth::auth_server;

auth_server! {
    pub FIXED = metadata {
        issuer = "https://auth.example.com",
        authorization_endpoint = "https://auth.example.com/authorize",
        token_endpoint = "https://auth.example.com/token",
        jwks_uri = "https://auth.example.com/jwks",
        response_types_supported = ["code"],
        code_challenge_methods_supported = ["plain"],
    };
}

fn main() {}
