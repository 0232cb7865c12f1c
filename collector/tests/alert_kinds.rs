//! Each alert rule kind evaluated over a real sled store: threshold, rate of change, absence,
//! forecast (with its guard) and anomaly rules see what their data says.

use tda_collector::alert::metric::{observe, parse_selector};
use tda_collector::alert::rule::Level;
use tda_collector::store::{SledStore, Storage};
use tda_schema::sections::AlertRule;
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, Timestamp};

const MIN: i64 = 60_000;
const NOW: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

fn rule(toml_text: &str) -> AlertRule {
    toml::from_str(&format!("name = \"r\"\n{toml_text}")).unwrap()
}

/// Stores `per_minute[i]` events in minute `i` of the `per_minute.len()` minutes before NOW.
fn store_with(per_minute: &[u32]) -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let start = NOW - per_minute.len() as i64 * MIN;
    let events: Vec<Event> = per_minute
        .iter()
        .enumerate()
        .flat_map(|(m, n)| {
            (0..*n).map(move |k| {
                serde_json::from_value(
                    serde_json::json!({"timestamp": start + m as i64 * MIN + i64::from(k) * 10,
                    "user_id": "u", "feature": "f", "latency_ms": 20.0}),
                )
                .unwrap()
            })
        })
        .collect();
    store
        .append(&Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: "a".into(),
            batch_id: "b".into(),
            created_at: Timestamp(NOW),
            events,
            samples: vec![],
        })
        .unwrap();
    (dir, store)
}

fn level(store: &dyn Storage, r: &AlertRule) -> Option<Level> {
    observe(store, r, &parse_selector(&r.metric).unwrap(), NOW)
        .unwrap()
        .level
}

#[test]
fn threshold_rate_of_change_and_absence() {
    let (_d, store) = store_with(&[10, 10, 10, 10, 10, 40, 40, 40, 40, 40]);
    let r = rule("kind = \"threshold\"\nmetric = \"requests\"\nthreshold = 150\nwindow = \"5m\"");
    assert_eq!(
        level(&store, &r),
        Some(Level::Breach),
        "200 requests in the last 5 minutes"
    );
    // From 50 to 200 requests per 5 minutes: +30 per minute.
    let r =
        rule("kind = \"rate_of_change\"\nmetric = \"requests\"\nthreshold = 29\nwindow = \"5m\"");
    let o = observe(&store, &r, &parse_selector(&r.metric).unwrap(), NOW).unwrap();
    assert_eq!((o.level, o.value), (Some(Level::Breach), Some(30.0)));
    let absent = rule("kind = \"absence\"\nmetric = \"requests{feature=\\\"export\\\"}\"\nfor = \"1m\"\nwindow = \"5m\"");
    assert_eq!(
        level(&store, &absent),
        Some(Level::Breach),
        "no export events"
    );
    let present =
        rule("kind = \"absence\"\nmetric = \"latency_avg_ms\"\nfor = \"1m\"\nwindow = \"5m\"");
    assert_eq!(level(&store, &present), Some(Level::Clear));
    let latency = rule(
        "kind = \"threshold\"\nmetric = \"latency_p95_ms{feature=\\\"export\\\"}\"\nthreshold = 1",
    );
    assert_eq!(level(&store, &latency), None, "no data: no export latency");
}

#[test]
fn forecast_rules_look_ahead_and_respect_their_guard() {
    // Traffic growing steadily for 4 hours: 1, 2, 3 … events a minute.
    let growing: Vec<u32> = (1..=240).collect();
    let (_d, store) = store_with(&growing);
    let will_cross = rule("kind = \"forecast\"\nmetric = \"requests\"\nthreshold = 1400\nhorizon = \"1h\"\nwindow = \"5m\"");
    // Now about 1,190 per 5 minutes, rising by 25 per step: about 1,490 in an hour.
    let o = observe(
        &store,
        &will_cross,
        &parse_selector("requests").unwrap(),
        NOW,
    )
    .unwrap();
    assert_eq!(o.level, Some(Level::Breach), "forecast peak {:?}", o.value);
    let far = rule("kind = \"forecast\"\nmetric = \"requests\"\nthreshold = 100000\nhorizon = \"1h\"\nwindow = \"5m\"");
    assert_ne!(level(&store, &far), Some(Level::Breach));
    let guarded = rule("kind = \"forecast\"\nmetric = \"requests\"\nthreshold = 1400\nhorizon = \"1h\"\nwindow = \"5m\"\nguard = 5000");
    assert_eq!(
        level(&store, &guarded),
        Some(Level::Hold),
        "the current value is not past the guard"
    );
}

#[test]
fn anomaly_rules_score_the_last_window() {
    let mut steady: Vec<u32> = (0..300).map(|i| 20 + (i % 3)).collect();
    let (_d, quiet) = store_with(&steady);
    let r = rule("kind = \"anomaly\"\nmetric = \"requests\"\nwindow = \"1m\"");
    assert_eq!(level(&quiet, &r), Some(Level::Clear));
    steady.push(400);
    let (_d2, spiked) = store_with(&steady);
    assert_eq!(
        level(&spiked, &r),
        Some(Level::Breach),
        "a 20x spike in the last minute"
    );
}
