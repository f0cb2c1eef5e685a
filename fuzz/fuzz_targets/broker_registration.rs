//! Dynamic client registration bodies (RFC 7591): `validate_registration`, which `POST
//! {P}/register` runs on the JSON it receives.
//!
//! Input: the request body.
//!
//! Invariants (rules restated in `mcpauth_fuzz::broker::check_client_record` and here):
//! - no panic; a refusal is `invalid_redirect_uri` or `invalid_client_metadata`;
//! - only a JSON object registers, and the record is a public client: no secret anywhere in it,
//!   `token_endpoint_auth_method` absent or `none`; `grant_types` absent or within
//!   `authorization_code` and `refresh_token` and including `authorization_code`;
//!   `response_types` absent or only `code`; the optional string members (`tos_uri`,
//!   `policy_uri`, `jwks_uri`, `software_id`, `software_version`) strings, `contacts` strings;
//! - redirect URIs valid by reference §5 and kept in order without repeats; `application_type`
//!   `native` when absent, `web` only with https non-loopback redirect URIs; `client_name`,
//!   `client_uri`, `logo_uri` and `scope` as the shared rules say; source `registered`, no
//!   client id yet (the endpoint issues one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::registration;
use mcpauth_fuzz::broker::{DefaultApplicationType, check_client_record, string_list};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let record = match registration(data) {
        Ok(record) => record,
        Err((code, _)) => {
            assert!(
                matches!(code, "invalid_redirect_uri" | "invalid_client_metadata"),
                "{code}"
            );
            return;
        }
    };
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(data) else {
        panic!("a body that is no JSON object registered");
    };
    match members.get("token_endpoint_auth_method") {
        None => {}
        Some(method) => assert_eq!(method, "none", "a confidential client registered"),
    }
    if let Some(grant_types) = string_list(&members, "grant_types") {
        assert!(
            grant_types.contains(&"authorization_code")
                && grant_types
                    .iter()
                    .all(|g| matches!(*g, "authorization_code" | "refresh_token")),
            "{grant_types:?}"
        );
    }
    if let Some(response_types) = string_list(&members, "response_types") {
        assert!(
            !response_types.is_empty() && response_types.iter().all(|r| *r == "code"),
            "{response_types:?}"
        );
    }
    for name in [
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "software_id",
        "software_version",
    ] {
        assert!(
            members.get(name).is_none_or(Value::is_string),
            "{name} is no string"
        );
    }
    string_list(&members, "contacts");
    check_client_record(&members, &record, DefaultApplicationType::Native);
    assert_eq!(record["source"], "registered");
    assert_eq!(record["client_id"], "", "the endpoint issues the client id");
});
