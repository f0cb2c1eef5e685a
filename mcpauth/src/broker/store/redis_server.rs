//! The store tests' real `redis-server` (the workspace's `redis-test-server`), with what only
//! these tests need of it: a `RedisStore` on it, and a plain connection of the test's own.

pub(super) use redis_test_server::RedisServer;

use super::RedisStore;

/// A `RedisStore` on `server` under `prefix`.
pub(super) async fn store_on(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(&server.url(), prefix).await.unwrap()
}

/// A plain connection to `server`, to look at the keys behind the store's back.
pub(super) fn inspect(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}
