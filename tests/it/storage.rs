//! Storage upkeep against a real collector: stats answered from rollups match the events,
//! compaction merges blocks without changing any answer, and the disk cap refuses batches with
//! 507 until it is raised.

use std::fs;

use serde_json::{json, Value};
use tda_tests::*;

const HOUR: i64 = 3_600_000;

fn send(url: &str, batch_id: &str, events: &[Value]) -> (u16, Value) {
    let body = json!({"version": 1, "agent_id": "a", "batch_id": batch_id,
        "created_at": now_ms(), "events": events});
    post(
        &format!("{url}/v1/batches"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.to_string().into_bytes(),
    )
}

fn admin_post(url: &str, path: &str) -> (u16, Value) {
    post(
        &format!("{url}{path}"),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        vec![],
    )
}

#[test]
fn stats_from_rollups_match_the_events_before_and_after_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let c = setup.start();
    // Two whole hours a few hours back, plus 30 minutes on either side: 20 batches of 60 events,
    // one event a minute in turn from each of 3 users on 2 features; every 10th fails.
    let start = (now_ms() / HOUR - 5) * HOUR - HOUR / 2;
    let events: Vec<Value> = (0..180)
        .map(|i| {
            let failed = i % 10 == 0;
            json!({"timestamp": start + i * 60_000, "user_id": format!("u{}", i % 3),
                "feature": if i % 2 == 0 { "search" } else { "export" },
                "status": if failed { 500 } else { 200 }, "latency_ms": (i % 7) as f64})
        })
        .collect();
    for (n, chunk) in events.chunks(9).enumerate() {
        assert_eq!(send(&c.url, &format!("b{n}"), chunk).0, 200);
    }
    let (from, to) = (start + 10 * 60_000, start + 170 * 60_000);
    let expected = |stats: &Value| {
        assert_eq!(stats["total_requests"], 160, "{stats}");
        assert_eq!(stats["errors"], 16, "{stats}");
        assert_eq!(stats["active_users"], 3, "{stats}");
        let features = stats["features"].as_array().unwrap();
        assert_eq!(features[0]["requests"], 80, "{stats}");
        assert_eq!(features[0]["users"], 3, "{stats}");
        assert_eq!(stats["latency_ms"]["count"], 160, "{stats}");
        let buckets = stats["series"].as_array().unwrap();
        assert_eq!(buckets.len(), 160, "one bucket a minute");
        assert!(buckets.iter().all(|b| b["requests"] == 1), "{stats}");
    };
    let before = usage(&c.url, from, to);
    expected(&before);
    let (status, done) = admin_post(&c.url, "/-/compact?before=now");
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["hours"], 4, "{done}");
    assert!(done["blocks_merged"].as_u64().unwrap() >= 20, "{done}");
    let after = usage(&c.url, from, to);
    expected(&after);
    assert_eq!(after["latency_ms"], before["latency_ms"]);
    let (status, again) = admin_post(&c.url, "/-/compact?before=now");
    assert_eq!((status, again["hours"].clone()), (200, json!(0)), "{again}");
    let (status, _) = post(&format!("{}/-/compact", c.url), &[], vec![]);
    assert_eq!(status, 401, "compaction needs the admin token");
}

#[test]
fn the_disk_cap_refuses_batches_with_507_until_it_is_raised() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[storage]\nmax_disk_bytes = 1\n");
    let c = setup.start();
    let event = [json!({"timestamp": now_ms(), "user_id": "u", "feature": "f"})];
    let refused = wait_for("a batch refused for the disk cap", || {
        let resp = http()
            .post(format!("{}/v1/batches", c.url))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(json!({"version": 1, "agent_id": "a", "batch_id": "full", "created_at": now_ms(), "events": event}).to_string())
            .send()
            .expect("POST");
        (resp.status().as_u16() == 507)
            .then(|| resp.headers()["retry-after"].to_str().unwrap().to_string())
    });
    assert_eq!(refused, "60");
    let (_, health) = get_json(&format!("{}/healthz", c.url));
    assert!(
        health["ingest"]["batches_refused_disk_full"]
            .as_u64()
            .unwrap()
            >= 1,
        "{health}"
    );
    let config = fs::read_to_string(setup.config_file()).unwrap();
    fs::write(
        setup.config_file(),
        config.replace("max_disk_bytes = 1", "max_disk_bytes = 0"),
    )
    .unwrap();
    wait_for("the batch accepted once the cap is lifted", || {
        (send(&c.url, "full", &event).0 == 200).then_some(())
    });
    assert_eq!(
        usage(&c.url, now_ms() - HOUR, now_ms() + 1)["total_requests"],
        1
    );
}
