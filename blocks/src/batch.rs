//! The binary batch an agent ships (content type [`CONTENT_TYPE`]): a short header, the events
//! as one columnar block ([`crate::events`], stored by the collector as it came when the batch
//! falls in one hour) and the host samples as one sample block ([`crate::samples`], in whichever
//! layout is smaller). The JSON batch (`tda_schema::wire`) stays accepted,
//! for older agents and for collectors that do not take this one.

use tda_schema::wire::{check_text, BATCH_FORMAT_VERSION, MAX_ID_LEN};
use tda_schema::{Batch, FieldError, HostSample, Timestamp};

use crate::codec::{put_signed, put_str, put_varint, Reader};
use crate::events::{self, EventColumns, Properties};

/// The content type of a binary batch; a collector that takes it says so in an `Accept-Post`
/// header on its `POST /v1/batches` answers.
pub const CONTENT_TYPE: &str = "application/vnd.tda.batch";
/// The first bytes of a binary batch (a zstd frame, the JSON batch's body, starts otherwise).
const MAGIC: &[u8; 4] = b"TDAB";
/// Version of the binary batch's layout.
pub const FORMAT_VERSION: u8 = 1;

/// A decoded, validated binary batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnarBatch {
    /// The agent that sent it.
    pub agent_id: String,
    /// Unique per agent; a batch sent twice under one id is stored once.
    pub batch_id: String,
    /// When the agent closed the batch.
    pub created_at: Timestamp,
    /// The events block as it came (version byte included).
    pub block: Vec<u8>,
    /// The same events, decoded.
    pub events: EventColumns,
    /// Host and process samples.
    pub samples: Vec<HostSample>,
}

impl ColumnarBatch {
    /// The batch with its events built one by one (properties included), for the paths that
    /// take events.
    pub fn to_batch(&self) -> Result<Batch, String> {
        Ok(Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: self.agent_id.clone(),
            batch_id: self.batch_id.clone(),
            created_at: self.created_at,
            events: self.events.events(Properties::Read, i64::MIN..i64::MAX)?,
            samples: self.samples.clone(),
        })
    }
}

/// Whether `body` is a binary batch (rather than a JSON one, plain or compressed).
pub fn is_binary(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Encodes a batch in the binary format.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let block = events::encode(&batch.events);
    let mut out = Vec::with_capacity(block.len() + 64);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    put_str(&mut out, &batch.agent_id);
    put_str(&mut out, &batch.batch_id);
    put_signed(&mut out, batch.created_at.0);
    put_varint(&mut out, block.len() as u64);
    out.extend_from_slice(&block);
    let samples = if batch.samples.is_empty() {
        Vec::new()
    } else {
        crate::samples::encode_smaller(&batch.agent_id, &batch.samples)
    };
    put_varint(&mut out, samples.len() as u64);
    out.extend_from_slice(&samples);
    out
}

/// Decodes and validates a binary batch; an error names the field, as the JSON batch's do.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<ColumnarBatch, FieldError> {
    let batch = parse(body, max_decompressed)?;
    for (field, value) in [("agent_id", &batch.agent_id), ("batch_id", &batch.batch_id)] {
        check_text(field, value, MAX_ID_LEN).map_err(|(f, m)| FieldError::at(f, m))?;
    }
    Timestamp::from_ms(batch.created_at.0).map_err(|m| FieldError::at("created_at", m))?;
    batch.events.validate()?;
    for (i, s) in batch.samples.iter().enumerate() {
        s.validate()
            .map_err(|(field, m)| FieldError::at(format!("samples[{i}].{field}"), m))?;
    }
    Ok(batch)
}

/// Decodes a binary batch without checking its fields (what an agent does to split a batch
/// the collector refused, to find the events it refuses).
pub fn parse(body: &[u8], max_decompressed: usize) -> Result<ColumnarBatch, FieldError> {
    let body_err = |m: String| FieldError::at("body", m);
    if !is_binary(body) {
        return Err(body_err("not a binary batch".into()));
    }
    let mut r = Reader::new(&body[MAGIC.len()..]);
    let version = r.byte().map_err(body_err)?;
    if version != FORMAT_VERSION {
        let m = format!("unsupported binary batch format {version}, expected {FORMAT_VERSION}");
        return Err(FieldError::at("version", m));
    }
    let agent_id = r.str().map_err(body_err)?.to_string();
    let batch_id = r.str().map_err(body_err)?.to_string();
    let created_at = Timestamp(r.signed().map_err(body_err)?);
    let block_len = r.count().map_err(body_err)?;
    let block = r.bytes(block_len).map_err(body_err)?.to_vec();
    let samples_len = r.count().map_err(body_err)?;
    let packed = r.bytes(samples_len).map_err(body_err)?;
    if !r.is_done() {
        return Err(body_err("trailing bytes after the samples".into()));
    }
    let events = EventColumns::read_bounded(&block, max_decompressed)
        .map_err(|m| FieldError::at("events", m))?;
    let samples = read_samples(packed, max_decompressed)?;
    Ok(ColumnarBatch {
        agent_id,
        batch_id,
        created_at,
        block,
        events,
        samples,
    })
}

fn read_samples(block: &[u8], max_decompressed: usize) -> Result<Vec<HostSample>, FieldError> {
    if block.is_empty() {
        return Ok(Vec::new());
    }
    let (_, samples) = crate::samples::decode_bounded(block, max_decompressed)
        .map_err(|m| FieldError::at("samples", m))?;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tda_schema::Event;

    fn batch(events: serde_json::Value) -> Batch {
        serde_json::from_value(serde_json::json!({"version": 1, "agent_id": "web-1",
            "batch_id": "b-1", "created_at": 1_795_860_000_000i64, "events": events}))
        .unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!([
            {"timestamp": 1_795_860_000_000i64, "user_id": "u1", "feature": "generate",
             "status": 200, "latency_ms": 12.5, "properties": {"plan": "pro"}},
            {"timestamp": 1_795_860_001_000i64, "user_id": "u2", "session_id": "s", "feature": "export",
             "route": "/x", "status": 503, "error": "timeout"}
        ])
    }

    fn host_sample(i: i64) -> HostSample {
        serde_json::from_value(serde_json::json!({
            "timestamp": 1_795_860_000_000i64 + i * 1000, "cpu_percent": 12.5 + (i % 7) as f64,
            "cpu_per_core": [10.0 + i as f64, 15.25], "mem_total_bytes": 8u64 << 30,
            "mem_used_bytes": (3u64 << 30) + i as u64 * 8192, "swap_total_bytes": 0, "swap_used_bytes": 0,
            "load": [0.5, 0.25, 0.125], "disk_total_bytes": 1u64 << 40, "disk_available_bytes": 1u64 << 39,
            "disk_read_bytes": 4096 * (i % 3) as u64, "disk_written_bytes": 65_536, "net_rx_bytes": 1_500 + i as u64 * 37,
            "net_tx_bytes": 900, "net_rx_packets": 12, "net_tx_packets": 9, "net_rx_errors": 0, "net_tx_errors": 0,
            "process": {"pid": 4242, "name": "td-generator", "cpu_percent": 3.5, "rss_bytes": 104_857_600,
                "virtual_bytes": 1_073_741_824, "threads": 12, "open_fds": 40, "uptime_secs": 3600 + i}
        }))
        .unwrap()
    }

    #[test]
    fn round_trips_a_batch_and_tells_itself_from_json() {
        let mut b = batch(good());
        b.samples = (0..10).map(host_sample).collect();
        let body = encode(&b);
        assert!(is_binary(&body));
        let decoded = decode(&body, 1 << 20).unwrap();
        assert_eq!(decoded.to_batch().unwrap(), b);
        assert_eq!(decoded.block, crate::events::encode(&b.events));
        // Host samples (28 values each, with the watched process) in the smaller layout: one
        // frame for a few (the agent's usual batch), a frame per column for many.
        for n in [1, 10, 100] {
            let samples: Vec<HostSample> = (0..n).map(host_sample).collect();
            let block = crate::samples::encode_smaller("web-1", &samples);
            let per_value = block.len() as f64 / (n as f64 * 28.0);
            eprintln!(
                "{n} samples: {} bytes, {per_value:.2} per value",
                block.len()
            );
            assert_eq!(crate::samples::decode(&block).unwrap().1, samples);
            if n >= 10 {
                assert!(per_value < 3.0, "{n}: {per_value:.2} bytes per value");
            }
        }
        let json = zstd::bulk::compress(&serde_json::to_vec(&b).unwrap(), 3).unwrap();
        assert!(!is_binary(&json) && !is_binary(b"{\"version\":1}"));
    }

    #[test]
    fn one_bad_event_is_named_by_its_row_and_field() {
        let mut events = good();
        events[1]["status"] = serde_json::json!(999);
        let e = decode(&encode(&batch(events)), 1 << 20).unwrap_err();
        assert_eq!(e.location, "events[1].status");
        let mut events = good();
        events[1]["user_id"] = serde_json::json!("  ");
        let e = decode(&encode(&batch(events)), 1 << 20).unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.message.as_str()),
            ("events[1].user_id", "must not be empty")
        );
        let mut events = good();
        events[1]["timestamp"] = serde_json::json!(1_795_860_000_000i64);
        let mut b = batch(events);
        b.events[1].timestamp = Timestamp(-5);
        let e = decode(&encode(&b), 1 << 20).unwrap_err();
        assert_eq!(e.location, "events[1].timestamp", "{e}");
        let mut b = batch(good());
        b.created_at = Timestamp(i64::MAX);
        assert_eq!(
            decode(&encode(&b), 1 << 20).unwrap_err().location,
            "created_at"
        );
        // `parse` reads it all the same (an agent splits a refused batch).
        let mut events = good();
        events[0]["latency_ms"] = serde_json::json!(-1.0);
        let body = encode(&batch(events));
        assert_eq!(
            decode(&body, 1 << 20).unwrap_err().location,
            "events[0].latency_ms"
        );
        assert_eq!(parse(&body, 1 << 20).unwrap().events.len(), 2);
    }

    #[test]
    fn any_damage_to_a_body_is_an_error_or_a_valid_batch_never_a_panic() {
        // Thousands of bodies with bytes overwritten at random places (a fixed-seed generator),
        // inside the compressed block and samples too; the events block is also damaged after
        // decompression, where a varint or index can claim anything.
        let mut b = batch(good());
        b.samples = Vec::new();
        let body = encode(&b);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            let mut damaged = body.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % damaged.len() as u64) as usize;
                damaged[at] = next() as u8;
            }
            if let Ok(ok) = decode(&damaged, 1 << 20) {
                ok.to_batch().expect("a decoded batch builds its events");
            }
        }
        let raw = zstd::decode_all(&crate::events::encode(&b.events)[1..]).unwrap();
        for _ in 0..5_000 {
            let mut damaged = raw.clone();
            let at = (next() % damaged.len() as u64) as usize;
            damaged[at] = next() as u8;
            let mut block = vec![crate::events::VERSION];
            block.extend(zstd::bulk::compress(&damaged, 1).unwrap());
            if let Ok(cols) = EventColumns::read(&block) {
                let _ = cols.validate();
                let _ = cols.events(Properties::Read, i64::MIN..i64::MAX);
                let _ = cols.encode();
            }
            let _ = crate::events::decode(&block, Properties::Read, 0..i64::MAX);
        }
    }

    #[test]
    fn damage_and_bombs_are_errors_not_panics() {
        let body = encode(&batch(good()));
        for cut in 0..body.len() {
            assert!(decode(&body[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer, 1 << 20).unwrap_err().message,
            "trailing bytes after the samples"
        );
        let mut newer = body.clone();
        newer[4] = 9;
        assert_eq!(decode(&newer, 1 << 20).unwrap_err().location, "version");
        // Many events that compress to little: refused past the limit, read within it.
        let many: Vec<Event> = (0..50_000)
            .map(|i| Event {
                timestamp: Timestamp(1_795_860_000_000 + i),
                ..batch(good()).events[0].clone()
            })
            .collect();
        let big = encode(&Batch {
            events: many,
            ..batch(good())
        });
        assert!(big.len() < 100_000, "{} bytes", big.len());
        let e = decode(&big, 100_000).unwrap_err();
        assert!(
            e.message.contains("more than 100000 bytes"),
            "{}",
            e.message
        );
        assert_eq!(decode(&big, 10 << 20).unwrap().events.len(), 50_000);
    }
}
