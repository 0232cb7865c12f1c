//! Helpers the benchmarks share: disk use, percentiles, peak RSS, concurrent ingest over HTTP,
//! and query timing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
                    let resp = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-encoding", "zstd")
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
    let client = http();
    let mut times: Vec<Duration> = (0..10)
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
