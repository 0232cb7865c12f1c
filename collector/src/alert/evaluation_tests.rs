//! Alert evaluation and notification over real stores in a temp dir, at chosen times: each pass
//! is a plain call on the alert store, the data and the profiles.

use std::path::Path;

use tda_schema::alerting::AlertingConfig;
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, Profile, Timestamp};

use super::rule::Phase;
use super::store::AlertStore;
use super::{evaluate, notify_groups};
use crate::profiles::Entry;
use crate::store::{SledStore, Storage};

/// 2026-11-28T10:00:00Z.
const T0: i64 = 1_795_860_000_000;

const PROFILE: &str = "name = \"Latency\"\ntype = \"performance\"\n\n[[alert]]\nname = \"SlowGenerate\"\nkind = \"threshold\"\nmetric = \"latency_avg_ms{feature=\\\"generate\\\"}\"\nthreshold = 100\nrecovery = 50\nfor = \"2m\"\nwindow = \"1m\"\nlabels = { severity = \"page\" }\n";

const ALERTING: &str = "[[receiver]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/hook\"\n\n[route]\nreceiver = \"ops\"\ngroup_wait = \"0s\"\n";

fn entry(text: &str) -> Entry {
    Entry {
        id: "latency".into(),
        file: "latency.toml".into(),
        hash: "h".into(),
        loaded_at: String::new(),
        profile: Profile::from_toml(text, Path::new("latency.toml")).unwrap(),
    }
}

/// One `generate` event a second in `[from, to)` taking `latency_ms`.
fn store_latency(store: &SledStore, (from, to): (i64, i64), latency_ms: f64) {
    let events: Vec<Event> = (from..to)
        .step_by(1_000)
        .map(|t| {
            serde_json::from_value(serde_json::json!({"timestamp": t, "user_id": "u", "feature": "generate", "latency_ms": latency_ms}))
                .unwrap()
        })
        .collect();
    let batch = Batch {
        version: BATCH_FORMAT_VERSION,
        agent_id: "a".into(),
        batch_id: format!("b{from}"),
        created_at: Timestamp(to),
        events,
        samples: Vec::new(),
    };
    store.append(&batch).unwrap();
}

/// The one alert's phase and value.
fn state(alerts: &AlertStore) -> (Phase, Option<f64>) {
    let all = alerts.alerts().unwrap();
    assert_eq!(all.len(), 1);
    (all[0].state.phase, all[0].state.value)
}

#[test]
fn a_threshold_alert_pends_fires_after_for_and_resolves_past_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let data = SledStore::open(&dir.path().join("data")).unwrap();
    let alerts = AlertStore::open(&dir.path().join("alerts")).unwrap();
    let profiles = [entry(PROFILE)];
    let cfg: AlertingConfig = toml::from_str(ALERTING).unwrap();
    let minute = 60_000;
    let pass = |now: i64| {
        evaluate(&alerts, &data, &profiles, now).unwrap();
        notify_groups(&alerts, &cfg, now).unwrap();
    };

    store_latency(&data, (T0, T0 + 10 * minute), 200.0);
    pass(T0 + minute);
    assert_eq!(state(&alerts), (Phase::Pending, Some(200.0)));
    pass(T0 + 2 * minute);
    assert_eq!(
        state(&alerts).0,
        Phase::Pending,
        "for = 2m has not held yet"
    );
    pass(T0 + 3 * minute);
    assert_eq!(state(&alerts).0, Phase::Firing);
    let outbox = alerts.outbox().unwrap();
    assert_eq!(outbox.len(), 1, "one notification queued for the group");
    let body: serde_json::Value = serde_json::from_str(&outbox[0].1.body).unwrap();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["severity"], "page");

    // Between recovery (50) and threshold (100): still firing (hysteresis).
    store_latency(&data, (T0 + 10 * minute, T0 + 12 * minute), 70.0);
    pass(T0 + 12 * minute);
    assert_eq!(state(&alerts), (Phase::Firing, Some(70.0)));
    store_latency(&data, (T0 + 12 * minute, T0 + 14 * minute), 20.0);
    pass(T0 + 14 * minute);
    assert_eq!(state(&alerts), (Phase::Resolved, Some(20.0)));
    let statuses: Vec<String> = alerts
        .outbox()
        .unwrap()
        .iter()
        .map(|(_, o)| {
            serde_json::from_str::<serde_json::Value>(&o.body).unwrap()["status"].to_string()
        })
        .collect();
    assert_eq!(statuses, ["\"firing\"", "\"resolved\""]);
}

#[test]
fn a_removed_rule_resolves_its_firing_alert_then_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let data = SledStore::open(&dir.path().join("data")).unwrap();
    let alerts = AlertStore::open(&dir.path().join("alerts")).unwrap();
    let cfg: AlertingConfig = toml::from_str(ALERTING).unwrap();
    store_latency(&data, (T0, T0 + 10 * 60_000), 200.0);
    for now in [T0 + 60_000, T0 + 200_000] {
        evaluate(&alerts, &data, &[entry(PROFILE)], now).unwrap();
    }
    assert_eq!(state(&alerts).0, Phase::Firing);
    let without = entry("name = \"Latency\"\ntype = \"performance\"\n");
    evaluate(&alerts, &data, std::slice::from_ref(&without), T0 + 260_000).unwrap();
    let a = &alerts.alerts().unwrap()[0];
    assert_eq!(a.state.phase, Phase::Resolved);
    assert_eq!(a.error.as_deref(), Some("rule removed"));
    notify_groups(&alerts, &cfg, T0 + 260_000).unwrap();
    evaluate(&alerts, &data, &[without], T0 + 320_000).unwrap();
    assert!(
        alerts.alerts().unwrap().is_empty(),
        "gone once its resolution is told"
    );
}
