//! Batch intake: authenticates the agent, enforces size limits, decompresses, validates every
//! field and stores the batch, answering only once it is durable.

use std::collections::HashSet;
use std::io::Read;

use hyper::body::Incoming;
use hyper::header::CONTENT_ENCODING;
use hyper::{Request, StatusCode};
use tda_daemon::{error, json, read_body_within, Refusal, Response};
use tda_schema::config::LimitsConfig;
use tda_schema::wire::decode_batch;
use tda_schema::Batch;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::App;
use crate::store::Appended;

/// The bearer tokens agents may send batches with.
pub struct Tokens(HashSet<[u8; 32]>);

/// A token's SHA-256: only these are kept in memory, and a presented token is hashed before it
/// is compared, so comparisons take the same time wherever tokens differ.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// A token set; empty strings are ignored.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Tokens(
            tokens
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(|t| digest(&t))
                .collect(),
        )
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens: its digest is compared with every stored one,
    /// each in constant time.
    pub fn allows(&self, presented: &str) -> bool {
        let wanted = digest(presented);
        self.0
            .iter()
            .fold(false, |ok, t| ok | constant_time_eq(t, &wanted))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decompresses a zstd body, refusing to produce more than `limit` bytes.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    let decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("body: not zstd: {e}")))?;
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("body: corrupt zstd: {e}")))?;
    if out.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// `POST /v1/batches`: authorise, read the body, take a write permit (or 429), decode, store,
/// answer.
pub async fn handle(req: Request<Incoming>, app: &App) -> Response {
    match accept(req, app).await {
        Ok(resp) => resp,
        Err(refusal) => {
            let counter = match refusal.status {
                StatusCode::TOO_MANY_REQUESTS => &app.ingest.batches_throttled,
                StatusCode::INSUFFICIENT_STORAGE => &app.ingest.batches_refused_disk_full,
                _ => &app.ingest.batches_rejected,
            };
            add(counter, 1);
            refusal.response()
        }
    }
}

async fn accept(req: Request<Incoming>, app: &App) -> Result<Response, Refusal> {
    app.authorize(&req, crate::app::Scope::Ingest)?;
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
    let (mut batch, bytes) = decode_request(&encoding, &body, &limits)?;
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

/// Decompresses and validates a body; returns the batch and the body's size.
fn decode_request(
    encoding: &str,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<(Batch, usize), Refusal> {
    let json_bytes = match encoding {
        "zstd" => decompress(body, limits.max_decompressed_bytes)
            .map_err(|(status, msg)| Refusal::new(status, msg))?,
        "identity" => body.to_vec(),
        other => {
            let msg = format!("content-encoding `{other}` not supported (zstd or identity)");
            return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
        }
    };
    let batch = decode_batch(&json_bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if batch.events.len() > limits.max_events_per_batch {
        let msg = format!(
            "events: {} events, more than limits.max_events_per_batch ({})",
            batch.events.len(),
            limits.max_events_per_batch
        );
        return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, msg));
    }
    Ok((batch, body.len()))
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

fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let t = Tokens::new(["abc".to_string(), String::new()]);
        assert_eq!(t.len(), 1);
        assert!(t.allows("abc"));
        assert!(!t.allows("abd") && !t.allows("ab") && !t.allows(""));
    }

    #[test]
    fn decompression_is_bounded() {
        let big = vec![b'x'; 1 << 20];
        let packed = zstd::bulk::compress(&big, 3).unwrap();
        assert!(packed.len() < 1000, "a zip bomb in miniature");
        assert_eq!(decompress(&packed, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(
            decompress(&packed, (1 << 20) - 1).unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            decompress(b"not zstd", 100).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }
}
