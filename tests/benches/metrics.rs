//! Collector storage on the peers' metrics workload (`../shared/bench/peers/gen_metrics.py`):
//! HOSTS hosts x 10 fields x POINTS one-second points, each host an agent whose samples carry the
//! ten fields (cpu_user -> cpu_percent, cpu_system/cpu_iowait/load1 -> load[0..3], mem_used ->
//! mem_used_bytes, mem_cached -> swap_used_bytes, disk_free -> disk_available_bytes, the three
//! counters -> net_rx/net_tx/disk_written bytes). Posted to a release collector as zstd batches
//! of 10,000 metric samples (1,000 host samples) from 4 concurrent senders, each acknowledged
//! once durable; then bytes on disk per metric sample and a 1 h x 100 hosts query.
//! Prints `key=value` figures.
//!
//! Run with `scripts/bench-metrics [HOSTS POINTS]` (default 100 5000, the peers' workload).

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};
use tda_tests::bench::*;
use tda_tests::*;

/// Metric samples per host sample (the workload's fields).
const FIELDS: usize = 10;
/// Host samples per batch: 10,000 metric samples.
const PER_BATCH: usize = 1_000;

/// One line of Influx line protocol as a host sample: (host, sample).
fn parse_line(line: &str) -> (String, Value) {
    let mut parts = line.split(' ');
    let (series, fields, ns) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let host = series.split("host=").nth(1).expect("host").to_string();
    let f: std::collections::HashMap<&str, f64> = fields
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("field");
            (k, v.trim_end_matches('i').parse().expect("number"))
        })
        .collect();
    let ms = ns.trim().parse::<i64>().expect("ns") / 1_000_000;
    let int = |k: &str| f[k] as u64;
    let sample = json!({
        "timestamp": ms, "cpu_percent": f["cpu_user"], "cpu_per_core": [],
        "mem_total_bytes": 1u64 << 40, "mem_used_bytes": int("mem_used"),
        "swap_total_bytes": 1u64 << 40, "swap_used_bytes": int("mem_cached"),
        "load": [f["cpu_system"], f["cpu_iowait"], f["load1"]],
        "disk_total_bytes": 1u64 << 40, "disk_available_bytes": int("disk_free"),
        "disk_read_bytes": 0, "disk_written_bytes": int("disk_write_bytes"),
        "net_rx_bytes": int("net_rx_bytes"), "net_tx_bytes": int("net_tx_bytes"),
        "net_rx_packets": 0, "net_tx_packets": 0, "net_rx_errors": 0, "net_tx_errors": 0
    });
    (host, sample)
}

/// Reads the generator's line-protocol files as each host's samples, in time order.
fn load(dir: &Path) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("influx"))
        .expect("gen dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut hosts: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for f in files {
        for line in std::fs::read_to_string(f).expect("file").lines() {
            let (host, sample) = parse_line(line);
            hosts.entry(host).or_default().push(sample);
        }
    }
    hosts
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (hosts, points) = (
        *args.first().unwrap_or(&100),
        *args.get(1).unwrap_or(&5_000),
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let gen = tmp.path().join("gen");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bench/peers/gen_metrics.py"
    );
    let status = std::process::Command::new("python3")
        .args([
            script,
            gen.to_str().expect("path"),
            &hosts.to_string(),
            &points.to_string(),
            "20",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success(), "gen_metrics.py failed");
    let by_host = load(&gen);
    let (first, last) = by_host
        .values()
        .flatten()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| {
            let t = s["timestamp"].as_i64().expect("ts");
            (lo.min(t), hi.max(t))
        });
    let mut bodies = Vec::new();
    for (host, samples) in &by_host {
        for (i, chunk) in samples.chunks(PER_BATCH).enumerate() {
            let batch = json!({"version": 1, "agent_id": host, "batch_id": format!("{host}-{i}"),
                "created_at": first, "events": [], "samples": chunk});
            bodies.push(
                zstd::bulk::compress(&serde_json::to_vec(&batch).expect("json"), 3).expect("zstd"),
            );
        }
    }
    let metric_samples = (hosts * points * FIELDS) as f64;
    let wire: usize = bodies.iter().map(Vec::len).sum();
    drop(by_host);

    let setup = CollectorSetup::new(
        &tmp.path().join("c"),
        "[limits]\nmax_body_bytes = 67108864\nmax_decompressed_bytes = 268435456\n",
    );
    let collector = setup.start();
    let start = Instant::now();
    let acks = ingest(&format!("{}/v1/batches", collector.url), bodies);
    let secs = start.elapsed().as_secs_f64();
    let data = setup.dir.join("data/analytics/metrics");
    println!("hosts={hosts} points={points} metric_samples={metric_samples} batch_samples={} senders={SENDERS}", PER_BATCH * FIELDS);
    println!("wire_bytes_per_sample={:.2}", wire as f64 / metric_samples);
    println!(
        "ingest_samples_per_s={:.0} ack_p50_ms={:.1} ack_p99_ms={:.1}",
        metric_samples / secs,
        percentile(&acks, 0.5),
        percentile(&acks, 0.99)
    );
    println!("collector_rss_peak_kib={}", rss_peak_kib(collector.pid()));
    println!(
        "disk_bytes_per_sample={:.2}",
        dir_bytes(&data) as f64 / metric_samples
    );
    let compacted = http()
        .post(format!("{}/-/compact?before=now", collector.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("compact")
        .text()
        .unwrap_or_default();
    println!("compaction={compacted}");
    println!(
        "disk_bytes_per_sample_after_compaction={:.2}",
        dir_bytes(&data) as f64 / metric_samples
    );
    let (from, to) = ((last - 3_600_000).max(first), last + 1);
    println!(
        "query_1h_100_hosts_counter_max_per_minute_ms={:.1}",
        p50_ms(&format!(
            "{}/api/v1/query?from={from}&to={to}&series=host.net_rx_bytes&step=1m&agg=max",
            collector.url
        ))
    );
    println!(
        "query_1h_one_host_cpu_avg_per_minute_ms={:.1}",
        p50_ms(&format!("{}/api/v1/query?from={from}&to={to}&series=host.cpu_percent&step=1m&agg=avg&agent=h001", collector.url))
    );
    drop(collector);
    let restarted = setup.start();
    println!(
        "disk_bytes_per_sample_after_restart={:.2}",
        dir_bytes(&data) as f64 / metric_samples
    );
    drop(restarted);
}
