//! The collector's periodic work, every job run by one loop ([`every`]): compaction and the
//! disk cap, retention, the scheduler (models and reports), alert evaluation, the fleet lease
//! and the live dashboard's snapshot. ([`crate::alert::notify::deliver`] keeps its own loop: its
//! passes wait on HTTP, not on a blocking thread.)

pub mod compaction;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use tda_schema::timestamp::now_ms;
use tokio::time::Instant;

use crate::alert;
use crate::app::App;
use crate::arrivals::Arrivals;
use crate::fleet::Work;

/// How a periodic job runs.
pub struct Job {
    /// Its name in logs and for the systemd watchdog.
    pub name: &'static str,
    /// Time from the start of one pass to the next, read from the config in force each time.
    pub period: fn(&App) -> Duration,
    /// Whether the first pass waits one period (else it runs at start).
    pub wait_first: bool,
    /// Whether a pass is wanted now (checked before a thread is taken for it): [`always`],
    /// [`leading`] (only the collector leading the fleet, see [`crate::fleet`]), or the job's own.
    pub when: fn(&App) -> bool,
    /// When set, the watchdog reports the service stuck if a pass takes longer.
    pub watchdog: Option<Duration>,
}

/// The retention job: once per `retention.every`, on the fleet's leader.
const RETENTION: Job = Job {
    name: "retention",
    period: |app| app.config().retention.every.0,
    wait_first: false,
    when: leading,
    watchdog: None,
};

/// The compaction job: once per `storage.compact_every`, merges the hours older than
/// `storage.compact_after`.
const COMPACTION: Job = Job {
    name: "compaction",
    period: |app| app.config().storage.compact_every.0,
    wait_first: false,
    when: always,
    watchdog: None,
};

/// The disk-cap check: every 10 s, the store's size against `storage.max_disk_bytes`.
const DISK_CHECK: Job = Job {
    name: "disk check",
    period: |_| Duration::from_secs(10),
    wait_first: false,
    when: always,
    watchdog: None,
};

/// The scheduler: every 5 s, a pass over the profiles (see [`schedule_at`]).
const SCHEDULER: Job = Job {
    name: "scheduler",
    period: |_| Duration::from_secs(5),
    wait_first: false,
    when: always,
    watchdog: Some(Duration::from_secs(600)),
};

/// Alert evaluation: once per `alerting.evaluation_interval` (the first after one interval).
const ALERTS: Job = Job {
    name: "alerts",
    period: |app| app.config().alerting.evaluation_interval.0,
    wait_first: true,
    when: always,
    watchdog: Some(std::time::Duration::from_secs(120)),
};

/// The live snapshot's refresh: every second while at least one client watches.
const LIVE_DASHBOARD: Job = Job {
    name: "live dashboard",
    period: |_| Duration::from_secs(1),
    wait_first: false,
    when: |app| app.live_snapshot.receiver_count() > 0,
    watchdog: None,
};

/// The lease: renewed (or claimed) every third of its time to live, on a shared store only.
const FLEET_LEASE: Job = Job {
    name: "fleet lease",
    period: |app| app.fleet.renew_every(),
    wait_first: false,
    when: always,
    watchdog: None,
};

/// Every pass is wanted.
fn always(_: &App) -> bool {
    true
}

/// Only the fleet's leader runs it.
fn leading(app: &App) -> bool {
    app.fleet.leads()
}

/// Starts every periodic job of the collector.
pub fn start(app: &Arc<App>) {
    tokio::spawn(every(app.clone(), RETENTION, retention::pass));
    tokio::spawn(every(app.clone(), COMPACTION, compaction::pass));
    tokio::spawn(every(app.clone(), DISK_CHECK, compaction::check_disk));
    tokio::spawn(every(app.clone(), SCHEDULER, schedule));
    tokio::spawn(every(app.clone(), ALERTS, alerts));
    tokio::spawn(deliver(app.clone()));
    tokio::spawn(every(app.clone(), LIVE_DASHBOARD, refresh_live));
    if app.fleet.shared() {
        tokio::spawn(every(app.clone(), FLEET_LEASE, |app, _: &mut ()| {
            app.sharing().keep()
        }));
    }
}

/// Runs `pass` on a blocking thread once per period of `job`, until the process ends; `state`
/// goes from one pass to the next (a pass that panics starts the next from the default).
pub async fn every<S: Default + Send + 'static>(app: Arc<App>, job: Job, pass: fn(&App, &mut S)) {
    let beat = job.watchdog.map(|w| app.progress.register(job.name, w));
    let mut state = S::default();
    let mut next = Instant::now();
    if job.wait_first {
        next += (job.period)(&app);
    }
    loop {
        if let Some(b) = &beat {
            b.idle();
        }
        tokio::time::sleep_until(next).await;
        // The next pass is due one period after this one began (or now, if this one overran).
        next = (next + (job.period)(&app)).max(Instant::now());
        if let Some(b) = &beat {
            b.tick();
        }
        if !(job.when)(&app) {
            continue;
        }
        let a = app.clone();
        let ran = tokio::task::spawn_blocking(move || {
            pass(&a, &mut state);
            state
        });
        state = ran.await.unwrap_or_else(|e| {
            tracing::error!(job = job.name, error = %e, "periodic job failed; runs again next period");
            S::default()
        });
    }
}

/// One pass of [`LIVE_DASHBOARD`]: the live snapshot, while at least one client watches.
pub fn refresh_live(app: &App, _: &mut ()) {
    match crate::dashboard::snapshot(&*app.store, &app.alerts.store, now_ms()) {
        Ok(v) => {
            app.live_snapshot.send_replace(Some(Arc::new(v)));
        }
        Err(e) => tracing::warn!(error = %e, "live snapshot failed"),
    }
}

/// One pass of [`ALERTS`] now: every rule evaluated, then the notifications due queued.
fn alerts(app: &App, _: &mut ()) {
    alerts_at(app, now_ms());
}

/// One pass of [`ALERTS`] at `now`, on the fleet's leader; its state is then shared.
pub fn alerts_at(app: &App, now: i64) {
    if !app.fleet.leads() {
        return;
    }
    let (alerting, cfg) = (&app.alerts, app.config().alerting);
    app.observed.time("alerts", || {
        let profiles = app.profiles.list();
        if let Err(e) = alert::evaluate(&alerting.store, &*app.store, &profiles, now) {
            tracing::error!(error = %e, "alert evaluation failed; will try again");
        }
        if let Err(e) = alert::notify_groups(&alerting.store, &cfg, now) {
            tracing::error!(error = %e, "alert notification pass failed; will try again");
        }
    });
    alerting.passes.fetch_add(1, Ordering::Relaxed);
    app.sharing().publish(Work::Alerting);
}

/// Delivers the alert outbox until the process ends: every 250 ms, each notification that is
/// due, in order, while this collector leads the fleet; what was settled is then shared.
async fn deliver(app: Arc<App>) {
    let client = tda_daemon::tls::client_builder()
        .build()
        .unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if !app.fleet.leads() {
            continue;
        }
        let share = || crate::fleet::blocking(|| app.sharing().publish(Work::Alerting));
        alert::notify::deliver_due(&app.alerts, &client, share).await;
    }
}

/// One pass of [`SCHEDULER`] now.
fn schedule(app: &App, arrivals: &mut Arrivals) {
    schedule_at(app, now_ms(), arrivals);
}

/// One pass of [`SCHEDULER`] at `now`: on the fleet's leader, the models of every predictive
/// and behavioral profile that are due, then the reports that are due; the state is then shared.
pub fn schedule_at(app: &App, now: i64, arrivals: &mut Arrivals) {
    let ingest = &app.ingest;
    arrivals.observe(
        ingest.events_stored.load(Ordering::Relaxed),
        ingest.newest_event_ms.load(Ordering::Relaxed),
        now,
    );
    if !app.fleet.leads() {
        return;
    }
    let profiles = app.profiles.list();
    let models = crate::schedule::Models {
        store: &*app.store,
        state: &app.models,
    };
    app.observed.time("models", || {
        crate::schedule::run_models(&models, &profiles, now, arrivals)
    });
    app.observed.time("reports", || {
        app.reports().run_due(&profiles, now, arrivals)
    });
    let sharing = app.sharing();
    sharing.publish(Work::Models);
    sharing.publish(Work::Alerting);
}
