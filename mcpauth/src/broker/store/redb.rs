//! The embedded durable store, on `redb`.
