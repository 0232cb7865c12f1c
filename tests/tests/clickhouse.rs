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
                    let feature = ["login", "search", "export", "help"][(n % 4) as usize];
                    let plan = ["free", "pro"][(n % 2) as usize];
                    json!({"timestamp": t0 + n * 6 * 60 * MIN / 2400, "user_id": format!("u{}", n % 40), "feature": feature,
                        "status": if n % 13 == 0 { 503 } else { 200 }, "latency_ms": (n % 300) as f64 + 0.5,
                        "properties": {"plan": plan}})
                })
                .collect();
            json!({"version": 1, "agent_id": "web-1", "batch_id": format!("b{b}"), "created_at": t0, "events": events})
        })
        .collect()
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
        format!("/api/v1/query?{range}&series=latency_ms&agg=p95&step=1h"),
        format!("/api/v1/events?{range}&feature=export&limit=5"),
    ] {
        let (a, b) = (
            get_json(&format!("{}{path}", ch.url)),
            get_json(&format!("{}{path}", sled.url)),
        );
        assert_eq!(a.0, 200, "{path}: {}", a.1);
        let strip = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.remove("computed_at");
                o.remove("next_cursor");
            }
            v
        };
        assert_eq!(strip(a.1), strip(b.1), "{path}");
    }
    let (_, usage) = get_json(&format!("{}/api/v1/stats/usage?{range}", ch.url));
    assert_eq!(usage["total_requests"], 2_400);
    assert_eq!(usage["active_users"], 40);
}
