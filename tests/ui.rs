//! Compile-fail and pass cases of the macros. The `.stderr` snapshots were recorded with Rust
//! 1.95 (the project's toolchain); re-record with `TRYBUILD=overwrite cargo test -p
//! mcpauth-tests --test ui` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/protected_resource/pass/*.rs");
    cases.compile_fail("ui/protected_resource/fail/*.rs");
    cases.pass("ui/auth_server/pass/*.rs");
    cases.compile_fail("ui/auth_server/fail/*.rs");
}
