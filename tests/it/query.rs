//! The query API and `tda query` / `tda events` against a real collector, with exact answers.

use serde_json::{json, Value};
use tda_tests::*;

const MIN: i64 = 60_000;

/// Stores a known batch: minute 0 has 3 requests (one 500), minute 1 has 1, minute 2 has 3 at
/// one timestamp; samples from two agents.
fn setup() -> (tempfile::TempDir, Daemon, i64) {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    let t0 = (now_ms() - 3_600_000) / MIN * MIN;
    let ev = |dt: i64, user: &str, feature: &str, status: u16, latency: f64| json!({"timestamp": t0 + dt, "user_id": user, "feature": feature, "status": status, "latency_ms": latency});
    let mut events = vec![
        ev(1_000, "a", "generate", 200, 10.0),
        ev(2_000, "b", "generate", 500, 30.0),
        ev(3_000, "a", "export", 200, 20.0),
        ev(MIN + 5_000, "c", "export", 200, 40.0),
        ev(2 * MIN, "a", "generate", 200, 1.0),
        ev(2 * MIN, "b", "generate", 200, 2.0),
        ev(2 * MIN, "c", "generate", 200, 3.0),
    ];
    events[0]["properties"] = json!({"plan": "pro", "seats": 3});
    events[3]["properties"] = json!({"plan": "pro"});
    let sample = |dt: i64, cpu: f64| {
        json!({"timestamp": t0 + dt, "cpu_percent": cpu, "cpu_per_core": [cpu], "mem_total_bytes": 100, "mem_used_bytes": 50,
            "swap_total_bytes": 0, "swap_used_bytes": 0, "load": [0.5, 0.4, 0.3], "disk_total_bytes": 10, "disk_available_bytes": 5,
            "disk_read_bytes": 0, "disk_written_bytes": 0, "net_rx_bytes": 600, "net_tx_bytes": 0, "net_rx_packets": 0,
            "net_tx_packets": 0, "net_rx_errors": 0, "net_tx_errors": 0})
    };
    for (agent, cpu) in [("web-1", 10.0), ("web-2", 30.0)] {
        let batch = json!({"version": 1, "agent_id": agent, "batch_id": format!("q-{agent}"), "created_at": t0,
            "events": if agent == "web-1" { events.clone() } else { vec![] }, "samples": [sample(0, cpu), sample(30_000, cpu + 10.0)]});
        let (status, _) = post(
            &format!("{}/v1/batches", c.url),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            serde_json::to_vec(&batch).unwrap(),
        );
        assert_eq!(status, 200);
    }
    (tmp, c, t0)
}

fn series(c: &Daemon, t0: i64, params: &str) -> (u16, Value) {
    get_json(&format!(
        "{}/api/v1/query?from={t0}&to={}&{params}",
        c.url,
        t0 + 3 * MIN
    ))
}

fn values(v: &Value) -> Vec<Option<f64>> {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["v"].as_f64())
        .collect()
}

#[test]
fn series_answer_exactly() {
    let (_tmp, c, t0) = setup();
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=1m").1),
        vec![Some(3.0), Some(1.0), Some(3.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=errors&step=1m").1),
        vec![Some(1.0), Some(0.0), Some(0.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=users&step=1m").1),
        vec![Some(2.0), Some(1.0), Some(3.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=3m").1),
        vec![Some(7.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=1m&agg=rate").1),
        vec![Some(0.05), Some(1.0 / 60.0), Some(0.05)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=1m&feature=export").1),
        vec![Some(1.0), Some(1.0), Some(0.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=3m&status=500").1),
        vec![Some(1.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=requests&step=1m&label.plan=pro").1),
        vec![Some(1.0), Some(1.0), Some(0.0)],
        "a string property"
    );
    assert_eq!(
        values(
            &series(
                &c,
                t0,
                "series=requests&step=3m&label.seats=3&label.plan=pro"
            )
            .1
        ),
        vec![Some(1.0)],
        "a number property, and every label must match"
    );
    assert_eq!(
        values(&series(&c, t0, "series=latency_ms&step=1m&agg=max").1),
        vec![Some(30.0), Some(40.0), Some(3.0)]
    );
    assert_eq!(
        values(&series(&c, t0, "series=latency_ms&step=1m&agg=avg").1),
        vec![Some(20.0), Some(40.0), Some(2.0)]
    );
    let p50 = values(&series(&c, t0, "series=latency_ms&step=1m&agg=p50").1);
    for (got, want) in p50.iter().zip([20.0, 40.0, 2.0]) {
        assert!(
            (got.unwrap() - want).abs() <= want * 0.01,
            "{got:?} vs {want}"
        );
    }
    assert_eq!(
        values(&series(&c, t0, "series=host.cpu_percent&step=1m").1),
        vec![Some(25.0), None, None]
    );
    assert_eq!(
        values(&series(&c, t0, "series=host.cpu_percent&step=1m&agent=web-2").1),
        vec![Some(35.0), None, None]
    );
    assert_eq!(
        values(&series(&c, t0, "series=host.net_rx_bytes&step=1m&agg=rate").1),
        vec![Some(40.0), Some(0.0), Some(0.0)]
    );
}

#[test]
fn bad_queries_are_refused_by_name() {
    let (_tmp, c, t0) = setup();
    let err = |p: &str| {
        let (status, v) = series(&c, t0, p);
        assert_eq!(status, 400, "{p}");
        v["error"].as_str().unwrap().to_string()
    };
    assert!(err("series=sales").starts_with("series: `sales` is not one of requests, errors"));
    assert_eq!(err("step=1m"), "series: required");
    assert_eq!(
        err("series=requests&agg=distinct"),
        "agg: `distinct` goes with the `users` series, and only with it"
    );
    assert!(err("series=requests&agg=median").starts_with("agg: `median`"));
    assert_eq!(err("series=requests&step=1ms"), "step: must be at least 1s");
    assert_eq!(
        err("series=requests&status=ok"),
        "status: `ok` is not an HTTP status"
    );
    let (status, v) = get_json(&format!(
        "{}/api/v1/events?from={t0}&to={}&cursor=bogus",
        c.url,
        t0 + 3 * MIN
    ));
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("cursor: `bogus` is not one this API gave"))
    );
}

#[test]
fn events_page_through_ties_without_loss_or_repeat() {
    let (_tmp, c, t0) = setup();
    let page = |cursor: Option<&str>| {
        let mut url = format!(
            "{}/api/v1/events?from={t0}&to={}&limit=3",
            c.url,
            t0 + 3 * MIN
        );
        if let Some(cur) = cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        get_json(&url).1
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let v = page(cursor.as_deref());
        pages += 1;
        seen.extend(v["events"].as_array().unwrap().iter().map(|e| {
            (
                e["timestamp"].as_i64().unwrap() - t0,
                e["user_id"].as_str().unwrap().to_string(),
            )
        }));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<(i64, String)> = [
        (1_000, "a"),
        (2_000, "b"),
        (3_000, "a"),
        (MIN + 5_000, "c"),
        (2 * MIN, "a"),
        (2 * MIN, "b"),
        (2 * MIN, "c"),
    ]
    .into_iter()
    .map(|(t, u)| (t, u.to_string()))
    .collect();
    assert_eq!(seen, want);
    let filtered = get_json(&format!(
        "{}/api/v1/events?from={t0}&to={}&user=c",
        c.url,
        t0 + 3 * MIN
    ))
    .1;
    assert_eq!(filtered["events"].as_array().unwrap().len(), 2);
    let pro = get_json(&format!(
        "{}/api/v1/events?from={t0}&to={}&label.plan=pro",
        c.url,
        t0 + 3 * MIN
    ))
    .1;
    let users: Vec<&str> = pro["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["a", "c"], "{pro}");
}

#[test]
fn cli_prints_series_and_event_pages() {
    let (_tmp, c, t0) = setup();
    let (from, to) = (t0.to_string(), (t0 + 3 * MIN).to_string());
    let out = tda(
        &c.url,
        &[
            "query", "requests", "--since", &from, "--until", &to, "--step", "1m",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("requests (count, step 60 s)\n"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    let out = tda(
        &c.url,
        &[
            "events",
            "--since",
            &from,
            "--until",
            &to,
            "--limit",
            "2",
            "--feature",
            "generate",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        4,
        "header, two events, next cursor: {text}"
    );
    assert!(
        text.lines().last().unwrap().starts_with("next: --cursor "),
        "{text}"
    );
}

#[test]
fn the_latest_accepted_timestamp_can_be_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    let last = 7_258_118_399_999i64; // 2199-12-31T23:59:59.999Z
    let batch = json!({"version": 1, "agent_id": "a", "batch_id": "end-of-range", "created_at": last,
        "events": [{"timestamp": last, "user_id": "u", "feature": "f"}]});
    let (status, _) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        serde_json::to_vec(&batch).unwrap(),
    );
    assert_eq!(status, 200);
    let (status, page) = get_json(&format!(
        "{}/api/v1/events?from={}&to=7258118400000",
        c.url,
        last - 1_000
    ));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1), "{page}");
    let (status, page) = get_json(&format!(
        "{}/api/v1/events?from=2199-12-31T23:00:00Z&to=2200-01-01T00:00:00Z",
        c.url
    ));
    assert_eq!(
        (status, page["events"][0]["timestamp"].as_i64()),
        (200, Some(last)),
        "{page}"
    );
}
