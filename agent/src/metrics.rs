//! `GET /metrics` on the intake port: what the agent took in, sent, retried, dropped and holds in
//! its spool, its config reloads, connections and process, in the Prometheus text format.

use tda_daemon::metrics::Exposition;
use tda_daemon::Response;
use tda_schema::timestamp::Timestamp;

use crate::intake::Intake;

/// The scrape.
pub fn render(intake: &Intake) -> Response {
    let mut e = Exposition::new();
    e.exported(&intake.counters.exported());
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
    e.exported(&intake.counters.public.exported());
    intake.public_connections.expose(e, "tda_agent_public");
}
