//! Request parameters, read strictly: a query string or a form body whose names each appear at
//! most once (RFC 6749 §3.1, §3.2). A repeated parameter is ambiguous — two readers could take
//! different copies — so the request is refused.

use std::collections::HashMap;

/// The parameters of a query string or an `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

/// The first parameter that appeared twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the parameter `{0}` appears more than once")]
pub(crate) struct Repeated(pub(crate) String);

impl Params {
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, Repeated> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw) {
            if map.contains_key(name.as_ref()) {
                return Err(Repeated(name.into_owned()));
            }
            map.insert(name.into_owned(), value.into_owned());
        }
        Ok(Self(map))
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_refused_and_empty_values_are_absent() {
        let params = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        assert_eq!(Params::parse(b"a=1&a=1").unwrap_err(), Repeated("a".into()));
    }
}
