//! The MCP operation peeking used for per-tool scopes: `OperationScopes::required` on the
//! `Mcp-Method` / `Mcp-Name` headers and the JSON-RPC body, and the layer's bounded body read
//! in front of it (a `BearerAuthLayer` with `operation_scopes`, called as a tower service).
//!
//! Input: a flags byte (bit 0: send `Mcp-Method`; bit 1: send `Mcp-Name`; bit 2: send
//! `Mcp-Method` twice; bit 3: stream the body in chunks of `(flags >> 4) + 1` bytes), the
//! `Mcp-Method` value up to the first `\n`, the `Mcp-Name` value up to the next, then the body.
//!
//! Invariants:
//! - `required` agrees exactly with a model written from the MCP specification and the
//!   `OperationScopes` documentation: the layer's scopes, the baseline, then per operation of
//!   the body (one message or a batch) the tool's scopes for a listed `tools/call`, else the
//!   method's, without repeats; the headers, when sent, must be single, visible ASCII, name a
//!   method when they name a name, and agree with a body that names one operation;
//!   a refusal is 400 `invalid_mcp_operation`;
//! - through the layer (bound 256 bytes): a body over the bound is refused with 413 before
//!   the application sees it; a body within it reaches the application byte for byte, or is
//!   refused with 400 exactly when the model refuses it.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::required_scopes;
use mcpauth::{
    AuthError, AuthErrorReason, AuthServer, AuthServerConfig, AuthServerType,
    AuthorizationServerMetadata, BearerAuthLayer, McpAuth, OperationScopes, ProtectedResource,
};
use mcpauth_fuzz::fields;
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const RESOURCE: &str = "http://127.0.0.1:3001/mcp";
const BOUND: usize = 256;
const LAYER: &str = "layer";
const BASELINE: &str = "base";
const METHODS: [(&str, &[&str]); 4] = [
    ("tools/list", &["list"]),
    ("tools/call", &["call"]),
    ("resources/read", &["read"]),
    ("prompts/get", &["prompt"]),
];
const TOOLS: [(&str, &[&str]); 2] = [("create", &["create", "base"]), ("delete", &["delete"])];

struct Setup {
    runtime: Runtime,
    operations: OperationScopes,
    layer: BearerAuthLayer,
}

fn operations() -> OperationScopes {
    let mut operations = OperationScopes::new()
        .baseline([BASELINE])
        .advertise(["adv"]);
    for (method, scopes) in METHODS {
        operations = operations.method(method, scopes.iter().copied());
    }
    for (tool, scopes) in TOOLS {
        operations = operations.tool(tool, scopes.iter().copied());
    }
    operations
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let mut metadata = AuthorizationServerMetadata::new(
            "https://auth.example.com",
            "https://auth.example.com/authorize",
            "https://auth.example.com/token",
            ["code"],
        );
        metadata.jwks_uri = Some("https://auth.example.com/jwks".into());
        metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
        let auth = McpAuth::builder()
            .protected_resource(
                ProtectedResource::new(RESOURCE)
                    .authorization_server(AuthServer::new(AuthServerConfig::new(
                        AuthServerType::OAuth,
                        metadata,
                    )))
                    .scopes([
                        LAYER, BASELINE, "adv", "list", "call", "read", "prompt", "create",
                        "delete",
                    ]),
            )
            .build()
            .expect("config");
        let operations = operations();
        let layer = auth
            .bearer_auth(RESOURCE)
            .expect("layer")
            .optional()
            .operation_scopes(operations.clone().max_body_bytes(BOUND))
            .expect("operation scopes");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Setup {
            runtime,
            operations,
            layer,
        }
    })
}

/// An operation as the specification defines what it acts on.
#[derive(Debug, PartialEq)]
struct Op {
    method: String,
    name: Option<String>,
}

fn op_of(message: &Value) -> Option<Op> {
    let method = message.get("method")?.as_str()?.to_owned();
    let member = match method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    };
    let name = member
        .and_then(|m| message.get("params")?.get(m)?.as_str())
        .map(str::to_owned);
    Some(Op { method, name })
}

/// The model: the scopes a request needs, or `None` when it must be refused.
fn model(method: &[&[u8]], name: &[&[u8]], body: &[u8]) -> Option<Vec<String>> {
    let header = |values: &[&[u8]]| -> Result<Option<String>, ()> {
        match values {
            [] => Ok(None),
            [one]
                if one
                    .iter()
                    .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b)) =>
            {
                Ok(Some(String::from_utf8_lossy(one).into_owned()))
            }
            _ => Err(()),
        }
    };
    let (method, name) = (header(method).ok()?, header(name).ok()?);
    let body: Vec<Op> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(batch)) => batch.iter().filter_map(op_of).collect(),
        Ok(message) => op_of(&message).into_iter().collect(),
        Err(_) => Vec::new(),
    };
    let ops = match (method, name) {
        (None, Some(_)) => return None,
        (None, None) => body,
        (Some(method), name) => match body.as_slice() {
            [] => vec![Op { method, name }],
            [only] if only.method == method && (name.is_none() || only.name == name) => body,
            _ => return None,
        },
    };
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    add(LAYER);
    add(BASELINE);
    for op in &ops {
        let tool = (op.method == "tools/call")
            .then_some(op.name.as_deref())
            .flatten()
            .and_then(|name| TOOLS.iter().find(|(t, _)| *t == name));
        let method = METHODS.iter().find(|(m, _)| *m == op.method);
        for scope in tool.or(method).map_or(&[][..], |(_, s)| *s) {
            add(scope);
        }
    }
    Some(scopes)
}

async fn echo(request: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert("x-app", HeaderValue::from_static("reached"));
    Ok(response)
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let [method, name, body] = fields(rest, b'\n', 3)[..] else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut sent: [Vec<&[u8]>; 2] = [Vec::new(), Vec::new()];
    let wanted = [
        (flags & 1 != 0, "mcp-method", method, 0),
        (flags & 4 != 0, "mcp-method", method, 0),
        (flags & 2 != 0, "mcp-name", name, 1),
    ];
    for (wanted, header, value, slot) in wanted {
        if let (true, Ok(v)) = (wanted, HeaderValue::from_bytes(value)) {
            headers.append(HeaderName::from_static(header), v);
            sent[slot].push(value);
        }
    }
    let expected = model(&sent[0], &sent[1], body);

    let base = [LAYER.to_owned()];
    match required_scopes(&setup.operations, &base, &headers, body) {
        Ok(scopes) => assert_eq!(
            Some(scopes),
            expected,
            "required scopes differ from the model"
        ),
        Err(error) => {
            assert!(
                expected.is_none(),
                "refused what the model accepts: {error:?}"
            );
            assert!(
                matches!(
                    error,
                    AuthError::InvalidRequest {
                        reason: AuthErrorReason::InvalidMcpOperation,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    }

    let mut request = Request::post(RESOURCE);
    *request.headers_mut().expect("builder") = headers;
    let body_bytes = Bytes::copy_from_slice(body);
    let request_body = if flags & 8 != 0 {
        let chunk = usize::from(flags >> 4) + 1;
        let chunks: Vec<Result<Bytes, std::io::Error>> = body_bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        Body::from(body_bytes.clone())
    };
    let request = request.body(request_body).expect("request");
    let service = setup.layer.layer(service_fn(echo));
    let response = setup
        .runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    let status = response.status();
    let reached = response.headers().contains_key("x-app");
    let answer = setup
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("response body");
    if body.len() > BOUND {
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "a body over the bound was read"
        );
        assert!(!reached, "a body over the bound reached the application");
    } else if expected.is_none() {
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(!reached);
    } else {
        assert_eq!(status, StatusCode::OK);
        assert!(reached);
        assert_eq!(
            &answer[..],
            body,
            "the body changed on its way to the application"
        );
    }
});
