//! No credential reaches a log: a collector and an agent logging at `trace` take batches,
//! refused and accepted requests with every kind of token (in headers and, for the event stream,
//! in the query), a reload and a stop; then neither log holds any token.

use tda_tests::*;

#[test]
fn no_token_is_ever_logged_even_at_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let reader = "reader-secret-0123456789";
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    std::fs::write(setup.dir.join("read-tokens"), format!("{reader}\n")).unwrap();
    let config = std::fs::read_to_string(setup.config_file()).unwrap();
    std::fs::write(
        setup.config_file(),
        config.replace("[auth]\n", "[auth]\nread_tokens_file = \"read-tokens\"\n"),
    )
    .unwrap();
    let mut collector = setup.start_logging("trace");
    let mut agent = AgentSetup::new(&tmp.path().join("a"), &collector.url, collector.pid())
        .start_logging("trace");
    let (status, _) = post(
        &format!("{}/v1/events", agent.url),
        &[("content-type", "application/json")],
        serde_json::to_vec(
            &serde_json::json!([{"timestamp": now_ms(), "user_id": "u1", "feature": "generate"}]),
        )
        .unwrap(),
    );
    assert_eq!(status, 202, "the agent takes the event");
    wait_for("the agent's batch acknowledged", || {
        (agent_counters(&agent.url)["events_sent"].as_u64() == Some(1)).then_some(())
    });
    let get = |path: &str, token: &str| {
        http()
            .get(format!("{}{path}", collector.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("/api/v1/stats/usage", reader), 200);
    assert_eq!(get("/api/v1/stats/usage", TOKEN), 403);
    assert_eq!(get("/api/v1/stats/usage", "wrong-secret-987654321"), 401);
    let stream = http()
        .get(format!("{}/api/v1/live?token={reader}", collector.url))
        .timeout(std::time::Duration::from_millis(300))
        .send();
    assert!(stream.is_ok_and(|r| r.status().as_u16() == 200));
    // A token in the URL is taken only where a browser cannot send a header: the event stream.
    let in_url = http()
        .get(format!(
            "{}/api/v1/stats/usage?token={reader}",
            collector.url
        ))
        .send()
        .unwrap();
    assert_eq!(
        in_url.status().as_u16(),
        401,
        "?token= outside the event stream"
    );
    let (status, _) = post(
        &format!("{}/-/reload", collector.url),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        vec![],
    );
    assert_eq!(status, 200);
    agent.terminate();
    collector.terminate();
    for (name, log) in [
        ("collector", collector.log_text()),
        ("agent", agent.log_text()),
    ] {
        assert!(
            log.len() > 1_000,
            "{name} logged at trace: {} bytes",
            log.len()
        );
        // The log file sits in the watched config directory: the watcher's own trace would log
        // each write to it as an event, and so on without end.
        assert!(
            !log.contains("notify::inotify"),
            "{name}'s log feeds the file watcher"
        );
        for secret in [TOKEN, ADMIN_TOKEN, reader, "wrong-secret-987654321"] {
            assert!(!log.contains(secret), "{name}'s log holds a token");
        }
    }
}
