use mcpauth::auth_server;

auth_server! {
    pub AT_URL = well_known("https://a.example/meta.json", type = oauth);
}

fn main() {}
