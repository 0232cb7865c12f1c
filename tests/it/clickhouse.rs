//! A collector on ClickHouse (Debian's clickhouse-server, started by `scripts/test`; its URL in
//! `TDA_CLICKHOUSE_URL`) answers the same stats, funnels and event pages as a collector on the
//! embedded store fed the same batches, and recognises a retried batch.

use serde_json::{json, Value};
use tda_tests::*;

const MIN: i64 = 60_000;

fn clickhouse_url() -> String {
    std::env::var("TDA_CLICKHOUSE_URL").expect(
        "TDA_CLICKHOUSE_URL is not set: run scripts/test (it starts a ClickHouse server) or scripts/clickhouse DIR",
    )
}

/// Six hours of events from 40 users across 4 features, in 12 batches.
fn batches(t0: i64) -> Vec<Value> {
    (0..12)
        .map(|b| {
            let events: Vec<Value> = (0..200)
                .map(|i| {
                    let n = b * 200 + i;
                    // Each user goes through the features in turn, one every 6 minutes.
                    let feature = ["login", "search", "export", "help"][((n + n / 40) % 4) as usize];
                    let plan = ["free", "pro"][(n % 2) as usize];
                    json!({"timestamp": t0 + n * 6 * 60 * MIN / 2400, "user_id": format!("u{}", n % 40), "feature": feature,
                        "status": if n % 13 == 0 { 503 } else { 200 }, "latency_ms": (n % 300) as f64 + 0.5,
                        "properties": {"plan": plan}})
                })
                .collect();
            let samples: Vec<Value> = (0..3).map(|i| sample(t0 + (b * 3 + i) * 10 * MIN, b * 3 + i)).collect();
            let agent = ["web-1", "web-2"][(b % 2) as usize];
            json!({"version": 1, "agent_id": agent, "batch_id": format!("b{b}"),
                "created_at": t0, "events": events, "samples": samples})
        })
        .collect()
}

/// A host sample whose figures vary with `n`; every third has the watched process.
fn sample(t: i64, n: i64) -> Value {
    let cpu = 10.0 + (n % 7) as f64 * 3.3;
    let process = (n % 3 == 0).then(|| json!({"pid": 42, "name": "td-generator", "cpu_percent": cpu / 2.0,
        "rss_bytes": 1_000_000 + n * 1000, "virtual_bytes": 5_000_000, "threads": 8 + n % 3, "open_fds": 30 + n,
        "uptime_secs": 100}));
    json!({"timestamp": t, "cpu_percent": cpu, "cpu_per_core": [cpu, cpu], "mem_total_bytes": 8_000_000_000u64,
        "mem_used_bytes": 3_000_000_000u64 + n as u64 * 7_777, "swap_total_bytes": 0, "swap_used_bytes": n * 10,
        "load": [0.25 + n as f64 / 10.0, 0.4, 0.3], "disk_total_bytes": 10, "disk_available_bytes": 5,
        "disk_read_bytes": n * 100, "disk_written_bytes": n * 50, "net_rx_bytes": 600 + n, "net_tx_bytes": 7 * n,
        "net_rx_packets": 0, "net_tx_packets": 0, "net_rx_errors": 0, "net_tx_errors": 0, "process": process})
}

fn post_batch(c: &Daemon, b: &Value) -> Value {
    let (status, v) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn a_clickhouse_collector_answers_like_a_sled_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("tda_e2e_{}", std::process::id());
    let ch = CollectorSetup::new(
        &tmp.path().join("ch"),
        &format!("[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n", clickhouse_url()),
    );
    let sled = CollectorSetup::new(&tmp.path().join("sled"), "");
    let (ch, sled) = (ch.start(), sled.start());
    let t0 = (now_ms() / (60 * MIN) - 8) * 60 * MIN;
    for b in batches(t0) {
        post_batch(&ch, &b);
        post_batch(&sled, &b);
    }
    assert_eq!(
        post_batch(&ch, &batches(t0)[3])["duplicate"],
        true,
        "a retried batch is recognised"
    );
    let range = format!("from={}&to={}", t0 - 30 * MIN, t0 + 7 * 60 * MIN);
    for path in [
        format!("/api/v1/stats/usage?{range}"),
        format!("/api/v1/stats/performance?{range}"),
        format!("/api/v1/funnels?{range}&steps=login,search,export&window=30m&breakdown=plan"),
        format!("/api/v1/retention?{range}"),
        format!("/api/v1/retention?{range}&period=week&feature=search"),
        format!("/api/v1/funnels?{range}&steps=login,search&window=10m&mode=strict"),
        format!("/api/v1/funnels?{range}&steps=export,help,login,search&window=2h&label.plan=pro"),
        format!("/api/v1/funnels?{range}&steps=search,login&window=1h&mode=unordered"),
        format!("/api/v1/query?{range}&series=latency_ms&agg=p95&step=1h"),
        format!("/api/v1/query?{range}&series=latency_ms&agg=avg&step=10m&feature=export"),
        format!("/api/v1/query?{range}&series=requests&agg=rate&step=15m&label.plan=pro"),
        format!("/api/v1/query?{range}&series=users&agg=distinct&step=1h"),
        format!("/api/v1/query?{range}&series=errors&agg=count&step=30m"),
        format!("/api/v1/query?{range}&series=host.cpu_percent&agg=max&step=1h&agent=web-2"),
        format!("/api/v1/query?{range}&series=process.rss_bytes&agg=p50&step=2h"),
        format!("/api/v1/events?{range}&feature=export&limit=5"),
    ] {
        let (a, b) = (
            get_json(&format!("{}{path}", ch.url)),
            get_json(&format!("{}{path}", sled.url)),
        );
        assert_eq!(a.0, 200, "{path}: {}", a.1);
        // Quantiles come from the same sketch on both: equal, not merely close.
        let ignored = ["computed_at", "next_cursor"];
        assert_json_close(&a.1, &b.1, &ignored);
    }
    // Walking every page of a feature's events gives the same events on both.
    let walk = |c: &Daemon| {
        let (mut all, mut cursor) = (Vec::new(), String::new());
        loop {
            let url = format!(
                "{}/api/v1/events?{range}&feature=search&limit=70{cursor}",
                c.url
            );
            let (status, page) = get_json(&url);
            assert_eq!(status, 200, "{page}");
            all.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    };
    let paged = walk(&ch);
    assert_eq!(paged.len(), 600);
    assert_eq!(paged, walk(&sled));
    let (_, funnel) = get_json(&format!(
        "{}/api/v1/funnels?{range}&steps=login,search,export&window=30m&breakdown=plan",
        ch.url
    ));
    let steps = &funnel["funnel"]["steps"];
    assert_eq!(steps[0]["users"], 40, "{funnel}");
    assert_eq!(steps[2]["users"], 40, "every user converts: {funnel}");
    assert_eq!(
        steps[2]["median_time_ms"], 720_000,
        "two events later: {funnel}"
    );
    assert_eq!(funnel["funnel"]["breakdown"]["pro"][0]["users"], 20);
    let (_, usage) = get_json(&format!("{}/api/v1/stats/usage?{range}", ch.url));
    assert_eq!(usage["total_requests"], 2_400);
    assert_eq!(usage["active_users"], 40);
}

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    std::process::Command::new(bin("tda-collector"))
        .args(["migrate", "--quiet", "--from"])
        .arg(format!("sled:{}", from.display()))
        .args(["--to", to])
        .output()
        .expect("tda-collector migrate")
}

#[test]
fn migrate_copies_a_sled_store_into_clickhouse_resumably_and_verifies_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sled = CollectorSetup::new(&tmp.path().join("sled"), "");
    let mut collector = sled.start();
    let t0 = (now_ms() / (60 * MIN) - 8) * 60 * MIN;
    for b in batches(t0) {
        post_batch(&collector, &b);
    }
    let range = format!("from={}&to={}", t0 - 30 * MIN, t0 + 7 * 60 * MIN);
    let paths = [
        format!("/api/v1/stats/usage?{range}"),
        format!("/api/v1/stats/performance?{range}"),
        format!("/api/v1/query?{range}&series=host.load1&agg=avg&step=1h"),
    ];
    let before: Vec<Value> = paths
        .iter()
        .map(|p| get_json(&format!("{}{p}", collector.url)).1)
        .collect();
    collector.terminate();

    let db = format!("tda_migrate_{}", std::process::id());
    let to = format!("clickhouse:{}/{db}", clickhouse_url());
    let data = sled.dir.join("data");
    let first = migrate(&data, &to);
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        said.contains("2400 events and 36 samples sent, 0 batches were already there"),
        "{said}"
    );
    let again = migrate(&data, &to);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said}");
    assert!(
        said.contains(": 0 events and 0 samples sent,") && !said.contains(" 0 batches were"),
        "a second run resumes: nothing is sent twice: {said}"
    );

    let ch = CollectorSetup::new(
        &tmp.path().join("ch"),
        &format!("[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n", clickhouse_url()),
    )
    .start();
    for (path, old) in paths.iter().zip(&before) {
        let (status, now) = get_json(&format!("{}{path}", ch.url));
        assert_eq!(status, 200, "{now}");
        assert_json_close(&now, old, &["computed_at"]);
    }

    // A target that holds other data for those days fails verification, naming the day.
    let mut extra = batches(t0 + 60 * MIN)[0].clone();
    extra["batch_id"] = "extra".into();
    post_batch(&ch, &extra);
    let third = migrate(&data, &to);
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(!third.status.success());
    assert!(
        err.contains("verification failed") && err.contains("events"),
        "{err}"
    );
}
