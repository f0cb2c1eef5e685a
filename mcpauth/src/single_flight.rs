//! Single-flight: concurrent callers that need the same slow result share one computation.
//!
//! The flight is a [`Shared`] future kept in a slot and driven by a task of its own, so a caller
//! that gives up (its future is dropped) does not stall or cancel it, and a caller arriving while
//! the flight is under way joins it. A flight that has ended is never joined — the slot is
//! emptied by its callers, and a flight whose callers all gave up is replaced by the next one —
//! so no result, a failure or an old success, is handed to a caller that came after it.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

type Flight<T> = Shared<BoxFuture<'static, T>>;

/// One slot for an in-flight computation of a `T`.
pub(crate) struct SingleFlight<T: Clone> {
    slot: Mutex<Option<Flight<T>>>,
}

impl<T: Clone> fmt::Debug for SingleFlight<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_flight = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("SingleFlight")
            .field("in_flight", &in_flight)
            .finish()
    }
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Whether no flight is under way now.
    pub(crate) fn is_idle(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|flight| flight.peek().is_some())
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// Joins the flight under way, or starts one with `start` (called with the slot locked, so
    /// it may re-check a cache without racing a flight that just finished).
    pub(crate) async fn run<F, Fut>(&self, start: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let flight = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                // A flight under way is joined. One that has ended is not: its callers may all
                // have given up before clearing the slot, and its result is old news (a key set
                // from before a rotation, say).
                Some(flight) if flight.peek().is_none() => flight.clone(),
                _ => {
                    let flight = start().boxed().shared();
                    *slot = Some(flight.clone());
                    // Drive the flight to its end even if every caller gives up, so a later
                    // caller never joins a request that stalled half-way (and timed out).
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(flight.clone().map(drop));
                    }
                    flight
                }
            }
        };
        let result = flight.clone().await;
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|current| current.ptr_eq(&flight)) {
            *slot = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation_and_failures_are_not_kept() {
        let flight = Arc::new(SingleFlight::<Result<u32, String>>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let flight = flight.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                flight
                    .run(|| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<u32, _>("down".to_owned())
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Err("down".to_owned()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // The failure was not kept: the next caller runs again.
        let again = flight.run(|| async { Ok(7) }).await;
        assert_eq!(again, Ok(7));
    }

    #[tokio::test]
    async fn a_flight_whose_callers_all_gave_up_is_not_joined_after_it_ended() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let caller = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(|| async {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        caller.abort();
        // The flight runs to its end on its own task; nobody is left to clear the slot.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(flight.is_idle(), "an ended flight is no flight under way");
        assert_eq!(
            flight.run(|| async { 2 }).await,
            2,
            "a new flight, not the old result"
        );
    }

    #[tokio::test]
    async fn a_cancelled_caller_does_not_cancel_the_flight() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let first = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(|| async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = {
            let flight = flight.clone();
            tokio::spawn(async move { flight.run(|| async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        assert_eq!(second.await.unwrap(), 1);
    }
}
