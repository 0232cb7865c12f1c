//! Every refusal path of the collector's batch intake, the agent's event intake and the API:
//! the right status, an error that names the problem, and nothing already stored is lost.

use serde_json::{json, Value};
use tda_tests::*;

const AUTH: (&str, &str) = ("authorization", "Bearer test-ingest-token");

fn batch(id: &str, t0: i64, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"timestamp": t0 + i as i64, "user_id": format!("u{i}"), "feature": "generate", "latency_ms": 5.0}))
        .collect();
    json!({"version": 1, "agent_id": "a1", "batch_id": id, "created_at": t0, "events": events})
}

fn zstd_json(v: &Value) -> Vec<u8> {
    zstd::bulk::compress(&serde_json::to_vec(v).unwrap(), 3).unwrap()
}

fn send(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let (status, v) = post(&format!("{url}/v1/batches"), headers, body);
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

#[test]
fn collector_refuses_bad_batches_and_keeps_what_it_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(
        tmp.path(),
        "[limits]\nmax_body_bytes = 65536\nmax_decompressed_bytes = 262144\n",
    );
    let c = setup.start();
    let url = c.url.as_str();
    let t0 = now_ms() - 60_000;
    let zstd = ("content-encoding", "zstd");

    let (status, _) = post(
        &format!("{url}/v1/batches"),
        &[AUTH, zstd],
        zstd_json(&batch("good", t0, 10)),
    );
    assert_eq!(status, 200);
    let (status, body) = post(
        &format!("{url}/v1/batches"),
        &[AUTH, zstd],
        zstd_json(&batch("good", t0, 10)),
    );
    assert_eq!(
        (status, &body["duplicate"]),
        (200, &json!(true)),
        "a retried batch is acknowledged, not stored twice"
    );

    assert_eq!(
        send(url, &[zstd], zstd_json(&batch("b", t0, 1))),
        (
            401,
            "a bearer token with the ingest scope is required".into()
        )
    );
    assert_eq!(
        send(
            url,
            &[("authorization", "Bearer wrong"), zstd],
            zstd_json(&batch("b", t0, 1))
        )
        .0,
        401
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(
        send(
            url,
            &[("authorization", &admin), zstd],
            zstd_json(&batch("b", t0, 1))
        ),
        (403, "this token lacks the ingest scope".into()),
        "a known token of another scope is forbidden, not unknown"
    );

    let (status, msg) = send(url, &[AUTH], vec![b' '; 70_000]);
    assert_eq!(status, 413, "{msg}");
    assert!(msg.contains("65536"), "{msg}");

    let bomb = zstd::bulk::compress(&vec![b' '; 1 << 20], 19).unwrap();
    assert!(bomb.len() < 65536);
    let (status, msg) = send(url, &[AUTH, zstd], bomb);
    assert_eq!(
        (status, msg.as_str()),
        (413, "body decompresses to more than 262144 bytes")
    );

    let mut bad = batch("bad-field", t0, 5);
    bad["events"][3]["latency_ms"] = json!("slow");
    let (status, msg) = send(url, &[AUTH, zstd], zstd_json(&bad));
    assert_eq!(status, 400);
    assert!(
        msg.starts_with("events[3].latency_ms: invalid type: string \"slow\""),
        "{msg}"
    );

    let mut bad = batch("bad-status", t0, 5);
    bad["events"][4]["status"] = json!(999);
    assert_eq!(
        send(url, &[AUTH, zstd], zstd_json(&bad)),
        (
            400,
            "events[4].status: 999 is not an HTTP status (100-599)".into()
        )
    );

    let mut bad = batch("no-user", t0, 2);
    bad["events"][1].as_object_mut().unwrap().remove("user_id");
    let (status, msg) = send(url, &[AUTH, zstd], zstd_json(&bad));
    assert_eq!(status, 400);
    assert!(
        msg.starts_with("events[1]: missing field `user_id`"),
        "{msg}"
    );

    let mut bad = batch("v9", t0, 1);
    bad["version"] = json!(9);
    assert_eq!(send(url, &[AUTH, zstd], zstd_json(&bad)).0, 400);
    assert_eq!(send(url, &[AUTH, zstd], b"not zstd at all".to_vec()).0, 400);
    assert_eq!(send(url, &[AUTH], b"{\"version\":1,".to_vec()).0, 400);
    assert_eq!(
        send(url, &[AUTH, ("content-encoding", "br")], vec![1, 2, 3]).0,
        415
    );

    // The refused batches stored nothing; the accepted one is intact.
    assert_eq!(usage(url, t0, t0 + 60_000)["total_requests"], 10);
}

#[test]
fn agent_intake_names_the_bad_event_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let c = setup.start();
    let agent = start_agent(&tmp.path().join("a"), &c.url, c.pid());
    let events = format!("{}/v1/events", agent.url);
    let t0 = now_ms();
    let ok = json!({"timestamp": t0, "user_id": "u", "feature": "f"});

    let (status, v) = post(
        &events,
        &[],
        serde_json::to_vec(&json!([ok, ok, {"timestamp": "soon", "user_id": "u", "feature": "f"}]))
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("events[2].timestamp: `soon` is neither RFC 3339 nor epoch milliseconds"),
        "{v}"
    );
    let (status, v) = post(
        &events,
        &[],
        serde_json::to_vec(&json!([ok, {"timestamp": t0, "user_id": "", "feature": "f"}])).unwrap(),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("events[1].user_id: must not be empty"))
    );
    let (status, v) = post(&events, &[], b"{\"not\": \"an array\"}".to_vec());
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        post_declaring_length(&agent.url, "/v1/events", 9 << 20),
        413,
        "over the 8 MiB default"
    );
    let (_, health) = get_json(&format!("{}/healthz", agent.url));
    assert_eq!(health["counters"]["requests_rejected"], 4);
    assert_eq!(health["counters"]["events_received"], 0);
}

#[test]
fn api_refuses_bad_queries_and_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    let stats = |q: &str| get_json(&format!("{}/api/v1/stats/{q}", c.url));
    assert_eq!(stats("sales").0, 404);
    assert_eq!(
        stats("usage?from=yesterday").1["error"],
        "from: `yesterday` is not RFC 3339, epoch milliseconds, `now` or a duration like 1h"
    );
    assert_eq!(
        stats("usage?from=1h&to=2h").1["error"],
        "from: must be before to"
    );
    assert_eq!(
        stats("usage?from=1h&profile=nope").1["error"],
        "profile: no profile `nope`"
    );
    assert_eq!(
        stats("usage?from=1000d").0,
        400,
        "a series of 1.44 M minute buckets is refused"
    );
    assert_eq!(
        stats("behavioral?profile=nope").1["error"],
        "profile: no profile `nope`"
    );
    assert_eq!(
        stats("predictive?profile=nope").1["error"],
        "profile: no profile `nope`"
    );
    assert_eq!(get_json(&format!("{}/nowhere", c.url)).0, 404);

    let profiles = format!("{}/api/v1/profiles", c.url);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let create = |v: Value| {
        post(
            &profiles,
            &[
                ("content-type", "application/json"),
                ("authorization", &admin),
            ],
            serde_json::to_vec(&v).unwrap(),
        )
    };
    let unsigned = post(
        &profiles,
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    );
    assert_eq!(unsigned.0, 401, "creating a profile needs the admin token");
    let agent = post(
        &profiles,
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {TOKEN}")),
        ],
        b"{}".to_vec(),
    );
    assert_eq!(agent.0, 403, "an agent token may not change profiles");
    let (status, v) = create(json!({"name": "X", "type": "sales"}));
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("type: unknown variant `sales`"),
        "{v}"
    );
    let (status, v) =
        create(json!({"name": "X", "type": "usage", "settings": {"collection_interval": 0}}));
    assert_eq!(
        (status, v["error"].as_str()),
        (
            400,
            Some("settings.collection_interval: 0 must be 1-86400 seconds")
        )
    );
    let (status, v) =
        create(json!({"name": "X", "type": "usage", "settings": {"retention_period": -3}}));
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("settings.retention_period: invalid value: integer `-3`"),
        "{v}"
    );
    let (status, v) =
        create(json!({"name": "X", "type": "usage", "settings": {"aggregation_level": "week"}}));
    assert_eq!(status, 400, "{v}");
    let (status, v) = create(json!({"name": "X", "type": "usage", "colour": "red"}));
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{v}"
    );
    assert_eq!(create(json!({"name": "X", "type": "usage"})).0, 201);
    let (status, v) = create(json!({"name": "x", "type": "performance"}));
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("a profile named `x` already exists"))
    );
}

#[test]
fn collector_will_not_start_on_a_bad_config() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |config: &str| {
        let f = tmp.path().join("c.toml");
        std::fs::write(&f, config).unwrap();
        let out = std::process::Command::new(bin("tda-collector"))
            .arg("--config")
            .arg(&f)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run("listen = \"127.0.0.1:0\"\nlisten_port = 5\n");
    assert!(
        err.contains("c.toml:2:1: unknown field `listen_port`"),
        "{err}"
    );
    let err = run(&format!(
        "listen = \"127.0.0.1:{}\"\ndata_dir = \"d\"\n",
        free_port()
    ));
    assert!(err.contains("no ingest token configured"), "{err}");
}

#[test]
fn a_token_over_its_rate_gets_429_and_a_batch_over_the_event_limit_413() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(
        tmp.path(),
        "[limits]\nrequests_per_second_per_token = 0.5\nburst_per_token = 2\nmax_events_per_batch = 3\n",
    )
    .start();
    let url = c.url.as_str();
    let t0 = now_ms() - 60_000;
    let zstd = ("content-encoding", "zstd");
    let (status, msg) = send(url, &[AUTH, zstd], zstd_json(&batch("big", t0, 4)));
    assert_eq!(
        (status, msg.as_str()),
        (
            413,
            "events: 4 events, more than limits.max_events_per_batch (3)"
        )
    );
    assert_eq!(
        send(url, &[AUTH, zstd], zstd_json(&batch("r1", t0, 1))).0,
        200
    );
    let third = http()
        .post(format!("{url}/v1/batches"))
        .header(AUTH.0, AUTH.1)
        .header(zstd.0, zstd.1)
        .body(zstd_json(&batch("r2", t0, 1)))
        .send()
        .unwrap();
    assert_eq!(third.status().as_u16(), 429, "the burst of 2 is spent");
    assert_eq!(third.headers()["retry-after"], "2", "one request every 2 s");
    assert_eq!(
        get_json(&format!("{url}/healthz")).0,
        200,
        "the collector stays healthy"
    );
    assert_eq!(
        usage(url, t0 - 1, t0 + 10)["total_requests"],
        1,
        "the refused batches stored nothing; reads are not counted against the agent's token"
    );
    wait_for("the token's bucket to refill", || {
        (send(url, &[AUTH, zstd], zstd_json(&batch("r2", t0, 1))).0 == 200).then_some(())
    });
}

#[test]
fn a_connection_over_the_cap_gets_503_and_the_collector_recovers_when_they_close() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "[limits]\nmax_connections = 2\n").start();
    let addr = format!("127.0.0.1:{}", c.url.rsplit(':').next().unwrap());
    let hold = |n: usize| -> Vec<std::net::TcpStream> {
        (0..n)
            .map(|_| std::net::TcpStream::connect(&addr).unwrap())
            .collect()
    };
    // Two clients that connect and send nothing (slowloris) hold both places. The start-up
    // health check's connection may still hold one until the collector sees it close.
    let (idle, over) = wait_for("two idle connections to fill the cap", || {
        let idle = hold(2);
        let r = http().get(format!("{}/healthz", c.url)).send().unwrap();
        (r.status().as_u16() == 503).then_some((idle, r))
    });
    assert_eq!(over.headers()["retry-after"], "1");
    assert_eq!(over.headers()["connection"], "close");
    assert_eq!(
        over.json::<Value>().unwrap()["error"],
        "connection limit (2) reached; retry shortly"
    );
    drop(idle);
    let one = hold(1);
    wait_for(
        "the second place to free up once the idle connections close",
        || (get_json(&format!("{}/healthz", c.url)).0 == 200).then_some(()),
    );
    drop(one);
}

#[test]
fn feature_names_past_the_hourly_cap_are_stored_as_overflow_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "[limits]\nmax_features_per_hour = 3\n").start();
    let url = c.url.as_str();
    let t0 = (now_ms() / 3_600_000 - 2) * 3_600_000;
    let events: Vec<Value> = ["a", "b", "a", "c", "d", "e", "d"]
        .iter()
        .enumerate()
        .map(|(i, f)| json!({"timestamp": t0 + i as i64, "user_id": "u1", "feature": f}))
        .collect();
    let body = json!({"version": 1, "agent_id": "a1", "batch_id": "wide", "created_at": t0, "events": events});
    assert_eq!(
        send(url, &[AUTH, ("content-encoding", "zstd")], zstd_json(&body)).0,
        200
    );
    let stats = usage(url, t0, t0 + 3_600_000);
    assert_eq!(stats["total_requests"], 7, "nothing dropped");
    let per_feature = requests_per_feature(&stats);
    let want: std::collections::BTreeMap<String, u64> =
        [("a", 2), ("b", 1), ("c", 1), ("(overflow)", 3)]
            .iter()
            .map(|(f, n)| (f.to_string(), *n))
            .collect();
    assert_eq!(per_feature, want);
    let (status, health) = get_json(&format!("{url}/healthz"));
    assert_eq!(status, 200);
    assert_eq!(health["ingest"]["events_feature_overflowed"], 3);
    assert!(c
        .log_text()
        .contains("limits.max_features_per_hour reached"));
    // The next hour has its own three places.
    let next = json!({"version": 1, "agent_id": "a1", "batch_id": "next", "created_at": t0,
        "events": [{"timestamp": t0 + 3_600_000, "user_id": "u1", "feature": "e"}]});
    assert_eq!(
        send(url, &[AUTH, ("content-encoding", "zstd")], zstd_json(&next)).0,
        200
    );
    assert_eq!(
        usage(url, t0 + 3_600_000, t0 + 7_200_000)["features"][0]["feature"],
        "e"
    );
}

#[test]
fn a_body_sent_too_slowly_gets_408_and_the_collector_stays_healthy() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "[limits]\nbody_timeout = \"1s\"\n").start();
    let addr = format!("127.0.0.1:{}", c.url.rsplit(':').next().unwrap());
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /v1/batches HTTP/1.1\r\nhost: x\r\n{}: {}\r\ncontent-length: 100\r\n\r\n{{",
        AUTH.0, AUTH.1
    );
    slow.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("request body not received within 1 s"),
        "{answer}"
    );
    assert_eq!(get_json(&format!("{}/healthz", c.url)).0, 200);
}

#[test]
fn slow_bodies_with_a_valid_token_do_not_take_the_write_slots() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "[limits]\nmax_inflight_batches = 2\n").start();
    let addr = format!("127.0.0.1:{}", c.url.rsplit(':').next().unwrap());
    // Four senders that authenticate, promise a body and send one byte of it, then stall.
    let slow: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let head = format!(
                "POST /v1/batches HTTP/1.1\r\nhost: x\r\n{}: {}\r\ncontent-length: 100\r\n\r\n{{",
                AUTH.0, AUTH.1
            );
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    let batch = serde_json::json!({"version": 1, "agent_id": "a", "batch_id": "fast-1",
        "created_at": 1_795_860_000_000i64,
        "events": [{"timestamp": 1_795_860_000_000i64, "user_id": "u", "feature": "f"}]});
    let resp = http()
        .post(format!("{}/v1/batches", c.url))
        .bearer_auth(TOKEN)
        .json(&batch)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text());
    drop(slow);
}
