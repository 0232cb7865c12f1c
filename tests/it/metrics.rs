//! `GET /metrics` on both daemons: exact counts after known traffic, reload status, the process
//! metrics, `promtool check metrics` clean, and a real Prometheus scraping both.

use tda_tests::scrape::{promtool_problems, sample, scrape, Prometheus};
use tda_tests::*;

const EVENTS: usize = 25;

/// A collector and an agent that has shipped `EVENTS` events.
fn shipped(dir: &std::path::Path) -> (CollectorSetup, Daemon, Daemon) {
    let setup = CollectorSetup::new(&dir.join("collector"), "");
    let collector = setup.start();
    let agent = start_agent(&dir.join("agent"), &collector.url, collector.pid());
    let t0 = now_ms() - 60_000;
    let events: Vec<serde_json::Value> = (0..EVENTS)
        .map(|i| serde_json::json!({"timestamp": t0 + i as i64, "user_id": format!("u{}", i % 5), "feature": "generate", "latency_ms": 10.0}))
        .collect();
    let (status, _) = post(
        &format!("{}/v1/events", agent.url),
        &[],
        serde_json::to_vec(&events).unwrap(),
    );
    assert_eq!(status, 202);
    wait_for("the events stored", || {
        let text = scrape(&collector.url);
        (sample(&text, "tda_collector_events_stored_total") == Some(EVENTS as f64)).then_some(())
    });
    (setup, collector, agent)
}

#[test]
fn both_daemons_count_what_they_did_in_a_format_promtool_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let (setup, collector, agent) = shipped(tmp.path());
    let (status, _) = post(
        &format!("{}/v1/batches", collector.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"{}".to_vec(),
    );
    assert_eq!(status, 400);

    let c = scrape(&collector.url);
    assert_eq!(promtool_problems(&c), None, "{c}");
    assert_eq!(
        sample(&c, "tda_collector_batches_total{outcome=\"rejected\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&c, "tda_collector_events_feature_overflowed_total"),
        Some(0.0)
    );
    let stored = sample(&c, "tda_collector_batches_total{outcome=\"stored\"}").unwrap();
    assert!(stored >= 1.0);
    assert_eq!(
        sample(&c, "tda_collector_batch_events_sum"),
        Some(EVENTS as f64),
        "events per batch received, summed, are the events (the bad batch never decoded)"
    );
    assert_eq!(
        sample(&c, "tda_collector_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(sample(&c, "tda_collector_fleet_leader"), Some(1.0));
    assert!(sample(&c, "tda_collector_connections_accepted_total").unwrap() >= 3.0);
    assert!(sample(&c, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&c, "process_open_fds").unwrap() > 3.0);

    let a = scrape(&agent.url);
    assert_eq!(promtool_problems(&a), None, "{a}");
    assert_eq!(
        sample(&a, "tda_agent_events_received_total"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        sample(&a, "tda_agent_batch_events_sum"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        sample(&a, "tda_agent_events_sent_total"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        sample(&a, "tda_agent_batches_total{outcome=\"dropped\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&a, "tda_agent_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(sample(&a, "tda_agent_batches_total{outcome=\"sent\"}").unwrap() >= 1.0);
    assert!(sample(&a, "process_start_time_seconds").unwrap() > 1.7e9);

    // A broken collector.toml: the reload fails, the gauge says so; the fix brings it back.
    let file = setup.config_file();
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\nno_such_setting = 1\n")).unwrap();
    wait_for("the failed reload in /metrics", || {
        let c = scrape(&collector.url);
        (sample(&c, "tda_collector_config_last_reload_successful") == Some(0.0)).then_some(())
    });
    std::fs::write(&file, good).unwrap();
    wait_for("the good reload in /metrics", || {
        let c = scrape(&collector.url);
        (sample(&c, "tda_collector_config_last_reload_successful") == Some(1.0)).then_some(())
    });
}

#[test]
fn a_real_prometheus_scrapes_both_daemons() {
    let tmp = tempfile::tempdir().unwrap();
    let (_setup, collector, agent) = shipped(tmp.path());
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(
        &tmp.path().join("prometheus"),
        &[
            ("collector", host(&collector.url)),
            ("agent", host(&agent.url)),
        ],
    );
    for job in ["collector", "agent"] {
        wait_for(&format!("prometheus up for {job}"), || {
            (prometheus.value(&format!("up{{job=\"{job}\"}}")) == Some(1.0)).then_some(())
        });
    }
    assert_eq!(
        prometheus.value("tda_collector_events_stored_total"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        prometheus.value("tda_agent_events_sent_total"),
        Some(EVENTS as f64)
    );
    assert_eq!(
        prometheus.value("count(process_resident_memory_bytes)"),
        Some(2.0),
        "both processes report their memory"
    );
    let scraped = prometheus
        .value("scrape_samples_scraped{job=\"collector\"}")
        .unwrap();
    assert!(scraped > 50.0, "{scraped} samples from the collector");
}

#[test]
fn an_agent_sends_binary_batches_once_the_collector_names_them() {
    // The agent's first batch goes as JSON (it has not heard from this collector); the answer
    // names the binary batch in `Accept-Post`, and the next batches go binary.
    let tmp = tempfile::tempdir().unwrap();
    let (_setup, collector, agent) = shipped(tmp.path());
    for round in 1..=3 {
        let t0 = now_ms() - 30_000 + round;
        let events: Vec<serde_json::Value> = (0..EVENTS)
            .map(|i| serde_json::json!({"timestamp": t0 + i as i64, "user_id": format!("r{round}-{i}"), "feature": "export"}))
            .collect();
        let body = serde_json::to_vec(&events).unwrap();
        assert_eq!(post(&format!("{}/v1/events", agent.url), &[], body).0, 202);
        let want = (EVENTS * (round as usize + 1)) as f64;
        wait_for("the round stored", || {
            let text = scrape(&collector.url);
            (sample(&text, "tda_collector_events_stored_total") == Some(want)).then_some(())
        });
    }
    let c = scrape(&collector.url);
    let format = |f: &str| {
        sample(
            &c,
            &format!("tda_collector_batch_formats_total{{format=\"{f}\"}}"),
        )
        .unwrap()
    };
    assert!(format("json") <= 1.0, "only the first batch as JSON: {c}");
    assert!(format("binary") >= 3.0, "every later batch binary: {c}");
    let (_, usage) = get_json(&format!("{}/api/v1/stats/usage?from=1h", collector.url));
    assert_eq!(usage["total_requests"], EVENTS as u64 * 4, "{usage}");
}
