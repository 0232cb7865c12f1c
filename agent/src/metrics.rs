//! `GET /metrics` on the intake port: what the agent took in, sent, retried, dropped and holds in
//! its spool, its config reloads, connections and process, in the Prometheus text format.

use tda_daemon::metrics::{Exposition, Kind};
use tda_daemon::Response;
use tda_schema::timestamp::Timestamp;

use crate::intake::Intake;

/// The scrape.
pub fn render(intake: &Intake) -> Response {
    let mut e = Exposition::new();
    let c = intake.counters.snapshot();
    let n = |v: u64| v as f64;
    e.counter(
        "tda_agent_events_received_total",
        "Usage events accepted on the intakes.",
        c.events_received,
    );
    e.counter(
        "tda_agent_events_deduplicated_total",
        "Events dropped as repeats of a recent uuid or messageId.",
        c.events_deduplicated,
    );
    e.counter(
        "tda_agent_log_events_read_total",
        "Events read from the request log.",
        c.log_events_read,
    );
    e.counter(
        "tda_agent_log_lines_rejected_total",
        "Request log lines refused (not JSON, no user id, a bad field, too long).",
        c.log_lines_rejected,
    );
    e.counter(
        "tda_agent_intake_requests_rejected_total",
        "Intake requests refused as invalid (4xx).",
        c.requests_rejected,
    );
    e.counter(
        "tda_agent_intake_requests_unrouted_total",
        "Intake requests to no route (404), a wrong method (405) or a disabled SDK intake.",
        c.requests_unrouted,
    );
    e.counter(
        "tda_agent_intake_requests_refused_total",
        "Intake requests refused with 503 while the spool was full.",
        c.intake_refused,
    );
    e.counter(
        "tda_agent_samples_taken_total",
        "Host samples taken.",
        c.samples_taken,
    );
    e.family(
        "tda_agent_batches_total",
        Kind::Counter,
        "Batches, by what happened to them.",
    )
    .sample(&[("outcome", "spooled")], n(c.batches_spooled))
    .sample(&[("outcome", "sent")], n(c.batches_sent))
    .sample(&[("outcome", "dropped")], n(c.batches_dropped))
    .sample(&[("outcome", "quarantined")], n(c.batches_quarantined))
    .sample(&[("outcome", "split")], n(c.batches_split));
    e.counter(
        "tda_agent_events_quarantined_total",
        "Events the collector refused, quarantined in the spool (a refused batch is split until they are alone).",
        c.events_quarantined,
    );
    e.counter(
        "tda_agent_events_sent_total",
        "Events inside batches the collector acknowledged.",
        c.events_sent,
    );
    e.counter(
        "tda_agent_events_dropped_total",
        "Events inside batches dropped (spool full or unwritable).",
        c.events_dropped,
    );
    e.counter(
        "tda_agent_sent_bytes_total",
        "Compressed bytes of acknowledged batches.",
        c.bytes_sent,
    );
    e.counter(
        "tda_agent_send_retries_total",
        "Send attempts that failed and will be retried.",
        c.send_retries,
    );
    e.counter(
        "tda_agent_spool_corrupt_total",
        "Torn or corrupt spool files found and removed.",
        c.spool_corrupt,
    );
    e.gauge(
        "tda_agent_spool_batches",
        "Batches waiting in the spool.",
        n(c.spool_batches),
    );
    e.gauge(
        "tda_agent_spool_bytes",
        "Bytes waiting in the spool.",
        n(c.spool_bytes),
    );
    let queued = intake.records.max_capacity() - intake.records.capacity();
    e.gauge(
        "tda_agent_queue_records",
        "Event lists and samples waiting to be batched.",
        queued as f64,
    );
    let o = &intake.counters.observed;
    e.histogram(
        "tda_agent_batch_events",
        "Events per acknowledged batch.",
        &[(&[], &o.batch_events)],
    );
    e.histogram(
        "tda_agent_batch_bytes",
        "Compressed bytes per acknowledged batch.",
        &[(&[], &o.batch_bytes)],
    );
    e.histogram(
        "tda_agent_send_seconds",
        "Time from sending a batch to its acknowledgement.",
        &[(&[], &o.send_seconds)],
    );
    let status = intake.live.status();
    let ok = status.last_error.is_none();
    e.gauge(
        "tda_agent_config_last_reload_successful",
        "1 if the last reload of agent.toml succeeded.",
        f64::from(u8::from(ok)),
    );
    let loaded = Timestamp::parse(&status.loaded_at).map_or(0.0, |t| t.0 as f64 / 1000.0);
    e.gauge(
        "tda_agent_config_last_reload_success_timestamp_seconds",
        "When agent.toml was last loaded successfully.",
        loaded,
    );
    intake.connections.expose(&mut e, "tda_agent");
    if intake.live.config().intake.public.is_some() {
        public(&mut e, intake);
    }
    e.process();
    e.response()
}

/// The public intake's requests, refusals by reason and connections.
fn public(e: &mut Exposition, intake: &Intake) {
    let p = intake.counters.public.snapshot();
    e.counter(
        "tda_agent_public_requests_total",
        "Requests to the public intake.",
        p.requests,
    );
    e.counter(
        "tda_agent_public_preflights_total",
        "CORS preflights the public intake granted.",
        p.preflights,
    );
    let refused = [
        ("origin", p.refused_origin),
        ("ip_rate", p.refused_ip_rate),
        ("key_rate", p.refused_key_rate),
        ("event_size", p.refused_event_size),
        ("unknown_key", p.refused_unknown_key),
    ];
    let mut f = e.family(
        "tda_agent_public_requests_refused_total",
        Kind::Counter,
        "Public intake requests refused by its own checks, by reason (other refusals are in \
         tda_agent_intake_requests_rejected_total and _unrouted_total).",
    );
    for (reason, n) in refused {
        f.sample(&[("reason", reason)], n as f64);
    }
    intake.public_connections.expose(e, "tda_agent_public");
}
