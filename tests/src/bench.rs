//! Helpers the benchmarks share: disk use, percentiles, peak RSS, concurrent ingest over HTTP,
//! and query timing.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{http, TOKEN};

/// Concurrent senders of batches, as the peers' measurements used.
pub const SENDERS: usize = 4;

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    dir_bytes(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

/// The `q` quantile of sorted durations, ms.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

/// Peak resident set size of a process, KiB.
pub fn rss_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets the process's peak RSS (`VmHWM`) to its present RSS, so the next [`rss_peak_kib`]
/// is the peak of what comes after (Linux `clear_refs` mode 5); whether it could.
pub fn reset_rss_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Posts every batch from `SENDERS` threads; returns each acknowledgement's latency.
pub fn ingest(url: &str, bodies: Vec<Vec<u8>>) -> Vec<Duration> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (bodies, next, acks, url) =
                (bodies.clone(), next.clone(), acks.clone(), url.to_string());
            std::thread::spawn(move || {
                let client = http();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { return };
                    let start = Instant::now();
                    let (content_type, encoding) = if tda_blocks::batch::is_binary(body) {
                        (tda_blocks::batch::CONTENT_TYPE, "identity")
                    } else {
                        ("application/json", "zstd")
                    };
                    let resp = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", content_type)
                        .header("content-encoding", encoding)
                        .body(body.clone())
                        .send()
                        .expect("post");
                    assert_eq!(
                        resp.status().as_u16(),
                        200,
                        "{}",
                        resp.text().unwrap_or_default()
                    );
                    acks.lock().expect("acks").push(start.elapsed());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let mut acks = Arc::try_unwrap(acks)
        .expect("acks")
        .into_inner()
        .expect("acks");
    acks.sort();
    acks
}

/// Median time of 10 runs of a GET.
pub fn p50_ms(url: &str) -> f64 {
    median_of_ms(url, 10)
}

/// Median time of `runs` runs of a GET, ms.
pub fn median_of_ms(url: &str, runs: usize) -> f64 {
    let client = http();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let resp = client.get(url).send().expect("query");
            assert_eq!(resp.status().as_u16(), 200, "{url}");
            let _ = resp.bytes();
            start.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 0.5)
}

/// Generates `rows` events of the peers' workload (`../shared/bench/peers/gen_events.py`, 24 h,
/// 200 k users) into `dir`, and returns them as zstd batch bodies of `batch` events with the
/// first and last timestamps.
pub fn peer_event_batches(
    dir: &Path,
    rows: usize,
    batch: usize,
    format: WireFormat,
) -> (Vec<Vec<u8>>, Value, Value) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bench/peers/gen_events.py"
    );
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(rows.to_string())
        .arg(batch.to_string())
        .status()
        .expect("python3");
    assert!(status.success(), "gen_events.py failed");
    load(dir, format)
}

/// Reads one of the generator's JSONEachRow files as our events.
fn events_of(file: &Path) -> Vec<Value> {
    let lines = std::io::BufReader::new(std::fs::File::open(file).expect("file")).lines();
    lines
        .map(|line| {
            let row: Value = serde_json::from_str(&line.expect("line")).expect("row");
            let ts = row["ts"].as_str().expect("ts").replace(' ', "T") + "Z";
            let props: Value =
                serde_json::from_str(row["props"].as_str().unwrap_or("{}")).unwrap_or(json!({}));
            json!({"timestamp": ts, "user_id": row["user_id"], "feature": row["event"],
                "status": row["status"], "latency_ms": row["latency_ms"], "properties": props})
        })
        .collect()
}

/// How a bench's batches are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// The binary batch the agent sends to a collector that takes it.
    Binary,
    /// zstd-compressed JSON, as older agents send.
    Json,
}

/// The generator's files (one batch each, in time order) as batch bodies, with the first and
/// last timestamps; one file at a time, so 5 M events never sit in memory as JSON values.
fn load(dir: &Path, format: WireFormat) -> (Vec<Vec<u8>>, Value, Value) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("gen dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let (mut bodies, mut first, mut last) = (Vec::new(), Value::Null, Value::Null);
    for (i, f) in files.iter().enumerate() {
        let events = events_of(f);
        if first.is_null() {
            first = events[0]["timestamp"].clone();
        }
        last = events[events.len() - 1]["timestamp"].clone();
        let batch = json!({"version": 1, "agent_id": "bench", "batch_id": format!("bench-{i}"), "created_at": first, "events": events});
        bodies.push(match format {
            WireFormat::Binary => {
                let batch: tda_schema::Batch = serde_json::from_value(batch).expect("batch");
                tda_blocks::batch::encode(&batch)
            }
            WireFormat::Json => {
                zstd::bulk::compress(&serde_json::to_vec(&batch).expect("json"), 3).expect("zstd")
            }
        });
    }
    (bodies, first, last)
}
