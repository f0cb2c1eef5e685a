//! The configuration rules of [mcpauth](https://docs.rs/mcpauth), in one place so its runtime
//! (checking configuration at start-up) and its macros (checking it at compile time) apply the
//! same rules and say the same words. Use them through `mcpauth`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod canonical;
pub mod compat;
pub mod hierarchy;
pub mod metadata;
pub mod operation;
pub mod provider;
pub mod scope;
pub mod url;
