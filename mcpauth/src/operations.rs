//! Scopes per MCP operation, enforced at the HTTP layer so a client gets a real 403
//! `insufficient_scope` challenge for the operation it attempted (MCP 2025-11-25 step-up;
//! 2026-07-28: one challenge naming every scope the operation needs).
//!
//! The operation is read from the JSON-RPC body (`method`, and `params.name` for `tools/call`)
//! and, for clients of MCP 2026-07-28, from the `Mcp-Method` / `Mcp-Name` headers; when both
//! name it they must agree. The body is read within a bound and handed on unchanged.

use std::collections::HashMap;

use http::HeaderMap;
use serde_json::Value;

use crate::auth_error::{AuthError, AuthErrorReason};

/// The default bound on a request body read to find the MCP operation.
pub const DEFAULT_MAX_MCP_BODY_BYTES: usize = 4 * 1024 * 1024;

const MCP_METHOD: &str = "mcp-method";
const MCP_NAME: &str = "mcp-name";

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

    fn operation_scopes(&self, operation: &Operation) -> &[String] {
        let tool = (operation.method == "tools/call")
            .then_some(operation.name.as_deref())
            .flatten()
            .and_then(|name| self.tools.get(name));
        tool.or_else(|| self.methods.get(&operation.method))
            .map_or(&[], Vec::as_slice)
    }

    /// The scopes a request needs, from its headers and body, after `base` (the layer's own
    /// required scopes), without repeats.
    pub(crate) fn required(
        &self,
        base: &[String],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<String>, AuthError> {
        let operations = operations(headers, body)?;
        let mut required: Vec<String> = Vec::new();
        let named = operations.iter().flat_map(|op| self.operation_scopes(op));
        for scope in base.iter().chain(&self.baseline).chain(named) {
            if !required.contains(scope) {
                required.push(scope.clone());
            }
        }
        Ok(required)
    }
}

/// One MCP operation: a JSON-RPC method and, where it has one, the name it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    method: String,
    name: Option<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        AuthError::invalid_request(
            AuthErrorReason::InvalidMcpOperation,
            format!("The {name} header is malformed or repeated."),
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    value.to_str().map(Some).map_err(|_| invalid())
}

/// The operation a JSON-RPC message asks for (`None` for responses and malformed messages,
/// which carry no operation and are left to the MCP server to answer).
fn operation_of(message: &Value) -> Option<Operation> {
    let method = message.get("method")?.as_str()?.to_owned();
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => message
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => message
            .get("params")
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    Some(Operation { method, name })
}

/// Every operation of a request: from the body (one message or a batch), checked against the
/// `Mcp-Method` / `Mcp-Name` headers when present.
fn operations(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Operation>, AuthError> {
    let header_method = header(headers, MCP_METHOD)?;
    let header_name = header(headers, MCP_NAME)?;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let from_body: Vec<Operation> = match &parsed {
        Some(Value::Array(batch)) => batch.iter().filter_map(operation_of).collect(),
        Some(message) => operation_of(message).into_iter().collect(),
        None => Vec::new(),
    };
    let Some(method) = header_method else {
        if header_name.is_some() {
            return Err(AuthError::invalid_request(
                AuthErrorReason::InvalidMcpOperation,
                "The Mcp-Name header needs an Mcp-Method header.",
            ));
        }
        return Ok(from_body);
    };
    let from_header = Operation {
        method: method.to_owned(),
        name: header_name.map(str::to_owned),
    };
    match from_body.as_slice() {
        [] => Ok(vec![from_header]),
        [only]
            if only.method == from_header.method
                && (from_header.name.is_none() || only.name == from_header.name) =>
        {
            Ok(from_body)
        }
        _ => Err(AuthError::invalid_request(
            AuthErrorReason::InvalidMcpOperation,
            "The Mcp-Method / Mcp-Name headers do not match the operation in the body.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

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
            .required(&["layer".to_owned()], &map, &body)
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
        // Headers alone (a body that names nothing) decide.
        assert_eq!(
            required(&headers, json!("not a message")).unwrap(),
            ["layer", "base", "create"]
        );
    }
}
