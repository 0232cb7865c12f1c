//! Predictive analytics against a real collector fed by the simulator through a real agent:
//! planted incidents are flagged in the right window, a planted growth is reported with the
//! right sign and size, and the predictive endpoints answer with forecasts and patterns.

use serde_json::Value;
use tda_tests::*;

const HOUR: i64 = 3_600_000;
const WEEK: i64 = 7 * 86_400_000;

const PROFILE: &str = "name = \"Growth\"\ntype = \"predictive\"\n[settings]\naggregation_level = \"hour\"\n\
     [models]\nrun = [\"trend\", \"forecast\", \"anomaly\", \"pattern\"]\nmetrics = [\"requests\", \"latency_p95_ms\"]\nhorizon = \"1d\"\n";

/// Three weeks of simulated traffic growing 20 % a week, with a latency spike on day 16 and a
/// traffic drop on day 18; returns the collector, the agent and the simulator's truth. The
/// predictive profile is in place from the start, or (`profile_after`) added once the data is.
fn simulated_with(profile_after: bool) -> (tempfile::TempDir, Daemon, Daemon, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    if !profile_after {
        setup.profile("predictive.toml", PROFILE);
    }
    let collector = setup.start();
    let agent = start_agent(&tmp.path().join("agent"), &collector.url, collector.pid());
    let truth_file = tmp.path().join("truth.json");
    let start = now_ms() - (now_ms() + 3 * 86_400_000).rem_euclid(WEEK) - 4 * WEEK;
    let start = start.to_string();
    let args = [
        "--users",
        "200",
        "--duration",
        "21d",
        "--seed",
        "3",
        "--growth-per-week",
        "0.2",
    ];
    let incidents = [
        "--incident",
        "latency_spike@15d14h+3h",
        "--incident",
        "traffic_drop@18d10h+4h",
    ];
    let truth = simulate(
        &agent,
        &[&args[..], &["--start", &start], &incidents[..]].concat(),
        &truth_file,
    );
    wait_all_sent(&agent, &truth);
    if profile_after {
        setup.profile("predictive.toml", PROFILE);
        wait_for("the predictive profile loaded", || {
            let (_, v) = get_json(&format!("{}/api/v1/profiles", collector.url));
            v.to_string().contains("\"growth\"").then_some(())
        });
    }
    (tmp, collector, agent, truth)
}

fn simulated() -> (tempfile::TempDir, Daemon, Daemon, Value) {
    simulated_with(false)
}

fn get(collector: &Daemon, path: &str) -> Value {
    let (status, v) = get_json(&format!("{}{path}", collector.url));
    assert_eq!(status, 200, "{path}: {v}");
    v
}

#[test]
fn incidents_are_flagged_in_their_window_and_growth_is_measured() {
    let (_tmp, c, _agent, truth) = simulated();
    let (from, to) = (
        truth["start"].as_i64().unwrap(),
        truth["end"].as_i64().unwrap(),
    );
    let range = format!("from={from}&to={to}&step=1h");
    let incident = |kind: &str| {
        let i = truth["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == kind)
            .unwrap();
        (i["start"].as_i64().unwrap(), i["end"].as_i64().unwrap())
    };
    let flagged = |metric: &str| -> Vec<(i64, i64)> {
        get(&c, &format!("/api/v1/anomalies?{metric}&{range}"))["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["start_ms"].as_i64().unwrap(),
                    a["end_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (spike_start, spike_end) = incident("latency_spike");
    let latency = flagged("metric=latency_p95_ms");
    assert!(
        latency
            .iter()
            .any(|(s, e)| *s >= spike_start - HOUR && *s < spike_end && *e > spike_start),
        "latency spike {spike_start}..{spike_end} not among {latency:?}"
    );
    let outside = |flags: &[(i64, i64)], (s0, e0): (i64, i64)| {
        flags.iter().filter(|(s, e)| *e <= s0 || *s >= e0).count()
    };
    assert!(
        outside(&latency, (spike_start, spike_end)) <= 3,
        "at most 3 false alarms in 3 weeks of hourly data: {latency:?}"
    );
    let (drop_start, drop_end) = incident("traffic_drop");
    let requests = flagged("metric=requests");
    assert!(
        requests
            .iter()
            .any(|(s, _)| *s >= drop_start - HOUR && *s < drop_end),
        "traffic drop {drop_start}..{drop_end} not among {requests:?}"
    );
    assert!(
        outside(&requests, (drop_start, drop_end)) <= 3,
        "at most 3 false alarms in 3 weeks of hourly data: {requests:?}"
    );

    let trend = get(
        &c,
        &format!("/api/v1/trends?metric=requests&from={from}&to={to}&step=1d"),
    );
    assert_eq!(trend["trend"]["direction"], "rising", "{trend}");
    let per_week = trend["percent_per_week"].as_f64().unwrap();
    assert!(
        (12.0..=30.0).contains(&per_week),
        "planted +20 %/week, measured {per_week} %: {trend}"
    );
}

#[test]
fn forecasts_patterns_and_predictive_stats_answer() {
    let (_tmp, c, _agent, truth) = simulated();
    let (from, to) = (
        truth["start"].as_i64().unwrap(),
        truth["end"].as_i64().unwrap(),
    );
    let range = format!("from={from}&to={to}&step=1h");
    let f = get(
        &c,
        &format!("/api/v1/forecast?metric=requests&{range}&horizon=1d"),
    );
    let points = f["forecast"].as_array().unwrap();
    assert_eq!(points.len(), 24, "{f}");
    assert_eq!(f["period_steps"], 24, "a daily season on hourly data: {f}");
    for p in points {
        let (lo, mid, hi) = (
            p["lower95"].as_f64().unwrap(),
            p["forecast"].as_f64().unwrap(),
            p["upper95"].as_f64().unwrap(),
        );
        assert!(0.0 <= lo && lo <= mid && mid <= hi, "{p}");
    }
    let patterns = get(&c, &format!("/api/v1/patterns?metric=requests&{range}"));
    assert_eq!(patterns["seasonal_periods"][0]["steps"], 24, "{patterns}");
    assert_eq!(
        patterns["peak_hours_utc"].as_array().unwrap().len(),
        3,
        "{patterns}"
    );

    let stats = get(&c, &format!("/api/v1/stats/predictive?from={from}&to={to}"));
    assert_eq!(stats["profile"], "growth", "{stats}");
    let metrics: Vec<&str> = stats["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["requests", "latency_p95_ms"]);
    let out = tda(
        &c.url,
        &[
            "stats",
            "predictive",
            "--since",
            &from.to_string(),
            "--until",
            &to.to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("requests") && text.contains("% per week"),
        "{text}"
    );
    let (status, bad) = get_json(&format!("{}/api/v1/forecast?metric=bogus", c.url));
    assert_eq!(status, 400);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .starts_with("metric: `bogus`"),
        "{bad}"
    );
}

#[test]
fn the_scheduler_flags_incidents_as_data_arrives_and_keeps_its_state_across_restarts() {
    let (tmp, c, _agent, truth) = simulated_with(true);
    let incident = truth["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "latency_spike")
        .unwrap()
        .clone();
    let (spike_start, spike_end) = (
        incident["start"].as_i64().unwrap(),
        incident["end"].as_i64().unwrap(),
    );
    let streamed = |c: &Daemon| get(c, "/api/v1/anomalies?profile=growth");
    let flags = wait_for("the streaming detector to reach the present", || {
        let v = streamed(&c);
        let until = v["scored_until"]["latency_p95_ms"].as_i64()?;
        (until > truth["end"].as_i64().unwrap()).then_some(v)
    });
    let spike_flagged = flags["anomalies"].as_array().unwrap().iter().any(|a| {
        a["metric"] == "latency_p95_ms"
            && a["start_ms"].as_i64().unwrap() >= spike_start - HOUR
            && a["start_ms"].as_i64().unwrap() < spike_end
    });
    assert!(
        spike_flagged,
        "latency spike {spike_start}..{spike_end}: {flags}"
    );
    let scheduled = wait_for("the scheduled models' answer", || {
        let v = get(&c, "/api/v1/stats/predictive");
        v["computed_at"].as_i64().map(|t| (t, v))
    });
    assert_eq!(
        scheduled.1["metrics"].as_array().unwrap().len(),
        2,
        "{}",
        scheduled.1
    );

    let mut c = c;
    c.terminate();
    let restarted = CollectorSetup {
        dir: tmp.path().join("collector"),
        port: c.url.rsplit(':').next().unwrap().parse().unwrap(),
    }
    .on_new_port();
    let c2 = restarted.start();
    let again = get(&c2, "/api/v1/stats/predictive");
    assert_eq!(
        again["computed_at"].as_i64(),
        Some(scheduled.0),
        "last run survives a restart"
    );
    assert_eq!(
        streamed(&c2)["anomalies"],
        flags["anomalies"],
        "flags survive a restart"
    );
}
