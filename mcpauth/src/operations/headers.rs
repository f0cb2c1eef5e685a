//! The MCP 2026-07-28 routing headers: `Mcp-Method` and `Mcp-Name`.
//!
//! Clients wrap an `Mcp-Name` that cannot travel as a plain header value (non-ASCII, edge
//! spaces) as `=?base64?<standard Base64 of the UTF-8 text>?=`; it is unwrapped before it is
//! compared with the body.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

const MCP_METHOD: &str = "mcp-method";
const MCP_NAME: &str = "mcp-name";
const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// What the headers name, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderOperation<'h> {
    pub(crate) method: &'h str,
    pub(crate) name: Option<Cow<'h, str>>,
}

/// Why the headers cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderError(pub(crate) String);

/// The single value of `name`, as visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, HeaderError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderError(format!("The {name} header is repeated.")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| HeaderError(format!("The {name} header is not visible ASCII.")))
}

/// `value` with a Base64 wrapper removed.
fn unwrap_name(value: &str) -> Result<Cow<'_, str>, HeaderError> {
    let Some(inner) = value
        .strip_prefix(BASE64_PREFIX)
        .and_then(|rest| rest.strip_suffix(BASE64_SUFFIX))
    else {
        return Ok(Cow::Borrowed(value));
    };
    let bytes = STANDARD
        .decode(inner)
        .map_err(|_| HeaderError("The Mcp-Name header's Base64 is malformed.".into()))?;
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| HeaderError("The Mcp-Name header's Base64 is not UTF-8 text.".into()))
}

/// The operation the headers name: `None` without `Mcp-Method`; an `Mcp-Name` needs one.
pub(crate) fn header_operation(
    headers: &HeaderMap,
) -> Result<Option<HeaderOperation<'_>>, HeaderError> {
    let method = single(headers, MCP_METHOD)?;
    let name = single(headers, MCP_NAME)?.map(unwrap_name).transpose()?;
    match method {
        Some(method) => Ok(Some(HeaderOperation { method, name })),
        None if name.is_some() => Err(HeaderError(
            "The Mcp-Name header needs an Mcp-Method header.".into(),
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn names_are_unwrapped_from_base64() {
        let wrapped = format!("=?base64?{}?=", STANDARD.encode(" café "));
        let map = headers(&[("mcp-method", "tools/call"), ("mcp-name", &wrapped)]);
        let operation = header_operation(&map).unwrap().unwrap();
        assert_eq!(operation.method, "tools/call");
        assert_eq!(operation.name.as_deref(), Some(" café "));
        let plain = headers(&[("mcp-method", "tasks/get"), ("mcp-name", "task-1")]);
        assert_eq!(
            header_operation(&plain).unwrap().unwrap().name.as_deref(),
            Some("task-1")
        );
    }

    #[test]
    fn unusable_headers_are_refused() {
        for map in [
            headers(&[("mcp-name", "x")]),
            headers(&[("mcp-method", "a"), ("mcp-method", "a")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?***?=")]),
            headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?/w==?="),
            ]),
        ] {
            assert!(header_operation(&map).is_err(), "{map:?}");
        }
        assert_eq!(header_operation(&HeaderMap::new()), Ok(None));
    }
}
