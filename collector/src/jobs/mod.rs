//! The collector's periodic work, every job run by one loop ([`every`]): compaction and the
//! disk cap, retention, the scheduler (models and reports), alert evaluation, the fleet lease
//! and the live dashboard's snapshot. ([`crate::alert::notify::deliver`] keeps its own loop: its
//! passes wait on HTTP, not on a blocking thread.)

pub mod compaction;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;

/// How a periodic job runs.
pub struct Job {
    /// Its name in logs and for the systemd watchdog.
    pub name: &'static str,
    /// Time from the start of one pass to the next, read from the config in force each time.
    pub period: fn(&App) -> Duration,
    /// Whether the first pass waits one period (else it runs at start).
    pub wait_first: bool,
    /// Whether only the collector leading the fleet runs it (see [`crate::fleet`]).
    pub leader_only: bool,
    /// When set, the watchdog reports the service stuck if a pass takes longer.
    pub watchdog: Option<Duration>,
}

/// Starts every periodic job of the collector.
pub fn start(app: &Arc<App>) {
    tokio::spawn(every(app.clone(), retention::JOB, retention::pass));
    tokio::spawn(every(app.clone(), compaction::JOB, compaction::pass));
    tokio::spawn(every(
        app.clone(),
        compaction::DISK_JOB,
        compaction::check_disk,
    ));
    tokio::spawn(every(
        app.clone(),
        crate::schedule::JOB,
        crate::schedule::pass,
    ));
    tokio::spawn(every(app.clone(), crate::alert::JOB, crate::alert::pass));
    tokio::spawn(crate::alert::notify::deliver(app.clone()));
    tokio::spawn(every(
        app.clone(),
        crate::dashboard::LIVE_JOB,
        crate::dashboard::refresh_live,
    ));
    if app.fleet.shared() {
        tokio::spawn(every(app.clone(), crate::fleet::JOB, crate::fleet::keep));
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
        if job.leader_only && !app.fleet.leads() {
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
