//! What the fuzz targets share: a strict parser for the `WWW-Authenticate` values the crate
//! writes (RFC 7235 §2.1 / §4.1 with RFC 6750 §3's `error_description` character set), the
//! RFC 6750 `b64token` grammar, a way to cut one input into several fields, and a generator of
//! JSON-RPC-shaped JSON texts from choice bytes.
//!
//! Written from the RFCs' ABNF, independently of the crate's own code, so that a target checks
//! the crate against the grammar rather than against itself.

pub mod broker;

/// The protected resource of the targets that run the real layer, and of the seed tokens.
pub const RESOURCE: &str = "http://127.0.0.1:3001/notes";
/// Its RFC 9728 metadata URL.
pub const PRM_URL: &str = "http://127.0.0.1:3001/.well-known/oauth-protected-resource/notes";
/// How long seed tokens stay valid (the corpus outlives a fuzzing campaign).
pub const SEED_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// One auth-param of a challenge: its name, the value unescaped, and the value as sent (without
/// the quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name.
    pub name: String,
    /// The quoted-string's content with its quoted-pairs resolved.
    pub value: String,
    /// The quoted-string's content as sent.
    pub raw: String,
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 7230 `qdtext` (without obs-text, which the crate never writes).
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// RFC 6750 §3: `error_description` = `*( %x20-21 / %x23-5B / %x5D-7E )`.
pub fn is_rfc6750_text(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == 0x20 || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parses a challenge the crate writes, strictly:
///
/// ```text
/// challenge   = "Bearer" [ SP auth-param *( "," SP auth-param ) ]
/// auth-param  = token "=" quoted-string
/// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
/// quoted-pair = "\" ( HTAB / SP / VCHAR )
/// ```
///
/// (RFC 7235 allows more whitespace and token-form values; the crate writes only this form.)
/// Every byte must be visible ASCII or SP. Names must be unique, and `error_description` must
/// keep to the RFC 6750 characters without quoted-pairs.
pub fn parse_challenge(value: &[u8]) -> Result<Vec<Param>, String> {
    if let Some(b) = value.iter().find(|&&b| !(0x20..=0x7e).contains(&b)) {
        return Err(format!("byte {b:#04x} is not visible ASCII or SP"));
    }
    let rest = value
        .strip_prefix(b"Bearer")
        .ok_or("the scheme is not Bearer")?;
    let mut params = Vec::new();
    if rest.is_empty() {
        return Ok(params);
    }
    let mut rest = rest.strip_prefix(b" ").ok_or("no SP after the scheme")?;
    loop {
        let name_len = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name_len == 0 {
            return Err("an auth-param has no name".into());
        }
        let name = &rest[..name_len];
        rest = rest[name_len..]
            .strip_prefix(b"=\"")
            .ok_or("an auth-param is not name=\"…\"")?;
        let mut raw = Vec::new();
        let mut unescaped = Vec::new();
        loop {
            match rest.split_first() {
                None => return Err("a quoted-string is not closed".into()),
                Some((b'"', after)) => {
                    rest = after;
                    break;
                }
                Some((b'\\', after)) => {
                    let (&c, after) = after.split_first().ok_or("a dangling backslash")?;
                    if !(c == b'\t' || (0x20..=0x7e).contains(&c)) {
                        return Err("a quoted-pair escapes a control character".into());
                    }
                    raw.extend_from_slice(&[b'\\', c]);
                    unescaped.push(c);
                    rest = after;
                }
                Some((&c, after)) if is_qdtext(c) => {
                    raw.push(c);
                    unescaped.push(c);
                    rest = after;
                }
                Some((c, _)) => return Err(format!("byte {c:#04x} in a quoted-string")),
            }
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if params.iter().any(|p: &Param| p.name == name) {
            return Err(format!("the parameter {name} is repeated"));
        }
        let param = Param {
            value: String::from_utf8_lossy(&unescaped).into_owned(),
            raw: String::from_utf8_lossy(&raw).into_owned(),
            name,
        };
        if param.name == "error_description"
            && (param.raw != param.value || !is_rfc6750_text(&param.value))
        {
            return Err("error_description leaves the RFC 6750 character set".into());
        }
        params.push(param);
        if rest.is_empty() {
            return Ok(params);
        }
        rest = rest
            .strip_prefix(b", ")
            .ok_or("auth-params not separated by \", \"")?;
    }
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(token: &[u8]) -> bool {
    let body_len = token
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
        .count();
    body_len > 0 && token[body_len..].iter().all(|&b| b == b'=')
}

/// Cuts `data` into `n` fields at the first `n - 1` occurrences of `separator` (missing fields
/// are empty).
pub fn fields(data: &[u8], separator: u8, n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |&b| b == separator).collect();
    out.resize(n, &[]);
    out
}

/// What the crate writes for a value it puts in a quoted-string (besides
/// `error_description`): `"` and `\` escaped, anything outside printable ASCII as `?`. Given
/// here unescaped, as a parser reads it back.
pub fn quoted_model(value: &str) -> String {
    value
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// What the crate writes for an `error_description`: `"` → `'`, `\` → `/`, anything outside
/// printable ASCII → `?`.
pub fn description_model(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// The metadata targets' invariant for a document type `T`: a parsed document re-serializes
/// and re-parses to an equal value, and the re-serialization is the input document minus
/// `null` members (which the type reads as absent): nothing invented, nothing else dropped.
pub fn check_round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let Ok(parsed) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let input: serde_json::Value =
        serde_json::from_slice(data).expect("a document the type parses is JSON");
    let written = serde_json::to_vec(&parsed).expect("a parsed document serializes");
    let again: T = serde_json::from_slice(&written).expect("a re-serialized document parses");
    assert_eq!(again, parsed, "the document changed in a round trip");
    let written: serde_json::Value = serde_json::from_slice(&written).expect("JSON");
    let (Some(input), Some(written)) = (input.as_object(), written.as_object()) else {
        panic!("a document that is not an object: {input}");
    };
    for (name, value) in written {
        assert_eq!(
            input.get(name),
            Some(value),
            "member {name:?} invented or changed"
        );
    }
    for (name, value) in input {
        if !value.is_null() {
            assert_eq!(
                written.get(name),
                Some(value),
                "member {name:?} dropped or changed"
            );
        }
    }
}

/// The JSON body of a refusal response (ready at once: the crate builds it whole).
pub fn body_json(response: http::Response<axum::body::Body>) -> serde_json::Value {
    let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
        response.into_body(),
        usize::MAX,
    ))
    .expect("a full body is ready at once")
    .expect("body");
    serde_json::from_slice(&body).expect("the refusal body is JSON")
}

/// Object keys the JSON generator writes (as they appear between the quotes): the JSON-RPC and
/// MCP members, and spellings a case-insensitive reader would take for them.
pub const JSON_KEYS: [&str; 26] = [
    "jsonrpc",
    "method",
    "id",
    "params",
    "name",
    "uri",
    "taskId",
    "arguments",
    "result",
    "error",
    "Method",
    "METHOD",
    "Params",
    "param\u{17f}",
    "\u{131}d",
    "\u{130}D",
    "JSONRPC",
    "NAME",
    "Name",
    "URI",
    "taskid",
    "ta\u{17f}kId",
    "tas\u{212a}Id",
    "n\\u0061me",
    "meth\\u006Fd",
    "",
];

/// String values the JSON generator writes (as they appear between the quotes).
pub const JSON_STRINGS: [&str; 24] = [
    "2.0",
    "tools/call",
    "tools/list",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "ping",
    "initialize",
    "create",
    "delete",
    "caf\u{e9}",
    "caf\\u00e9",
    "tools\\/call",
    "file:///a",
    "t-1",
    "\\ud800",
    "\\udc00x",
    "\\ud83d\\ude00",
    " create",
    "",
];

/// Numbers the JSON generator writes.
pub const JSON_NUMBERS: [&str; 7] = [
    "0",
    "1",
    "-1",
    "2.5e3",
    "-0",
    "1e400",
    "123456789012345678901234567890",
];

/// Characters a generated raw string may hold besides printable ASCII.
const JSON_NON_ASCII: [char; 7] = [
    '\u{17f}',
    '\u{212a}',
    '\u{131}',
    '\u{130}',
    '\u{e9}',
    '\u{feff}',
    '\u{10000}',
];

/// Writes one JSON text chosen by `choices`, always well-formed: each value is chosen by one
/// byte (`% 8`: 0 and 7 an object of `next % 5` members, each a key of [`JSON_KEYS`] chosen by
/// the next byte and a value; 1 an array of `next % 4` values; 2 a string of [`JSON_STRINGS`];
/// 3 a string of [`JSON_KEYS`]; 4 a number of [`JSON_NUMBERS`]; 5 `true`, `false` or `null`;
/// 6 a string of `next % 8` characters, each from a byte: printable ASCII as itself (`"` and
/// `\` escaped as `\u00XX`), controls escaped, others one of a few non-ASCII characters).
/// Past the choices every byte is 0, so the text ends in empty objects; below five levels
/// only scalars are chosen.
pub fn json_from_choices(choices: &[u8]) -> Vec<u8> {
    struct Writer<'a> {
        choices: std::slice::Iter<'a, u8>,
        out: Vec<u8>,
    }
    impl Writer<'_> {
        fn next(&mut self) -> u8 {
            self.choices.next().copied().unwrap_or(0)
        }
        fn pick<'t>(&mut self, table: &[&'t str]) -> &'t str {
            table[usize::from(self.next()) % table.len()]
        }
        fn quoted(&mut self, text: &str) {
            self.out.push(b'"');
            self.out.extend_from_slice(text.as_bytes());
            self.out.push(b'"');
        }
        fn value(&mut self, depth: usize) {
            let choice = self.next() % 8;
            let choice = if depth >= 5 && matches!(choice, 0 | 1 | 7) {
                2
            } else {
                choice
            };
            match choice {
                0 | 7 => {
                    self.out.push(b'{');
                    for i in 0..self.next() % 5 {
                        if i > 0 {
                            self.out.push(b',');
                        }
                        let key = self.pick(&JSON_KEYS);
                        self.quoted(key);
                        self.out.push(b':');
                        self.value(depth + 1);
                    }
                    self.out.push(b'}');
                }
                1 => {
                    self.out.push(b'[');
                    for i in 0..self.next() % 4 {
                        if i > 0 {
                            self.out.push(b',');
                        }
                        self.value(depth + 1);
                    }
                    self.out.push(b']');
                }
                2 => {
                    let text = self.pick(&JSON_STRINGS);
                    self.quoted(text);
                }
                3 => {
                    let text = self.pick(&JSON_KEYS);
                    self.quoted(text);
                }
                4 => {
                    let text = self.pick(&JSON_NUMBERS);
                    self.out.extend_from_slice(text.as_bytes());
                }
                5 => {
                    let text = self.pick(&["true", "false", "null"]);
                    self.out.extend_from_slice(text.as_bytes());
                }
                _ => {
                    let mut text = String::new();
                    for _ in 0..self.next() % 8 {
                        match self.next() {
                            b @ (0x00..=0x1f | b'"' | b'\\') => {
                                text.push_str(&format!("\\u{b:04X}"));
                            }
                            b @ 0x20..=0x7e => text.push(char::from(b)),
                            b => text.push(JSON_NON_ASCII[usize::from(b) % JSON_NON_ASCII.len()]),
                        }
                    }
                    self.quoted(&text);
                }
            }
        }
    }
    let mut writer = Writer {
        choices: choices.iter(),
        out: Vec::new(),
    };
    writer.value(0);
    writer.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_parser_reads_what_the_rfcs_allow_and_nothing_else() {
        let params = parse_challenge(br#"Bearer error="invalid_token", realm="a\"b\\c""#).unwrap();
        assert_eq!(params[1].value, r#"a"b\c"#);
        assert!(parse_challenge(b"Bearer").unwrap().is_empty());
        for bad in [
            &b"Basic realm=\"x\""[..],
            b"Bearer ",
            b"Bearer a=b",
            b"Bearer a=\"b\",c=\"d\"",
            b"Bearer a=\"b",
            b"Bearer a=\"b\\\"",
            b"Bearer a=\"b\", a=\"c\"",
            b"Bearer a=\"\xc3\xa9\"",
            b"Bearer error_description=\"a\\\"b\"",
        ] {
            assert!(
                parse_challenge(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(is_b64token(b"abc.def-_~+/=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
    }

    #[test]
    fn generated_json_is_well_formed() {
        assert_eq!(json_from_choices(b""), b"{}");
        let text = json_from_choices(&[0, 2, 1, 2, 1, 3, 0, 1, 4, 2, 12]);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"method":"tools/call","params":{"name":"create"}}"#
        );
        let mut choices = Vec::new();
        for seed in 0u32..2000 {
            choices.clear();
            let mut x = seed.wrapping_mul(2_654_435_761);
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                choices.push(x.to_le_bytes()[0]);
            }
            let text = json_from_choices(&choices);
            serde_json::from_slice::<serde::de::IgnoredAny>(&text)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
        }
    }
}
