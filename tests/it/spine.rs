//! End to end: events sent through a real agent reach a real collector and come back, exactly,
//! from the stats API; the agent's host and process samples arrive too.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use tda_tests::*;

const FEATURES: [&str; 5] = ["generate", "export", "login", "preview", "query"];

/// A known set of events: 1,000 events from 37 users over 5 features, latencies 1..1000 ms.
fn known_events(t0: i64) -> Vec<Value> {
    (0..1000)
        .map(|i: i64| {
            json!({
                "timestamp": t0 + i * 1000,
                "user_id": format!("user-{}", i % 37),
                "feature": FEATURES[(i % 5) as usize],
                "route": "/api",
                "status": if i % 50 == 0 { 500 } else { 200 },
                "latency_ms": (i + 1) as f64,
                "properties": {"plan": "pro"}
            })
        })
        .collect()
}

fn exact_quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(q * (v.len() - 1) as f64).floor() as usize]
}

#[test]
fn events_and_samples_flow_from_agent_to_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    let collector = setup.start();
    let agent = start_agent(&tmp.path().join("agent"), &collector.url, collector.pid());

    let t0 = now_ms() - 3_600_000;
    let events = known_events(t0);
    for chunk in events.chunks(250) {
        let (status, body) = post(
            &format!("{}/v1/events", agent.url),
            &[("content-type", "application/json")],
            serde_json::to_vec(chunk).unwrap(),
        );
        assert_eq!((status, body["accepted"].as_u64()), (202, Some(250)));
    }

    let stats = wait_for("all 1000 events in usage stats", || {
        let v = usage(&collector.url, t0, t0 + 1_000_000);
        (v["total_requests"] == 1000).then_some(v)
    });
    assert_eq!(stats["active_users"], 37);
    assert_eq!(stats["errors"], 20);
    let per_feature: BTreeMap<String, u64> = requests_per_feature(&stats);
    assert_eq!(
        per_feature,
        FEATURES.iter().map(|f| (f.to_string(), 200)).collect()
    );
    let series_total: u64 = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(series_total, 1000);
    assert_eq!(stats["aggregation_level"], "minute");

    let latencies: Vec<f64> = (1..=1000).map(f64::from).collect();
    let l = &stats["latency_ms"];
    let err = l["relative_error"].as_f64().unwrap();
    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        let want = exact_quantile(latencies.clone(), q);
        let got = l[name].as_f64().unwrap();
        assert!(
            (got - want).abs() <= want * err + 0.001,
            "{name}: {got} vs exact {want}"
        );
    }

    // Host and process samples: wait for three, then check they are plausible.
    let perf = wait_for("three samples from the agent", || {
        let (_, v) = get_json(&format!(
            "{}/api/v1/stats/performance?from=10m",
            collector.url
        ));
        (v["agents"][0]["samples"].as_u64() >= Some(3)).then_some(v)
    });
    let a = &perf["agents"][0];
    assert_eq!(a["agent_id"], "test-agent");
    let latest = &a["latest"];
    let cores = latest["cpu_per_core"].as_array().unwrap();
    assert_eq!(
        cores.len(),
        std::thread::available_parallelism().unwrap().get()
    );
    for c in cores.iter().chain([&latest["cpu_percent"]]) {
        let c = c.as_f64().unwrap();
        assert!((0.0..=100.0).contains(&c), "cpu {c}");
    }
    assert!(latest["mem_total_bytes"].as_u64().unwrap() > 0);
    assert!(latest["mem_used_bytes"].as_u64() <= latest["mem_total_bytes"].as_u64());
    assert!(
        latest["disk_total_bytes"].as_u64().unwrap()
            >= latest["disk_available_bytes"].as_u64().unwrap()
    );
    let process = &latest["process"];
    assert_eq!(process["pid"].as_u64(), Some(u64::from(collector.pid())));
    assert_eq!(process["name"], "tda-collector");
    assert!(process["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(
        process["threads"].as_u64().unwrap() >= 2,
        "a multi-threaded tokio runtime"
    );
    assert!(
        process["open_fds"].as_u64().unwrap() >= 4,
        "std streams plus the listener"
    );
}

#[test]
fn simulator_ground_truth_equals_the_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    setup.profile(
        "usage.toml",
        "name = \"Hourly Usage\"\ntype = \"usage\"\n[settings]\naggregation_level = \"hour\"\n",
    );
    let collector = setup.start();
    let agent = start_agent(&tmp.path().join("agent"), &collector.url, collector.pid());
    let truth_file = tmp.path().join("truth.json");
    const WEEK: i64 = 7 * 86_400_000;
    let monday_two_weeks_ago = now_ms() - (now_ms() + 3 * 86_400_000).rem_euclid(WEEK) - 2 * WEEK;
    let start = monday_two_weeks_ago.to_string();
    // A Monday 00:00 UTC start makes the traffic the same on every run (seasonality is weekly);
    // the burst is on Tuesday at 15:00 UTC.
    let args = [
        "--users",
        "150",
        "--duration",
        "2d",
        "--seed",
        "7",
        "--start",
        &start,
    ];
    let truth = simulate(
        &agent,
        &[&args[..], &["--incident", "error_burst@39h+1h"]].concat(),
        &truth_file,
    );
    let (from, to) = (
        truth["start"].as_i64().unwrap(),
        truth["end"].as_i64().unwrap(),
    );
    let events = truth["events"].as_u64().unwrap();
    assert!(events > 1000, "two days of 150 users: {events}");

    let stats = wait_for("the simulated events in usage stats", || {
        let v = usage(&collector.url, from, to);
        (v["total_requests"] == events).then_some(v)
    });
    assert_eq!(stats["active_users"], truth["distinct_users"]);
    assert_eq!(stats["errors"], truth["errors"]);
    assert_eq!(stats["profile"], "hourly-usage");
    assert_eq!(stats["aggregation_level"], "hour");
    assert_eq!(
        stats["series"].as_array().unwrap().len(),
        48 + usize::from(from % 3_600_000 != 0)
    );
    let features: BTreeMap<String, Value> = stats["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap().to_string(),
                f["requests"].clone(),
            )
        })
        .collect();
    let truth_features: BTreeMap<String, Value> =
        serde_json::from_value(truth["features"].clone()).unwrap();
    assert_eq!(features, truth_features);
    let personas: BTreeSet<&str> = truth["personas"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        personas,
        BTreeSet::from(["admin", "analyst", "api_client", "creator", "visitor"])
    );

    let (_, perf) = get_json(&format!(
        "{}/api/v1/stats/performance?from={from}&to={to}",
        collector.url
    ));
    assert_eq!(perf["errors"], truth["errors"]);
    let top: BTreeMap<String, Value> = perf["top_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["error"].as_str().unwrap().to_string(), e["count"].clone()))
        .collect();
    let truth_kinds: BTreeMap<String, Value> =
        serde_json::from_value(truth["error_kinds"].clone()).unwrap();
    assert_eq!(top, truth_kinds);
    // The planted error burst shows in the hour it covers.
    let burst = truth["incidents"][0]["start"].as_i64().unwrap();
    let (_, during) = get_json(&format!(
        "{}/api/v1/stats/performance?from={burst}&to={}",
        collector.url,
        burst + 3_600_000
    ));
    assert!(
        during["error_rate"].as_f64().unwrap() > 0.2,
        "{}",
        during["error_rate"]
    );
    assert!(perf["error_rate"].as_f64().unwrap() < 0.1);
}

#[test]
fn acknowledged_batches_survive_a_collector_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    let mut collector = setup.start();
    let agent = start_agent(
        &tmp.path().join("agent"),
        &collector.url,
        std::process::id(),
    );
    let t0 = now_ms() - 7_200_000;
    let events = known_events(t0);
    post(
        &format!("{}/v1/events", agent.url),
        &[],
        serde_json::to_vec(&events).unwrap(),
    );
    wait_for("events stored", || {
        (usage(&collector.url, t0, t0 + 1_000_000)["total_requests"] == 1000).then_some(())
    });
    let (_, health) = get_json(&format!("{}/healthz", agent.url));
    assert_eq!(health["counters"]["events_sent"], 1000);
    collector.kill();
    let collector = setup.start();
    assert_eq!(
        usage(&collector.url, t0, t0 + 1_000_000)["total_requests"],
        1000
    );
}

#[test]
fn agent_drains_its_open_batch_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    let collector = setup.start();
    // Batches close only by age here, after ten minutes: only the shutdown drain can send them.
    let mut agent = start_agent_with(
        &tmp.path().join("agent"),
        &collector.url,
        std::process::id(),
        "max_age_ms = 600000",
    );
    let t0 = now_ms() - 7_200_000;
    post(
        &format!("{}/v1/events", agent.url),
        &[],
        serde_json::to_vec(&known_events(t0)[..10]).unwrap(),
    );
    let (_, health) = get_json(&format!("{}/healthz", agent.url));
    assert_eq!(health["counters"]["events_received"], 10);
    assert_eq!(
        usage(&collector.url, t0, t0 + 1_000_000)["total_requests"],
        0
    );
    assert!(agent.terminate().success());
    assert_eq!(
        usage(&collector.url, t0, t0 + 1_000_000)["total_requests"],
        10
    );
}
