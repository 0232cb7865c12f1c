//! Batch intake's counters, and the decoding of a batch body: decompressed within its limit,
//! every field validated. (The route is [`crate::api`]'s `ingest`.)

use std::io::Read;

use std::sync::atomic::AtomicI64;

use hyper::StatusCode;
use tda_daemon::Refusal;
use tda_schema::config::LimitsConfig;
use tda_schema::wire::decode_batch;
use tda_schema::Batch;

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
        /// Events stored under the overflow feature, past `limits.max_features_per_hour`.
        events_feature_overflowed => "tda_collector_events_feature_overflowed_total",
    }
    families {
        "tda_collector_batches_total" => "Batches received, by outcome.",
    }
    extra {
        /// The newest event time stored (epoch ms; 0 until one is): how far data has arrived,
        /// for the scheduler (a backfill or a spool flush arrives oldest first).
        newest_event_ms: AtomicI64,
    }
}

/// Decompresses and validates a body; returns the batch and the body's size.
pub fn decode(
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

#[cfg(test)]
mod tests {
    use super::*;

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
