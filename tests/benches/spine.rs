//! End-to-end throughput of the spine and the agent's memory: events posted to a real agent's
//! intake until the collector has acknowledged all of them (stored durably in sled).
//!
//! Run with `scripts/bench` (builds the release binaries first). Prints key=value figures.
//! Arguments: `[EVENTS] [CHUNK]`, default 200000 events in intake requests of 2000.

use std::time::Instant;

use serde_json::{json, Value};
use tda_tests::*;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn events(t0: i64, from: usize, n: usize) -> Vec<u8> {
    let features = [
        "generate",
        "export",
        "login",
        "preview",
        "query",
        "dashboard",
    ];
    let evs: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"timestamp": t0 + i as i64 * 10, "user_id": format!("user-{}", i % 5000),
                "session_id": format!("s-{}", i / 7), "feature": features[i % features.len()],
                "route": "/api/v1/generate", "status": if i % 97 == 0 { 500 } else { 200 },
                "latency_ms": (i % 1000) as f64 * 1.7, "properties": {"plan": "pro", "region": "eu"}})
        })
        .collect();
    serde_json::to_vec(&evs).expect("json")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let chunk: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let collector = CollectorSetup::new(&tmp.path().join("c"), "").start();
    let agent = start_agent_with(
        &tmp.path().join("a"),
        &collector.url,
        std::process::id(),
        "max_age_ms = 200",
    );
    let agent_pid = agent.pid();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle_rss = rss_kib(agent_pid, "VmRSS:");

    let t0 = now_ms() - 86_400_000;
    let bodies: Vec<Vec<u8>> = (0..total)
        .step_by(chunk)
        .map(|i| events(t0, i, chunk.min(total - i)))
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let client = http();
    let start = Instant::now();
    for body in bodies {
        let resp = client
            .post(format!("{}/v1/events", agent.url))
            .body(body)
            .send()
            .expect("post");
        assert_eq!(resp.status().as_u16(), 202);
    }
    let accepted = start.elapsed();
    wait_for("all events acknowledged by the collector", || {
        let (_, h) = get_json(&format!("{}/healthz", agent.url));
        (h["counters"]["events_sent"].as_u64() == Some(total as u64)).then_some(())
    });
    let stored = start.elapsed();
    let (_, u) = get_json(&format!(
        "{}/api/v1/stats/usage?from={t0}&to={}",
        collector.url,
        t0 + 86_400_000
    ));
    assert_eq!(u["total_requests"].as_u64(), Some(total as u64));
    let query = start.elapsed() - stored;

    println!("events={total} chunk={chunk} json_bytes={bytes}");
    println!(
        "intake_accept_s={:.3} intake_events_per_s={:.0}",
        accepted.as_secs_f64(),
        total as f64 / accepted.as_secs_f64()
    );
    println!(
        "end_to_end_s={:.3} end_to_end_events_per_s={:.0}",
        stored.as_secs_f64(),
        total as f64 / stored.as_secs_f64()
    );
    println!("usage_stats_query_ms={:.1}", query.as_secs_f64() * 1000.0);
    println!(
        "agent_rss_idle_kib={idle_rss} agent_rss_after_kib={} agent_rss_peak_kib={}",
        rss_kib(agent_pid, "VmRSS:"),
        rss_kib(agent_pid, "VmHWM:")
    );
    println!(
        "collector_rss_peak_kib={}",
        rss_kib(collector.pid(), "VmHWM:")
    );
}
