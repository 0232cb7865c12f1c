//! The agent's own counters, served on its `/healthz` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use tda_daemon::metrics::{Histogram, BYTES_BUCKETS, COUNT_BUCKETS, SECONDS_BUCKETS};

tda_daemon::counters! {
    /// Monotonic counters of what the agent took in, sent, retried and dropped.
    pub struct Counters;
    /// A point-in-time copy of [`Counters`]' numbers.
    pub struct Snapshot;
    {
        /// Usage events accepted on the intake.
        events_received,
        /// Intake requests refused as invalid (4xx).
        requests_rejected,
        /// Intake requests to no route (404), a wrong method (405) or a disabled SDK intake.
        requests_unrouted,
        /// Events dropped as repeats of a recent PostHog `uuid` or Segment `messageId`.
        events_deduplicated,
        /// Events read from the request log (also counted in `events_received`).
        log_events_read,
        /// Request log lines refused (not JSON, no user id, a bad field, too long).
        log_lines_rejected,
        /// Host samples taken.
        samples_taken,
        /// Batches the collector acknowledged.
        batches_sent,
        /// Events inside acknowledged batches.
        events_sent,
        /// Bytes (compressed, as sent) of acknowledged batches.
        bytes_sent,
        /// Send attempts that failed and will be retried.
        send_retries,
        /// Batches dropped because the spool was full (oldest first) or could not be written.
        batches_dropped,
        /// Events inside dropped batches.
        events_dropped,
        /// Batches the collector refused as invalid (quarantined, not retried).
        batches_quarantined,
        /// Events inside quarantined batches: the events the collector refuses, one by one once
        /// their batches were split.
        events_quarantined,
        /// Refused batches split in halves to find the events the collector refuses.
        batches_split,
        /// Batches written to the spool.
        batches_spooled,
        /// Events inside batches written to the spool.
        events_spooled,
        /// Torn or corrupt spool files found and removed.
        spool_corrupt,
        /// Intake requests refused because the spool was full (`refuse_intake`).
        intake_refused,
        /// Batches in the spool now (a gauge).
        spool_batches,
        /// Bytes in the spool now (a gauge).
        spool_bytes,
    }
    extra {
        /// Distributions of what was sent, for `/metrics`.
        observed: Observed,
        /// What the public intake counts.
        public: crate::public::PublicCounters,
    }
}

/// Distributions of acknowledged batches.
#[derive(Debug)]
pub struct Observed {
    /// Events per acknowledged batch.
    pub batch_events: Histogram,
    /// Bytes (compressed) per acknowledged batch.
    pub batch_bytes: Histogram,
    /// Time from sending a batch to the collector's acknowledgement.
    pub send_seconds: Histogram,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            batch_events: Histogram::new(COUNT_BUCKETS),
            batch_bytes: Histogram::new(BYTES_BUCKETS),
            send_seconds: Histogram::new(SECONDS_BUCKETS),
        }
    }
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
