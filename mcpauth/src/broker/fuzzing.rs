//! The broker's parsers of untrusted bytes, for the fuzz targets in `fuzz/` (reached as
//! `mcpauth::__fuzzing::broker`); not a public API.
//!
//! Thin wrappers with no logic of their own: each hands its input to the function the request
//! path calls, and reports the result in plain types (records as the JSON they are stored as).

use serde_json::{Map, Value};

use super::client::{parse_document_url, validate_metadata_document, validate_registration};
use super::params::Params;
use super::redirect_uri::RedirectUri;
use super::upstream::{UpstreamClient, UpstreamError, parse_token_body};
use super::{BrokerError, Upstream};

/// A redirect URI that passed every rule (`RedirectUri::parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRedirectUri(RedirectUri);

impl ParsedRedirectUri {
    /// Parses `s` as a client's redirect URI; the error is the refusal's message.
    pub fn parse(s: &str) -> Result<Self, String> {
        RedirectUri::parse(s).map(Self).map_err(|e| e.to_string())
    }

    /// The URI as kept (what is compared and redirected to).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether it is an http(s) URI on a loopback host.
    pub fn is_loopback(&self) -> bool {
        self.0.is_loopback()
    }

    /// Whether its scheme is https.
    pub fn is_https(&self) -> bool {
        self.0.is_https()
    }

    /// What the consent page shows as the destination.
    pub fn host(&self) -> &str {
        self.0.host()
    }

    /// Whether an authorization request naming `requested` may use this registered URI.
    pub fn matches(&self, requested: &str) -> bool {
        self.0.matches(requested)
    }
}

/// The parameters of a query string or form body (`Params::parse`); the error names the first
/// repeated parameter.
pub fn params(raw: &[u8]) -> Result<ParsedParams, String> {
    Params::parse(raw).map(ParsedParams).map_err(|e| e.0)
}

/// Parsed request parameters.
#[derive(Debug)]
pub struct ParsedParams(Params);

impl ParsedParams {
    /// The value of `name`, an empty value counting as absent (`Params::get`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }
}

/// A dynamic registration request's body (`validate_registration`): the client record as
/// stored, or the RFC 7591 error code and description.
pub fn registration(body: &[u8]) -> Result<Value, (&'static str, String)> {
    validate_registration(body)
        .map(|record| serde_json::to_value(record).unwrap_or_default())
        .map_err(|e| (e.code.as_str(), e.description))
}

/// A client ID metadata document fetched from `client_id` (`validate_metadata_document`): the
/// client record as stored, or why it is refused.
pub fn metadata_document(client_id: &str, body: &[u8]) -> Result<Value, String> {
    validate_metadata_document(client_id, body)
        .map(|record| serde_json::to_value(record).unwrap_or_default())
        .map_err(|e| e.to_string())
}

/// Checks a client id as a metadata document URL (`parse_document_url`, before the fetcher's
/// own https rule).
pub fn document_url(client_id: &str) -> Result<String, String> {
    parse_document_url(client_id)
        .map(String::from)
        .map_err(|e| e.to_string())
}

/// The members of a provider's token answer (`parse_token_body`).
pub fn token_body(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    parse_token_body(content_type, body)
}

/// The broker's client of an identity provider (`UpstreamClient`).
#[derive(Debug)]
pub struct UpstreamExchange(UpstreamClient);

/// What a code exchange gave: the provider's tokens as read and the user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangedTokens {
    /// `access_token`.
    pub access_token: String,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `expires_in` as Unix seconds.
    pub expires_at: Option<u64>,
    /// `refresh_token_expires_in` as Unix seconds.
    pub refresh_expires_at: Option<u64>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `id_token`.
    pub id_token: Option<String>,
    /// The user's id at the provider.
    pub user_id: String,
}

/// Why a code exchange failed: `refused` (the provider's OAuth error code, description),
/// `unavailable` or `invalid` (a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The provider answered an OAuth error.
    Refused(String, Option<String>),
    /// The provider could not be reached or answered something unusable.
    Unavailable(String),
    /// The answer failed a check.
    Invalid(String),
}

impl UpstreamExchange {
    /// A client of the provider `upstream` (after the checks the broker runs when built).
    pub fn new(upstream: Upstream) -> Result<Self, BrokerError> {
        upstream.check().map_err(BrokerError::Config)?;
        UpstreamClient::new(upstream).map(Self)
    }

    /// Exchanges `code` at the provider's token endpoint and identifies the user
    /// (`UpstreamClient::exchange`).
    pub async fn exchange(&self, code: &str) -> Result<ExchangedTokens, ExchangeError> {
        let callback = "https://broker.example/callback/upstream";
        let verifier = "v".repeat(43);
        match self.0.exchange(code, callback, &verifier, "nonce").await {
            // The set wipes itself when dropped, so its members are copied out.
            Ok((tokens, user)) => Ok(ExchangedTokens {
                access_token: tokens.access_token.clone(),
                refresh_token: tokens.refresh_token.clone(),
                expires_at: tokens.expires_at,
                refresh_expires_at: tokens.refresh_expires_at,
                scope: tokens.scope.clone(),
                id_token: tokens.id_token.clone(),
                user_id: user.id,
            }),
            Err(UpstreamError::Refused { code, description }) => {
                Err(ExchangeError::Refused(code, description))
            }
            Err(UpstreamError::Unavailable(message)) => Err(ExchangeError::Unavailable(message)),
            Err(UpstreamError::Invalid(message)) => Err(ExchangeError::Invalid(message)),
        }
    }
}

/// How long a client ID metadata document may be cached, from its response's headers at `now`
/// (`CimdOptions::ttl` with the default options); `None` when it may not be.
pub fn cimd_cache_ttl(
    headers: &http::HeaderMap,
    now: std::time::SystemTime,
) -> Option<std::time::Duration> {
    super::CimdOptions::default().ttl(headers, now)
}
