//! Predictive analytics against a real collector fed by the simulator through a real agent:
//! a planted incident of every shape is flagged in its window, a planted growth is reported with
//! the right sign and size, and the predictive endpoints answer with forecasts and patterns.

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

/// Eight weeks of simulated traffic growing 5 % a week, with one incident of each shape in
/// weeks 7 and 8 (the detector has six weeks to learn the daily and weekly seasons).
const SHAPES: [(&str, &str, &str); 6] = [
    ("latency_drift", "43d10h+12h", "latency_p95_ms"),
    ("holiday", "46d+1d", "requests"),
    ("latency_jitter", "48d14h+4h", "latency_p95_ms"),
    ("error_burst", "49d15h+2h", "errors"),
    ("latency_spike", "51d14h+3h", "latency_p95_ms"),
    ("traffic_drop", "54d10h+4h", "requests"),
];

#[test]
fn an_incident_of_every_shape_is_flagged_in_its_window() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let agent = start_agent(&tmp.path().join("agent"), &collector.url, collector.pid());
    let start = now_ms() - (now_ms() + 3 * 86_400_000).rem_euclid(WEEK) - 9 * WEEK;
    let start = start.to_string();
    let mut args = vec![
        "--users",
        "200",
        "--duration",
        "56d",
        "--seed",
        "3",
        "--growth-per-week",
        "0.05",
        "--start",
        &start,
    ];
    let planted: Vec<String> = SHAPES
        .iter()
        .map(|(k, at, _)| format!("{k}@{at}"))
        .collect();
    for p in &planted {
        args.extend(["--incident", p]);
    }
    let truth = simulate(&agent, &args, &tmp.path().join("truth.json"));
    wait_all_sent(&agent, &truth);
    let (from, to) = (
        truth["start"].as_i64().unwrap(),
        truth["end"].as_i64().unwrap(),
    );
    let window = |kind: &str| {
        let i = truth["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == kind)
            .unwrap();
        (i["start"].as_i64().unwrap(), i["end"].as_i64().unwrap())
    };
    let mut flags_by_metric = std::collections::BTreeMap::new();
    for (kind, _, metric) in SHAPES {
        let flags = flags_by_metric.entry(metric).or_insert_with(|| {
            let q = format!("/api/v1/anomalies?metric={metric}&from={from}&to={to}&step=1h");
            get(&collector, &q)["anomalies"].as_array().unwrap().clone()
        });
        let (s0, e0) = window(kind);
        assert!(
            flags.iter().any(|a| {
                let s = a["start_ms"].as_i64().unwrap();
                s >= s0 - HOUR && s < e0 && a["kind"].is_string()
            }),
            "{kind} {s0}..{e0} not flagged on {metric}: {flags:?}"
        );
    }
    // False alarms: flags outside every incident (and the two hours after it), at most one a
    // week per metric, most of them while the first weeks are learnt.
    for (metric, flags) in &flags_by_metric {
        let outside: Vec<&Value> = flags
            .iter()
            .filter(|a| {
                let s = a["start_ms"].as_i64().unwrap();
                SHAPES.iter().all(|(kind, _, _)| {
                    let (s0, e0) = window(kind);
                    s < s0 - HOUR || s >= e0 + 2 * HOUR
                })
            })
            .collect();
        assert!(
            outside.len() <= 8,
            "{metric}: {} false alarms in 8 weeks of hourly data: {outside:?}",
            outside.len()
        );
    }
}

#[test]
fn growth_is_measured() {
    let (_tmp, c, _agent, truth) = simulated();
    let (from, to) = (
        truth["start"].as_i64().unwrap(),
        truth["end"].as_i64().unwrap(),
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
    // The simulated traffic has a daily shape and quieter weekends: a day or a week of hours.
    assert!(
        [24, 168].contains(&f["period_steps"].as_i64().unwrap()),
        "a daily or weekly season on hourly data: {f}"
    );
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
