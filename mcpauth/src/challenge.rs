//! Refusals as HTTP responses: the `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3, RFC 9728
//! §5.1) and the JSON body.
//!
//! Verdicts on the credential (`invalid_token`, and `invalid_request` about the `Authorization`
//! header) carry a generic description and no `reason` unless details are shown, so a client
//! probing with tokens learns only that they are refused; other refusals always name their
//! reason.
//!
//! Auth-params are comma-separated quoted-strings. `error_description` is kept inside the RFC
//! 6750 character set (`"` becomes `'`, `\` becomes `/`, anything else outside printable ASCII
//! becomes `?`); other values are escaped as RFC 7235 quoted-strings. Nothing from the request
//! reaches a header unescaped. The challenges that do not depend on the request are built once.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::auth_error::AuthError;

const GENERIC_MISSING: &str = "This resource requires a bearer access token.";
const GENERIC_INVALID_REQUEST: &str = "The request carries a malformed bearer credential.";
const GENERIC_INVALID_TOKEN: &str = "The access token is invalid.";
const GENERIC_INSUFFICIENT_SCOPE: &str =
    "The access token does not grant the scopes this request needs.";
const GENERIC_BODY_TOO_LARGE: &str = "The request body is too large.";
const GENERIC_UNAVAILABLE: &str = "Token verification is temporarily unavailable.";
const GENERIC_SERVER_ERROR: &str = "Token verification is misconfigured on this server.";

/// Appends `value` as an RFC 7235 quoted-string.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// `value` limited to the RFC 6750 `error_description` characters
/// (`%x20-21 / %x23-5B / %x5D-7E`).
fn rfc6750_text(value: &str) -> String {
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

/// Builds `Bearer name="value", …` from the parameters that are present.
pub(crate) fn bearer_challenge(params: &[(&str, Option<&str>)]) -> HeaderValue {
    let mut out = String::from("Bearer");
    let mut first = true;
    for (name, value) in params {
        let Some(value) = value else { continue };
        out.push_str(if first { " " } else { ", " });
        first = false;
        out.push_str(name);
        out.push('=');
        if *name == "error_description" {
            push_quoted(&mut out, &rfc6750_text(value));
        } else {
            push_quoted(&mut out, value);
        }
    }
    // Only printable ASCII was written, so this cannot fail; fall back to the bare scheme.
    HeaderValue::try_from(out).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The responses of one protected route: its metadata URL, the scopes it needs, whether
/// details are shown, and the challenges that never change, built once.
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    resource_metadata: String,
    scope: Option<String>,
    show_details: bool,
    missing: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
    insufficient_scope: HeaderValue,
}

impl Challenges {
    pub(crate) fn new(
        resource_metadata: &str,
        required_scopes: &[String],
        show_details: bool,
    ) -> Self {
        let scope = (!required_scopes.is_empty()).then(|| required_scopes.join(" "));
        let rm = Some(resource_metadata);
        let sc = scope.as_deref();
        Self {
            missing: bearer_challenge(&[("resource_metadata", rm), ("scope", sc)]),
            invalid_request: bearer_challenge(&[
                ("error", Some("invalid_request")),
                ("error_description", Some(GENERIC_INVALID_REQUEST)),
                ("resource_metadata", rm),
            ]),
            invalid_token: bearer_challenge(&[
                ("error", Some("invalid_token")),
                ("error_description", Some(GENERIC_INVALID_TOKEN)),
                ("resource_metadata", rm),
                ("scope", sc),
            ]),
            insufficient_scope: bearer_challenge(&[
                ("error", Some("insufficient_scope")),
                ("error_description", Some(GENERIC_INSUFFICIENT_SCOPE)),
                ("resource_metadata", rm),
                ("scope", sc),
            ]),
            resource_metadata: resource_metadata.to_owned(),
            scope,
            show_details,
        }
    }

    /// The scopes the route needs, space-separated.
    pub(crate) fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The description clients see: the specific one when details are shown.
    fn description<'a>(&self, generic: &'a str, detail: &'a str) -> &'a str {
        if self.show_details && !detail.is_empty() {
            detail
        } else {
            generic
        }
    }

    fn challenge(&self, error: &AuthError, description: &str) -> Option<HeaderValue> {
        let rm = Some(self.resource_metadata.as_str());
        let dynamic = |code: &str, scope: Option<&str>| {
            bearer_challenge(&[
                ("error", Some(code)),
                ("error_description", Some(description)),
                ("resource_metadata", rm),
                ("scope", scope),
            ])
        };
        match error {
            AuthError::MissingCredentials => Some(self.missing.clone()),
            AuthError::InvalidRequest { .. } if !self.show_details => {
                Some(self.invalid_request.clone())
            }
            AuthError::InvalidRequest { .. } => Some(bearer_challenge(&[
                ("error", Some("invalid_request")),
                ("error_description", Some(description)),
                ("resource_metadata", rm),
            ])),
            AuthError::InvalidToken { .. } if !self.show_details => {
                Some(self.invalid_token.clone())
            }
            AuthError::InvalidToken { .. } => Some(dynamic("invalid_token", self.scope())),
            AuthError::InsufficientScope { required, .. } => {
                let scope = required.join(" ");
                if !self.show_details && Some(scope.as_str()) == self.scope() {
                    Some(self.insufficient_scope.clone())
                } else {
                    Some(dynamic("insufficient_scope", Some(&scope)))
                }
            }
            // Not about credentials, or not the client's fault: no challenge.
            AuthError::InvalidMcpRequest { .. }
            | AuthError::BodyTooLarge { .. }
            | AuthError::Unavailable { .. }
            | AuthError::ServerError { .. } => None,
        }
    }

    /// The complete response for `error`.
    pub(crate) fn response(&self, error: &AuthError) -> Response {
        let (generic, detail): (&str, Cow<'_, str>) = match error {
            AuthError::MissingCredentials => (GENERIC_MISSING, Cow::Borrowed("")),
            AuthError::InvalidRequest { detail, .. } => (GENERIC_INVALID_REQUEST, detail.into()),
            AuthError::InvalidToken { detail, .. } => (GENERIC_INVALID_TOKEN, detail.into()),
            // About the request's own content, not the token: always said precisely.
            AuthError::InvalidMcpRequest { detail, .. } => (detail.as_str(), detail.into()),
            AuthError::InsufficientScope { missing, .. } => (
                GENERIC_INSUFFICIENT_SCOPE,
                format!("The access token lacks the scopes: {}.", missing.join(" ")).into(),
            ),
            AuthError::BodyTooLarge { limit } => (
                GENERIC_BODY_TOO_LARGE,
                format!("The request body is larger than {limit} bytes.").into(),
            ),
            AuthError::Unavailable { detail, .. } => (GENERIC_UNAVAILABLE, detail.into()),
            AuthError::ServerError { detail, .. } => (GENERIC_SERVER_ERROR, detail.into()),
        };
        let description = self.description(generic, &detail);

        let (scope, missing_scopes) = match error {
            AuthError::InsufficientScope { required, missing } => {
                (Some(required.join(" ")), Some(missing.as_slice()))
            }
            _ => (None, None),
        };
        // The precise reason of a verdict on the credential says what the description hides
        // (which check failed), so it is shown under the same setting; the reasons of other
        // refusals (scope, the request's own content, this server's state) always are.
        let verdict = matches!(
            error,
            AuthError::InvalidToken { .. } | AuthError::InvalidRequest { .. }
        );
        let reason = (self.show_details || !verdict).then(|| error.reason().as_str());
        // Serialized straight from borrowed fields: refusals are answered at full rate too.
        let body = ErrorBody {
            error: error.error_code(),
            error_description: description,
            reason,
            scope: scope.as_deref(),
            missing_scopes,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();

        let mut response = (error.status(), Bytes::from(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge(error, description) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("WWW-Authenticate"),
            );
        }
        if let AuthError::Unavailable { retry_after, .. } = error {
            headers.insert(header::RETRY_AFTER, retry_after_value(*retry_after));
        }
        response
    }
}

/// The JSON body of a refusal.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_scopes: Option<&'a [String]>,
}

pub(crate) fn retry_after_value(retry_after: Duration) -> HeaderValue {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    HeaderValue::from(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_error::AuthErrorReason;

    #[test]
    fn parameters_are_comma_separated_quoted_strings() {
        let value = bearer_challenge(&[
            ("error", Some("invalid_token")),
            ("error_description", Some("say \"hi\" \\ now\u{7}é")),
            ("resource_metadata", Some("https://a.example/.well-known/x")),
            ("scope", None),
        ]);
        assert_eq!(
            value.to_str().unwrap(),
            r#"Bearer error="invalid_token", error_description="say 'hi' / now??", resource_metadata="https://a.example/.well-known/x""#
        );
        let quoted = bearer_challenge(&[("realm", Some("a\"b\\c\r\n"))]);
        assert_eq!(quoted.to_str().unwrap(), r#"Bearer realm="a\"b\\c??""#);
    }

    #[test]
    fn details_are_hidden_unless_enabled() {
        let scopes = vec!["read".to_owned()];
        let error = AuthError::invalid_token(AuthErrorReason::Expired, "expired 5 s ago");
        let quiet = Challenges::new(
            "https://r/.well-known/oauth-protected-resource",
            &scopes,
            false,
        );
        let response = quiet.response(&error);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="The access token is invalid.", resource_metadata="https://r/.well-known/oauth-protected-resource", scope="read""#
        );
        let loud = Challenges::new(
            "https://r/.well-known/oauth-protected-resource",
            &scopes,
            true,
        );
        let response = loud.response(&error);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="expired 5 s ago", resource_metadata="https://r/.well-known/oauth-protected-resource", scope="read""#
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after_value(Duration::from_millis(10)), "1");
        assert_eq!(retry_after_value(Duration::from_millis(2500)), "3");
    }
}
