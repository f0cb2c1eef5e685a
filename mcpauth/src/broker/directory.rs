//! Finding the client a request names: configured clients first, then client ID metadata
//! documents (an `https` URL fetched SSRF-safely), then dynamically registered clients.

use std::sync::Arc;

use super::BrokerState;
use super::client::ClientRecord;
use super::records::{self, Transaction};
use super::store::{Namespace, StoreError};

/// Why a client could not be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientLookupError {
    #[error("unknown client")]
    Unknown,
    /// The client's metadata document is invalid (the client's fault).
    #[error("the client's metadata document is refused: {0}")]
    InvalidDocument(String),
    /// The client's metadata document could not be fetched now.
    #[error("the client cannot be looked up now: {0}")]
    Unavailable(String),
    /// The store failed: the broker's own trouble, answered `503` (never `invalid_client`,
    /// which would make the client register again).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BrokerState {
    pub(crate) async fn resolve_client(
        &self,
        client_id: &str,
    ) -> Result<Arc<ClientRecord>, ClientLookupError> {
        if let Some(client) = self.configured_clients.get(client_id) {
            return Ok(client.clone());
        }
        if let Some(cimd) = self.cimd.as_ref().filter(|cimd| cimd.handles(client_id)) {
            return cimd.resolve(client_id).await.map_err(|error| {
                if error.is_temporary() {
                    ClientLookupError::Unavailable(error.to_string())
                } else {
                    ClientLookupError::InvalidDocument(error.to_string())
                }
            });
        }
        match self.store.get(Namespace::Client, client_id).await? {
            Some(bytes) => Ok(Arc::new(records::decode(&bytes)?)),
            None => Err(ClientLookupError::Unknown),
        }
    }
}

impl BrokerState {
    /// Whether a transaction's redirect URI is still one its client has: checked again right
    /// before each browser redirect, since a sign-in can outlive a registration change. A
    /// store failure is an error: the browser is asked to try again, not told the registration
    /// changed.
    pub(crate) async fn redirect_still_registered(
        &self,
        transaction: &Transaction,
    ) -> Result<bool, StoreError> {
        match self.resolve_client(&transaction.client_id).await {
            Ok(client) => Ok(client
                .redirect_uri_for(Some(&transaction.redirect_uri))
                .is_some()),
            Err(ClientLookupError::Store(error)) => Err(error),
            Err(_) => Ok(false),
        }
    }
}
