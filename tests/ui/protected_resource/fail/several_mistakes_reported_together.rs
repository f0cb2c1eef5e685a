use mcpauth::{auth_server, protected_resource};

auth_server! {
    pub LOGTO = oidc("https://tenant.logto.app/oidc");
}

#[protected_resource(
    resource = "http://api.example.com/notes",
    authorization_servers = [LOGTO],
    scopes = ["read notes", "write:notes", "write:notes"],
    resource_nam = "Notes",
)]
pub mod notes {}

fn main() {
    // The valid parts are still generated: this line type-checks, no cascade.
    let _ = notes::Scope::WriteNotes.as_str();
}
