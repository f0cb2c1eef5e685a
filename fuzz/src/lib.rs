//! What the fuzz targets share: a strict parser for the `WWW-Authenticate` values the crate
//! writes (RFC 7235 §2.1 / §4.1 with RFC 6750 §3's `error_description` character set), the
//! RFC 6750 `b64token` grammar, and a way to cut one input into several fields.
//!
//! Written from the RFCs' ABNF, independently of the crate's own code, so that a target checks
//! the crate against the grammar rather than against itself.

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
