//! Procedural macros of [mcpauth](https://docs.rs/mcpauth).
//!
//! Use them through the `mcpauth` crate (its default `macros` feature re-exports them); this crate
//! is an implementation detail whose version is pinned by `mcpauth`.
//!
//! The declarative configuration macros (`auth_server!`, `#[protected_resource(...)]`) are being
//! built on top of the runtime API; until they land this crate exports nothing.
