//! Retention: on a schedule, deletes stored data older than the longest `retention_period` of the
//! profiles in force (raw events and samples serve every profile, so the longest one wins).

use tda_schema::profile::DEFAULT_RETENTION_PERIOD;
use tda_schema::timestamp::now_ms;

use crate::app::App;
use tda_schema::timestamp::DAY_MS;

/// The retention in force, days: the longest of the profiles', else the default (30).
pub fn retention_days(app: &App) -> u64 {
    app.profiles
        .list()
        .iter()
        .map(|e| e.profile.settings.retention_period)
        .max()
        .unwrap_or(DEFAULT_RETENTION_PERIOD)
}

/// Deletes what is older than the retention in force, now.
pub fn run_once(app: &App) {
    let days = retention_days(app);
    let cutoff = now_ms() - days as i64 * DAY_MS;
    match app
        .observed
        .time("retention", || app.store.delete_before(cutoff))
    {
        Ok(d) if d.blocks > 0 || d.batch_ids > 0 => {
            tracing::info!(
                retention_days = days,
                blocks = d.blocks,
                batch_ids = d.batch_ids,
                "retention deleted old data"
            );
        }
        Ok(_) => tracing::debug!(retention_days = days, "retention: nothing to delete"),
        Err(e) => tracing::error!(error = %e, "retention failed; will try again"),
    }
}

/// One pass of [`JOB`].
pub fn pass(app: &App, _: &mut ()) {
    run_once(app);
}
