//! `GET /metrics`: the collector's ingest, write queue, storage, reloads, scheduled jobs, alerts,
//! connections and process, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use tda_daemon::metrics::{Exposition, Histogram, Kind};
use tda_schema::timestamp::Timestamp;

use super::{Answer, Path};
use crate::alert::rule::Phase;
use crate::app::App;
use crate::metrics::JOBS;

/// `GET /metrics`: the scrape.
pub async fn render(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let app = &*app;
    let mut e = Exposition::new();
    ingest(&mut e, app);
    storage(&mut e, app);
    reloads(&mut e, app);
    jobs(&mut e, app);
    alerts(&mut e, app);
    app.connections.expose(&mut e, "tda_collector");
    e.process();
    Ok(e.response())
}

fn get(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64
}

fn ingest(e: &mut Exposition, app: &App) {
    e.exported(&app.ingest.exported());
    let o = &app.observed;
    e.histogram(
        "tda_collector_batch_events",
        "Events per batch received.",
        &[(&[], &o.batch_events)],
    );
    e.histogram(
        "tda_collector_batch_bytes",
        "Bytes per batch body as received.",
        &[(&[], &o.batch_bytes)],
    );
    e.histogram(
        "tda_collector_batch_store_seconds",
        "Time to store a batch durably.",
        &[(&[], &o.store_seconds)],
    );
    let capacity = app.config().limits.max_inflight_batches;
    let free = app.writes.available_permits().min(capacity);
    e.gauge(
        "tda_collector_write_queue_batches",
        "Batches being stored now.",
        (capacity - free) as f64,
    );
    e.gauge(
        "tda_collector_write_queue_capacity_batches",
        "Batches that may be stored at once (limits.max_inflight_batches).",
        capacity as f64,
    );
}

fn storage(e: &mut Exposition, app: &App) {
    e.gauge(
        "tda_collector_storage_bytes",
        "Size of the store's files at the last check (sled: data_dir; ClickHouse: its tables).",
        get(&app.observed.storage_bytes),
    );
    e.gauge(
        "tda_collector_storage_disk_full",
        "1 while the store exceeds storage.max_disk_bytes and batches are refused.",
        f64::from(u8::from(app.disk_full.load(Ordering::Relaxed))),
    );
    e.gauge(
        "tda_collector_fleet_leader",
        "1 when this collector runs the scheduled work.",
        f64::from(u8::from(app.fleet.leads())),
    );
}

fn seconds(rfc3339: Option<&str>) -> f64 {
    rfc3339
        .and_then(|t| Timestamp::parse(t).ok())
        .map_or(0.0, |t| t.0 as f64 / 1000.0)
}

fn reloads(e: &mut Exposition, app: &App) {
    let config = app.config_status();
    e.gauge(
        "tda_collector_config_last_reload_successful",
        "1 if the last reload of collector.toml succeeded.",
        f64::from(u8::from(config.last_error.is_none())),
    );
    e.gauge(
        "tda_collector_config_last_reload_success_timestamp_seconds",
        "When collector.toml was last loaded successfully.",
        seconds(Some(&config.loaded_at)),
    );
    let p = app.profiles.stats();
    e.counter(
        "tda_collector_profile_reloads_total",
        "Reloads of the profiles directory since start.",
        p.reloads_total,
    );
    e.gauge(
        "tda_collector_profiles_last_reload_successful",
        "1 if every profile file loaded at the last reload.",
        f64::from(u8::from(p.last_reload_ok)),
    );
    e.gauge(
        "tda_collector_profiles_last_reload_success_timestamp_seconds",
        "When a reload last loaded every profile file.",
        seconds(p.last_success_at.as_deref()),
    );
    e.gauge(
        "tda_collector_profiles",
        "Profiles in force.",
        app.profiles.list().len() as f64,
    );
    e.gauge(
        "tda_collector_profile_errors",
        "Profile files whose current content is refused (the previous version stays).",
        app.profiles.errors().len() as f64,
    );
}

fn jobs(e: &mut Exposition, app: &App) {
    let series: Vec<([(&str, &str); 1], &Histogram)> = JOBS
        .iter()
        .zip(&app.observed.jobs)
        .map(|(job, h)| ([("job", *job)], h))
        .collect();
    let series: Vec<(&[(&str, &str)], &Histogram)> =
        series.iter().map(|(l, h)| (&l[..], *h)).collect();
    e.histogram(
        "tda_collector_job_duration_seconds",
        "Time one pass of a scheduled job took.",
        &series,
    );
}

fn alerts(e: &mut Exposition, app: &App) {
    let stored = app.alerts.store.alerts().unwrap_or_default();
    let mut f = e.family(
        "tda_collector_alert_state",
        Kind::Gauge,
        "1 for each alert rule's current state (inactive, pending, firing, resolved).",
    );
    for a in &stored {
        let state = match a.state.phase {
            Phase::Inactive => "inactive",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        };
        let labels = [
            ("profile", a.profile.as_str()),
            ("rule", a.rule.as_str()),
            ("state", state),
        ];
        f.sample(&labels, 1.0);
    }
    let c = &app.alerts.counters;
    e.family(
        "tda_collector_notifications_total",
        Kind::Counter,
        "Alert notifications, by outcome.",
    )
    .sample(&[("outcome", "sent")], get(&c.sent))
    .sample(&[("outcome", "retried")], get(&c.retried))
    .sample(&[("outcome", "dropped")], get(&c.dropped));
    e.counter(
        "tda_collector_alert_evaluations_total",
        "Alert evaluation passes since start.",
        app.alerts.passes.load(Ordering::Relaxed),
    );
}
