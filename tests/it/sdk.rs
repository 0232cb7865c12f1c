//! The official PostHog and Segment Python SDKs (PyPI, in the virtualenv `scripts/test-venv`
//! makes) send to a running agent unchanged; their events reach the collector with the right
//! fields, identities mapped, repeats dropped, wrong keys refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use tda_tests::python;
use tda_tests::*;

const KEYS: &str =
    "[intake.posthog]\nkeys = [\"phc_test\"]\n[intake.segment]\nkeys = [\"wk_test\"]\n";

fn send(script: &str, host: &str, key: &str, n: usize) -> Output {
    Command::new(python::python())
        .arg(python::script(script))
        .args([host, key, &n.to_string()])
        .output()
        .expect("run the SDK script")
}

fn started(dir: &Path) -> (Daemon, Daemon) {
    let collector = CollectorSetup::new(&dir.join("collector"), "").start();
    let agent = AgentSetup {
        intake: KEYS.into(),
        ..AgentSetup::new(&dir.join("agent"), &collector.url, collector.pid())
    }
    .start();
    (collector, agent)
}

/// The features of the stored events of the last ten minutes, sorted, once there are `n`.
fn stored_features(collector: &str, n: usize) -> Vec<String> {
    let mut features: Vec<String> = recent_events(collector, n)
        .iter()
        .map(|e| e["feature"].as_str().unwrap().to_string())
        .collect();
    features.sort();
    features
}

fn per_user(events: &[Value]) -> BTreeMap<String, usize> {
    let mut users = BTreeMap::new();
    for e in events {
        *users
            .entry(e["user_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    users
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_posthog_python_sdk_sends_to_the_agent_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (collector, agent) = started(tmp.path());
    let n = 40;
    ok(&send("posthog_send.py", &agent.url, "phc_test", n));
    let events = recent_events(&collector.url, n);
    assert_eq!(events.len(), n);
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n {
        let user = if i % 2 == 0 {
            "user-7".into()
        } else {
            format!("user-{}", i % 3)
        };
        *want.entry(user).or_default() += 1;
    }
    assert_eq!(
        per_user(&events),
        want,
        "anon-1 counts under user-7 after the alias"
    );
    let mut latencies: Vec<f64> = events
        .iter()
        .map(|e| e["latency_ms"].as_f64().unwrap())
        .collect();
    latencies.sort_by(f64::total_cmp);
    assert_eq!(
        latencies,
        (0..n).map(|i| 10.0 + i as f64).collect::<Vec<_>>()
    );
    assert_eq!(events.iter().filter(|e| e["status"] == 500).count(), 8);
    for e in &events {
        assert_eq!(
            (&e["feature"], &e["route"]),
            (&json!("generate"), &json!("/api/v1/generate"))
        );
        assert_eq!(e["properties"]["plan"], "pro");
        assert_eq!(e["properties"]["$lib"], "posthog-python");
        let keys: Vec<&String> = e["properties"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["$lib", "$lib_version", "plan"],
            "SDK internals dropped"
        );
        let age = now_ms() - e["timestamp"].as_i64().unwrap();
        assert!((0..120_000).contains(&age), "timestamp {age} ms ago");
    }

    let refused = send("posthog_send.py", &agent.url, "phc_wrong", 5);
    assert!(!refused.status.success(), "a wrong project key is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );

    // A batch sent twice (an SDK retry after a lost answer) is taken once.
    let body = json!({"api_key": "phc_test", "batch": [
        {"event": "export", "distinct_id": "u-dup", "uuid": "0191-dup", "properties": {}}]});
    for _ in 0..2 {
        let (status, v) = post(
            &format!("{}/batch/", agent.url),
            &[],
            serde_json::to_vec(&body).unwrap(),
        );
        assert_eq!((status, v), (200, json!({"status": 1})));
    }
    let events = recent_events(&collector.url, n + 1);
    assert_eq!(per_user(&events).get("u-dup"), Some(&1));
    assert_eq!(agent_counters(&agent.url)["events_deduplicated"], 1);
    assert_eq!(agent_counters(&agent.url)["events_received"], n + 1);
}

#[test]
fn the_segment_python_sdk_sends_to_the_agent_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (collector, agent) = started(tmp.path());
    let n = 20;
    ok(&send("segment_send.py", &agent.url, "wk_test", n));
    let events = recent_events(&collector.url, n + 1);
    assert_eq!(events.len(), n + 1);
    let mut want: BTreeMap<String, usize> = BTreeMap::from([("user-9".into(), 1)]);
    for i in 0..n {
        let user = if i % 2 == 0 {
            "user-9".into()
        } else {
            format!("user-{}", i % 3)
        };
        *want.entry(user).or_default() += 1;
    }
    assert_eq!(
        per_user(&events),
        want,
        "anon-9 counts under user-9 after identify"
    );
    let page: Vec<&Value> = events
        .iter()
        .filter(|e| e["feature"] == "Pricing")
        .collect();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["route"], "/pricing");
    let tracks: Vec<&Value> = events.iter().filter(|e| e["feature"] == "export").collect();
    assert_eq!(tracks.len(), n);
    assert!(tracks.iter().all(|e| e["status"] == 200));
    let mut latencies: Vec<f64> = tracks
        .iter()
        .map(|e| e["latency_ms"].as_f64().unwrap())
        .collect();
    latencies.sort_by(f64::total_cmp);
    assert_eq!(
        latencies,
        (0..n).map(|i| 20.0 + i as f64).collect::<Vec<_>>()
    );

    let refused = send("segment_send.py", &agent.url, "wk_wrong", 3);
    assert!(!refused.status.success(), "a wrong write key is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    assert_eq!(agent_counters(&agent.url)["events_received"], n + 1);
}

/// Posts `body` to the agent's `path` as `content_type`; answers the status.
fn post_raw(agent: &str, path: &str, content_type: &str, body: Vec<u8>) -> u16 {
    http()
        .post(format!("{agent}{path}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .expect("post")
        .status()
        .as_u16()
}

#[test]
fn posthog_js_bodies_unmarked_gzip_and_base64_beacons_are_stored() {
    use base64::Engine;
    use std::io::Write;

    let tmp = tempfile::tempdir().unwrap();
    let (collector, agent) = started(tmp.path());
    let now = now_ms();
    // posthog-js's shapes: a bare array of events, its key in `properties.token`.
    let batch = |tag: &str| {
        let events: Vec<Value> = (0..3)
            .map(|i| json!({"event": format!("{tag}"), "distinct_id": "anon-js", "uuid": format!("{tag}-{i}"),
                "timestamp": tda_schema::Timestamp(now - 1_000 + i).to_rfc3339(), "properties": {"token": "phc_test"}}))
            .collect();
        serde_json::to_vec(&events).unwrap()
    };
    // 1. gzip posted as text/plain with no Content-Encoding and no ?compression=.
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&batch("gzip-unmarked")).unwrap();
    let status = post_raw(&agent.url, "/e/", "text/plain", z.finish().unwrap());
    assert_eq!(status, 200, "unmarked gzip");
    // 2. The unload beacon: a form with base64 JSON in `data`.
    let b64 = base64::engine::general_purpose::STANDARD.encode(batch("beacon"));
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("data", &b64)
        .finish();
    let status = post_raw(
        &agent.url,
        "/e/?compression=base64",
        "application/x-www-form-urlencoded",
        form.into_bytes(),
    );
    assert_eq!(status, 200, "base64 beacon");

    let features = stored_features(&collector.url, 6);
    assert_eq!(
        features,
        [
            "beacon",
            "beacon",
            "beacon",
            "gzip-unmarked",
            "gzip-unmarked",
            "gzip-unmarked"
        ]
    );
}

#[test]
fn analytics_js_short_paths_and_its_batches_are_stored() {
    use base64::Engine;

    let tmp = tempfile::tempdir().unwrap();
    let (collector, agent) = started(tmp.path());
    let at = tda_schema::Timestamp(now_ms() - 1_000).to_rfc3339();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("wk_test:")
    );
    // analytics-next: one message per call on /v1/t, /v1/p … with the key in Basic auth.
    for (path, message) in [
        (
            "/v1/t",
            json!({"type": "track", "event": "export", "userId": "u-js", "messageId": "m-t", "timestamp": at}),
        ),
        (
            "/v1/p",
            json!({"type": "page", "name": "Pricing", "userId": "u-js", "messageId": "m-p", "timestamp": at}),
        ),
    ] {
        let status = http()
            .post(format!("{}{path}", agent.url))
            .header("authorization", &auth)
            .header("content-type", "text/plain")
            .body(message.to_string())
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
    // Batching mode: /v1/b with the key in the body.
    let batch = json!({"writeKey": "wk_test", "sentAt": at, "batch": [
        {"type": "track", "event": "generate", "userId": "u-js", "messageId": "m-b1", "timestamp": at},
        {"type": "track", "event": "download", "userId": "u-js", "messageId": "m-b2", "timestamp": at},
    ]});
    let status = post_raw(
        &agent.url,
        "/v1/b",
        "text/plain",
        batch.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "/v1/b");

    let features = stored_features(&collector.url, 4);
    // A page view is a feature of its own: its name.
    assert_eq!(
        features,
        ["Pricing", "download", "export", "generate"],
        "{features:?}"
    );
}

#[test]
fn refused_requests_are_counted_and_logged_a_line_per_kind_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let collector = CollectorSetup::new(&dir.join("collector"), "").start();
    let mut agent = AgentSetup {
        intake: KEYS.into(),
        ..AgentSetup::new(&dir.join("agent"), &collector.url, collector.pid())
    }
    .start_logging("info");
    // Three bodies posthog-js would never send, two requests to no route, one wrong method.
    for _ in 0..3 {
        assert_eq!(
            post_raw(&agent.url, "/e/", "text/plain", b"not json".to_vec()),
            400
        );
    }
    assert_eq!(
        post_raw(&agent.url, "/flags/?v=2", "text/plain", b"{}".to_vec()),
        404
    );
    assert_eq!(post_raw(&agent.url, "/nowhere", "text/plain", vec![]), 404);
    let status = http()
        .get(format!("{}/v1/events", agent.url))
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 405);

    let counters = agent_counters(&agent.url);
    assert_eq!(counters["requests_rejected"], 3, "{counters}");
    assert_eq!(counters["requests_unrouted"], 3, "{counters}");
    let metrics = agent_metrics(&agent.url);
    assert!(
        metrics.contains("tda_agent_intake_requests_unrouted_total 3"),
        "{metrics}"
    );
    agent.terminate();
    let log = agent.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("intake request refused"))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one line per kind (posthog, route): {lines:?}"
    );
    let has = |text: &str| lines.iter().any(|l| l.contains(text));
    assert!(
        has("kind=\"posthog\" status=400 reason=\"body: expected")
            && has("kind=\"route\" status=404"),
        "{lines:?}"
    );
}
