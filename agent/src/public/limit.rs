//! Token buckets per client IP and per project key: the public intake's rate limits.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tda_schema::config::RateLimit;

/// Buckets tracked before idle ones (full again) are forgotten.
const TRACKED: usize = 100_000;

/// One bucket: tokens held when last touched.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens held at `now`, refilled at the limit's rate up to its burst.
    fn level(&self, limit: RateLimit, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * limit.per_second;
        (self.tokens + refill).min(f64::from(limit.burst))
    }
}

/// A token bucket per key, created full on first use.
#[derive(Debug)]
pub struct Buckets<K> {
    held: Mutex<Held<K>>,
}

#[derive(Debug)]
struct Held<K> {
    buckets: HashMap<K, Bucket>,
    pruned: Option<Instant>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets {
            held: Mutex::new(Held {
                buckets: HashMap::new(),
                pruned: None,
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Takes `n` tokens (at most the burst) from `key`'s bucket; when it holds fewer, takes
    /// none and answers how long until it would hold them.
    pub fn take(&self, key: &K, n: f64, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.buckets.len() >= TRACKED && !held.buckets.contains_key(key) {
            held.prune(limit, now);
        }
        let burst = f64::from(limit.burst);
        let bucket = held.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = bucket.level(limit, now);
        let n = n.min(burst);
        bucket.at = now;
        if tokens >= n {
            bucket.tokens = tokens - n;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64((n - tokens) / limit.per_second))
        }
    }

    /// How many keys have a bucket.
    pub fn tracked(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

impl<K: Hash + Eq> Held<K> {
    /// Forgets the buckets that are full again (their keys start full anyway), at most once a
    /// second so a flood of new keys does not scan the map on every request.
    fn prune(&mut self, limit: RateLimit, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.pruned = Some(now);
        let burst = f64::from(limit.burst);
        self.buckets.retain(|_, b| b.level(limit, now) < burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 20,
    };

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let b = Buckets::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                b.take(&"ip", 1.0, LIMIT, t0).is_ok(),
                "request {i} of the burst"
            );
        }
        let wait = b.take(&"ip", 1.0, LIMIT, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another key is not slowed by the first.
        assert!(b.take(&"other", 1.0, LIMIT, t0).is_ok());
        // A second later, ten more tokens.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..10 {
            assert!(b.take(&"ip", 1.0, LIMIT, t1).is_ok());
        }
        assert!(b.take(&"ip", 1.0, LIMIT, t1).is_err());
    }

    #[test]
    fn a_request_of_more_than_the_burst_takes_the_whole_burst() {
        let b = Buckets::default();
        let t0 = Instant::now();
        assert!(b.take(&"key", 500.0, LIMIT, t0).is_ok());
        assert!(b.take(&"key", 1.0, LIMIT, t0).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten_when_many_are_tracked() {
        let b = Buckets::default();
        let t0 = Instant::now();
        for i in 0..TRACKED {
            b.take(&i, 1.0, LIMIT, t0).unwrap();
        }
        assert_eq!(b.tracked(), TRACKED);
        // Ten seconds on, all are full again: the next new key prunes them.
        b.take(&TRACKED, 1.0, LIMIT, t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(b.tracked(), 1);
    }
}
