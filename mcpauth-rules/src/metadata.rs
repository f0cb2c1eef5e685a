//! The members of the two metadata documents — authorization-server metadata (RFC 8414, with
//! the OpenID Connect Discovery members mcpauth keeps) and protected-resource metadata
//! (RFC 9728) — with the kind of value each holds.
//!
//! These tables are the one list of members: the macros accept exactly these members (and check
//! each value by its kind), and a test of the runtime's metadata types fails when a type gains or
//! loses a member the tables do not list.

/// The kind of value a metadata member holds, which decides how a literal is written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberKind {
    /// An issuer identifier (RFC 8414 §2), checked by [`parse_issuer`](crate::url::parse_issuer).
    Issuer,
    /// A URL, checked by [`parse_secure_url`](crate::url::parse_secure_url).
    Url,
    /// A string.
    Text,
    /// A list of strings.
    Strings,
    /// `true` or `false`.
    Flag,
    /// Derived from the rest of the configuration rather than written as a member: a protected
    /// resource's identifier, its authorization servers' issuers, its scopes and its bearer
    /// methods (always `header` for MCP).
    Configured,
}

/// One member of a metadata document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member's name in the JSON document.
    pub name: &'static str,
    /// The kind of value it holds.
    pub kind: MemberKind,
    /// Whether the specification requires it (the runtime type has a plain field for it rather
    /// than an `Option`).
    pub required: bool,
}

const fn member(name: &'static str, kind: MemberKind) -> Member {
    Member {
        name,
        kind,
        required: false,
    }
}

const fn required(name: &'static str, kind: MemberKind) -> Member {
    Member {
        name,
        kind,
        required: true,
    }
}

use MemberKind::{Configured, Flag, Issuer, Strings, Text, Url};

/// Every member of authorization-server metadata that has a field in mcpauth's
/// `AuthorizationServerMetadata`, in the field order.
pub const AUTHORIZATION_SERVER_MEMBERS: &[Member] = &[
    required("issuer", Issuer),
    required("authorization_endpoint", Url),
    required("token_endpoint", Url),
    member("jwks_uri", Url),
    member("registration_endpoint", Url),
    member("scopes_supported", Strings),
    required("response_types_supported", Strings),
    member("response_modes_supported", Strings),
    member("grant_types_supported", Strings),
    member("token_endpoint_auth_methods_supported", Strings),
    member("token_endpoint_auth_signing_alg_values_supported", Strings),
    member("service_documentation", Url),
    member("ui_locales_supported", Strings),
    member("op_policy_uri", Url),
    member("op_tos_uri", Url),
    member("revocation_endpoint", Url),
    member("revocation_endpoint_auth_methods_supported", Strings),
    member(
        "revocation_endpoint_auth_signing_alg_values_supported",
        Strings,
    ),
    member("introspection_endpoint", Url),
    member("introspection_endpoint_auth_methods_supported", Strings),
    member(
        "introspection_endpoint_auth_signing_alg_values_supported",
        Strings,
    ),
    member("code_challenge_methods_supported", Strings),
    member("signed_metadata", Text),
    member("authorization_response_iss_parameter_supported", Flag),
    member("protected_resources", Strings),
    member("client_id_metadata_document_supported", Flag),
    member("userinfo_endpoint", Url),
    member("end_session_endpoint", Url),
    member("subject_types_supported", Strings),
    member("id_token_signing_alg_values_supported", Strings),
    member("userinfo_signing_alg_values_supported", Strings),
    member("claims_supported", Strings),
    member("claims_parameter_supported", Flag),
    member("request_parameter_supported", Flag),
    member("request_uri_parameter_supported", Flag),
];

/// Every member of protected-resource metadata (RFC 9728 §2), in the field order of mcpauth's
/// `ProtectedResourceMetadata`.
pub const PROTECTED_RESOURCE_MEMBERS: &[Member] = &[
    required("resource", Configured),
    member("authorization_servers", Configured),
    member("jwks_uri", Url),
    member("scopes_supported", Configured),
    member("bearer_methods_supported", Configured),
    member("resource_signing_alg_values_supported", Strings),
    member("resource_name", Text),
    member("resource_documentation", Url),
    member("resource_policy_uri", Url),
    member("resource_tos_uri", Url),
    member("tls_client_certificate_bound_access_tokens", Flag),
    member("authorization_details_types_supported", Strings),
    member("dpop_signing_alg_values_supported", Strings),
    member("dpop_bound_access_tokens_required", Flag),
    member("signed_metadata", Text),
];

/// The member called `name` in `members`.
pub fn find(members: &[Member], name: &str) -> Option<Member> {
    members.iter().find(|m| m.name == name).copied()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique() {
        for members in [AUTHORIZATION_SERVER_MEMBERS, PROTECTED_RESOURCE_MEMBERS] {
            let names: HashSet<&str> = members.iter().map(|m| m.name).collect();
            assert_eq!(names.len(), members.len());
        }
    }

    #[test]
    fn configured_members_are_only_those_of_a_protected_resource() {
        assert!(
            AUTHORIZATION_SERVER_MEMBERS
                .iter()
                .all(|m| m.kind != MemberKind::Configured)
        );
        assert_eq!(
            find(PROTECTED_RESOURCE_MEMBERS, "resource").map(|m| m.kind),
            Some(MemberKind::Configured)
        );
        assert_eq!(find(PROTECTED_RESOURCE_MEMBERS, "issuer"), None);
    }
}
