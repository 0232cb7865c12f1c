//! Several collectors on one ClickHouse (Debian's clickhouse-server, started by `scripts/test`;
//! its URL in `TDA_CLICKHOUSE_URL`): agents spread across two collectors give the stats one sled
//! collector gives for the same simulated traffic; one collector leads the scheduled work, and
//! when it is killed the other takes over its alerts and models without sending an alert twice.

use std::path::Path;

use serde_json::Value;
use tda_tests::alerting::*;
use tda_tests::receiver::Receiver;
use tda_tests::*;

const DAY: i64 = 86_400_000;

fn clickhouse_url() -> String {
    std::env::var("TDA_CLICKHOUSE_URL").expect(
        "TDA_CLICKHOUSE_URL is not set: run scripts/test (it starts a ClickHouse server) or scripts/clickhouse DIR",
    )
}

/// `[storage]` on a ClickHouse database, with a short lease.
fn on_clickhouse(database: &str) -> String {
    format!(
        "[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\nurl = \"{}\"\ndatabase = \"{database}\"\nlease_ttl = \"2s\"\n",
        clickhouse_url()
    )
}

fn agent(dir: &Path, id: &str, collector: &Daemon) -> Daemon {
    AgentSetup {
        id: id.into(),
        batch: "max_events = 2000\nmax_age_ms = 300".into(),
        ..AgentSetup::new(dir, &collector.url, collector.pid())
    }
    .start()
}

fn run_simulation(agent: &Daemon, seed: &str, start: i64, truth: &Path) -> u64 {
    let args = [
        "--users",
        "300",
        "--duration",
        "1d",
        "--seed",
        seed,
        "--start",
        &start.to_string(),
    ];
    simulate(agent, &args, truth)["events"].as_u64().unwrap()
}

fn wait_sent(agent: &Daemon, events: u64) {
    wait_for(&format!("{events} events acknowledged"), || {
        (agent_counters(&agent.url)["events_sent"].as_u64() == Some(events)).then_some(())
    });
}

fn leads(c: &Daemon) -> bool {
    get_json(&format!("{}/healthz", c.url)).1["fleet"]["leads"] == true
}

#[test]
fn two_collectors_on_one_clickhouse_give_the_stats_of_one_sled_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("tda_fleet_{}", std::process::id());
    let a = CollectorSetup::new(&tmp.path().join("a"), &on_clickhouse(&db)).start();
    let b = CollectorSetup::new(&tmp.path().join("b"), &on_clickhouse(&db)).start();
    let single = CollectorSetup::new(&tmp.path().join("sled"), "").start();
    let (to_a, to_b) = (
        agent(&tmp.path().join("agent-a"), "web-1", &a),
        agent(&tmp.path().join("agent-b"), "web-2", &b),
    );
    let to_single = agent(&tmp.path().join("agent-s"), "web-all", &single);
    let start = (now_ms() / DAY - 2) * DAY;
    let truth = |n: &str| tmp.path().join(format!("truth-{n}.json"));
    let first = run_simulation(&to_a, "1", start, &truth("a"));
    let second = run_simulation(&to_b, "2", start, &truth("b"));
    run_simulation(&to_single, "1", start, &truth("s1"));
    run_simulation(&to_single, "2", start, &truth("s2"));
    wait_sent(&to_a, first);
    wait_sent(&to_b, second);
    wait_sent(&to_single, first + second);

    let range = format!("from={start}&to={}", start + DAY + 3_600_000);
    let usage = get_json(&format!("{}/api/v1/stats/usage?{range}", a.url)).1;
    assert_eq!(usage["total_requests"], first + second);
    let top: Vec<&str> = usage["features"].as_array().unwrap()[..3]
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    for path in [
        format!("/api/v1/stats/usage?{range}"),
        format!("/api/v1/retention?{range}"),
        format!("/api/v1/funnels?{range}&steps={}&window=1h", top.join(",")),
        format!("/api/v1/query?{range}&series=latency_ms&agg=p95&step=1h"),
        format!("/api/v1/query?{range}&series=requests&agg=count&step=1h"),
        format!("/api/v1/query?{range}&series=users&agg=distinct&step=6h"),
    ] {
        let answer = |c: &Daemon| {
            let (status, v) = get_json(&format!("{}{path}", c.url));
            assert_eq!(status, 200, "{path}: {v}");
            v
        };
        let (from_a, from_b, from_single) = (answer(&a), answer(&b), answer(&single));
        let ignored = ["computed_at"];
        assert_json_close(&from_a, &from_b, &ignored);
        // The same sketch buckets on both backends: equal quantiles too.
        assert_json_close(&from_a, &from_single, &ignored);
    }
}

/// A behavioral profile whose analyses the leader runs (at most every minute, and at once when
/// the profile changes).
fn behavioral(lookback: &str) -> String {
    format!("name = \"Journeys\"\ntype = \"behavioral\"\n[models]\nevery = \"1h\"\nlookback = \"{lookback}\"\n")
}

fn behavioral_run(c: &Daemon) -> Option<Value> {
    let (status, v) = get_json(&format!(
        "{}/api/v1/stats/behavioral?profile=journeys",
        c.url
    ));
    (status == 200 && v["computed_at"].is_i64()).then_some(v)
}

#[test]
fn killing_the_leader_moves_scheduled_work_to_the_other_and_no_alert_is_sent_twice() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("tda_failover_{}", std::process::id());
    let config = format!(
        "{}{}",
        on_clickhouse(&db),
        alerting(&receiver.url("/hook"), "")
    );
    let setups: Vec<CollectorSetup> = ["a", "b"]
        .iter()
        .map(|n| {
            let s = CollectorSetup::new(&tmp.path().join(n), &config);
            s.profile("latency.toml", RULE);
            s.profile("journeys.toml", &behavioral("1d"));
            s
        })
        .collect();
    let mut first = setups[0].start();
    wait_for("the first collector leads", || leads(&first).then_some(()));
    let second = setups[1].start();
    let feeder = Feeder::start(&second.url, 150.0);
    receiver.wait_for(1);
    let fired = wait_state(&second.url, "firing");
    assert!(!leads(&second), "only one collector leads");
    let run = wait_for("the leader's analyses mirrored", || behavioral_run(&second));

    // A silence made on the other collector reaches the leader.
    let (status, silence) = post(
        &format!("{}/api/v1/silences", second.url),
        &[
            ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
            ("content-type", "application/json"),
        ],
        serde_json::json!({"matchers": ["alertname=Other"], "duration": "1h", "comment": "maintenance"})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 201, "{silence}");
    wait_for("the leader knows the silence", || {
        let (_, list) = get_json(&format!("{}/api/v1/silences", first.url));
        let ids: Vec<Value> = list["silences"]
            .as_array()?
            .iter()
            .map(|s| s["id"].clone())
            .collect();
        ids.contains(&silence["id"]).then_some(())
    });

    first.kill();
    wait_for("the second collector takes the lease", || {
        leads(&second).then_some(())
    });
    after_passes(&second.url, 10);
    assert_eq!(
        receiver.received().len(),
        1,
        "the new leader does not notify the firing alert again"
    );
    let kept = alert_state(&second.url);
    assert_eq!(kept["state"], "firing");
    assert_eq!(
        kept["fired_at"], fired["fired_at"],
        "the alert's state moved over"
    );
    assert_eq!(
        behavioral_run(&second).unwrap()["computed_at"],
        run["computed_at"],
        "the analyses are not redone on takeover"
    );

    feeder.set(10.0);
    let got = receiver.wait_for(2);
    let statuses: Vec<Value> = got.iter().map(|r| r.json()["status"].clone()).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    setups[1].profile("journeys.toml", &behavioral("2d"));
    wait_for("the new leader reruns a changed profile", || {
        behavioral_run(&second).filter(|v| v["computed_at"] != run["computed_at"])
    });
    after_passes(&second.url, 5);
    assert_eq!(receiver.received().len(), 2, "nothing sent twice");
}
