//! The storage conformance suite: what every backend must do, run against each backend. A new
//! backend (ClickHouse) adds itself to `backends()`.

use std::path::Path;

use tda_collector::store::rollup::Rollup;
use tda_collector::store::{
    Appended, ClickHouseConfig, ClickHouseStore, Compacted, Deleted, SledStore, Storage,
};
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, HostSample, Timestamp};

type Open = fn(&Path) -> Box<dyn Storage>;

fn backends() -> Vec<(&'static str, Open)> {
    vec![
        ("sled", |dir| {
            Box::new(SledStore::open(dir).expect("open sled"))
        }),
        ("clickhouse", open_clickhouse),
    ]
}

/// A ClickHouse store in a database named after the test's directory (so reopening the same
/// directory reopens the same data). The server is `TDA_CLICKHOUSE_URL`, which `scripts/test`
/// sets after starting one.
fn open_clickhouse(dir: &Path) -> Box<dyn Storage> {
    let url = std::env::var("TDA_CLICKHOUSE_URL").expect(
        "TDA_CLICKHOUSE_URL is not set: run scripts/test (it starts a ClickHouse server) or scripts/clickhouse DIR",
    );
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Box::new(
        ClickHouseStore::open(ClickHouseConfig {
            url,
            database: format!("tda_test_{name}"),
            user: None,
            password: None,
            timeout: std::time::Duration::from_secs(60),
        })
        .expect("open clickhouse"),
    )
}

/// Runs `check` against a fresh store of every backend.
fn each(check: impl Fn(&str, &Path, Open)) {
    for (name, open) in backends() {
        let dir = tempfile::tempdir().expect("tmp");
        check(name, dir.path(), open);
    }
}

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

fn event(ts: i64, user: &str) -> Event {
    serde_json::from_value(
        serde_json::json!({"timestamp": ts, "user_id": user, "feature": "f", "latency_ms": 1.5}),
    )
    .unwrap()
}

fn sample(ts: i64) -> HostSample {
    serde_json::from_value(serde_json::json!({
        "timestamp": ts, "cpu_percent": 10.0, "cpu_per_core": [10.0], "mem_total_bytes": 100, "mem_used_bytes": 50,
        "swap_total_bytes": 0, "swap_used_bytes": 0, "load": [0.1, 0.1, 0.1], "disk_total_bytes": 10,
        "disk_available_bytes": 5, "disk_read_bytes": 0, "disk_written_bytes": 0, "net_rx_bytes": 0, "net_tx_bytes": 0,
        "net_rx_packets": 0, "net_tx_packets": 0, "net_rx_errors": 0, "net_tx_errors": 0
    }))
    .unwrap()
}

fn batch(agent: &str, id: &str, events: Vec<Event>, samples: Vec<HostSample>) -> Batch {
    Batch {
        version: BATCH_FORMAT_VERSION,
        agent_id: agent.into(),
        batch_id: id.into(),
        created_at: Timestamp(T0),
        events,
        samples,
    }
}

fn events_in(store: &dyn Storage, from: i64, to: i64) -> Vec<Event> {
    let mut out = Vec::new();
    store
        .scan_events(from, to, &mut |e| out.push(e.clone()))
        .unwrap();
    out.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    out
}

#[test]
fn a_batch_is_stored_once_however_often_it_is_sent() {
    each(|name, dir, open| {
        let store = open(dir);
        let b = batch(
            "a",
            "b1",
            vec![event(T0, "u1"), event(T0 + 1, "u2")],
            vec![sample(T0)],
        );
        assert_eq!(store.append(&b).unwrap(), Appended::Stored, "{name}");
        assert_eq!(store.append(&b).unwrap(), Appended::Duplicate, "{name}");
        assert_eq!(events_in(&*store, T0, T0 + HOUR).len(), 2, "{name}");
        let mut samples = 0;
        store
            .scan_samples(T0, T0 + HOUR, None, &mut |_, _| samples += 1)
            .unwrap();
        assert_eq!(samples, 1, "{name}");
    });
}

#[test]
fn scans_return_exactly_the_half_open_range() {
    each(|name, dir, open| {
        let store = open(dir);
        let evs = vec![
            event(T0 - 1, "a"),
            event(T0, "b"),
            event(T0 + HOUR - 1, "c"),
            event(T0 + HOUR, "d"),
            event(T0 + 5 * HOUR, "e"),
        ];
        store
            .append(&batch("a", "b1", evs.clone(), vec![]))
            .unwrap();
        assert_eq!(
            events_in(&*store, T0, T0 + HOUR),
            evs[1..3].to_vec(),
            "{name}"
        );
        assert_eq!(events_in(&*store, T0 - 1, T0), evs[..1].to_vec(), "{name}");
        assert_eq!(events_in(&*store, T0, T0), vec![], "{name}: empty range");
        assert_eq!(
            events_in(&*store, 0, i64::MAX / 2),
            evs,
            "{name}: everything"
        );
    });
}

#[test]
fn samples_keep_their_agent() {
    each(|name, dir, open| {
        let store = open(dir);
        store
            .append(&batch(
                "web-1",
                "x1",
                vec![],
                vec![sample(T0), sample(T0 + 1000)],
            ))
            .unwrap();
        store
            .append(&batch("web-2", "x2", vec![], vec![sample(T0 + 500)]))
            .unwrap();
        let mut seen = Vec::new();
        store
            .scan_samples(T0, T0 + HOUR, None, &mut |a, s| {
                seen.push((a.to_string(), s.timestamp.0 - T0))
            })
            .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("web-1".into(), 0),
                ("web-1".into(), 1000),
                ("web-2".into(), 500)
            ],
            "{name}"
        );
        let mut one = Vec::new();
        store
            .scan_samples(T0, T0 + HOUR, Some("web-2"), &mut |a, s| {
                one.push((a.to_string(), s.timestamp.0 - T0))
            })
            .unwrap();
        assert_eq!(
            one,
            vec![("web-2".into(), 500)],
            "{name}: one agent's samples"
        );
    });
}

#[test]
fn stored_data_survives_reopening() {
    each(|name, dir, open| {
        {
            let store = open(dir);
            store
                .append(&batch("a", "b1", vec![event(T0, "u")], vec![]))
                .unwrap();
        }
        let store = open(dir);
        assert_eq!(events_in(&*store, T0, T0 + 1).len(), 1, "{name}");
        assert_eq!(
            store
                .append(&batch("a", "b1", vec![event(T0, "u")], vec![]))
                .unwrap(),
            Appended::Duplicate,
            "{name}: dedupe is durable"
        );
    });
}

#[test]
fn delete_before_removes_old_data_and_keeps_newer() {
    each(|name, dir, open| {
        let store = open(dir);
        let old = vec![event(T0 - 48 * HOUR, "old"), event(T0 - 47 * HOUR, "old")];
        let new = vec![event(T0, "new"), event(T0 + HOUR, "new")];
        store
            .append(&batch("a", "b-old", old, vec![sample(T0 - 48 * HOUR)]))
            .unwrap();
        store
            .append(&batch("a", "b-new", new.clone(), vec![sample(T0)]))
            .unwrap();
        let deleted = store.delete_before(T0 - 24 * HOUR).unwrap();
        assert!(deleted.blocks >= 2, "{name}: {deleted:?}");
        assert_eq!(events_in(&*store, 0, i64::MAX / 2), new, "{name}");
        let mut samples = 0;
        store
            .scan_samples(0, i64::MAX / 2, None, &mut |_, _| samples += 1)
            .unwrap();
        assert_eq!(samples, 1, "{name}");
        assert_eq!(
            store.delete_before(T0 - 24 * HOUR).unwrap(),
            Deleted::default(),
            "{name}: nothing left to delete"
        );
    });
}

/// Events over three hours with varied users, features, statuses and integer latencies (so sums
/// are exact in any order).
fn traffic(n: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let feature = ["search", "export", "login"][(i % 3) as usize];
            serde_json::from_value(serde_json::json!({
                "timestamp": T0 + i * 3 * HOUR / n, "user_id": format!("u{}", i % 41),
                "feature": feature,
                "status": if i % 17 == 0 { 503 } else { 200 }, "latency_ms": (i % 250) as f64
            }))
            .unwrap()
        })
        .collect()
}

fn rollups_by_hour(store: &dyn Storage, from: i64, to: i64) -> Vec<Rollup> {
    let mut hours: std::collections::BTreeMap<i64, Rollup> = Default::default();
    store
        .scan_rollups(from, to, &mut |r| {
            hours
                .entry(r.hour)
                .or_insert_with(|| Rollup::new(r.hour))
                .merge(r)
        })
        .unwrap();
    hours.into_values().collect()
}

#[test]
fn rollups_cover_exactly_the_events_of_whole_hours() {
    each(|name, dir, open| {
        let store = open(dir);
        let evs = traffic(3_000);
        for (i, chunk) in evs.chunks(700).enumerate() {
            store
                .append(&batch("a", &format!("b{i}"), chunk.to_vec(), vec![]))
                .unwrap();
        }
        let expected: Vec<Rollup> = evs.chunks(1_000).take(2).map(Rollup::of).collect();
        assert_eq!(expected[0].events, 1_000, "{name}");
        assert_eq!(
            rollups_by_hour(&*store, T0, T0 + 2 * HOUR),
            expected,
            "{name}"
        );
        // Retention deletes in the backend's own units (sled: hours; ClickHouse: days), never
        // newer data; an hour's rollup goes exactly when its events go.
        store.delete_before(T0 + HOUR).unwrap();
        let left = rollups_by_hour(&*store, T0, T0 + 2 * HOUR);
        let events_left = events_in(&*store, T0, T0 + HOUR).len();
        let want = if events_left == 0 {
            expected[1..].to_vec()
        } else {
            expected.clone()
        };
        assert_eq!(
            left, want,
            "{name}: retention removes rollups with their events"
        );
        assert!(
            events_left == 0 || events_left == 1_000,
            "{name}: whole units only"
        );
        if name == "sled" {
            assert_eq!(events_left, 0, "sled deletes whole hours");
        }
    });
}

#[test]
fn compaction_keeps_every_event_sample_and_rollup() {
    each(|name, dir, open| {
        let store = open(dir);
        let evs = traffic(3_000);
        for (i, chunk) in evs.chunks(100).enumerate() {
            let samples = vec![sample(T0 + i as i64 * 60_000)];
            let agent = ["web-1", "web-2"][i % 2];
            store
                .append(&batch(agent, &format!("b{i}"), chunk.to_vec(), samples))
                .unwrap();
        }
        let before = (
            events_in(&*store, 0, i64::MAX / 2),
            rollups_by_hour(&*store, T0, T0 + 3 * HOUR),
        );
        let mut samples_before = Vec::new();
        store
            .scan_samples(0, i64::MAX / 2, None, &mut |a, s| {
                samples_before.push((a.to_string(), s.timestamp))
            })
            .unwrap();
        let done = store.compact(T0 + 2 * HOUR).unwrap();
        let after = (
            events_in(&*store, 0, i64::MAX / 2),
            rollups_by_hour(&*store, T0, T0 + 3 * HOUR),
        );
        assert_eq!(after, before, "{name}");
        let mut samples_after = Vec::new();
        store
            .scan_samples(0, i64::MAX / 2, None, &mut |a, s| {
                samples_after.push((a.to_string(), s.timestamp))
            })
            .unwrap();
        samples_before.sort();
        samples_after.sort();
        assert_eq!(samples_after, samples_before, "{name}");
        assert_eq!(
            store.compact(T0 + 2 * HOUR).unwrap(),
            Compacted::default(),
            "{name}: a second pass finds nothing to merge (first: {done:?})"
        );
    });
}

#[test]
fn event_facts_are_the_events_perhaps_without_properties() {
    each(|name, dir, open| {
        let store = open(dir);
        let mut evs = traffic(50);
        evs[3]
            .properties
            .insert("plan".into(), serde_json::json!("pro"));
        store
            .append(&batch("a", "b1", evs.clone(), vec![]))
            .unwrap();
        let mut facts = Vec::new();
        store
            .scan_event_facts(T0, T0 + 3 * HOUR, &mut |e| facts.push(e.clone()))
            .unwrap();
        let strip = |mut e: Event| {
            e.properties.clear();
            e
        };
        let mut facts: Vec<Event> = facts.into_iter().map(strip).collect();
        facts.sort_by_key(|e| e.timestamp);
        assert_eq!(
            facts,
            evs.into_iter().map(strip).collect::<Vec<_>>(),
            "{name}"
        );
    });
}

/// A scan's facts as one (timestamp, user, feature, status, failed, properties) row per event,
/// sorted.
type FactRow = (i64, String, String, u16, bool, String);

fn fact_rows(store: &dyn Storage, from: i64, to: i64, properties: bool) -> Vec<FactRow> {
    let mut rows = Vec::new();
    store
        .scan_facts(from, to, properties, &|_| {}, &mut |f| {
            for i in 0..f.len() {
                let props = match f.property_rows.get(i) {
                    Some(p) if *p > 0 => f.properties.get(*p as usize - 1).to_string(),
                    _ => String::new(),
                };
                rows.push((
                    f.timestamps[i],
                    f.users.get(f.user_rows[i] as usize).to_string(),
                    f.features.get(f.feature_rows[i] as usize).to_string(),
                    f.statuses[i],
                    f.errors[i],
                    props,
                ));
            }
        })
        .unwrap();
    rows.sort();
    rows
}

#[test]
fn column_facts_equal_the_events_before_and_after_compaction() {
    each(|name, dir, open| {
        let store = open(dir);
        let mut evs = traffic(3_000);
        evs[700]
            .properties
            .insert("plan".into(), serde_json::json!("pro"));
        evs[701].error = Some("timeout".into());
        for (i, chunk) in evs.chunks(250).enumerate() {
            store
                .append(&batch("a", &format!("b{i}"), chunk.to_vec(), vec![]))
                .unwrap();
        }
        let (from, to) = (T0 + HOUR / 2, T0 + 2 * HOUR + 7);
        let mut want: Vec<FactRow> = evs
            .iter()
            .filter(|e| (from..to).contains(&e.timestamp.0))
            .map(|e| {
                let props = if e.properties.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&e.properties).unwrap()
                };
                let status = e.status.unwrap_or(0);
                let row = (e.timestamp.0, e.user_id.clone(), e.feature.clone(), status);
                (row.0, row.1, row.2, row.3, e.is_error(), props)
            })
            .collect();
        want.sort();
        assert_eq!(want.len(), 1_501, "{name}");
        assert!(want.iter().any(|r| r.5.contains("pro")), "{name}");
        assert!(
            want.iter().any(|r| r.4 && r.3 == 200),
            "{name}: the error text fails it"
        );
        assert_eq!(fact_rows(&*store, from, to, true), want, "{name}");
        store.compact(T0 + 3 * HOUR).unwrap();
        assert_eq!(
            fact_rows(&*store, from, to, true),
            want,
            "{name}: compacted"
        );
        let bare: Vec<FactRow> = want
            .into_iter()
            .map(|(t, u, f, s, e, _)| (t, u, f, s, e, String::new()))
            .collect();
        assert_eq!(fact_rows(&*store, from, to, false), bare, "{name}");
    });
}

#[test]
fn one_of_two_claimants_holds_a_lease_until_it_lapses() {
    each(|name, dir, open| {
        let opened = open(dir);
        let Some(store) = opened.shared() else {
            // One collector's own store (it cannot be opened twice): no leases, it always leads.
            return;
        };
        let second = open(dir);
        let other = second.shared().expect("the same backend");
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| store.hold_lease("work", "a", T0, 10_000).unwrap());
            let y = s.spawn(|| other.hold_lease("work", "b", T0, 10_000).unwrap());
            (x.join().unwrap(), y.join().unwrap())
        });
        assert!(
            x ^ y,
            "{name}: exactly one of two claimants at once holds it ({x}, {y})"
        );
        let (holder, waiting) = if x { ("a", "b") } else { ("b", "a") };
        assert!(
            store
                .hold_lease("work", holder, T0 + 5_000, 10_000)
                .unwrap(),
            "renewed"
        );
        assert!(
            !other
                .hold_lease("work", waiting, T0 + 14_000, 10_000)
                .unwrap(),
            "renewal held it"
        );
        assert!(
            other
                .hold_lease("work", waiting, T0 + 15_001, 10_000)
                .unwrap(),
            "lapsed: taken"
        );
        assert!(
            !store
                .hold_lease("work", holder, T0 + 15_002, 10_000)
                .unwrap(),
            "the old holder lost it"
        );
    });
}

#[test]
fn shared_state_keeps_the_last_put_of_each_scope() {
    each(|_name, dir, open| {
        let opened = open(dir);
        let Some(store) = opened.shared() else {
            // One collector's own store shares nothing.
            return;
        };
        store.put_state("report/a", Some("one")).unwrap();
        store.put_state("report/a", Some("two")).unwrap();
        store.put_state("report/b", Some("three")).unwrap();
        store.put_state("models", Some("m")).unwrap();
        let (v1, text) = store.get_state("report/a").unwrap().unwrap();
        assert_eq!(text, "two");
        let scopes: Vec<String> = store
            .state_scopes("report/")
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(scopes, ["report/a", "report/b"]);
        store.put_state("report/a", None).unwrap();
        assert_eq!(store.get_state("report/a").unwrap(), None, "deleted");
        assert_eq!(store.state_scopes("report/").unwrap().len(), 1);
        store.put_state("report/a", Some("back")).unwrap();
        let reopened = open(dir);
        let (v2, text) = reopened
            .shared()
            .unwrap()
            .get_state("report/a")
            .unwrap()
            .unwrap();
        assert_eq!(text, "back");
        assert!(v2 > v1, "versions grow");
    });
}

#[test]
fn event_pages_walk_every_matching_event_once_in_time_order() {
    // Events over five hours, sent newest batch first and out of order inside each batch;
    // pages of 3 of one feature cross hour boundaries (the sled walk reads an hour at a time).
    each(|name, dir, open| {
        let store = open(dir);
        let at = |i: i64| T0 + i * HOUR / 4 + 1;
        let mut evs: Vec<Event> = (0..20).map(|i| event(at(i), &format!("u{i:02}"))).collect();
        for (i, e) in evs.iter_mut().enumerate() {
            if i % 3 == 0 {
                e.feature = "other".into();
            }
        }
        let (early, late) = evs.split_at(9);
        let mut late = late.to_vec();
        late.reverse();
        store.append(&batch("a", "late", late, vec![])).unwrap();
        store
            .append(&batch("a", "early", early.to_vec(), vec![]))
            .unwrap();
        let filter = tda_collector::store::Filter {
            feature: Some("f".into()),
            ..Default::default()
        };
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let page = tda_collector::query::events(
                &*store,
                T0,
                T0 + 6 * HOUR,
                &filter,
                3,
                cursor.as_deref(),
            )
            .unwrap();
            seen.extend(page.events.iter().map(|e| e.user_id.clone()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<String> = (0..20)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("u{i:02}"))
            .collect();
        assert_eq!(seen, want, "{name}");
    });
}

#[test]
fn series_over_unaligned_ranges_count_exactly_the_events_inside() {
    // Events every 17 s over three hours, two features; ranges and steps that cut minutes and
    // hours (a dashboard's "last hour" starts anywhere): minute cells serve whole minutes,
    // events the cut ones, and every count equals the events' own.
    use tda_schema::answers::Agg;
    each(|name, dir, open| {
        let store = open(dir);
        let at = |i: i64| T0 + i * 17_000 + 3;
        let evs: Vec<Event> = (0..635)
            .map(|i| {
                let mut e = event(at(i), &format!("u{}", i % 5));
                e.feature = if i % 3 == 0 { "g".into() } else { "f".into() };
                e.latency_ms = Some((i % 50) as f64);
                e
            })
            .collect();
        store
            .append(&batch("a", "b1", evs.clone(), vec![]))
            .unwrap();
        let filter = tda_collector::store::Filter {
            feature: Some("f".into()),
            ..Default::default()
        };
        let cases = [
            (T0 + 1_234, T0 + 1_234 + HOUR, HOUR),
            (T0 + 59_999, T0 + 2 * HOUR + 61_001, 3 * HOUR),
            (T0 + 30 * 60_000, T0 + 150 * 60_000, 10 * 60_000),
            (T0 + 45_000, T0 + 45_000 + 20 * 60_000, 5 * 60_000),
        ];
        for (from, to, step) in cases {
            for (series, agg) in [("requests", Agg::Count), ("latency_ms", Agg::Sum)] {
                let points =
                    tda_collector::query::series(&*store, series, from, to, step, agg, &filter)
                        .unwrap();
                for p in points {
                    let inside = evs.iter().filter(|e| {
                        e.feature == "f" && (p.t..(p.t + step).min(to)).contains(&e.timestamp.0)
                    });
                    let want: f64 = match series {
                        "requests" => inside.count() as f64,
                        _ => inside.filter_map(|e| e.latency_ms).sum(),
                    };
                    assert_eq!(
                        p.v,
                        Some(want),
                        "{name} {series} {from}..{to} step {step} at {}",
                        p.t
                    );
                }
            }
        }
    });
}

#[test]
fn one_sample_series_reads_as_the_samples_say() {
    each(|name, dir, open| {
        let store = open(dir);
        for (agent, offset) in [("a", 0), ("b", 7)] {
            let samples: Vec<HostSample> = (0..30)
                .map(|i| {
                    let mut s = sample(T0 + i * 240_000 + offset);
                    s.net_rx_bytes = (i * i + offset) as u64;
                    s.cpu_percent = (i % 10) as f32 * 1.5;
                    s
                })
                .collect();
            store
                .append(&batch(agent, &format!("s{agent}"), vec![], samples))
                .unwrap();
        }
        store.compact(T0 + 2 * HOUR).unwrap();
        for series in ["host.net_rx_bytes", "host.cpu_percent", "process.rss_bytes"] {
            for agent in [None, Some("b")] {
                let range = (T0 + 1_000, T0 + HOUR + 1_000);
                let mut want = Vec::new();
                store
                    .scan_samples(range.0, range.1, agent, &mut |_, s| {
                        if let Some(v) = tda_collector::store::select::sample_value(series, s) {
                            want.push((s.timestamp.0, v.to_bits()));
                        }
                    })
                    .unwrap();
                let mut got = Vec::new();
                store
                    .scan_sample_series(range, agent, series, &mut |t, v| {
                        got.push((t, v.to_bits()))
                    })
                    .unwrap();
                want.sort();
                got.sort();
                assert_eq!(got, want, "{name} {series} {agent:?}");
                assert_eq!(
                    got.is_empty(),
                    series.starts_with("process."),
                    "{name} {series}"
                );
            }
        }
    });
}
