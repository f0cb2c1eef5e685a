use mcpauth::auth_server;

auth_server! {
    pub AT_URL = well_known("/meta.json", issuer = "https://a.example", type = oauth);
}

fn main() {}
