//! The store as the broker uses it: every operation of the configured store, timed into
//! `mcpauth_broker_store_seconds` by method. Every method is forwarded, the provided ones
//! included, so the configured store's own (atomic) versions are the ones that run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BrokerStore, Namespace, Put, StoreFuture, Write};
use crate::metrics::{self, StoreOperation};

#[derive(Debug)]
pub(crate) struct TimedStore(pub(crate) Arc<dyn BrokerStore>);

fn timed<'a, T: 'a>(operation: StoreOperation, future: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
    Box::pin(async move {
        let started = Instant::now();
        let answer = future.await;
        metrics::store_operation(operation, started);
        answer
    })
}

impl BrokerStore for TimedStore {
    fn put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        timed(StoreOperation::Put, self.0.put(namespace, key, value, ttl))
    }

    fn put_new<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        timed(
            StoreOperation::PutNew,
            self.0.put_new(namespace, key, value, ttl),
        )
    }

    fn get<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        timed(StoreOperation::Get, self.0.get(namespace, key))
    }

    fn take<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        timed(StoreOperation::Take, self.0.take(namespace, key))
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        timed(
            StoreOperation::CompareAndSwap,
            self.0.compare_and_swap(namespace, key, expected, new, ttl),
        )
    }

    fn compare_and_swap_and_put<'a>(
        &'a self,
        namespace: Namespace,
        key: &'a str,
        expected: &'a [u8],
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
        put: Put<'a>,
    ) -> StoreFuture<'a, bool> {
        timed(
            StoreOperation::CompareAndSwapAndPut,
            self.0
                .compare_and_swap_and_put(namespace, key, expected, new, ttl, put),
        )
    }

    fn write_all<'a>(&'a self, writes: Vec<Write<'a>>) -> StoreFuture<'a, ()> {
        timed(StoreOperation::WriteAll, self.0.write_all(writes))
    }

    fn delete<'a>(&'a self, namespace: Namespace, key: &'a str) -> StoreFuture<'a, ()> {
        timed(StoreOperation::Delete, self.0.delete(namespace, key))
    }

    fn count(&self, namespace: Namespace) -> StoreFuture<'_, u64> {
        timed(StoreOperation::Count, self.0.count(namespace))
    }

    fn index_add<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        timed(StoreOperation::IndexAdd, self.0.index_add(index, member))
    }

    fn index_remove<'a>(&'a self, index: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        timed(
            StoreOperation::IndexRemove,
            self.0.index_remove(index, member),
        )
    }

    fn index_members<'a>(&'a self, index: &'a str) -> StoreFuture<'a, Vec<String>> {
        timed(StoreOperation::IndexMembers, self.0.index_members(index))
    }
}
