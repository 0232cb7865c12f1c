//! The agent's own counters, served on its `/healthz` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tda_daemon::metrics::{Histogram, BYTES_BUCKETS, COUNT_BUCKETS, SECONDS_BUCKETS};

/// Monotonic counters of what the agent took in, sent, retried and dropped.
#[derive(Debug, Default)]
pub struct Counters {
    /// Usage events accepted on the intake.
    pub events_received: AtomicU64,
    /// Intake requests refused as invalid (4xx).
    pub requests_rejected: AtomicU64,
    /// Intake requests to no route (404), a wrong method (405) or a disabled SDK intake.
    pub requests_unrouted: AtomicU64,
    /// Events dropped as repeats of a recent PostHog `uuid` or Segment `messageId`.
    pub events_deduplicated: AtomicU64,
    /// Events read from the request log (also counted in `events_received`).
    pub log_events_read: AtomicU64,
    /// Request log lines refused (not JSON, no user id, a bad field, too long).
    pub log_lines_rejected: AtomicU64,
    /// Host samples taken.
    pub samples_taken: AtomicU64,
    /// Batches the collector acknowledged.
    pub batches_sent: AtomicU64,
    /// Events inside acknowledged batches.
    pub events_sent: AtomicU64,
    /// Bytes (compressed, as sent) of acknowledged batches.
    pub bytes_sent: AtomicU64,
    /// Send attempts that failed and will be retried.
    pub send_retries: AtomicU64,
    /// Batches dropped because the spool was full (oldest first) or could not be written.
    pub batches_dropped: AtomicU64,
    /// Events inside dropped batches.
    pub events_dropped: AtomicU64,
    /// Batches the collector refused as invalid (quarantined, not retried).
    pub batches_quarantined: AtomicU64,
    /// Events inside quarantined batches: the events the collector refuses, one by one once
    /// their batches were split.
    pub events_quarantined: AtomicU64,
    /// Refused batches split in halves to find the events the collector refuses.
    pub batches_split: AtomicU64,
    /// Batches written to the spool.
    pub batches_spooled: AtomicU64,
    /// Events inside batches written to the spool.
    pub events_spooled: AtomicU64,
    /// Torn or corrupt spool files found and removed.
    pub spool_corrupt: AtomicU64,
    /// Intake requests refused because the spool was full (`refuse_intake`).
    pub intake_refused: AtomicU64,
    /// Batches in the spool now (a gauge).
    pub spool_batches: AtomicU64,
    /// Bytes in the spool now (a gauge).
    pub spool_bytes: AtomicU64,
    /// Distributions of what was sent, for `/metrics`.
    pub observed: Observed,
    /// What the public intake counts.
    pub public: crate::public::PublicCounters,
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

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Counters::events_received`].
    pub events_received: u64,
    /// See [`Counters::requests_rejected`].
    pub requests_rejected: u64,
    /// See [`Counters::requests_unrouted`].
    pub requests_unrouted: u64,
    /// See [`Counters::events_deduplicated`].
    pub events_deduplicated: u64,
    /// See [`Counters::log_events_read`].
    pub log_events_read: u64,
    /// See [`Counters::log_lines_rejected`].
    pub log_lines_rejected: u64,
    /// See [`Counters::samples_taken`].
    pub samples_taken: u64,
    /// See [`Counters::batches_sent`].
    pub batches_sent: u64,
    /// See [`Counters::events_sent`].
    pub events_sent: u64,
    /// See [`Counters::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`Counters::send_retries`].
    pub send_retries: u64,
    /// See [`Counters::batches_dropped`].
    pub batches_dropped: u64,
    /// See [`Counters::events_dropped`].
    pub events_dropped: u64,
    /// See [`Counters::batches_quarantined`].
    pub batches_quarantined: u64,
    /// See [`Counters::events_quarantined`].
    pub events_quarantined: u64,
    /// See [`Counters::batches_split`].
    pub batches_split: u64,
    /// See [`Counters::batches_spooled`].
    pub batches_spooled: u64,
    /// See [`Counters::events_spooled`].
    pub events_spooled: u64,
    /// See [`Counters::spool_corrupt`].
    pub spool_corrupt: u64,
    /// See [`Counters::intake_refused`].
    pub intake_refused: u64,
    /// See [`Counters::spool_batches`].
    pub spool_batches: u64,
    /// See [`Counters::spool_bytes`].
    pub spool_bytes: u64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            events_received: get(&self.events_received),
            requests_rejected: get(&self.requests_rejected),
            requests_unrouted: get(&self.requests_unrouted),
            events_deduplicated: get(&self.events_deduplicated),
            log_events_read: get(&self.log_events_read),
            log_lines_rejected: get(&self.log_lines_rejected),
            samples_taken: get(&self.samples_taken),
            batches_sent: get(&self.batches_sent),
            events_sent: get(&self.events_sent),
            bytes_sent: get(&self.bytes_sent),
            send_retries: get(&self.send_retries),
            batches_dropped: get(&self.batches_dropped),
            events_dropped: get(&self.events_dropped),
            batches_quarantined: get(&self.batches_quarantined),
            events_quarantined: get(&self.events_quarantined),
            batches_split: get(&self.batches_split),
            batches_spooled: get(&self.batches_spooled),
            events_spooled: get(&self.events_spooled),
            spool_corrupt: get(&self.spool_corrupt),
            intake_refused: get(&self.intake_refused),
            spool_batches: get(&self.spool_batches),
            spool_bytes: get(&self.spool_bytes),
        }
    }
}
