//! Authorization-server metadata (RFC 8414 / OpenID Connect Discovery) as fetched:
//! `serde_json::from_slice::<mcpauth::AuthorizationServerMetadata>`.
//!
//! Invariants (see `mcpauth_fuzz::check_round_trip`): a parsed document re-serializes and
//! re-parses to an equal value, and the re-serialization is the input document minus its
//! `null` members (read as absent; an unknown member set to `null` may be kept or dropped):
//! nothing invented, nothing else dropped (unknown members are kept and written back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth::AuthorizationServerMetadata;
use mcpauth_fuzz::check_round_trip;

fuzz_target!(|data: &[u8]| {
    check_round_trip::<AuthorizationServerMetadata>(data);
});
