//! Batch intake: authenticates the agent, enforces size limits, decompresses, validates every
//! field and stores the batch, answering only once it is durable.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::CONTENT_ENCODING;
use hyper::{Request, StatusCode};
use tda_daemon::{bearer, error, json, read_body, Refusal, Response};
use tda_schema::config::LimitsConfig;
use tda_schema::wire::decode_batch;

use crate::store::{Appended, Storage};

/// The bearer tokens agents may send batches with.
pub struct Tokens(HashSet<String>);

impl Tokens {
    /// A token set; empty strings are ignored.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Tokens(tokens.into_iter().filter(|t| !t.is_empty()).collect())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens, comparing in time independent of where they differ.
    pub fn allows(&self, presented: &str) -> bool {
        self.0.iter().fold(false, |ok, t| {
            ok | constant_time_eq(t.as_bytes(), presented.as_bytes())
        })
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

/// Refuses with 401 unless the request carries one of `tokens`.
pub fn authorize<B>(req: &Request<B>, tokens: &Tokens) -> Result<(), Refusal> {
    if bearer(req).is_some_and(|t| tokens.allows(t)) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token",
        ))
    }
}

/// `POST /v1/batches`.
pub async fn handle(
    req: Request<Incoming>,
    tokens: &Tokens,
    limits: &LimitsConfig,
    store: Arc<dyn Storage>,
) -> Response {
    if let Err(resp) = authorize(&req, tokens) {
        return resp.response();
    }
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    let body = match read_body(req, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(refusal) => return refusal.response(),
    };
    let json_bytes = match encoding.as_str() {
        "zstd" => match decompress(&body, limits.max_decompressed_bytes) {
            Ok(b) => b,
            Err((status, msg)) => return error(status, &msg),
        },
        "identity" => body.to_vec(),
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("content-encoding `{other}` not supported (zstd or identity)"),
            )
        }
    };
    let batch = match decode_batch(&json_bytes) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (events, samples) = (batch.events.len(), batch.samples.len());
    let stored =
        tokio::task::spawn_blocking(move || store.append(&batch).map(|a| (a, batch.batch_id)))
            .await;
    match stored {
        Ok(Ok((appended, batch_id))) => {
            let duplicate = appended == Appended::Duplicate;
            tracing::debug!(%batch_id, events, samples, duplicate, "batch stored");
            json(
                StatusCode::OK,
                &serde_json::json!({ "batch_id": batch_id, "events": events, "samples": samples, "duplicate": duplicate }),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing batch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("storage: {e}"))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("storage task failed: {e}"),
        ),
    }
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
