//! Batch intake's counters, and the decoding of a batch body: decompressed within its limit,
//! every field validated. (The route is [`crate::api`]'s `ingest`.)

use std::io::Read;

use std::sync::atomic::AtomicI64;

use hyper::StatusCode;
use tda_blocks::batch::{self, ColumnarBatch};
use tda_daemon::Refusal;
use tda_schema::config::LimitsConfig;
use tda_schema::wire::decode_batch;
use tda_schema::Batch;

use crate::cardinality::FeatureGuard;
use crate::store::{Appended, Storage, StoreError};

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

tda_daemon::counters! {
    /// Counters of the batch intake, for `/healthz` and `/metrics`.
    pub struct IngestCounters;
    /// A copy of [`IngestCounters`]' numbers, for `/healthz`.
    pub struct IngestSnapshot;
    {
        /// Batches stored (acknowledged after a durable write).
        batches_stored => "tda_collector_batches_total" ["outcome" = "stored"],
        /// Events in stored batches.
        events_stored => "tda_collector_events_stored_total",
        /// Batches acknowledged as duplicates of stored ones (retries), not stored again.
        batches_duplicate => "tda_collector_batches_total" ["outcome" = "duplicate"],
        /// Batches refused as invalid or unauthorised (4xx other than 429).
        batches_rejected => "tda_collector_batches_total" ["outcome" = "rejected"],
        /// Batches answered 429 because the write queue was full.
        batches_throttled => "tda_collector_batches_total" ["outcome" = "throttled"],
        /// Batches whose storage failed (503; the agent retries).
        store_failures => "tda_collector_batches_total" ["outcome" = "store_failed"],
        /// Batches refused with 507 because the store reached `storage.max_disk_bytes`.
        batches_refused_disk_full => "tda_collector_batches_total" ["outcome" = "disk_full"],
        /// Batches decoded from the binary format (the agent's).
        batches_binary => "tda_collector_batch_formats_total" ["format" = "binary"],
        /// Batches decoded from JSON (older agents, replays).
        batches_json => "tda_collector_batch_formats_total" ["format" = "json"],
        /// Events stored under the overflow feature, past `limits.max_features_per_hour`.
        events_feature_overflowed => "tda_collector_events_feature_overflowed_total",
    }
    families {
        "tda_collector_batches_total" => "Batches received, by outcome.",
        "tda_collector_batch_formats_total" => "Batches decoded, by wire format.",
    }
    extra {
        /// The newest event time stored (epoch ms; 0 until one is): how far data has arrived,
        /// for the scheduler (a backfill or a spool flush arrives oldest first).
        newest_event_ms: AtomicI64,
    }
}

/// A decoded, validated batch: JSON (its events built) or binary (its events in columns).
pub enum Decoded {
    /// A JSON batch (`application/json`, older agents and the replay paths).
    Json(Batch),
    /// A binary batch ([`tda_blocks::batch::CONTENT_TYPE`]).
    Binary(Box<ColumnarBatch>),
}

impl Decoded {
    /// The batch's id.
    pub fn batch_id(&self) -> &str {
        match self {
            Decoded::Json(b) => &b.batch_id,
            Decoded::Binary(b) => &b.batch_id,
        }
    }

    /// Events and samples it holds.
    pub fn counts(&self) -> (usize, usize) {
        match self {
            Decoded::Json(b) => (b.events.len(), b.samples.len()),
            Decoded::Binary(b) => (b.events.len(), b.samples.len()),
        }
    }

    /// Its newest event time (epoch ms).
    pub fn newest(&self) -> Option<i64> {
        match self {
            Decoded::Json(b) => b.events.iter().map(|e| e.timestamp.0).max(),
            Decoded::Binary(b) => b.events.timestamps.iter().copied().max(),
        }
    }

    /// Applies the feature cap ([`FeatureGuard`]); returns how many events were folded. A
    /// binary batch whose names all fit stays in columns; one that needs folding is built.
    pub fn fold(&mut self, guard: &FeatureGuard, cap: usize) -> Result<u64, Refusal> {
        let built = match self {
            Decoded::Json(b) => return Ok(guard.fold(&mut b.events, cap)),
            Decoded::Binary(b) if guard.admit(&b.events, cap) => return Ok(0),
            Decoded::Binary(b) => b.to_batch(),
        };
        let mut built =
            built.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("events: {e}")))?;
        let folded = guard.fold(&mut built.events, cap);
        *self = Decoded::Json(built);
        Ok(folded)
    }

    /// Stores it.
    pub fn append_to(&self, store: &dyn Storage) -> Result<Appended, StoreError> {
        match self {
            Decoded::Json(b) => store.append(b),
            Decoded::Binary(b) => store.append_columns(b),
        }
    }
}

/// Decompresses and validates a body of `content_type` (binary when it is
/// [`tda_blocks::batch::CONTENT_TYPE`], else JSON).
pub fn decode(
    encoding: &str,
    content_type: &str,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<Decoded, Refusal> {
    let bytes = match encoding {
        "zstd" => decompress(body, limits.max_decompressed_bytes)
            .map_err(|(status, msg)| Refusal::new(status, msg))?,
        "identity" => body.to_vec(),
        other => {
            let msg = format!("content-encoding `{other}` not supported (zstd or identity)");
            return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
        }
    };
    let bad = |e: tda_schema::FieldError| Refusal::new(StatusCode::BAD_REQUEST, e.to_string());
    let incoming = if content_type == batch::CONTENT_TYPE {
        let decoded = batch::decode(&bytes, limits.max_decompressed_bytes).map_err(bad)?;
        Decoded::Binary(Box::new(decoded))
    } else {
        Decoded::Json(decode_batch(&bytes).map_err(bad)?)
    };
    let events = incoming.counts().0;
    if events > limits.max_events_per_batch {
        let msg = format!(
            "events: {events} events, more than limits.max_events_per_batch ({})",
            limits.max_events_per_batch
        );
        return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, msg));
    }
    Ok(incoming)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_batch_past_the_feature_cap_folds_as_a_json_one_does() {
        let t = tda_schema::Timestamp::now().0;
        let events: Vec<tda_schema::Event> = ["a", "b", "c", "a"]
            .iter()
            .map(|f| {
                serde_json::from_value(
                    serde_json::json!({"timestamp": t, "user_id": "u", "feature": f}),
                )
                .unwrap()
            })
            .collect();
        let batch = Batch {
            version: tda_schema::wire::BATCH_FORMAT_VERSION,
            agent_id: "a".into(),
            batch_id: "b".into(),
            created_at: tda_schema::Timestamp(t),
            events,
            samples: Vec::new(),
        };
        let limits = LimitsConfig::default();
        let body = batch::encode(&batch);
        let mut binary = decode("identity", batch::CONTENT_TYPE, &body, &limits).unwrap();
        let json = serde_json::to_vec(&batch).unwrap();
        let mut plain = decode("identity", "application/json", &json, &limits).unwrap();
        let (binary_guard, json_guard) = (FeatureGuard::default(), FeatureGuard::default());
        assert_eq!(binary.fold(&binary_guard, 2).unwrap(), 1);
        assert_eq!(plain.fold(&json_guard, 2).unwrap(), 1);
        match (binary, plain) {
            (Decoded::Json(a), Decoded::Json(b)) => assert_eq!(a.events, b.events),
            _ => panic!("a folded batch is built as events"),
        }
        // Within the cap a binary batch stays in columns.
        let mut fits = decode("identity", batch::CONTENT_TYPE, &body, &limits).unwrap();
        assert_eq!(fits.fold(&FeatureGuard::default(), 3).unwrap(), 0);
        assert!(matches!(fits, Decoded::Binary(_)));
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
