//! The workspace-level integration tests of mcpauth, one binary: real HTTP servers on loopback,
//! real keys and tokens. Each module is one area; the compile-fail cases (`ui.rs`) and the
//! memory measurement (`operation_memory.rs`, which needs its own global allocator) are binaries
//! of their own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audience;
mod broker;
mod broker_keys;
mod broker_presets;
mod broker_upstream;
mod dev_server;
mod discovery;
mod github_like;
// Public, as a user's crate would declare it: the generated items are checked for warnings and
// missing docs as they would be there.
pub mod macros;
mod mcp_auth;
mod metadata_router;
mod operations;
mod properties;
mod remote_verifier;
mod rmcp;
mod token_cache;
mod verification;
mod verification_faults;
