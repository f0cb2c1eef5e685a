//! The `WWW-Authenticate` value builder (`challenge::bearer_challenge`) and the refusal
//! responses built on it (`Challenges::new` + `Challenges::response`), with arbitrary text
//! (any Unicode) as description, scopes, metadata URL and error detail.
//!
//! Input: a flags byte (bits 0–3: which of `error`, `error_description`, `resource_metadata`,
//! `scope` are given; bit 4: details shown; bits 5–7: the kind of refusal, see `refusal`), then
//! four fields separated by NUL: description, scopes (space-separated), metadata URL, detail
//! (for an `insufficient_scope` refusal, the required scopes, space-separated).
//!
//! Invariants, checked with a strict parser written from RFC 7235 §2.1 / §4.1 and RFC 6750 §3
//! (`mcpauth_fuzz::parse_challenge`):
//! - every value is visible ASCII and SP only, `Bearer` followed by comma-separated
//!   `name="quoted-string"` auth-params, each name once, `error_description` within the RFC
//!   6750 characters and without quoted-pairs;
//! - exactly the parameters given come out, in order, and each reads back (unescaped) as its
//!   input with characters outside printable ASCII as `?` (`error_description`: `"` as `'` and
//!   `\` as `/` too): no input can end a quoted-string early or add a parameter;
//! - an input containing `"` or `\` never appears as sent: it is escaped (or, in
//!   `error_description`, replaced);
//! - a refusal's challenge has the parameters its kind needs (RFC 6750 §3, RFC 9728 §5.1, the
//!   design's table), the `error` code of the refusal, the specific description only when
//!   details are shown and otherwise the generic sentence, which (like the challenge) is the
//!   same whatever the detail; no challenge for 413 / 503 / 500; the JSON body carries the same
//!   description.
#![no_main]

use std::time::Duration;

use axum::body::Body;
use http::Response;
use http::header::WWW_AUTHENTICATE;
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::{bearer_challenge, challenge_response};
use mcpauth::{AuthError, AuthErrorReason};
use mcpauth_fuzz::{
    Param, body_json, description_model, fields, is_rfc6750_text, parse_challenge, quoted_model,
};

fn checked(value: &[u8]) -> Vec<Param> {
    parse_challenge(value).unwrap_or_else(|why| {
        panic!(
            "an invalid challenge ({why}): {:?}",
            String::from_utf8_lossy(value)
        )
    })
}

/// Checks one parameter against what went in.
fn check_param(param: &Param, name: &str, input: &str) {
    assert_eq!(param.name, name);
    if name == "error_description" {
        assert_eq!(
            param.value,
            description_model(input),
            "error_description does not read back"
        );
    } else {
        assert_eq!(
            param.value,
            quoted_model(input),
            "{name} does not read back"
        );
    }
    if input.contains(['"', '\\']) {
        assert_ne!(
            param.raw, input,
            "{name}: an input with a quote or backslash sent unescaped"
        );
    }
}

fn body_description(response: Response<Body>) -> String {
    body_json(response)["error_description"]
        .as_str()
        .expect("error_description")
        .to_owned()
}

/// The refusal of kind `kind` (0–7) with `detail` (for `insufficient_scope`, the required
/// scopes, space-separated; the first half of them missing).
fn refusal(kind: u8, detail: &str) -> AuthError {
    match kind {
        0 => AuthError::MissingCredentials,
        1 => AuthError::InvalidRequest {
            reason: AuthErrorReason::MalformedAuthorizationHeader,
            detail: detail.to_owned(),
        },
        2 => AuthError::InvalidToken {
            reason: AuthErrorReason::InvalidSignature,
            detail: detail.to_owned(),
        },
        3 => AuthError::BodyTooLarge {
            limit: detail.len(),
        },
        4 | 5 => {
            let required: Vec<String> = detail
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let missing = required[..required.len() / 2].to_vec();
            AuthError::InsufficientScope { required, missing }
        }
        6 => AuthError::Unavailable {
            reason: AuthErrorReason::KeysUnavailable,
            detail: detail.to_owned(),
            retry_after: Duration::from_secs(3),
        },
        _ => AuthError::ServerError {
            reason: AuthErrorReason::MissingJwksUri,
            detail: detail.to_owned(),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let [description, scope, url, detail] = fields(rest, 0, 4)[..] else {
        return;
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let (description, scope, url, detail) =
        (text(description), text(scope), text(url), text(detail));

    // The builder alone.
    let given = [
        ("error", (flags & 1 != 0).then_some("invalid_token")),
        (
            "error_description",
            (flags & 2 != 0).then_some(description.as_str()),
        ),
        (
            "resource_metadata",
            (flags & 4 != 0).then_some(url.as_str()),
        ),
        ("scope", (flags & 8 != 0).then_some(scope.as_str())),
    ];
    let params = checked(bearer_challenge(&given).as_bytes());
    let present: Vec<(&str, &str)> = given
        .iter()
        .filter_map(|(n, v)| Some((*n, (*v)?)))
        .collect();
    assert_eq!(params.len(), present.len(), "parameters added or lost");
    for (param, (name, input)) in params.iter().zip(&present) {
        check_param(param, name, input);
    }

    // A refusal response of a route with these scopes and metadata URL.
    let show_details = flags & 16 != 0;
    let route_scopes: Vec<String> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let kind = flags >> 5;
    let error = refusal(kind, &detail);
    // With details hidden, nothing of the detail may show: the description is the one a fixed
    // detail gets, and so is the challenge (built once per route; `insufficient_scope` names the
    // scopes the request needed, which come with the detail here).
    let fixed = challenge_response(&url, &route_scopes, false, &refusal(kind, "a fixed detail"));
    let quiet = challenge_response(&url, &route_scopes, false, &error);
    if !matches!(error, AuthError::InsufficientScope { .. }) {
        assert_eq!(
            quiet.headers().get(WWW_AUTHENTICATE),
            fixed.headers().get(WWW_AUTHENTICATE),
            "the challenge depends on the detail"
        );
    }
    let generic = body_description(fixed);
    assert!(is_rfc6750_text(&generic));
    assert_eq!(
        body_description(quiet),
        generic,
        "the description depends on the detail with details hidden"
    );
    let specific = match &error {
        AuthError::InsufficientScope { missing, .. } => {
            format!("The access token lacks the scopes: {}.", missing.join(" "))
        }
        AuthError::BodyTooLarge { limit } => {
            format!("The request body is larger than {limit} bytes.")
        }
        AuthError::InvalidRequest { detail, .. }
        | AuthError::InvalidToken { detail, .. }
        | AuthError::Unavailable { detail, .. }
        | AuthError::ServerError { detail, .. } => detail.clone(),
        _ => String::new(),
    };
    let description = if show_details && !specific.is_empty() {
        specific
    } else {
        generic.clone()
    };
    let response = challenge_response(&url, &route_scopes, show_details, &error);
    assert_eq!(response.status(), error.status());
    let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
    let route_scope = route_scopes.join(" ");
    let expected: Vec<(&str, String)> = match &error {
        AuthError::MissingCredentials => {
            let mut p = vec![("resource_metadata", url.clone())];
            if !route_scopes.is_empty() {
                p.push(("scope", route_scope.clone()));
            }
            p
        }
        AuthError::InvalidRequest { .. } => vec![
            ("error", "invalid_request".into()),
            ("error_description", description.clone()),
            ("resource_metadata", url.clone()),
        ],
        AuthError::InvalidToken { .. } => {
            let mut p = vec![
                ("error", "invalid_token".into()),
                ("error_description", description.clone()),
                ("resource_metadata", url.clone()),
            ];
            if !route_scopes.is_empty() {
                p.push(("scope", route_scope.clone()));
            }
            p
        }
        AuthError::InsufficientScope { required, .. } => vec![
            ("error", "insufficient_scope".into()),
            ("error_description", description.clone()),
            ("resource_metadata", url.clone()),
            ("scope", required.join(" ")),
        ],
        _ => {
            assert!(challenge.is_none(), "a challenge for {error:?}");
            Vec::new()
        }
    };
    if let Some(challenge) = challenge {
        let params = checked(challenge.as_bytes());
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let wanted: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, wanted, "the challenge's parameters");
        for (param, (name, input)) in params.iter().zip(&expected) {
            check_param(param, name, input);
        }
    }
    assert_eq!(body_description(response), description);
});
