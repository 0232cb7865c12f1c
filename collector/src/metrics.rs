//! What the collector observes as it runs, beside its counters: batch sizes, store times, the
//! store's size and each scheduled job's pass durations (exposed by `GET /metrics`).

use std::sync::atomic::AtomicU64;

use tda_daemon::metrics::{Histogram, BYTES_BUCKETS, COUNT_BUCKETS, SECONDS_BUCKETS};

/// The scheduled jobs whose durations are observed.
pub const JOBS: [&str; 5] = ["models", "reports", "alerts", "compaction", "retention"];

/// What the collector observes as it runs, beside the counters it reports on `/healthz`.
pub struct Observed {
    /// Events per batch received and decoded.
    pub batch_events: Histogram,
    /// Bytes per batch body as received (compressed).
    pub batch_bytes: Histogram,
    /// Time to store a batch durably.
    pub store_seconds: Histogram,
    /// The store's size at its last check, bytes.
    pub storage_bytes: AtomicU64,
    /// Per job of [`JOBS`], its passes' durations.
    pub jobs: Vec<Histogram>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            batch_events: Histogram::new(COUNT_BUCKETS),
            batch_bytes: Histogram::new(BYTES_BUCKETS),
            store_seconds: Histogram::new(SECONDS_BUCKETS),
            storage_bytes: AtomicU64::new(0),
            jobs: JOBS
                .iter()
                .map(|_| Histogram::new(SECONDS_BUCKETS))
                .collect(),
        }
    }
}

impl Observed {
    /// Runs one pass of `job` (one of [`JOBS`]) and records how long it took.
    pub fn time<T>(&self, job: &str, run: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = run();
        if let Some(i) = JOBS.iter().position(|j| *j == job) {
            self.jobs[i].observe(started.elapsed().as_secs_f64());
        }
        out
    }
}
