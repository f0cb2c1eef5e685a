//! The signature backend of `jsonwebtoken`, chosen explicitly.
//!
//! `jsonwebtoken` picks its backend from its crate features and panics at the first signature
//! when both or neither are enabled — which feature unification makes easy (another crate in
//! the build may turn on the other backend). Installing the provider this crate was built for
//! before any signing or verification removes that trap; when another part of the program
//! installed one first, that one is kept.

use std::sync::Once;

/// Installs the process-wide `jsonwebtoken` provider matching this crate's features (aws-lc
/// when enabled, else the pure-Rust backend). Idempotent and cheap after the first call.
pub(crate) fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        #[cfg(feature = "aws-lc-rs")]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
        if provider.install_default().is_err() {
            tracing::debug!("a jsonwebtoken crypto provider was already installed; keeping it");
        }
    });
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "mcpauth needs a signature backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature"
);
