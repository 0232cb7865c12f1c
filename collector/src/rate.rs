//! Per-token rate limits: a token bucket per credential (kept by the token's digest), refilled
//! at `limits.requests_per_second_per_token` up to `limits.burst_per_token`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets not touched for this long are forgotten (they would be full again anyway).
const IDLE_SECS: f64 = 600.0;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every token seen.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RateLimits {
    /// Takes one request from `token`'s bucket: `Ok`, or `Err(seconds)` to wait before one is
    /// free. A `rate` of 0 allows everything.
    pub fn take(&self, token: &str, rate: f64, burst: u32, now: Instant) -> Result<(), u64> {
        if rate <= 0.0 {
            return Ok(());
        }
        let key = crate::ingest::digest(token);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < IDLE_SECS);
        }
        let burst = f64::from(burst.max(1));
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let limits = RateLimits::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.take("a", 2.0, 3, t0), Ok(()));
        }
        assert_eq!(limits.take("a", 2.0, 3, t0), Err(1), "burst spent");
        assert_eq!(
            limits.take("b", 2.0, 3, t0),
            Ok(()),
            "each token has its own"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            limits.take("a", 2.0, 3, later),
            Ok(()),
            "half a second gives one"
        );
        assert_eq!(limits.take("a", 2.0, 3, later), Err(1));
        assert_eq!(
            limits.take("a", 0.1, 3, later),
            Err(10),
            "a slow rate waits longer"
        );
        assert_eq!(limits.take("a", 0.0, 3, later), Ok(()), "0 is no limit");
    }
}
