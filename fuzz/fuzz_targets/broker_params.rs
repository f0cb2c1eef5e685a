//! The broker's request parameters (`Params::parse` and `get`): the query string of
//! `/authorize` and the form bodies of `/token`, `/consent` and `/revoke`.
//!
//! Input: the raw query string or form body.
//!
//! Invariants, against an independent `application/x-www-form-urlencoded` reader
//! (`mcpauth_fuzz::broker::form_pairs`, WHATWG URL §5.1):
//! - a parameter name that appears more than once (after decoding) is refused, naming the
//!   first name seen a second time; nothing else is refused;
//! - otherwise each parameter reads as its decoded value, an empty value as absent (RFC 6749
//!   §3.1), and a name not sent as absent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::params;
use mcpauth_fuzz::broker::{first_repeated, form_pairs};

/// Names of the broker's endpoints, probed whether sent or not.
const NAMES: [&str; 8] = [
    "client_id",
    "redirect_uri",
    "code",
    "code_verifier",
    "grant_type",
    "state",
    "",
    "\u{fffd}",
];

fuzz_target!(|data: &[u8]| {
    let pairs = form_pairs(data);
    let result = params(data);
    if let Some(repeated) = first_repeated(&pairs) {
        assert_eq!(result.err().as_deref(), Some(repeated), "{pairs:?}");
        return;
    }
    let parsed = result.unwrap_or_else(|e| panic!("refused for {e:?} without a repeat: {pairs:?}"));
    for (name, value) in &pairs {
        let expected = (!value.is_empty()).then_some(value.as_str());
        assert_eq!(parsed.get(name), expected, "{name:?} in {pairs:?}");
    }
    for name in NAMES {
        if !pairs.iter().any(|(n, _)| n == name) {
            assert_eq!(parsed.get(name), None, "{name:?} was not sent");
        }
    }
});
