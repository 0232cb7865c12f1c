//! The agent's own cost beside the service it watches: a release agent sampling host and process
//! every second, shipping to a release collector with its default batching, measured over a
//! window idle and then with 1,000 events/s through its intake (10 requests of 100 a second).
//! CPU is the agent's user+system ticks over the window (percent of one core), RSS from
//! /proc. Bytes on the wire per sample come from the agent's `bytes_sent` counter over the idle
//! window. Prints `key=value` figures.
//!
//! Then the cost of `intake.ack = "durable"`: two more agents, one answering once events are in
//! memory and one once they are fsynced, each taking 100-event requests from four senders as
//! fast as it answers for 20 seconds: events/s and the requests' answer times.
//!
//! Run with `scripts/bench-agent [SECONDS]` (default 60 per window, as the peers' agents were).

use std::time::{Duration, Instant};

use serde_json::json;
use tda_tests::*;

/// Numbers in one host sample on this machine: 19 host figures, one per core, 7 process figures.
fn values_per_sample() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (19 + cores + 7) as f64
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm)".
    fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Measures the agent over `secs` while `load` runs; prints figures under `label`.
fn window(label: &str, agent: &Daemon, secs: u64, mut load: impl FnMut(Instant)) {
    let counters = |k: &str| agent_counters(&agent.url)[k].as_u64().unwrap_or(0);
    let (ticks0, bytes0, samples0, events0) = (
        cpu_ticks(agent.pid()),
        counters("bytes_sent"),
        counters("samples_taken"),
        counters("events_sent"),
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        load(start);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(agent.pid()) - ticks0) as f64 / clock_ticks() / elapsed * 100.0;
    println!(
        "{label}_cpu_percent={cpu:.3} {label}_rss_kib={} {label}_rss_peak_kib={}",
        rss_kib(agent.pid(), "VmRSS:"),
        rss_kib(agent.pid(), "VmHWM:")
    );
    let (bytes, samples, events) = (
        counters("bytes_sent") - bytes0,
        counters("samples_taken") - samples0,
        counters("events_sent") - events0,
    );
    println!("{label}_samples={samples} {label}_events_sent={events} {label}_bytes_sent={bytes}");
    if events == 0 && samples > 0 {
        println!(
            "wire_bytes_per_host_sample={:.1} wire_bytes_per_value={:.2} (values_per_sample={})",
            bytes as f64 / samples as f64,
            bytes as f64 / samples as f64 / values_per_sample(),
            values_per_sample()
        );
    }
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let tmp = tempfile::tempdir().expect("tmp");
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    setup.profile(
        "perf.toml",
        "name = \"Perf\"\ntype = \"performance\"\n[settings]\ncollection_interval = 1\n",
    );
    let collector = setup.start();
    let agent_setup = AgentSetup {
        batch: String::new(),
        ..AgentSetup::new(&tmp.path().join("a"), &collector.url, collector.pid())
    };
    let agent = agent_setup.start();
    wait_for("the agent sampling every second", || {
        (agent_counters(&agent.url)["samples_taken"].as_u64() >= Some(5)).then_some(())
    });
    println!("window_secs={secs} sampling=1s");
    window("idle", &agent, secs, |_| {
        std::thread::sleep(Duration::from_millis(200))
    });

    steady("events_1000_per_s", &agent, secs);
    drop(agent);
    for ack in ["memory", "durable"] {
        let setup = AgentSetup {
            batch: String::new(),
            intake: format!("ack = \"{ack}\""),
            ..AgentSetup::new(&tmp.path().join(ack), &collector.url, collector.pid())
        };
        let agent = setup.start();
        steady(&format!("ack_{ack}_1000_per_s"), &agent, secs);
        intake_throughput(&format!("ack_{ack}"), &agent, Duration::from_secs(20));
    }
    drop(collector);
}

/// A window of 1,000 events/s: ten requests of 100 a second.
fn steady(label: &str, agent: &Daemon, secs: u64) {
    let client = http();
    let intake = format!("{}/v1/events", agent.url);
    let mut sent = 0u64;
    window(label, agent, secs, |start| {
        let due = (start.elapsed().as_millis() / 100) as u64 + 1;
        if sent >= due {
            std::thread::sleep(Duration::from_millis(5));
            return;
        }
        let now = now_ms();
        let events: Vec<_> = (0..100)
            .map(|i| (i, ["generate", "export", "search"][i as usize % 3]))
            .map(|(i, feature)| {
                json!({"timestamp": now, "user_id": format!("u{}", (sent * 100 + i) % 5000),
                "feature": feature, "route": "/api/generate",
                "status": 200, "latency_ms": 12.5 + (i % 50) as f64})
            })
            .collect();
        let resp = client.post(&intake).json(&events).send().expect("intake");
        assert!(
            resp.status().is_success(),
            "intake answered {}",
            resp.status()
        );
        sent += 1;
    });
}

/// Four senders posting 100-event requests back to back for `span`: events/s and answer times.
fn intake_throughput(label: &str, agent: &Daemon, span: Duration) {
    let intake = format!("{}/v1/events", agent.url);
    let senders: Vec<_> = (0..4u64)
        .map(|lane| {
            let intake = intake.clone();
            std::thread::spawn(move || {
                let client = http();
                let start = Instant::now();
                let mut times = Vec::new();
                let mut n = 0u64;
                while start.elapsed() < span {
                    let now = now_ms();
                    let events: Vec<_> = (0..100)
                        .map(|i| json!({"timestamp": now, "user_id": format!("u{lane}-{}", (n + i) % 5000),
                            "feature": "generate", "status": 200, "latency_ms": 12.5}))
                        .collect();
                    let t = Instant::now();
                    let resp = client.post(&intake).json(&events).send().expect("intake");
                    assert!(resp.status().is_success(), "intake answered {}", resp.status());
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                    n += 100;
                }
                (n, times)
            })
        })
        .collect();
    let mut events = 0;
    let mut times = Vec::new();
    for s in senders {
        let (n, t) = s.join().expect("sender");
        events += n;
        times.extend(t);
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{label}_events_per_s={:.0} {label}_answer_p50_ms={:.2} {label}_answer_p99_ms={:.2}",
        events as f64 / span.as_secs_f64(),
        q(0.5),
        q(0.99)
    );
}
