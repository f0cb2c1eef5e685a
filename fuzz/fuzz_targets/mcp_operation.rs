//! The fail-closed MCP operation check used for per-operation scopes: `OperationScopes::required`
//! on the HTTP method, the `Content-Encoding` / `Mcp-Method` / `Mcp-Name` headers and the
//! JSON-RPC body, and the layer's bounded body read in front of it (a `BearerAuthLayer` with
//! `operation_scopes`, called as a tower service).
//!
//! Input: a flags byte (bits 0–1: the HTTP method, POST / GET / DELETE / PUT; bit 2: stream
//! the body in chunks of `(flags >> 4) + 1` bytes; bit 3: the body bytes are choices for
//! `mcpauth_fuzz::json_from_choices`, which writes a well-formed JSON text with JSON-RPC and MCP
//! keys, their case variants, methods and names, instead of being the body), then header lines
//! `<selector><value>\n` up to the first empty line, then the body. Selectors: `m`
//! `Mcp-Method`, `n` `Mcp-Name`, `b` `Mcp-Name` sent as `=?base64?<the value in standard
//! Base64>?=`, `e` `Content-Encoding`; a line with another selector, or with a value
//! `HeaderValue` refuses, sends nothing. A header may be sent any number of times, in any
//! order. Without an empty line every line is a header and the body is empty.
//!
//! The model is written from the rules in the `operations` module documentation, without the
//! crate's code: its own JSON scanner (below) keeps every member of every object, duplicates
//! included, with its key decoded, so duplicate and case-variant keys are seen as the rules
//! define them (`serde_json::Value` would drop duplicates); its own Base64 decoder; its own
//! `Content-Encoding` reading. In short, a request is refused with 400 when:
//! - a `Content-Encoding` value (any method) whose comma-separated, OWS-trimmed items are not
//!   all `identity` (ASCII case-insensitively) → `unsupported_content_encoding`;
//! - `Mcp-Method` or `Mcp-Name` sent twice or not visible ASCII (HTAB, SP, VCHAR), `Mcp-Name`
//!   without `Mcp-Method`, a `=?base64?…?=` name that is not canonical padded standard Base64
//!   or not UTF-8 → `invalid_mcp_operation`;
//! - not POST, with a body → `malformed_mcp_body`;
//! - POST with a body that is not UTF-8, starts with a byte-order mark, is not one JSON text
//!   (RFC 8259 grammar: no control characters in strings, `\u` escapes of four hex digits, no
//!   leading zeros, whitespace only around it), is neither an object nor a non-empty array of
//!   objects, has a `method` that is not a string, or a method acting on a target
//!   (`tools/call`, `prompts/get` → `params.name`; `resources/read|subscribe|unsubscribe` →
//!   `params.uri`; `tasks/get|update|cancel` → `params.taskId`) without `params` as an object
//!   holding that member once as a string → `malformed_mcp_body`;
//! - a message with `jsonrpc`, `method`, `id` or `params` twice, or a key that is one of them
//!   after ASCII lower-casing and ſ→s, K (Kelvin)→k, ı→i, İ→i without being it; `params` (an
//!   object) holding `name`, `uri` or `taskId` twice, whatever the method; for a method with a
//!   target, `params` holding a case variant of its member →
//!   `ambiguous_mcp_body` (in a body that stops being JSON, a key read before that point counts);
//! - POST with `Mcp-Method` and a body (readable) whose operations are not exactly one, with
//!   that method, and with that name when `Mcp-Name` is sent (a method without a target never
//!   agrees with an `Mcp-Name`) → `invalid_mcp_operation`.
//!
//! A refused request may give any one of the reasons it breaks. serde_json checks three things
//! only in the values it builds, not in those it skips: `\u` escapes that leave a lone
//! surrogate, numbers beyond `f64`, nesting deeper than 127 arrays/objects. The rules do not
//! say which values a reader builds, so where these are the only problems the model takes
//! either outcome (accepted with its scopes, or refused as `malformed_mcp_body`); a method or a
//! target name with a lone surrogate is no string, and is refused.
//!
//! Otherwise the request is accepted and needs the layer's scope, the baseline, then per
//! operation in body order (for a request without a body: the one the headers name) the tool's
//! scopes for a listed `tools/call` name, else the method's scopes if listed, without repeats.
//!
//! Invariants:
//! - `required_scopes` accepts exactly what the model accepts, with the model's scopes, and
//!   refuses with `InvalidMcpRequest` and one of the reasons the model gives;
//! - through the layer (bound 256 bytes; whole or streamed body): a body over the bound gets
//!   413 and never reaches the application; one within it reaches the application byte for
//!   byte, or gets 400 exactly when `required_scopes` refuses (and so the model), with no
//!   `WWW-Authenticate` header and a JSON body with `error: "invalid_request"`, the same
//!   `reason`, and the refusal's own `error_description`.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::required_scopes;
use mcpauth::{
    AuthError, AuthErrorReason, AuthServer, AuthServerConfig, AuthServerType,
    AuthorizationServerMetadata, BearerAuthLayer, McpAuth, OperationScopes, ProtectedResource,
};
use mcpauth_fuzz::json_from_choices;
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const RESOURCE: &str = "http://127.0.0.1:3001/mcp";
const BOUND: usize = 256;
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const LAYER: &str = "layer";
const BASELINE: &str = "base";
const METHODS: [(&str, &[&str]); 6] = [
    ("tools/list", &["list"]),
    ("tools/call", &["call"]),
    ("resources/read", &["read"]),
    ("prompts/get", &["prompt"]),
    ("tasks/get", &["task"]),
    ("tasks/cancel", &["task", "cancel"]),
];
const TOOLS: [(&str, &[&str]); 3] = [
    ("create", &["create", "base"]),
    ("delete", &["delete"]),
    ("café", &["cafe"]),
];


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
                        LAYER, BASELINE, "adv", "list", "call", "read", "prompt", "task", "cancel",
                        "create", "delete", "cafe",
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

// ---------------------------------------------------------------------------------------------
// The JSON scanner: RFC 8259, keeping every member of every object in order.

/// A JSON string: its text, or `None` when an escape leaves a lone surrogate (no Unicode text).
type Text = Option<String>;

/// A JSON value as written, with nothing merged or dropped.
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number,
    String(Text),
    Array(Vec<Json>),
    Object(Vec<(Text, Json)>),
    /// Where the text stopped being JSON (a value that was cut short or never began).
    Cut,
}

/// What the scanner found.
struct Scan {
    /// The value; when the text is not JSON, the part read before the point where it stops
    /// being JSON (open arrays and objects hold what they held there, then `Cut`).
    value: Json,
    /// Whether the whole text is one JSON value with only whitespace around it.
    complete: bool,
    /// Whether something serde_json checks only in the values it builds occurs: a lone
    /// surrogate escape, a number beyond `f64`, nesting deeper than 127.
    open: bool,
}

/// serde_json's nesting limit: 127 arrays/objects inside each other are read, 128 are not.
const MAX_DEPTH: usize = 127;

enum Frame {
    Array(Vec<Json>),
    /// The members so far, and a key read whose value is not (yet).
    Object(Vec<(Text, Json)>, Option<Text>),
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    open: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), ()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(())
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ()> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let digits = self.text.get(self.at..self.at + 4).ok_or(())?;
        let mut value = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(()),
            };
            value = value * 16 + u32::from(v);
        }
        self.at += 4;
        Ok(value)
    }

    /// A string, the opening quote next.
    fn string(&mut self) -> Result<Text, ()> {
        self.eat(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        let mut lone = false;
        loop {
            let byte = self.peek().ok_or(())?;
            self.at += 1;
            match byte {
                b'"' => break,
                0x00..=0x1f => return Err(()),
                b'\\' => {
                    let escape = self.peek().ok_or(())?;
                    self.at += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4()?;
                            match unit {
                                0xd800..=0xdbff => {
                                    // A pair only when a low surrogate's escape follows at once.
                                    let save = self.at;
                                    let low = if self.literal(b"\\u").is_ok() {
                                        self.hex4().ok()
                                    } else {
                                        None
                                    };
                                    match low {
                                        Some(low @ 0xdc00..=0xdfff) => char::from_u32(
                                            0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00),
                                        )
                                        .ok_or(())?,
                                        _ => {
                                            self.at = save;
                                            lone = true;
                                            continue;
                                        }
                                    }
                                }
                                0xdc00..=0xdfff => {
                                    lone = true;
                                    continue;
                                }
                                _ => char::from_u32(unit).ok_or(())?,
                            }
                        }
                        _ => return Err(()),
                    };
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                _ => out.push(byte),
            }
        }
        if lone {
            self.open = true;
            return Ok(None);
        }
        // The text is UTF-8 and escapes add whole characters.
        String::from_utf8(out).map(Some).map_err(|_| ())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), ()> {
        let start = self.at;
        let _ = self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(()),
        }
        if self.eat(b'.').is_ok() && self.digits() == 0 {
            return Err(());
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(());
            }
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).map_err(|_| ())?;
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            self.open = true;
        }
        Ok(())
    }

    /// An object's key and its colon; the key is pending in the frame as soon as it is read.
    fn key(&mut self, stack: &mut [Frame]) -> Result<(), ()> {
        self.whitespace();
        let key = self.string()?;
        if let Some(Frame::Object(_, pending)) = stack.last_mut() {
            *pending = Some(key);
        }
        self.whitespace();
        self.eat(b':')
    }

    /// Scans one value and the whitespace after it; on an error, `stack` keeps what was open.
    fn scan(&mut self, stack: &mut Vec<Frame>) -> Result<Json, ()> {
        'value: loop {
            self.whitespace();
            let mut value = match self.peek().ok_or(())? {
                b'{' => {
                    self.at += 1;
                    stack.push(Frame::Object(Vec::new(), None));
                    self.open |= stack.len() > MAX_DEPTH;
                    self.whitespace();
                    if self.eat(b'}').is_ok() {
                        stack.pop();
                        Json::Object(Vec::new())
                    } else {
                        self.key(stack)?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.at += 1;
                    stack.push(Frame::Array(Vec::new()));
                    self.open |= stack.len() > MAX_DEPTH;
                    self.whitespace();
                    if self.eat(b']').is_ok() {
                        stack.pop();
                        Json::Array(Vec::new())
                    } else {
                        continue 'value;
                    }
                }
                b'"' => Json::String(self.string()?),
                b't' => self.literal(b"true").map(|()| Json::Bool)?,
                b'f' => self.literal(b"false").map(|()| Json::Bool)?,
                b'n' => self.literal(b"null").map(|()| Json::Null)?,
                b'-' | b'0'..=b'9' => self.number().map(|()| Json::Number)?,
                _ => return Err(()),
            };
            // A value is complete: put it in its container, and close those that end here.
            loop {
                self.whitespace();
                match stack.last_mut() {
                    // The caller checks that nothing follows.
                    None => return Ok(value),
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        if self.eat(b',').is_ok() {
                            continue 'value;
                        }
                        self.eat(b']')?;
                        let Some(Frame::Array(items)) = stack.pop() else {
                            unreachable!()
                        };
                        value = Json::Array(items);
                    }
                    Some(Frame::Object(members, pending)) => {
                        members.push((pending.take().ok_or(())?, value));
                        if self.eat(b',').is_ok() {
                            self.key(stack)?;
                            continue 'value;
                        }
                        self.eat(b'}')?;
                        let Some(Frame::Object(members, _)) = stack.pop() else {
                            unreachable!()
                        };
                        value = Json::Object(members);
                    }
                }
            }
        }
    }
}

fn scan(text: &[u8]) -> Scan {
    let mut scanner = Scanner {
        text,
        at: 0,
        open: false,
    };
    let mut stack = Vec::new();
    match scanner.scan(&mut stack) {
        Ok(value) => Scan {
            value,
            // Whitespace after the value is read already.
            complete: scanner.at == text.len(),
            open: scanner.open,
        },
        Err(()) => {
            // Close what was open, innermost first.
            let mut value = Json::Cut;
            while let Some(frame) = stack.pop() {
                value = match frame {
                    Frame::Array(mut items) => {
                        items.push(value);
                        Json::Array(items)
                    }
                    Frame::Object(mut members, pending) => {
                        if let Some(key) = pending {
                            members.push((key, value));
                        }
                        Json::Object(members)
                    }
                };
            }
            Scan {
                value,
                complete: false,
                open: scanner.open,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rules.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    Encoding,
    Operation,
    Malformed,
    Ambiguous,
}

impl Reason {
    fn of(reason: AuthErrorReason) -> Option<Self> {
        match reason {
            AuthErrorReason::UnsupportedContentEncoding => Some(Self::Encoding),
            AuthErrorReason::InvalidMcpOperation => Some(Self::Operation),
            AuthErrorReason::MalformedMcpBody => Some(Self::Malformed),
            AuthErrorReason::AmbiguousMcpBody => Some(Self::Ambiguous),
            _ => None,
        }
    }
}

/// An operation: a method and, for methods that act on a target, the target's name.
#[derive(Debug, Clone, PartialEq)]
struct Op {
    method: String,
    name: Option<String>,
}

/// What the model expects.
#[derive(Debug)]
struct Expected {
    /// The scopes, when the request may be accepted.
    accept: Option<Vec<String>>,
    /// The reasons it may be refused for (empty: it must be accepted).
    refuse: BTreeSet<Reason>,
}

const MEMBERS: [&str; 4] = ["jsonrpc", "method", "id", "params"];

/// The `params` member naming what `method` acts on.
fn target_member(method: &str) -> Option<&'static str> {
    Some(match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => return None,
    })
}

/// `key` as a case-insensitive reader sees it.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            '\u{131}' | '\u{130}' => 'i',
            c => c,
        })
        .collect()
}

/// Whether `key` is `member` in another case.
fn case_variant(key: &Text, member: &str) -> bool {
    key.as_deref()
        .is_some_and(|key| key != member && fold(key) == fold(member))
}

fn count(members: &[(Text, Json)], member: &str) -> usize {
    members
        .iter()
        .filter(|(key, _)| key.as_deref() == Some(member))
        .count()
}

fn get<'j>(members: &'j [(Text, Json)], member: &str) -> Option<&'j Json> {
    members
        .iter()
        .find(|(key, _)| key.as_deref() == Some(member))
        .map(|(_, value)| value)
}

/// What the model makes of a body.
struct BodyModel {
    /// Its operations in order, when no rule refuses it (open points aside).
    ops: Vec<Op>,
    /// The rules it breaks.
    broken: BTreeSet<Reason>,
    /// Whether serde_json's build-only checks apply somewhere (see the file's documentation).
    open: bool,
    /// A `params` holds `name`, `uri` or `taskId` twice where it names no target of its message
    /// (refused all the same: the rules refuse these members twice whatever the method).
    duplicate_other_target: bool,
}

/// One message (an object, perhaps cut short).
fn message(members: &[(Text, Json)], body: &mut BodyModel) -> Option<Op> {
    for member in MEMBERS {
        if count(members, member) > 1 {
            body.broken.insert(Reason::Ambiguous);
        }
    }
    if members
        .iter()
        .any(|(key, _)| MEMBERS.iter().any(|m| case_variant(key, m)))
    {
        body.broken.insert(Reason::Ambiguous);
    }
    let params = get(members, "params");
    let method = match get(members, "method") {
        None | Some(Json::Cut) => None,
        Some(Json::String(Some(method))) => Some(method.as_str()),
        Some(_) => {
            body.broken.insert(Reason::Malformed);
            None
        }
    };
    let target = method.and_then(target_member);
    if let Some(Json::Object(params)) = params {
        for other in ["name", "uri", "taskId"] {
            if Some(other) != target && count(params, other) > 1 {
                body.duplicate_other_target = true;
            }
        }
    }
    let method = method?;
    let Some(member) = target else {
        return Some(Op {
            method: method.to_owned(),
            name: None,
        });
    };
    let Some(Json::Object(params)) = params else {
        body.broken.insert(Reason::Malformed);
        return None;
    };
    if count(params, member) > 1 || params.iter().any(|(key, _)| case_variant(key, member)) {
        body.broken.insert(Reason::Ambiguous);
    }
    match get(params, member) {
        Some(Json::String(Some(name))) => Some(Op {
            method: method.to_owned(),
            name: Some(name.clone()),
        }),
        _ => {
            body.broken.insert(Reason::Malformed);
            None
        }
    }
}

/// A POST body.
fn read_body(bytes: &[u8]) -> BodyModel {
    let mut body = BodyModel {
        ops: Vec::new(),
        broken: BTreeSet::new(),
        open: false,
        duplicate_other_target: false,
    };
    // std's UTF-8 validation is the reference one (the crate's code is not involved).
    if std::str::from_utf8(bytes).is_err() || bytes.starts_with("\u{feff}".as_bytes()) {
        body.broken.insert(Reason::Malformed);
        return body;
    }
    let scan = scan(bytes);
    body.open = scan.open;
    if !scan.complete {
        body.broken.insert(Reason::Malformed);
    }
    let messages: Vec<&Vec<(Text, Json)>> = match &scan.value {
        Json::Object(members) => vec![members],
        Json::Array(items) => {
            if items.is_empty() {
                body.broken.insert(Reason::Malformed);
            }
            items
                .iter()
                .filter_map(|item| match item {
                    Json::Object(members) => Some(members),
                    Json::Cut => None,
                    _ => {
                        body.broken.insert(Reason::Malformed);
                        None
                    }
                })
                .collect()
        }
        _ => {
            body.broken.insert(Reason::Malformed);
            Vec::new()
        }
    };
    for members in messages {
        if let Some(op) = message(members, &mut body) {
            body.ops.push(op);
        }
    }
    body
}

/// Which header a line sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Method,
    Name,
    Encoding,
}

/// Canonical padded standard Base64 (RFC 4648 §4, padding required, unused bits zero).
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let sextet = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let quads = text.len() / 4;
    let mut out = Vec::new();
    for (i, quad) in text.chunks(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != quads) {
            return None;
        }
        let mut bits = 0u32;
        for &c in &quad[..4 - padding] {
            bits = bits << 6 | sextet(c)?;
        }
        bits <<= 6 * padding;
        let unused = match padding {
            0 => 0,
            1 => bits & 0xff,
            _ => bits & 0xffff,
        };
        if unused != 0 {
            return None;
        }
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - padding]);
    }
    Some(out)
}

/// What the `Mcp-Method` / `Mcp-Name` headers name, or `Err` when they cannot be used.
fn named_operation(headers: &[(Header, &[u8])]) -> Result<Option<Op>, ()> {
    let single = |wanted: Header| -> Result<Option<String>, ()> {
        let mut values = headers.iter().filter(|(h, _)| *h == wanted);
        let Some((_, value)) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some()
            || !value
                .iter()
                .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
        {
            return Err(());
        }
        String::from_utf8(value.to_vec()).map(Some).map_err(|_| ())
    };
    let method = single(Header::Method)?;
    let name = match single(Header::Name)? {
        Some(name) => {
            let (prefix, suffix) = ("=?base64?", "?=");
            if name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
            {
                let inner = &name.as_bytes()[prefix.len()..name.len() - suffix.len()];
                let decoded = base64_decode(inner).ok_or(())?;
                Some(String::from_utf8(decoded).map_err(|_| ())?)
            } else {
                Some(name)
            }
        }
        None => None,
    };
    match (method, name) {
        (None, Some(_)) => Err(()),
        (None, None) => Ok(None),
        (Some(method), name) => Ok(Some(Op { method, name })),
    }
}

fn is_identity(value: &[u8]) -> bool {
    value.split(|&b| b == b',').all(|item| {
        let start = item.iter().position(|&b| b != b' ' && b != b'\t');
        let end = item.iter().rposition(|&b| b != b' ' && b != b'\t');
        match (start, end) {
            (Some(s), Some(e)) => item[s..=e].eq_ignore_ascii_case(b"identity"),
            _ => false,
        }
    })
}

/// The scopes a request with these operations needs.
fn scopes_for(ops: &[Op]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    add(LAYER);
    add(BASELINE);
    for op in ops {
        let tool = (op.method == "tools/call")
            .then_some(op.name.as_deref())
            .flatten()
            .and_then(|name| TOOLS.iter().find(|(t, _)| *t == name));
        let method = METHODS.iter().find(|(m, _)| *m == op.method);
        for scope in tool.or(method).map_or(&[][..], |(_, s)| *s) {
            add(scope);
        }
    }
    scopes
}

/// The model: what a request with this method, these headers and this body may get.
fn model(post: bool, headers: &[(Header, &[u8])], body: &[u8]) -> Expected {
    let mut broken = BTreeSet::new();
    let mut open = false;
    let encoded = headers
        .iter()
        .any(|&(h, value)| h == Header::Encoding && !is_identity(value));
    if encoded {
        broken.insert(Reason::Encoding);
    }
    let named = named_operation(headers).unwrap_or_else(|()| {
        broken.insert(Reason::Operation);
        None
    });
    let ops = if post {
        let body = read_body(body);
        open = body.open;
        if body.duplicate_other_target {
            broken.insert(Reason::Ambiguous);
        }
        if let (true, Some(named)) = (body.broken.is_empty(), &named) {
            let agrees = matches!(&body.ops[..], [only] if only.method == named.method
                && (named.name.is_none() || named.name == only.name));
            if !agrees {
                broken.insert(Reason::Operation);
            }
        }
        broken.extend(body.broken);
        body.ops
    } else {
        if !body.is_empty() {
            broken.insert(Reason::Malformed);
        }
        named.into_iter().collect()
    };
    let mut refuse = broken.clone();
    if open {
        refuse.insert(Reason::Malformed);
    }
    Expected {
        accept: broken.is_empty().then(|| scopes_for(&ops)),
        refuse,
    }
}

// ---------------------------------------------------------------------------------------------
// The target.

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

/// The header lines up to the first empty one, and the body after it.
fn split_input(mut rest: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        if line.is_empty() {
            return (lines, after);
        }
        lines.push(line);
        rest = after;
    }
    (lines, &[])
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let method =
        [Method::POST, Method::GET, Method::DELETE, Method::PUT][usize::from(flags & 3)].clone();
    let (lines, body) = split_input(rest);
    let generated;
    let body = if flags & 8 != 0 {
        generated = json_from_choices(body);
        &generated[..]
    } else {
        body
    };
    let mut headers = HeaderMap::new();
    let mut sent: Vec<(Header, Vec<u8>)> = Vec::new();
    for line in lines {
        let (&selector, value) = line.split_first().expect("a line is not empty");
        let (header, name, value) = match selector {
            b'm' => (Header::Method, MCP_METHOD, value.to_vec()),
            b'n' => (Header::Name, MCP_NAME, value.to_vec()),
            b'b' => (
                Header::Name,
                MCP_NAME,
                format!("=?base64?{}?=", STANDARD.encode(value)).into_bytes(),
            ),
            b'e' => (Header::Encoding, CONTENT_ENCODING, value.to_vec()),
            _ => continue,
        };
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.append(name, v);
            sent.push((header, value));
        }
    }
    let view: Vec<(Header, &[u8])> = sent.iter().map(|(h, v)| (*h, v.as_slice())).collect();
    let expected = model(method == Method::POST, &view, body);

    let base = [LAYER.to_owned()];
    let direct = required_scopes(&setup.operations, &base, &method, &headers, body);
    let refusal = match &direct {
        Ok(scopes) => {
            assert_eq!(
                Some(scopes),
                expected.accept.as_ref(),
                "accepted with other scopes than the model's ({expected:?})"
            );
            None
        }
        Err(AuthError::InvalidMcpRequest { reason, detail }) => {
            let ours = Reason::of(*reason);
            assert!(
                ours.is_some_and(|r| expected.refuse.contains(&r)),
                "refused ({reason:?}: {detail}), the model expects {expected:?}"
            );
            assert!(!detail.is_empty());
            Some((*reason, detail.clone()))
        }
        Err(error) => panic!("not an MCP request error: {error:?}"),
    };

    let mut request = Request::builder().method(method).uri(RESOURCE);
    *request.headers_mut().expect("builder") = headers;
    let body_bytes = Bytes::copy_from_slice(body);
    let request_body = if flags & 4 != 0 {
        let chunk = usize::from(flags >> 4) + 1;
        let chunks: Vec<Result<Bytes, std::io::Error>> = body_bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        Body::from(body_bytes)
    };
    let request = request.body(request_body).expect("request");
    let service = setup.layer.layer(service_fn(echo));
    let response = setup
        .runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    let status = response.status();
    let reached = response.headers().contains_key("x-app");
    let challenged = response.headers().contains_key(WWW_AUTHENTICATE);
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
        assert!(!challenged);
    } else if let Some((reason, detail)) = refusal {
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(!reached, "a refused request reached the application");
        assert!(!challenged, "a refusal of the request's content challenged");
        let json: Value = serde_json::from_slice(&answer).expect("a JSON error body");
        assert_eq!(json["error"], "invalid_request");
        assert_eq!(json["reason"], reason.as_str());
        assert_eq!(json["error_description"], detail.as_str());
    } else {
        assert_eq!(status, StatusCode::OK, "{answer:?}");
        assert!(reached);
        assert_eq!(
            &answer[..],
            body,
            "the body changed on its way to the application"
        );
    }
});
