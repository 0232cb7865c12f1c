//! Compaction and the disk cap on a schedule: merges the blocks of past hours, and sets the
//! disk-full flag that makes intake answer 507 while the store exceeds `storage.max_disk_bytes`.

use std::sync::atomic::Ordering;

use tda_schema::timestamp::now_ms;

use crate::app::App;
use crate::store::{Compacted, StoreError};

/// Compacts every hour that ended before `before` (epoch ms), now.
pub fn run_once(app: &App, before: i64) -> Result<Compacted, StoreError> {
    let started = std::time::Instant::now();
    let done = app
        .observed
        .time("compaction", || app.store.compact(before))?;
    if done.hours > 0 {
        tracing::info!(
            hours = done.hours,
            blocks_merged = done.blocks_merged,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compaction merged blocks"
        );
    }
    Ok(done)
}

/// Sets `app.disk_full` from the store's size and the cap in force.
pub fn check_disk(app: &App, _: &mut ()) {
    let cap = app.config().storage.max_disk_bytes;
    let used = match app.store.disk_bytes() {
        Ok(b) => b,
        Err(e) => return tracing::warn!(error = %e, "cannot read the store's size"),
    };
    app.observed.storage_bytes.store(used, Ordering::Relaxed);
    let full = cap > 0 && used > cap;
    if app.disk_full.swap(full, Ordering::Relaxed) != full {
        if full {
            tracing::error!(used_bytes = used, max_disk_bytes = cap,
                "store exceeds storage.max_disk_bytes; refusing batches with 507 until space is freed");
        } else {
            tracing::info!(
                used_bytes = used,
                max_disk_bytes = cap,
                "store is under storage.max_disk_bytes again; accepting batches"
            );
        }
    }
}

/// One pass of [`JOB`].
pub fn pass(app: &App, _: &mut ()) {
    let after = app.config().storage.compact_after.0.as_millis() as i64;
    if let Err(e) = run_once(app, now_ms() - after) {
        tracing::error!(error = %e, "compaction failed; will try again");
    }
}
