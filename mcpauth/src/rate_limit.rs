//! A token bucket: at most `burst` events at once, refilled at `per_second` events a second.
//! It bounds the calls a verifier makes to an authorization server for tokens it has no answer
//! for, whatever the requests send.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket, full at the start.
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<Level>,
}

/// The bucket's level at an instant.
#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: Instant,
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least 1), refilled at `per_second` (at least 1).
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second.max(1)),
            burst,
            state: Mutex::new(Level {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// Takes one token at `now`, or says how long until one is there.
    pub(crate) fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut level = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // `now` may be a little older than the last update (taken before the lock).
        let elapsed = now.saturating_duration_since(level.at).as_secs_f64();
        level.tokens = (level.tokens + elapsed * self.per_second).min(self.burst);
        level.at = level.at.max(now);
        if level.tokens >= 1.0 {
            level.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - level.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let bucket = TokenBucket::new(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert!(wait > Duration::from_millis(490) && wait <= Duration::from_millis(500));
        // Half a second refills one token (2 a second), and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert!(bucket.try_take(later).is_err());
        // A long pause refills to the burst, never beyond.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(much_later), Ok(()));
        }
        assert!(bucket.try_take(much_later).is_err());
    }

    #[test]
    fn zero_is_taken_as_one() {
        let bucket = TokenBucket::new(0, 0);
        let start = Instant::now();
        assert_eq!(bucket.try_take(start), Ok(()));
        let wait = bucket.try_take(start).unwrap_err();
        assert!(wait > Duration::from_millis(990) && wait <= Duration::from_secs(1));
    }
}
