//! The broker: an MCP server as its own authorization server, in front of an identity provider
//! that cannot serve MCP clients itself.
//!
//! MCP clients need an authorization server with RFC 8414 metadata, PKCE `S256`, RFC 8707
//! resource indicators and a way for unknown clients to register (client ID metadata documents
//! or dynamic registration). GitHub, Google, Entra ID, Cognito and Okta lack some of these. The
//! broker speaks all of it to the MCP client, signs the user in at the identity provider with
//! one pre-registered upstream client, and issues **its own** short-lived access tokens for the
//! protected resource. The identity provider's tokens never leave the server.
//!
//! ```text
//! MCP client ──(broker = authorization server)──▶ broker ──(broker = OAuth client)──▶ provider
//! ```

pub mod store;

mod cimd;
mod client;
mod redirect_uri;
mod secrets;

pub use cimd::CimdOptions;
