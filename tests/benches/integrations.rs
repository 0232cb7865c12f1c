//! Throughput of the integrations, each through the real release daemons on loopback:
//! - the request-log tail: EVENTS JSON lines written before the agent starts (`start_at =
//!   "beginning"`), timed from the agent's start until the collector has acknowledged them all;
//! - the PostHog intake: EVENTS events in `/batch` requests of 100 from 2 senders, timed from
//!   the first request until the collector has acknowledged them all;
//! - `tda export` of the EVENTS events the two stored, as CSV and as Parquet: seconds, rows a
//!   second, bytes a row (the CSV is checked to hold every row), and the collector's peak RSS
//!   before and after.
//!
//! Prints `key=value` figures. Run with `scripts/bench-integrations [EVENTS]` (default 200000).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tda_tests::bench::rss_peak_kib;
use tda_tests::*;

/// Events per PostHog request.
const PER_REQUEST: usize = 100;
/// Concurrent PostHog senders.
const SENDERS: usize = 2;

/// Waits up to ten minutes for the agent to have `n` events acknowledged by the collector.
fn acknowledged(agent: &Daemon, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while agent_counters(&agent.url)["events_sent"].as_u64() < Some(n) {
        assert!(Instant::now() < deadline, "{n} events not acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_log(path: &Path, n: usize, t0: i64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(f, "{{\"time\": {}, \"user_id\": \"u{}\", \"route\": \"/api/v1/generate\", \"status\": 200, \"latency_ms\": {}.5, \"feature\": \"generate\", \"plan\": \"pro\"}}", t0 + i as i64, i % 5000, i % 300).unwrap();
    }
}

fn tail(dir: &Path, collector: &Daemon, n: usize, t0: i64) {
    let log = dir.join("requests.jsonl");
    write_log(&log, n, t0);
    let bytes = std::fs::metadata(&log).unwrap().len();
    let setup = AgentSetup {
        tables: format!(
            "[request_log]\npath = {:?}\nstart_at = \"beginning\"\ntimestamp = [\"time\"]\n",
            log.display().to_string()
        ),
        ..AgentSetup::new(&dir.join("tail-agent"), &collector.url, collector.pid())
    };
    let start = Instant::now();
    let agent = setup.start();
    acknowledged(&agent, n as u64);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "tail_lines={n} tail_log_bytes={bytes} tail_seconds={secs:.2} tail_lines_per_s={:.0} tail_agent_rss_peak_kib={}",
        n as f64 / secs,
        rss_peak_kib(agent.pid())
    );
}

fn posthog_bodies(n: usize, t0: i64) -> Vec<Vec<u8>> {
    (0..n)
        .step_by(PER_REQUEST)
        .map(|first| {
            let batch: Vec<_> = (first..(first + PER_REQUEST).min(n))
                .map(|i| json!({"event": "export_pdf", "distinct_id": format!("p{}", i % 5000), "uuid": format!("00000000-0000-4000-8000-{i:012}"),
                    "timestamp": t0 + i as i64, "properties": {"$lib": "posthog-python", "route": "/api/v1/export", "status": 200, "latency_ms": (i % 300) as f64 + 0.25}}))
                .collect();
            serde_json::to_vec(&json!({"api_key": "phc_bench", "batch": batch})).unwrap()
        })
        .collect()
}

fn posthog(dir: &Path, collector: &Daemon, n: usize, t0: i64) {
    let agent =
        AgentSetup::new(&dir.join("posthog-agent"), &collector.url, collector.pid()).start();
    let bodies = posthog_bodies(n, t0);
    let start = Instant::now();
    let per = bodies.len().div_ceil(SENDERS);
    std::thread::scope(|s| {
        for part in bodies.chunks(per) {
            let url = format!("{}/batch", agent.url);
            s.spawn(move || {
                let client = http();
                for body in part {
                    let resp = client.post(&url).body(body.clone()).send().unwrap();
                    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap_or_default());
                }
            });
        }
    });
    let taken = start.elapsed().as_secs_f64();
    acknowledged(&agent, n as u64);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "posthog_events={n} posthog_requests={} posthog_taken_seconds={taken:.2} posthog_seconds={secs:.2} posthog_events_per_s={:.0} posthog_agent_rss_peak_kib={}",
        bodies.len(),
        n as f64 / secs,
        rss_peak_kib(agent.pid())
    );
}

fn export(dir: &Path, collector: &Daemon, rows: usize, from: i64, to: i64) {
    println!(
        "ingest_collector_rss_peak_kib={}",
        rss_peak_kib(collector.pid())
    );
    for format in ["csv", "parquet"] {
        let file = dir.join(format!("events.{format}"));
        let start = Instant::now();
        let args = ["--data", "events", "--format", format];
        let out = tda_export(&collector.url, &args, from, to, &file);
        let secs = start.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::metadata(&file).unwrap().len();
        if format == "csv" {
            let lines = std::fs::read(&file)
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            assert_eq!(lines, rows + 1, "a header and every row");
        }
        println!(
            "export_{format}_rows={rows} export_{format}_seconds={secs:.2} export_{format}_rows_per_s={:.0} export_{format}_bytes={bytes} export_{format}_bytes_per_row={:.1}",
            rows as f64 / secs,
            bytes as f64 / rows as f64
        );
    }
    println!(
        "export_collector_rss_peak_kib={}",
        rss_peak_kib(collector.pid())
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let collector = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let t0 = now_ms() - 3_600_000;
    tail(tmp.path(), &collector, n, t0);
    posthog(tmp.path(), &collector, n, t0 + n as i64);
    export(tmp.path(), &collector, 2 * n, t0, t0 + 2 * n as i64);
}
