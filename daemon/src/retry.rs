//! The one retry policy of both daemons' HTTP clients (the agent's shipper, the collector's
//! notifiers): which answers are retried, the server's `Retry-After`, and exponential backoff
//! with jitter.

use std::time::Duration;

use hyper::header::{HeaderMap, RETRY_AFTER};

/// Exponential backoff from `base`, doubling per attempt up to `cap`; each delay is drawn
/// between half the ceiling and the ceiling ("equal jitter": never a burst of instant
/// retries, never in lockstep with the other clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_at(attempt, rand::random::<f64>())
    }

    /// [`Backoff::delay`] with the random draw `unit` in `[0, 1)`.
    pub fn delay_at(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Whether an answer with `status` is worth retrying: server errors, 408 and 429.
pub fn retryable(status: u16) -> bool {
    (500..600).contains(&status) || status == 408 || status == 429
}

/// The delay a `Retry-After` header asks for, in whole seconds (the HTTP-date form is not
/// used by the servers these clients talk to, and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(30),
    };

    #[test]
    fn delays_double_within_half_and_whole_ceiling_up_to_the_cap() {
        assert_eq!(POLICY.delay_at(0, 0.0), Duration::from_millis(250));
        assert_eq!(POLICY.delay_at(0, 1.0), Duration::from_millis(500));
        assert_eq!(POLICY.delay_at(3, 0.0), Duration::from_secs(2));
        assert_eq!(POLICY.delay_at(3, 1.0), Duration::from_secs(4));
        assert_eq!(POLICY.delay_at(40, 1.0), Duration::from_secs(30));
        for attempt in 0..20 {
            let d = POLICY.delay(attempt);
            assert!(
                d <= POLICY.cap && d >= POLICY.delay_at(attempt, 0.0),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn server_errors_timeouts_and_throttling_are_retried() {
        for s in [500, 502, 503, 507, 408, 429] {
            assert!(retryable(s), "{s}");
        }
        for s in [200, 400, 401, 404, 413] {
            assert!(!retryable(s), "{s}");
        }
    }
}
