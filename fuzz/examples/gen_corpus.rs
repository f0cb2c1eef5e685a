//! Writes the seed corpora in `fuzz/corpus/<target>/` from real inputs: tokens minted by the
//! development authorization server, its metadata and JWKS as served over HTTP, the
//! protected-resource metadata the crate serves, MCP JSON-RPC bodies, and (with `--oidc DIR`)
//! an oidc-provider's `openid-configuration.json`, `jwks.json` and `token.json` (a
//! client-credentials token response), fetched as `fuzz/README.md` shows.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus -- [--oidc DIR]
//! ```
//!
//! Minted tokens carry their `exp` (30 days): seeds made from them stay valid a month after
//! generation, and are still useful as shapes afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Request;
use mcpauth::dev::{DevAlgorithm, DevAuthServer};
use mcpauth::{AuthServer, McpAuth, ProtectedResource};
use serde_json::{Value, json};
use tower::ServiceExt;

use mcpauth_fuzz::{JSON_KEYS, JSON_NUMBERS, JSON_STRINGS, PRM_URL, RESOURCE, SEED_TOKEN_LIFETIME};

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn write(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn pretty(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let oidc = args
        .iter()
        .position(|a| a == "--oidc")
        .map(|i| PathBuf::from(&args[i + 1]));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let corpus = Corpus { root };

    let dev = DevAuthServer::start().await.unwrap();
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let issuer = dev.issuer().to_owned();
    let origin = format!("http://{}", dev.local_addr());
    let openid = get(format!("{issuer}/.well-known/openid-configuration")).await;
    let oauth = get(format!("{origin}/.well-known/oauth-authorization-server")).await;
    let jwks = get(dev.jwks_uri()).await;

    let token = |algorithm| {
        dev.token()
            .algorithm(algorithm)
            .expires_in(SEED_TOKEN_LIFETIME)
            .audience(RESOURCE)
            .scopes(["read:notes"])
            .sign()
            .unwrap()
    };
    let rs256 = token(DevAlgorithm::Rs256);
    let es256 = token(DevAlgorithm::Es256);
    let eddsa = token(DevAlgorithm::EdDsa);
    let oidc_token = oidc.as_ref().map(|dir| {
        let response: Value =
            serde_json::from_slice(&std::fs::read(dir.join("token.json")).unwrap()).unwrap();
        response["access_token"].as_str().unwrap().to_owned()
    });

    // authorization_header: header values, `\n` between several.
    let t = "authorization_header";
    corpus.write(t, "dev-rs256", format!("Bearer {rs256}"));
    corpus.write(t, "dev-es256-lowercase-scheme", format!("bearer {es256}"));
    corpus.write(t, "dev-eddsa-extra-spaces", format!("Bearer   {eddsa}  "));
    if let Some(token) = &oidc_token {
        corpus.write(t, "oidc-provider", format!("Bearer {token}"));
    }
    corpus.write(t, "basic", "Basic d3JpdGVyOndyaXRlci1zZWNyZXQ=");
    corpus.write(t, "padded-b64token", "Bearer mF_9.B5f-4.1JqM+/==");
    corpus.write(t, "two-headers", format!("Bearer {eddsa}\nBearer abc"));
    corpus.write(t, "two-tokens", "Bearer abc def");
    corpus.write(t, "empty-token", "Bearer ");
    corpus.write(t, "over-64-bytes", format!("Bearer {}", "a".repeat(70)));

    // jwt_verify: mode byte, then the mode's input (see the target).
    let t = "jwt_verify";
    corpus.write(t, "raw-dev-rs256", cat(&[&[0], rs256.as_bytes()]));
    corpus.write(t, "raw-dev-es256", cat(&[&[0], es256.as_bytes()]));
    corpus.write(t, "raw-dev-eddsa", cat(&[&[0], eddsa.as_bytes()]));
    if let Some(token) = &oidc_token {
        corpus.write(t, "raw-oidc-provider", cat(&[&[0], token.as_bytes()]));
    }
    corpus.write(
        t,
        "raw-alg-none",
        cat(&[
            &[0],
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                rs256.split('.').nth(1).unwrap()
            )
            .as_bytes(),
        ]),
    );
    corpus.write(t, "flip-signature-byte", [1, 0, 0x40, 0x01, 0x01]);
    corpus.write(t, "flip-payload-byte", [1, 3, 0x30, 0x00, 0x20]);
    let forged = URL_SAFE_NO_PAD.encode(json!({"iss": issuer, "sub": "mallory", "aud": RESOURCE, "exp": 4_000_000_000u64, "scope": "read:notes write:notes"}).to_string());
    corpus.write(
        t,
        "forged-payload-real-signature",
        cat(&[&[2, 1, 1, 0], forged.as_bytes()]),
    );
    corpus.write(t, "splice-header-payload-signature", [3, 0, 2, 4]);
    let claims = |value: Value| value.to_string().into_bytes();
    corpus.write(
        t,
        "sign-es256",
        cat(&[&[4, 4], &claims(json!({"sub": "alice"}))]),
    );
    corpus.write(
        t,
        "sign-eddsa-scp-azp",
        cat(&[
            &[4, 5],
            &claims(json!({"scp": ["read:notes", "x"], "azp": "app", "nbf": 1_700_000_000})),
        ]),
    );
    corpus.write(
        t,
        "sign-rs256-aud-array",
        cat(&[
            &[4, 2],
            &claims(json!({"aud": [RESOURCE, "https://other.example"], "scope": "a b"})),
        ]),
    );
    corpus.write(
        t,
        "sign-header-alg-hs256",
        cat(&[&[4, 4], &claims(json!({"!header": {"alg": "HS256"}}))]),
    );
    if let Some(token) = &oidc_token {
        // The oidc-provider token's header and claims, signed here (its iss and aud replaced).
        let segment = |i: usize| -> Value {
            serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(token.split('.').nth(i).unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let (mut header, mut claims) = (segment(0), segment(1));
        header.as_object_mut().unwrap().remove("kid");
        header.as_object_mut().unwrap().remove("alg");
        claims["!header"] = header;
        claims["exp"] = json!(4_000_000_000u64);
        corpus.write(
            t,
            "sign-rs256-oidc-provider-claims",
            cat(&[&[4, 2 | 32 | 64], &claims.to_string().into_bytes()]),
        );
    }
    corpus.write(
        t,
        "sign-header-crit-jku",
        cat(&[
            &[4, 5],
            &claims(json!({"!header": {"crit": ["exp"], "jku": "https://evil.example/jwks"}})),
        ]),
    );

    // jwks_document: key bound byte, Cache-Control line, document.
    let t = "jwks_document";
    corpus.write(
        t,
        "dev-jwks",
        cat(&[&[0], b"public, max-age=300\n", jwks.as_bytes()]),
    );
    corpus.write(
        t,
        "dev-jwks-bound-1",
        cat(&[&[1], b"no-store\n", jwks.as_bytes()]),
    );
    if let Some(dir) = &oidc {
        let text = std::fs::read(dir.join("jwks.json")).unwrap();
        corpus.write(
            t,
            "oidc-provider-jwks",
            cat(&[&[0], b"max-age=\"60\"\n", &text]),
        );
    }
    let mut dev_jwks: Value = serde_json::from_str(&jwks).unwrap();
    for key in dev_jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("kid");
    }
    corpus.write(
        t,
        "dev-jwks-no-kids",
        cat(&[&[0], b"\n", &pretty(&dev_jwks)]),
    );
    let skipped = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "alg": "ES256", "kid": "mismatch", "n": "AQAB", "e": "AQAB"},
        "not a key"
    ]});
    corpus.write(
        t,
        "skipped-keys",
        cat(&[&[0], b"max-age=99999999999999999999\n", &pretty(&skipped)]),
    );
    corpus.write(t, "no-keys-array", cat(&[&[0], b"\n", b"{\"keys\":{}}"]));

    // as_metadata / pr_metadata: documents as served.
    let t = "as_metadata";
    corpus.write(t, "dev-openid-configuration.json", &openid);
    corpus.write(t, "dev-oauth-authorization-server.json", &oauth);
    if let Some(dir) = &oidc {
        corpus.write(
            t,
            "oidc-provider-openid-configuration.json",
            std::fs::read(dir.join("openid-configuration.json")).unwrap(),
        );
    }
    corpus.write(t, "minimal.json", pretty(&json!({"issuer": "https://a.example", "authorization_endpoint": "https://a.example/authorize", "token_endpoint": "https://a.example/token", "response_types_supported": ["code"], "x-extra": {"nested": [1, 2.5, null, true]}})));

    let t = "pr_metadata";
    let auth = McpAuth::builder()
        .protected_resource(
            ProtectedResource::new(RESOURCE)
                .authorization_server(AuthServer::new(dev.config()))
                .scopes(["read:notes", "write:notes"])
                .resource_name("Notes")
                .resource_documentation("https://docs.example/notes"),
        )
        .build()
        .unwrap();
    let response = auth
        .resource_metadata_router()
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/notes")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let served = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    corpus.write(t, "served-by-mcpauth.json", &served);
    corpus.write(
        t,
        "minimal.json",
        br#"{"resource":"https://api.example.com/notes"}"#,
    );
    corpus.write(t, "language-tags-and-nulls.json", pretty(&json!({"resource": "https://api.example.com/notes", "resource_name": "Notes", "resource_name#fr": "Notes (fr)", "jwks_uri": null, "bearer_methods_supported": ["header"], "tls_client_certificate_bound_access_tokens": false, "dpop_bound_access_tokens_required": true})));

    // mcp_operation: flags (bits 0-1 the HTTP method: POST, GET, DELETE, PUT; bit 2 streamed in
    // chunks of (flags >> 4) + 1 bytes; bit 3 the body is choices for `json_from_choices`),
    // header lines `<selector><value>\n` (m Mcp-Method, n Mcp-Name, b Mcp-Name sent
    // Base64-wrapped, e Content-Encoding), an empty line, the body.
    let t = "mcp_operation";
    const POST: u8 = 0;
    const GET: u8 = 1;
    const DELETE: u8 = 2;
    let op = |flags: u8, headers: &[&str], body: &[u8]| {
        let mut out = vec![flags];
        for line in headers {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    };
    let rpc =
        |flags: u8, headers: &[&str], body: Value| op(flags, headers, body.to_string().as_bytes());
    let call = |name: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"title": "x"}}});
    corpus.write(t, "initialize", rpc(POST, &[], json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}})));
    corpus.write(
        t,
        "tools-call-create-with-headers",
        rpc(POST, &["mtools/call", "ncreate"], call("create")),
    );
    corpus.write(
        t,
        "tools-call-header-mismatch",
        rpc(POST, &["mtools/call", "ndelete"], call("create")),
    );
    corpus.write(
        t,
        "tools-call-base64-name",
        rpc(POST, &["mtools/call", "bcafé"], call("café")),
    );
    corpus.write(
        t,
        "tools-call-base64-name-as-sent",
        rpc(
            POST,
            &["mtools/call", "n=?base64?Y3JlYXRl?="],
            call("create"),
        ),
    );
    corpus.write(
        t,
        "base64-name-malformed",
        rpc(
            POST,
            &["mtools/call", "n=?base64?Y3JlYXR?="],
            call("create"),
        ),
    );
    corpus.write(
        t,
        "mcp-method-twice",
        rpc(POST, &["mtools/call", "mtools/call"], call("create")),
    );
    corpus.write(
        t,
        "name-without-method",
        rpc(
            POST,
            &["ncreate"],
            json!({"jsonrpc": "2.0", "id": 4, "result": {}}),
        ),
    );
    corpus.write(t, "batch-streamed", rpc(POST | 4 | (5 << 4), &[], json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete"}}, {"jsonrpc": "2.0", "method": "notifications/initialized"}])));
    corpus.write(t, "batch-one-operation-with-headers", rpc(POST, &["mtasks/cancel", "nt-7"], json!([{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel", "params": {"taskId": "t-7"}}])));
    corpus.write(t, "batch-empty", op(POST, &[], b"[]"));
    corpus.write(t, "resources-read", rpc(POST, &["mresources/read"], json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "file:///notes/1"}})));
    corpus.write(t, "tasks-get", rpc(POST, &["mtasks/get", "ntask-1"], json!({"jsonrpc": "2.0", "id": 6, "method": "tasks/get", "params": {"taskId": "task-1"}})));
    corpus.write(
        t,
        "tasks-update-without-params",
        rpc(
            POST,
            &[],
            json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/update"}),
        ),
    );
    corpus.write(
        t,
        "get-with-headers",
        op(GET, &["mprompts/get", "nsummary"], b""),
    );
    corpus.write(
        t,
        "get-tools-call-base64",
        op(GET, &["mtools/call", "bcreate"], b""),
    );
    corpus.write(
        t,
        "get-with-body",
        op(
            GET,
            &[],
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        ),
    );
    corpus.write(t, "delete-gzip-no-body", op(DELETE, &["egzip"], b""));
    corpus.write(t, "gzip", rpc(POST, &["egzip"], call("create")));
    corpus.write(
        t,
        "identity-list",
        rpc(POST, &["eIdentity , identity", "eidentity"], call("delete")),
    );
    corpus.write(
        t,
        "identity-then-gzip",
        rpc(POST, &["eidentity,gzip"], call("delete")),
    );
    corpus.write(
        t,
        "byte-order-mark",
        op(
            POST,
            &[],
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}".as_bytes(),
        ),
    );
    corpus.write(t, "duplicate-method", op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete"}}"#));
    corpus.write(t, "duplicate-name", op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create","name":"delete"}}"#));
    corpus.write(t, "duplicate-name-escaped", op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create","n\u0061me":"delete"}}"#));
    corpus.write(t, "duplicate-params", op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create"},"params":{"name":"delete"}}"#));
    corpus.write(
        t,
        "duplicate-name-in-ping-params",
        op(
            POST,
            &[],
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"name":"a","name":"b"}}"#,
        ),
    );
    corpus.write(t, "case-variant-method", op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete"}}"#));
    corpus.write(t, "case-variant-long-s", op(POST, &[], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"create\"},\"paramſ\":{\"name\":\"delete\"}}".as_bytes()));
    corpus.write(t, "case-variant-kelvin-task-id", op(POST, &[], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"a\",\"tas\u{212a}Id\":\"b\"}}".as_bytes()));
    corpus.write(
        t,
        "case-variant-dotless-i",
        op(
            POST,
            &[],
            "{\"jsonrpc\":\"2.0\",\"\u{131}d\":1,\"method\":\"ping\"}".as_bytes(),
        ),
    );
    corpus.write(
        t,
        "name-not-a-string",
        op(
            POST,
            &[],
            br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":["summary"]}}"#,
        ),
    );
    corpus.write(
        t,
        "method-not-a-string",
        op(POST, &[], br#"{"jsonrpc":"2.0","id":1,"method":null}"#),
    );
    corpus.write(
        t,
        "trailing-data",
        op(POST, &[], b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\"} \n{}"),
    );
    corpus.write(
        t,
        "lone-surrogate",
        op(
            POST,
            &[],
            br#"{"jsonrpc":"2.0","id":"\ud800","method":"ping","params":{"uri":"\udc00"}}"#,
        ),
    );
    corpus.write(
        t,
        "number-beyond-f64",
        op(
            POST,
            &[],
            br#"{"jsonrpc":"2.0","id":1e400,"method":"ping","params":-1e999}"#,
        ),
    );
    let deep = format!(
        "{{\"method\":\"ping\",\"x\":{}{}}}",
        "[".repeat(130),
        "]".repeat(130)
    );
    const CHOICES: u8 = 8;
    let structured = |flags: u8, headers: &[&str], body: Gen| {
        let mut choices = Vec::new();
        body.choices(&mut choices);
        op(flags | CHOICES, headers, &choices)
    };
    use Gen::{Arr, Key, Num, Obj, Str};
    corpus.write(
        t,
        "choices-tools-call",
        structured(
            POST,
            &[],
            Obj(vec![
                ("jsonrpc", Str("2.0")),
                ("id", Num("1")),
                ("method", Str("tools/call")),
                (
                    "params",
                    Obj(vec![("name", Str("create")), ("arguments", Obj(vec![]))]),
                ),
            ]),
        ),
    );
    corpus.write(
        t,
        "choices-prompts-get-with-headers",
        structured(
            POST,
            &["mprompts/get", "ncreate"],
            Obj(vec![
                ("method", Str("prompts/get")),
                ("params", Obj(vec![("name", Str("create"))])),
            ]),
        ),
    );
    corpus.write(
        t,
        "choices-batch-streamed",
        structured(
            POST | 4,
            &[],
            Arr(vec![
                Obj(vec![
                    ("method", Str("tasks/get")),
                    ("params", Obj(vec![("taskId", Str("t-1"))])),
                ]),
                Obj(vec![("id", Num("1")), ("result", Obj(vec![]))]),
                Obj(vec![
                    ("method", Str("resources/read")),
                    (
                        "params",
                        Obj(vec![("uri", Str("file:///a")), ("name", Key("uri"))]),
                    ),
                ]),
            ]),
        ),
    );
    corpus.write(t, "deep-nesting-over-bound", op(POST, &[], deep.as_bytes()));
    corpus.write(t, "over-bound", rpc(POST, &[], json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "create", "arguments": {"text": "x".repeat(300)}}})));

    // www_authenticate: flags, then description, scopes, metadata URL, detail (NUL-separated).
    let t = "www_authenticate";
    let fields = |flags: u8, parts: [&str; 4]| cat(&[&[flags], parts.join("\0").as_bytes()]);
    let prm = PRM_URL;
    corpus.write(
        t,
        "missing-credentials",
        fields(
            0x0f,
            [
                "This resource requires a bearer access token.",
                "read:notes write:notes",
                prm,
                "",
            ],
        ),
    );
    corpus.write(
        t,
        "invalid-token-details",
        fields(
            0x5f,
            [
                "say \"hi\" \\ now",
                "read:notes",
                prm,
                "The token's kid \"k\\1\" is unknown.",
            ],
        ),
    );
    corpus.write(
        t,
        "insufficient-scope",
        fields(0x8f, ["", "read:notes", prm, "read:notes write:notes"]),
    );
    corpus.write(
        t,
        "unicode-and-controls",
        fields(0x3f, ["é\r\n\u{7}", "a\"b", "https://r.example/\"x", "ü\t"]),
    );
    corpus.write(
        t,
        "unavailable",
        fields(0xcf, ["", "", prm, "keys cannot be fetched"]),
    );

    dev.shutdown().await;
    println!("corpora written under {}", corpus.root.display());
}

/// A JSON text as `mcpauth_fuzz::json_from_choices` writes it, to encode as its choice bytes.
enum Gen {
    Obj(Vec<(&'static str, Gen)>),
    Arr(Vec<Gen>),
    /// A string of `JSON_STRINGS`.
    Str(&'static str),
    /// A string of `JSON_KEYS`.
    Key(&'static str),
    Num(&'static str),
}

impl Gen {
    fn choices(&self, out: &mut Vec<u8>) {
        let index = |table: &[&str], text: &str| {
            u8::try_from(table.iter().position(|t| *t == text).unwrap()).unwrap()
        };
        match self {
            Gen::Obj(members) => {
                out.extend([0, u8::try_from(members.len()).unwrap()]);
                for (key, value) in members {
                    out.push(index(&JSON_KEYS, key));
                    value.choices(out);
                }
            }
            Gen::Arr(items) => {
                out.extend([1, u8::try_from(items.len()).unwrap()]);
                for item in items {
                    item.choices(out);
                }
            }
            Gen::Str(text) => out.extend([2, index(&JSON_STRINGS, text)]),
            Gen::Key(text) => out.extend([3, index(&JSON_KEYS, text)]),
            Gen::Num(text) => out.extend([4, index(&JSON_NUMBERS, text)]),
        }
    }
}
