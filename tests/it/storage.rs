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

/// Posts `events` as one binary batch (the agent's format); the status, the answer and its
/// `Accept-Post` header.
fn send_binary(url: &str, batch_id: &str, events: &[Value]) -> (u16, Value, String) {
    let batch: tda_schema::Batch = serde_json::from_value(json!({"version": 1, "agent_id": "a",
        "batch_id": batch_id, "created_at": now_ms(), "events": events}))
    .unwrap();
    let resp = http()
        .post(format!("{url}/v1/batches"))
        .bearer_auth(TOKEN)
        .header("content-type", tda_blocks::batch::CONTENT_TYPE)
        .body(tda_blocks::batch::encode(&batch))
        .send()
        .unwrap();
    let accepts = resp
        .headers()
        .get("accept-post")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status().as_u16();
    (
        status,
        resp.json().unwrap_or(Value::Null),
        accepts.unwrap_or_default(),
    )
}

#[test]
fn binary_batches_are_stored_as_json_ones_are_and_refused_by_field() {
    // The same events, as JSON batches to one collector and binary ones to another: batches of
    // 7 at one a minute, so some cross an hour (a binary block is stored as it came only when
    // it falls in one hour).
    let tmp = tempfile::tempdir().unwrap();
    let (json_setup, binary_setup) = (
        CollectorSetup::new(&tmp.path().join("json"), ""),
        CollectorSetup::new(&tmp.path().join("binary"), ""),
    );
    let (by_json, by_binary) = (json_setup.start(), binary_setup.start());
    let start = (now_ms() / HOUR - 3) * HOUR - HOUR / 4;
    let events: Vec<Value> = (0..90)
        .map(|i| {
            let feature = ["search", "export", "share"][i as usize % 3];
            json!({"timestamp": start + i * 60_000, "user_id": format!("u{}", i % 4),
                "feature": feature,
                "status": if i % 11 == 0 { 503 } else { 200 }, "latency_ms": (i % 9) as f64 + 0.25,
                "properties": {"plan": if i % 2 == 0 { "pro" } else { "free" }}})
        })
        .collect();
    for (n, chunk) in events.chunks(7).enumerate() {
        assert_eq!(send(&by_json.url, &format!("b{n}"), chunk).0, 200);
        let (status, answer, accepts) = send_binary(&by_binary.url, &format!("b{n}"), chunk);
        assert_eq!(
            (status, answer["events"].as_u64()),
            (200, Some(chunk.len() as u64))
        );
        assert_eq!(accepts, "application/vnd.tda.batch, application/json");
    }
    let (status, answer, _) = send_binary(&by_binary.url, "b0", &events[..7]);
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "a retry is stored once"
    );
    let (from, to) = (start, start + 90 * 60_000);
    for path in [
        format!("/api/v1/stats/usage?from={from}&to={to}"),
        format!("/api/v1/stats/performance?from={from}&to={to}"),
        format!("/api/v1/events?from={from}&to={to}&limit=1000"),
        format!(
            "/api/v1/query?from={}&to={to}&series=users&agg=distinct&step=1h",
            start + HOUR / 4
        ),
        format!("/api/v1/query?from={from}&to={to}&series=requests&step=1m&label.plan=pro"),
    ] {
        let (a, b) = (
            get_json(&format!("{}{path}", by_json.url)),
            get_json(&format!("{}{path}", by_binary.url)),
        );
        assert_eq!(a.0, 200, "{path}: {}", a.1);
        assert_eq!(a, b, "{path}");
    }
    // One bad event among good ones: the batch is refused naming it, and nothing is stored.
    let mut bad = events[..5].to_vec();
    bad[3]["status"] = json!(999);
    let (status, answer, _) = send_binary(&by_binary.url, "bad", &bad);
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("events[3].status:"),
        "{answer}"
    );
    let (_, stats) = get_json(&format!(
        "{}/api/v1/stats/usage?from={from}&to={to}",
        by_binary.url
    ));
    assert_eq!(stats["total_requests"], 90, "{stats}");
}
