//! The records the broker keeps, serialised as JSON into the store. Codes are keyed by their
//! hashes; upstream tokens are sealed.

use serde::{Deserialize, Serialize};

use super::store::{BrokerStore, Namespace, StoreError};

/// An authorization request, validated, waiting for the user's consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Transaction {
    pub(crate) client_id: String,
    /// The redirect URI the client will be sent back to (as requested, or the only registered).
    pub(crate) redirect_uri: String,
    /// Whether the request carried `redirect_uri` (the token request must then repeat it).
    pub(crate) redirect_uri_sent: bool,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: String,
    pub(crate) created_at: u64,
}

/// An approved request waiting for the identity provider's answer, keyed by the upstream
/// `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UpstreamLogin {
    pub(crate) transaction: Transaction,
    /// The broker's own PKCE verifier for the upstream leg.
    pub(crate) verifier: String,
    pub(crate) nonce: String,
}

/// A one-time authorization code's binding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeRecord {
    pub(crate) grant_id: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) code_challenge: String,
    pub(crate) expires_at: u64,
}

/// A user's authorization of a client for the resource, with the refresh-token chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    /// The user as the broker's tokens name them (`<provider>|<id>`).
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: String,
    pub(crate) created_at: u64,
    /// Hashes of the refresh tokens issued and not used yet.
    #[serde(default)]
    pub(crate) refresh_current: Vec<String>,
    /// Hash of the refresh token used last: still accepted until one of its successors is used
    /// (a client that lost the answer can retry).
    #[serde(default)]
    pub(crate) refresh_previous: Option<String>,
    /// The provider's token set, AES-256-GCM sealed under the storage key, base64url.
    pub(crate) upstream: String,
    /// Set while one replica refreshes the provider's tokens, so the others wait for its new
    /// set instead of spending a rotating refresh token twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_refresh: Option<RefreshLease>,
}

/// A claim on refreshing a grant's upstream tokens: who holds it, until when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefreshLease {
    pub(crate) holder: String,
    pub(crate) until: u64,
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A sign-in record for a browser step, read or (with `take`) consumed: `None` when it is
/// missing, expired or unreadable (the browser is told to start again either way).
pub(crate) async fn load<T: for<'de> Deserialize<'de>>(
    store: &dyn BrokerStore,
    namespace: Namespace,
    key: &str,
    take: bool,
) -> Result<Option<T>, StoreError> {
    let bytes = if take {
        store.take(namespace, key).await?
    } else {
        store.get(namespace, key).await?
    };
    Ok(bytes.and_then(|bytes| decode(&bytes).ok()))
}
