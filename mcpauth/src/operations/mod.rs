//! Scopes per MCP operation, enforced at the HTTP layer so a client gets a real 403
//! `insufficient_scope` challenge for the operation it attempted (MCP 2025-11-25 step-up;
//! 2026-07-28: one challenge naming every scope the operation needs).
//!
//! The operation is read from the JSON-RPC body (`method`, and `params.name` for `tools/call`)
//! and, for clients of MCP 2026-07-28, from the `Mcp-Method` / `Mcp-Name` headers; when both
//! name it they must agree. The body is read within a bound and handed on unchanged.
//!
//! Fail closed: a request whose operation cannot be read the way any server would read it is
//! refused with 400, never taken as "no operation". No request may be content-encoded (other
//! than `identity`); a POST body must be strict UTF-8 JSON without a byte-order mark, one JSON-RPC message or a non-empty batch whose
//! deciding members appear once and in no other case (see `body`); another method's request
//! carries no body; headers that name an operation must match the single message of the body.

mod body;
mod headers;

use std::collections::HashMap;

use http::header::CONTENT_ENCODING;
use http::{HeaderMap, Method};

use crate::auth_error::{AuthError, AuthErrorReason};
use body::{BodyProblem, read_operations};
use headers::{HeaderError, header_operation};

/// The default bound on a request body read to find the MCP operation.
pub(crate) const DEFAULT_MAX_MCP_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Which scopes each MCP operation needs.
///
/// A request needs the `baseline` scopes (also named in 401 challenges), plus those of its
/// operation: the tool's for `tools/call` when the tool is listed, else the method's when the
/// method is listed.
///
/// ```
/// use mcpauth::OperationScopes;
///
/// let scopes = OperationScopes::new()
///     .baseline(["read:todos"])
///     .tool("create_todo", ["create:todos"])
///     .tool("delete_todo", ["delete:todos"])
///     .method("resources/read", ["read:files"]);
/// # let _ = scopes;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OperationScopes {
    pub(crate) baseline: Vec<String>,
    pub(crate) advertised: Vec<String>,
    methods: HashMap<String, Vec<String>>,
    tools: HashMap<String, Vec<String>>,
    pub(crate) max_body_bytes: usize,
}

impl Default for OperationScopes {
    fn default() -> Self {
        Self {
            baseline: Vec::new(),
            advertised: Vec::new(),
            methods: HashMap::new(),
            tools: HashMap::new(),
            max_body_bytes: DEFAULT_MAX_MCP_BODY_BYTES,
        }
    }
}

fn strings<I>(scopes: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    scopes.into_iter().map(Into::into).collect()
}

impl OperationScopes {
    /// The default bound on a request body read to find the MCP operation: 4 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = DEFAULT_MAX_MCP_BODY_BYTES;

    /// No operation needs anything (yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Scopes every request needs (and 401 challenges name).
    pub fn baseline<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.baseline = strings(scopes);
        self
    }

    /// Scopes named in 401 challenges besides the baseline, without being required: what a
    /// client should ask for when it logs in (for example read access, when most tools work
    /// without it but better with it). Other scopes are asked for by step-up, per operation.
    pub fn advertise<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.advertised = strings(scopes);
        self
    }

    /// Scopes a JSON-RPC method needs (for example `tools/list`).
    pub fn method<I>(mut self, method: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.methods.insert(method.into(), strings(scopes));
        self
    }

    /// Scopes calling the tool `name` needs (`tools/call` with `params.name`).
    pub fn tool<I>(mut self, name: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tools.insert(name.into(), strings(scopes));
        self
    }

    /// The largest body read to find the operation (default 4 MiB; larger bodies get 413).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Every scope named anywhere, for configuration checks.
    pub(crate) fn all_scopes(&self) -> impl Iterator<Item = &String> {
        self.baseline
            .iter()
            .chain(&self.advertised)
            .chain(self.methods.values().flatten())
            .chain(self.tools.values().flatten())
    }

    /// The scopes of one operation: the tool's for a listed `tools/call`, else the method's.
    fn operation_scopes(&self, method: &str, name: Option<&str>) -> &[String] {
        let tool = (method == "tools/call")
            .then_some(name)
            .flatten()
            .and_then(|name| self.tools.get(name));
        tool.or_else(|| self.methods.get(method))
            .map_or(&[], Vec::as_slice)
    }

    /// The scopes a request needs, from its method, headers and body, after `base` (the layer's
    /// own required scopes), without repeats. A request whose operation cannot be read
    /// unambiguously is refused (see the module documentation).
    pub(crate) fn required(
        &self,
        base: &[String],
        method: &Method,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<String>, AuthError> {
        check_identity_encoding(headers)?;
        let named = header_operation(headers).map_err(|HeaderError(detail)| {
            mcp_error(AuthErrorReason::InvalidMcpOperation, detail)
        })?;
        let mut required: Vec<String> = Vec::new();
        let mut add = |scopes: &[String]| {
            for scope in scopes {
                if !required.contains(scope) {
                    required.push(scope.clone());
                }
            }
        };
        add(base);
        add(&self.baseline);
        if method != Method::POST {
            if !body.is_empty() {
                return Err(mcp_error(
                    AuthErrorReason::MalformedMcpBody,
                    format!("A {method} request to an MCP endpoint carries no body."),
                ));
            }
            // Without a body the headers can only ask for more.
            if let Some(named) = &named {
                add(self.operation_scopes(named.method, named.name.as_deref()));
            }
            return Ok(required);
        }
        let mut count = 0usize;
        let mut first = None;
        read_operations(body, &mut |operation| {
            add(self.operation_scopes(&operation.method, operation.name.as_deref()));
            count += 1;
            if count == 1 {
                first = Some(operation);
            }
        })
        .map_err(|error| {
            let reason = match error.problem {
                BodyProblem::Malformed => AuthErrorReason::MalformedMcpBody,
                BodyProblem::Ambiguous => AuthErrorReason::AmbiguousMcpBody,
            };
            mcp_error(reason, error.detail)
        })?;
        if let Some(named) = named {
            let agrees = match (count, &first) {
                (1, Some(operation)) => {
                    operation.method == named.method
                        && (named.name.is_none() || named.name == operation.name)
                }
                _ => false,
            };
            if !agrees {
                return Err(mcp_error(
                    AuthErrorReason::InvalidMcpOperation,
                    "The Mcp-Method / Mcp-Name headers do not match the operation in the body.",
                ));
            }
        }
        Ok(required)
    }
}

fn mcp_error(reason: AuthErrorReason, detail: impl Into<String>) -> AuthError {
    AuthError::InvalidMcpRequest {
        reason,
        detail: detail.into(),
    }
}

/// Refuses a body that is not identity-encoded: the check must read the bytes the server will
/// act on, and a decoder inside the layer would hand the server other bytes than were checked.
fn check_identity_encoding(headers: &HeaderMap) -> Result<(), AuthError> {
    for value in headers.get_all(CONTENT_ENCODING) {
        let identity = value.to_str().is_ok_and(|list| {
            list.split(',')
                .all(|coding| coding.trim().eq_ignore_ascii_case("identity"))
        });
        if !identity {
            return Err(mcp_error(
                AuthErrorReason::UnsupportedContentEncoding,
                "The request body must not be content-encoded (Content-Encoding other than identity).",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::{Value, json};

    fn scopes() -> OperationScopes {
        OperationScopes::new()
            .baseline(["base"])
            .method("tools/list", ["list"])
            .method("tools/call", ["call"])
            .tool("create", ["create", "base"])
    }

    fn required(headers: &[(&str, &str)], body: Value) -> Result<Vec<String>, AuthErrorReason> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        let body = serde_json::to_vec(&body).unwrap();
        scopes()
            .required(&["layer".to_owned()], &Method::POST, &map, &body)
            .map_err(|e| e.reason())
    }

    fn call(name: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}})
    }

    #[test]
    fn the_operation_decides_the_scopes() {
        assert_eq!(
            required(&[], call("create")).unwrap(),
            ["layer", "base", "create"]
        );
        assert_eq!(
            required(&[], call("other")).unwrap(),
            ["layer", "base", "call"]
        );
        assert_eq!(
            required(
                &[],
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            )
            .unwrap(),
            ["layer", "base", "list"]
        );
        assert_eq!(
            required(&[], json!({"jsonrpc": "2.0", "id": 1, "result": {}})).unwrap(),
            ["layer", "base"]
        );
        let batch = json!([call("create"), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]);
        assert_eq!(
            required(&[], batch).unwrap(),
            ["layer", "base", "create", "list"]
        );
    }

    #[test]
    fn headers_and_body_must_agree() {
        let headers = [("mcp-method", "tools/call"), ("mcp-name", "create")];
        assert_eq!(
            required(&headers, call("create")).unwrap(),
            ["layer", "base", "create"]
        );
        assert_eq!(
            required(&headers, call("other")),
            Err(AuthErrorReason::InvalidMcpOperation)
        );
        assert_eq!(
            required(&[("mcp-method", "tools/list")], call("create")),
            Err(AuthErrorReason::InvalidMcpOperation)
        );
        assert_eq!(
            required(&[("mcp-name", "create")], call("create")),
            Err(AuthErrorReason::InvalidMcpOperation)
        );
        // Headers never decide alone when there is a body: a body that names nothing, or that
        // cannot be read, is refused.
        assert_eq!(
            required(&headers, json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            Err(AuthErrorReason::InvalidMcpOperation)
        );
        assert_eq!(
            required(&headers, json!("not a message")),
            Err(AuthErrorReason::MalformedMcpBody)
        );
    }

    #[test]
    fn requests_without_a_body_need_the_baseline_and_what_their_headers_name() {
        let mut map = HeaderMap::new();
        assert_eq!(
            scopes().required(&[], &Method::GET, &map, b"").unwrap(),
            ["base"]
        );
        map.insert("mcp-method", HeaderValue::from_static("tools/list"));
        assert_eq!(
            scopes().required(&[], &Method::GET, &map, b"").unwrap(),
            ["base", "list"]
        );
        assert_eq!(
            scopes()
                .required(&[], &Method::DELETE, &HeaderMap::new(), b"{}")
                .map_err(|e| e.reason()),
            Err(AuthErrorReason::MalformedMcpBody)
        );
    }

    #[test]
    fn encoded_bodies_are_refused() {
        let body = serde_json::to_vec(&call("create")).unwrap();
        for encoding in ["gzip", "identity, gzip", "br", "x"] {
            let mut map = HeaderMap::new();
            map.insert(CONTENT_ENCODING, HeaderValue::from_str(encoding).unwrap());
            assert_eq!(
                scopes()
                    .required(&[], &Method::POST, &map, &body)
                    .map_err(|e| e.reason()),
                Err(AuthErrorReason::UnsupportedContentEncoding),
                "{encoding}"
            );
        }
        let mut map = HeaderMap::new();
        map.insert(CONTENT_ENCODING, HeaderValue::from_static("Identity"));
        assert!(scopes().required(&[], &Method::POST, &map, &body).is_ok());
    }
}
