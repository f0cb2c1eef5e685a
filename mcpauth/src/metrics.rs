//! What mcpauth counts and times, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Nothing is exported unless the application installs a recorder (for Prometheus,
//! `metrics-exporter-prometheus`); without one every call below costs an atomic load. The
//! labels take a small, fixed set of values (never a token, a subject or a client id), so a
//! series' cardinality stays bounded.
//!
//! ```
//! // In the application, once at start-up (the exporter crate is the application's choice):
//! // let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! // … then serve `handle.render()` at `/metrics`.
//! assert_eq!(mcpauth::metrics::REQUESTS, "mcpauth_requests_total");
//! ```
//!
//! # The protected resource
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `mcpauth_requests_total` | counter | `outcome` (`accepted`, `anonymous`, `refused`), `reason` ([`AuthErrorReason`] code, `none` when accepted) | requests through the bearer layer |
//! | `mcpauth_verification_seconds` | histogram | `outcome` (`accepted`, `refused`) | authentications that had to wait: a token not in the verified-token cache, a remote or custom verifier |
//! | `mcpauth_token_cache_hits_total` | counter | — | JWTs answered from the verified-token cache |
//! | `mcpauth_token_cache_misses_total` | counter | — | JWTs verified in full |
//! | `mcpauth_token_cache_entries` | gauge | `resource` (its identifier) | tokens a resource's verified-token cache holds, updated as tokens are added |
//! | `mcpauth_key_set_fetches_total` | counter | `result` (`ok`, `error`) | fetches of an authorization server's JWKS |
//!
//! # The broker (feature `broker`)
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `mcpauth_broker_token_requests_total` | counter | `grant_type` (`authorization_code`, `refresh_token`, `other`, or `unknown` for a request refused before its client was known), `outcome` (`issued` or the OAuth error code) | token endpoint requests |
//! | `mcpauth_broker_grants_issued_total` | counter | — | sign-ins completed (a code redeemed for tokens) |
//! | `mcpauth_broker_grants_refreshed_total` | counter | — | refresh-token rotations |
//! | `mcpauth_broker_grants_revoked_total` | counter | `cause` (`client`, `replay`, `upstream`, `operator`) | grants ended: by the client at `/revoke`, because a code or refresh token was replayed, because the provider refused the grant's tokens, or by `Broker::revoke_user` / `revoke_client` |
//! | `mcpauth_broker_consents_total` | counter | `answer` (`approved`, `denied`) | consent page answers |
//! | `mcpauth_broker_upstream_calls_total` | counter | `kind` (`token`: code exchanges and refreshes, `userinfo`), `result` (`ok`, `error`) | calls to the identity provider |
//! | `mcpauth_broker_store_seconds` | histogram | `operation` (the `BrokerStore` method: `get`, `put`, `take`, `compare_and_swap`, `index_add`…) | broker store operations, success or not |

use std::time::Instant;

use crate::AuthErrorReason;

/// `mcpauth_requests_total`: requests through the bearer layer by `outcome` and `reason`.
pub const REQUESTS: &str = "mcpauth_requests_total";
/// `mcpauth_verification_seconds`: verifications that had to wait, by `outcome`.
pub const VERIFICATION_SECONDS: &str = "mcpauth_verification_seconds";
/// `mcpauth_token_cache_hits_total`: JWTs answered from the verified-token cache.
pub const TOKEN_CACHE_HITS: &str = "mcpauth_token_cache_hits_total";
/// `mcpauth_token_cache_misses_total`: JWTs verified in full.
pub const TOKEN_CACHE_MISSES: &str = "mcpauth_token_cache_misses_total";
/// `mcpauth_token_cache_entries`: tokens a resource's verified-token cache holds, by `resource`.
pub const TOKEN_CACHE_ENTRIES: &str = "mcpauth_token_cache_entries";
/// `mcpauth_key_set_fetches_total`: JWKS fetches by `result`.
pub const KEY_SET_FETCHES: &str = "mcpauth_key_set_fetches_total";
/// `mcpauth_broker_token_requests_total`: token endpoint requests by `grant_type`, `outcome`.
pub const BROKER_TOKEN_REQUESTS: &str = "mcpauth_broker_token_requests_total";
/// `mcpauth_broker_grants_issued_total`: sign-ins completed.
pub const BROKER_GRANTS_ISSUED: &str = "mcpauth_broker_grants_issued_total";
/// `mcpauth_broker_grants_refreshed_total`: refresh-token rotations.
pub const BROKER_GRANTS_REFRESHED: &str = "mcpauth_broker_grants_refreshed_total";
/// `mcpauth_broker_grants_revoked_total`: grants ended, by `cause`.
pub const BROKER_GRANTS_REVOKED: &str = "mcpauth_broker_grants_revoked_total";
/// `mcpauth_broker_consents_total`: consent answers by `answer`.
pub const BROKER_CONSENTS: &str = "mcpauth_broker_consents_total";
/// `mcpauth_broker_upstream_calls_total`: calls to the identity provider by `kind`, `result`.
pub const BROKER_UPSTREAM_CALLS: &str = "mcpauth_broker_upstream_calls_total";
/// `mcpauth_broker_store_seconds`: broker store operations by `operation`.
pub const BROKER_STORE_SECONDS: &str = "mcpauth_broker_store_seconds";

/// How a request through the bearer layer ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequestOutcome {
    Accepted,
    Anonymous,
    Refused(AuthErrorReason),
}

pub(crate) fn request(outcome: RequestOutcome) {
    // Literal names and labels make static keys: counting an accepted request allocates nothing.
    match outcome {
        RequestOutcome::Accepted => {
            ::metrics::counter!("mcpauth_requests_total", "outcome" => "accepted", "reason" => "none")
                .increment(1);
        }
        RequestOutcome::Anonymous => {
            ::metrics::counter!("mcpauth_requests_total", "outcome" => "anonymous", "reason" => "none")
                .increment(1);
        }
        RequestOutcome::Refused(reason) => {
            ::metrics::counter!(REQUESTS, "outcome" => "refused", "reason" => reason.as_str())
                .increment(1);
        }
    }
}

/// Records a verification that started at `started`.
pub(crate) fn verification(started: Instant, accepted: bool) {
    let outcome = if accepted { "accepted" } else { "refused" };
    ::metrics::histogram!(VERIFICATION_SECONDS, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

pub(crate) fn token_cache_hit() {
    ::metrics::counter!("mcpauth_token_cache_hits_total").increment(1);
}

pub(crate) fn token_cache_miss() {
    ::metrics::counter!(TOKEN_CACHE_MISSES).increment(1);
}

/// The number of tokens `resource`'s verified-token cache holds (`resource` is shared, so the
/// label costs a reference count, not a copy).
pub(crate) fn token_cache_size(resource: &::metrics::SharedString, entries: usize) {
    // Set when an entry is added (after a full verification, never on the cached path).
    ::metrics::gauge!(TOKEN_CACHE_ENTRIES, "resource" => resource.clone()).set(entries as f64);
}

pub(crate) fn key_set_fetch(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    ::metrics::counter!(KEY_SET_FETCHES, "result" => result).increment(1);
}

#[cfg(feature = "broker")]
pub(crate) use broker::*;

#[cfg(feature = "broker")]
mod broker {
    use std::time::Instant;

    use super::*;

    /// A token endpoint answer: `grant_type` is `unknown` when the request was refused before
    /// its client was known.
    pub(crate) fn token_request(grant_type: &'static str, outcome: &'static str) {
        ::metrics::counter!(BROKER_TOKEN_REQUESTS, "grant_type" => grant_type, "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn grant_issued() {
        ::metrics::counter!(BROKER_GRANTS_ISSUED).increment(1);
    }

    pub(crate) fn grant_refreshed() {
        ::metrics::counter!(BROKER_GRANTS_REFRESHED).increment(1);
    }

    /// Why a grant ended.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum RevokeCause {
        Client,
        Replay,
        Upstream,
        Operator,
    }

    pub(crate) fn grant_revoked(cause: RevokeCause) {
        let cause = match cause {
            RevokeCause::Client => "client",
            RevokeCause::Replay => "replay",
            RevokeCause::Upstream => "upstream",
            RevokeCause::Operator => "operator",
        };
        ::metrics::counter!(BROKER_GRANTS_REVOKED, "cause" => cause).increment(1);
    }

    pub(crate) fn consent(approved: bool) {
        let answer = if approved { "approved" } else { "denied" };
        ::metrics::counter!(BROKER_CONSENTS, "answer" => answer).increment(1);
    }

    /// A call to the identity provider: `kind` is `token` or `userinfo`.
    pub(crate) fn upstream_call(kind: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        ::metrics::counter!(BROKER_UPSTREAM_CALLS, "kind" => kind, "result" => result).increment(1);
    }

    /// A store method, the `operation` label of its timings.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum StoreOperation {
        Put,
        PutNew,
        Get,
        Take,
        CompareAndSwap,
        CompareAndSwapAndPut,
        WriteAll,
        Delete,
        Count,
        IndexAdd,
        IndexRemove,
        IndexMembers,
    }

    /// A store operation that started at `started`. A token request makes several: each arm
    /// names its labels literally, so the key is static and recording allocates nothing.
    pub(crate) fn store_operation(operation: StoreOperation, started: Instant) {
        macro_rules! record {
            ($operation:literal) => {
                ::metrics::histogram!("mcpauth_broker_store_seconds", "operation" => $operation)
                    .record(started.elapsed().as_secs_f64())
            };
        }
        match operation {
            StoreOperation::Put => record!("put"),
            StoreOperation::PutNew => record!("put_new"),
            StoreOperation::Get => record!("get"),
            StoreOperation::Take => record!("take"),
            StoreOperation::CompareAndSwap => record!("compare_and_swap"),
            StoreOperation::CompareAndSwapAndPut => record!("compare_and_swap_and_put"),
            StoreOperation::WriteAll => record!("write_all"),
            StoreOperation::Delete => record!("delete"),
            StoreOperation::Count => record!("count"),
            StoreOperation::IndexAdd => record!("index_add"),
            StoreOperation::IndexRemove => record!("index_remove"),
            StoreOperation::IndexMembers => record!("index_members"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_names_follow_prometheus_conventions() {
        // Counters end in `_total`, durations in `_seconds`; every name has the crate's prefix.
        let counters = [
            super::REQUESTS,
            super::TOKEN_CACHE_HITS,
            super::TOKEN_CACHE_MISSES,
            super::KEY_SET_FETCHES,
            super::BROKER_TOKEN_REQUESTS,
            super::BROKER_GRANTS_ISSUED,
            super::BROKER_GRANTS_REFRESHED,
            super::BROKER_GRANTS_REVOKED,
            super::BROKER_CONSENTS,
            super::BROKER_UPSTREAM_CALLS,
        ];
        for name in counters {
            assert!(
                name.starts_with("mcpauth_") && name.ends_with("_total"),
                "{name}"
            );
        }
        for name in [super::VERIFICATION_SECONDS, super::BROKER_STORE_SECONDS] {
            assert!(
                name.starts_with("mcpauth_") && name.ends_with("_seconds"),
                "{name}"
            );
        }
        assert_eq!(super::REQUESTS, "mcpauth_requests_total");
        assert_eq!(super::TOKEN_CACHE_HITS, "mcpauth_token_cache_hits_total");
    }
}
