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
        events_received => "tda_agent_events_received_total",
        /// Intake requests refused as invalid (4xx).
        requests_rejected => "tda_agent_intake_requests_rejected_total",
        /// Intake requests to no route (404), a wrong method (405) or a disabled SDK intake.
        requests_unrouted => "tda_agent_intake_requests_unrouted_total",
        /// Events dropped as repeats of a recent PostHog `uuid` or Segment `messageId`.
        events_deduplicated => "tda_agent_events_deduplicated_total",
        /// Events read from the request log (also counted in `events_received`).
        log_events_read => "tda_agent_log_events_read_total",
        /// Request log lines refused (not JSON, no user id, a bad field, too long).
        log_lines_rejected => "tda_agent_log_lines_rejected_total",
        /// Host samples taken.
        samples_taken => "tda_agent_samples_taken_total",
        /// Batches the collector acknowledged.
        batches_sent => "tda_agent_batches_total" ["outcome" = "sent"],
        /// Events inside acknowledged batches.
        events_sent => "tda_agent_events_sent_total",
        /// Bytes (compressed, as sent) of acknowledged batches.
        bytes_sent => "tda_agent_sent_bytes_total",
        /// Send attempts that failed and will be retried.
        send_retries => "tda_agent_send_retries_total",
        /// Batches dropped because the spool was full (oldest first) or could not be written.
        batches_dropped => "tda_agent_batches_total" ["outcome" = "dropped"],
        /// Events inside dropped batches.
        events_dropped => "tda_agent_events_dropped_total",
        /// Batches the collector refused as invalid (quarantined, not retried).
        batches_quarantined => "tda_agent_batches_total" ["outcome" = "quarantined"],
        /// Events inside quarantined batches: the events the collector refuses, one by one once
        /// their batches were split.
        events_quarantined => "tda_agent_events_quarantined_total",
        /// Refused batches split in halves to find the events the collector refuses.
        batches_split => "tda_agent_batches_total" ["outcome" = "split"],
        /// Batches written to the spool.
        batches_spooled => "tda_agent_batches_total" ["outcome" = "spooled"],
        /// Events inside batches written to the spool.
        events_spooled,
        /// Torn or corrupt spool files found and removed.
        spool_corrupt => "tda_agent_spool_corrupt_total",
        /// Intake requests refused because the spool was full (`refuse_intake`).
        intake_refused => "tda_agent_intake_requests_refused_total",
        /// Batches in the spool now (a gauge).
        spool_batches => gauge "tda_agent_spool_batches",
        /// Bytes in the spool now (a gauge).
        spool_bytes => gauge "tda_agent_spool_bytes",
    }
    families {
        "tda_agent_batches_total" => "Batches, by what happened to them.",
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
