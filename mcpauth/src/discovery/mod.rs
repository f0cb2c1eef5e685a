//! Finding an authorization server's metadata: well-known URLs, fetching with bounds, provider
//! quirks (transpile), issuer checks and MCP-compatibility validation.
//!
//! ```no_run
//! # async fn run() -> Result<(), mcpauth::discovery::DiscoveryError> {
//! use mcpauth::AuthServerType;
//! use mcpauth::discovery::{MetadataFetcher, fetch_server_config};
//!
//! // The common case: a type and an issuer.
//! let logto = fetch_server_config("https://tenant.logto.app/oidc", AuthServerType::Oidc).await?;
//!
//! // A provider whose metadata needs a fix before it is parsed.
//! let fetcher = MetadataFetcher::builder()
//!     .transpile(|mut json| {
//!         json["code_challenge_methods_supported"] = serde_json::json!(["S256"]);
//!         json
//!     })
//!     .build();
//! let quirky = fetcher.discover("https://auth.example.com/tenant").await?;
//! # Ok(()) }
//! ```

mod fetcher;
mod validation;
pub mod well_known;

pub use crate::http_client::{FetchError, TransportError};
pub use fetcher::{
    DiscoveryError, MetadataFetcher, MetadataFetcherBuilder, Transpile, discover_server_config,
    fetch_server_config, fetch_server_config_by_well_known_url,
};
pub use validation::{
    AuthServerConfigErrorCode, AuthServerConfigSuccessCode, AuthServerConfigValidation,
    AuthServerConfigWarningCode, validate_server_config, validate_server_config_verbose,
};
