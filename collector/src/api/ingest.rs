//! `POST /v1/batches`: enforces the disk cap and size limits, reads the body before taking a
//! write permit, decodes and validates it, folds feature names past the hourly cap, and stores
//! the batch, answering only once it is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use tda_daemon::{error, json, read_body_within, Refusal, Response};
use tda_schema::config::LimitsConfig;

use super::{Answer, Path};
use crate::app::App;
use crate::ingest::{decode, Decoded};
use crate::store::{Appended, StoreError};

/// `POST /v1/batches` (the ingest scope is checked by the route): read the body, take a write
/// permit (or 429), decode, store, answer.
pub async fn batch(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let mut answer = accept(req, app).await;
    // Its answers say which bodies this collector takes: an agent sends binary batches only
    // to a collector that named them (older collectors read every body as JSON).
    if let Ok(r) = &mut answer {
        let accepts = HeaderValue::from_static(ACCEPT_POST);
        r.headers_mut().insert("accept-post", accepts);
    }
    answer
}

/// The `Accept-Post` of a stored batch's answer: the binary batch, then JSON.
pub const ACCEPT_POST: &str = "application/vnd.tda.batch, application/json";

/// Counts a refused batch by kind.
pub fn refused(app: &App, refusal: &Refusal) {
    let counter = match refusal.status {
        StatusCode::TOO_MANY_REQUESTS => &app.ingest.batches_throttled,
        StatusCode::INSUFFICIENT_STORAGE => &app.ingest.batches_refused_disk_full,
        _ => &app.ingest.batches_rejected,
    };
    add(counter, 1);
}

async fn accept(req: Request<Incoming>, app: Arc<App>) -> Result<Response, Refusal> {
    if app.disk_full.load(Ordering::Relaxed) {
        return Err(Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage.max_disk_bytes reached; retry later",
        ));
    }
    let limits = app.limits();
    // The body is read before a write permit is taken: a slow sender holds its connection
    // (until `limits.body_timeout`), never a write slot other agents need.
    let (encoding, content_type, body) = read_request(req, &limits).await?;
    let permit = app.writes.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "write queue full; retry later",
        )
    })?;
    // Decoding, folding and storing run off the async threads: a 10 k-event batch's decode
    // must not hold up the connections of other agents.
    let started = std::time::Instant::now();
    let worker = app.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut batch = decode(&encoding, &content_type, &body, &limits)?;
        let format = match batch {
            Decoded::Binary(_) => &worker.ingest.batches_binary,
            Decoded::Json(_) => &worker.ingest.batches_json,
        };
        add(format, 1);
        worker.observed.batch_bytes.observe(body.len() as f64);
        worker
            .observed
            .batch_events
            .observe(batch.counts().0 as f64);
        fold(&mut batch, &worker, limits.max_features_per_hour)?;
        let stored = batch.append_to(&*worker.store);
        Ok::<_, Refusal>((batch, stored))
    })
    .await;
    app.observed
        .store_seconds
        .observe(started.elapsed().as_secs_f64());
    match done {
        Ok(Ok((batch, stored))) => Ok(answer(&batch, stored, &app)),
        Ok(Err(refusal)) => Err(refusal),
        Err(e) => {
            add(&app.ingest.store_failures, 1);
            let msg = format!("storage task failed: {e}");
            Ok(error(StatusCode::INTERNAL_SERVER_ERROR, &msg))
        }
    }
}

/// Folds feature names past the hourly cap into the overflow feature, counting them.
fn fold(batch: &mut Decoded, app: &App, cap: usize) -> Result<(), Refusal> {
    let folded = batch.fold(&app.features, cap)?;
    if folded > 0 {
        add(&app.ingest.events_feature_overflowed, folded);
        tracing::debug!(batch_id = %batch.batch_id(), folded, cap,
            "feature names past the hourly cap stored as (overflow)");
    }
    Ok(())
}

/// Reads the body within the limits; returns its content encoding, content type and bytes.
async fn read_request(
    req: Request<Incoming>,
    limits: &LimitsConfig,
) -> Result<(String, String, bytes::Bytes), Refusal> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
    };
    let encoding = header(CONTENT_ENCODING).unwrap_or_else(|| "identity".into());
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    let body = read_body_within(req, limits.max_body_bytes, limits.body_timeout.0).await?;
    Ok((encoding, content_type, body))
}

/// The answer to a stored (or failed) batch, counted.
fn answer(batch: &Decoded, stored: Result<Appended, StoreError>, app: &App) -> Response {
    let (events, samples) = batch.counts();
    let batch_id = batch.batch_id();
    let counters = &app.ingest;
    match stored {
        Ok(appended) => {
            let duplicate = appended == Appended::Duplicate;
            if duplicate {
                add(&counters.batches_duplicate, 1);
            } else {
                add(&counters.batches_stored, 1);
                add(&counters.events_stored, events as u64);
                if let Some(t) = batch.newest() {
                    counters.newest_event_ms.fetch_max(t, Ordering::Relaxed);
                }
            }
            tracing::debug!(%batch_id, events, samples, duplicate, "batch stored");
            let body = serde_json::json!({ "batch_id": batch_id, "events": events, "samples": samples, "duplicate": duplicate });
            json(StatusCode::OK, &body)
        }
        Err(e) => {
            add(&counters.store_failures, 1);
            tracing::error!(error = %e, "storing batch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("storage: {e}"))
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
