//! `POST /v1/batches`: enforces the disk cap and size limits, reads the body before taking a
//! write permit, decodes and validates it, folds feature names past the hourly cap, and stores
//! the batch, answering only once it is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::CONTENT_ENCODING;
use hyper::{Request, StatusCode};
use tda_daemon::{error, json, read_body_within, Refusal, Response};
use tda_schema::config::LimitsConfig;
use tda_schema::Batch;
use tokio::sync::OwnedSemaphorePermit;

use super::{Answer, Path};
use crate::app::App;
use crate::ingest::decode;
use crate::store::Appended;

/// `POST /v1/batches` (the ingest scope is checked by the route): read the body, take a write
/// permit (or 429), decode, store, answer.
pub async fn batch(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    accept(req, &app).await
}

/// Counts a refused batch by kind.
pub fn refused(app: &App, refusal: &Refusal) {
    let counter = match refusal.status {
        StatusCode::TOO_MANY_REQUESTS => &app.ingest.batches_throttled,
        StatusCode::INSUFFICIENT_STORAGE => &app.ingest.batches_refused_disk_full,
        _ => &app.ingest.batches_rejected,
    };
    add(counter, 1);
}

async fn accept(req: Request<Incoming>, app: &App) -> Result<Response, Refusal> {
    if app.disk_full.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage.max_disk_bytes reached; retry later",
        ));
    }
    let limits = app.limits();
    // The body is read before a write permit is taken: a slow sender holds its connection
    // (until `limits.body_timeout`), never a write slot other agents need.
    let (encoding, body) = read_request(req, &limits).await?;
    let permit = app.writes.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "write queue full; retry later",
        )
    })?;
    let (mut batch, bytes) = decode(&encoding, &body, &limits)?;
    app.observed.batch_bytes.observe(bytes as f64);
    app.observed.batch_events.observe(batch.events.len() as f64);
    let folded = app
        .features
        .fold(&mut batch.events, limits.max_features_per_hour);
    if folded > 0 {
        add(&app.ingest.events_feature_overflowed, folded);
        tracing::debug!(batch_id = %batch.batch_id, folded, cap = limits.max_features_per_hour,
            "feature names past the hourly cap stored as (overflow)");
    }
    Ok(store(batch, app, permit).await)
}

/// Reads the body within the limits; returns its content encoding and bytes.
async fn read_request(
    req: Request<Incoming>,
    limits: &LimitsConfig,
) -> Result<(String, bytes::Bytes), Refusal> {
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    let body = read_body_within(req, limits.max_body_bytes, limits.body_timeout.0).await?;
    Ok((encoding, body))
}

/// Stores a batch off the async threads and answers once it is durable.
async fn store(batch: Batch, app: &App, permit: OwnedSemaphorePermit) -> Response {
    let (events, samples) = (batch.events.len(), batch.samples.len());
    let newest = batch.events.iter().map(|e| e.timestamp.0).max();
    let store = app.store.clone();
    let started = std::time::Instant::now();
    let stored = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        store.append(&batch).map(|a| (a, batch.batch_id))
    })
    .await;
    app.observed
        .store_seconds
        .observe(started.elapsed().as_secs_f64());
    let counters = &app.ingest;
    match stored {
        Ok(Ok((appended, batch_id))) => {
            let duplicate = appended == Appended::Duplicate;
            if duplicate {
                add(&counters.batches_duplicate, 1);
            } else {
                add(&counters.batches_stored, 1);
                add(&counters.events_stored, events as u64);
                if let Some(t) = newest {
                    counters
                        .newest_event_ms
                        .fetch_max(t, std::sync::atomic::Ordering::Relaxed);
                }
            }
            tracing::debug!(%batch_id, events, samples, duplicate, "batch stored");
            let body = serde_json::json!({ "batch_id": batch_id, "events": events, "samples": samples, "duplicate": duplicate });
            json(StatusCode::OK, &body)
        }
        Ok(Err(e)) => {
            add(&counters.store_failures, 1);
            tracing::error!(error = %e, "storing batch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("storage: {e}"))
        }
        Err(e) => {
            add(&counters.store_failures, 1);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("storage task failed: {e}"),
            )
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
