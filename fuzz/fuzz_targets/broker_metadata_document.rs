//! Client ID metadata documents (CIMD): `parse_document_url` on the client id, then
//! `validate_metadata_document` on the document fetched from it, as the broker's fetcher runs
//! them.
//!
//! Input: one flag byte, the client id up to the first `\n`, then the document. Flag bit 0:
//! when the document is a JSON object, its `client_id` is set to the client id first (so the
//! rest of the document is reached); bit 1: the client id is put into the document's
//! `client_id` with a change (one character dropped, or `/` appended), which must be refused.
//!
//! Invariants:
//! - no panic;
//! - a client id passes the URL check only when it breaks no rule of CIMD §3
//!   (`mcpauth_fuzz::broker::document_url_violation`), and every one that breaks none passes;
//! - a document is accepted only when it is a JSON object whose `client_id` is the client id,
//!   byte for byte; without `client_secret` or `client_secret_expires_at`;
//!   `token_endpoint_auth_method` absent or `none`; no private member (`d`, `p`, `q`, `dp`,
//!   `dq`, `qi`, `oth`, `k`) in any key of `jwks`, which is a set with a `keys` array; a
//!   non-blank `client_name`; `tos_uri`, `policy_uri`, `jwks_uri` https; `grant_types`
//!   including `authorization_code` and `response_types` including `code` when present;
//! - the record is the client id's, from a metadata document, and follows the shared client
//!   rules (`check_client_record`; without `application_type`, `web` exactly when every
//!   redirect URI is https on a non-loopback host).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::{document_url, metadata_document};
use mcpauth_fuzz::broker::{
    DefaultApplicationType, check_client_record, document_url_violation, is_https_url, string_list,
};
use serde_json::Value;

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(client_id) = std::str::from_utf8(&rest[..newline]) else {
        return;
    };
    let mut body = rest[newline + 1..].to_vec();

    let url = document_url(client_id);
    let violation = document_url_violation(client_id);
    assert_eq!(
        url.is_ok(),
        violation.is_none(),
        "{client_id:?}: {url:?} / {violation:?}"
    );

    if flags & 3 != 0
        && let Ok(Value::Object(mut members)) = serde_json::from_slice::<Value>(&body)
    {
        let id = if flags & 2 != 0 {
            let mut changed = client_id.to_owned();
            if changed.pop().is_none() || flags & 4 != 0 {
                changed = format!("{client_id}/");
            }
            changed
        } else {
            client_id.to_owned()
        };
        members.insert("client_id".into(), id.into());
        body = serde_json::to_vec(&members).expect("a JSON object serializes");
    }
    let Ok(record) = metadata_document(client_id, &body) else {
        return;
    };
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(&body) else {
        panic!("a document that is no JSON object was accepted");
    };
    assert_eq!(
        members.get("client_id").and_then(Value::as_str),
        Some(client_id),
        "client_id differs from the URL"
    );
    for secret in ["client_secret", "client_secret_expires_at"] {
        assert!(
            !members.contains_key(secret),
            "a document with {secret} was accepted"
        );
    }
    match members.get("token_endpoint_auth_method") {
        None => {}
        Some(method) => assert_eq!(method, "none"),
    }
    if let Some(jwks) = members.get("jwks") {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .expect("jwks has a keys array");
        for key in keys {
            let key = key.as_object().expect("a JWK is an object");
            for member in PRIVATE_MEMBERS {
                assert!(
                    !key.contains_key(member),
                    "a private JWK member {member:?} was accepted"
                );
            }
        }
    }
    let name = members
        .get("client_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        !name.trim().is_empty(),
        "a document without a client_name was accepted"
    );
    for member in ["tos_uri", "policy_uri", "jwks_uri"] {
        if let Some(uri) = members.get(member) {
            assert!(
                uri.as_str().is_some_and(is_https_url),
                "{member} {uri} is not https"
            );
        }
    }
    for (list, needed) in [
        ("grant_types", "authorization_code"),
        ("response_types", "code"),
    ] {
        if let Some(values) = string_list(&members, list) {
            assert!(
                values.contains(&needed),
                "{list} {values:?} without {needed}"
            );
        }
    }
    check_client_record(&members, &record, DefaultApplicationType::FromRedirectUris);
    assert_eq!(record["source"], "metadata_document");
    assert_eq!(record["client_id"], client_id);
});
