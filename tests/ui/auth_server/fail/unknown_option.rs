use mcpauth::auth_server;

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc", transpiler = fix);
}

fn fix(v: serde_json::Value) -> serde_json::Value { v }

fn main() {}
