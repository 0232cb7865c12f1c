//! Stores written by earlier builds stay readable: each directory under `tests/stores/` is a sled
//! store written by the build its name gives, from the batches [`batches`] makes (the same on
//! every build), and this test opens a copy of each with today's build and checks that it reads
//! back every event, sample and rollup. A change of a stored format adds a directory written by
//! the new build (`cargo test -p tda-collector --test stored_formats -- --ignored`, with
//! `TDA_STORE_OUT=collector/tests/stores/<date>-<commit>`), keeping the old ones.

use std::path::{Path, PathBuf};

use tda_collector::store::rollup::Rollup;
use tda_collector::store::{SledStore, Storage};
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, HostSample, Timestamp};

const HOUR: i64 = 3_600_000;
/// 2026-11-28T10:00:00Z.
const T0: i64 = 1_795_860_000_000;

/// Three hours of events (every 7 s, properties on some, failures on others) and two agents'
/// samples (every 30 s), in batches of 10 minutes; the first two hours are compacted, the third
/// is left as batches wrote it.
fn batches() -> Vec<Batch> {
    (0..18)
        .map(|b| {
            let start = T0 + b * 600_000;
            let events = (0..600_000 / 7_000)
                .map(|i| {
                    let t = start + i * 7_000;
                    let n = t / 7_000;
                    let feature = ["search", "export", "share"][(n % 3) as usize];
                    let mut e = serde_json::json!({"timestamp": t, "user_id": format!("u{}", n % 13),
                        "feature": feature,
                        "status": if n % 17 == 0 { 503 } else { 200 }, "latency_ms": (n % 97) as f64 / 4.0});
                    if n % 5 == 0 {
                        let plan = ["free", "pro"][(n % 2) as usize];
                        e["properties"] = serde_json::json!({"plan": plan, "n": n});
                    }
                    if n % 23 == 0 {
                        e["error"] = serde_json::json!("timeout");
                    }
                    serde_json::from_value::<Event>(e).expect("event")
                })
                .collect();
            let samples = (0..20).map(|i| sample(start + i * 30_000)).collect();
            Batch {
                version: BATCH_FORMAT_VERSION,
                agent_id: format!("agent-{}", b % 2),
                batch_id: format!("batch-{b}"),
                created_at: Timestamp(start + 600_000),
                events,
                samples,
            }
        })
        .collect()
}

fn sample(t: i64) -> HostSample {
    let k = (t / 30_000 % 50) as u64;
    serde_json::from_value(serde_json::json!({
        "timestamp": t, "cpu_percent": k as f64 * 1.5, "cpu_per_core": [k as f64, 3.25],
        "mem_total_bytes": 8u64 << 30, "mem_used_bytes": (2u64 << 30) + k * 4096, "swap_total_bytes": 0,
        "swap_used_bytes": 0, "load": [k as f64 / 10.0, 0.5, 0.25], "disk_total_bytes": 1u64 << 40,
        "disk_available_bytes": 1u64 << 39, "disk_read_bytes": k * 512, "disk_written_bytes": k * 1024,
        "net_rx_bytes": k * k * 100, "net_tx_bytes": k * 7, "net_rx_packets": k, "net_tx_packets": k,
        "net_rx_errors": 0, "net_tx_errors": 0
    }))
    .expect("sample")
}

/// What a store holds, in an order that does not depend on its blocks.
fn contents(store: &dyn Storage) -> (Vec<String>, Vec<String>, Vec<Rollup>) {
    let mut events = Vec::new();
    store
        .scan_events(T0, T0 + 3 * HOUR, &mut |e| {
            events.push(serde_json::to_string(e).expect("json"))
        })
        .expect("events");
    events.sort();
    let mut samples = Vec::new();
    store
        .scan_samples(T0, T0 + 3 * HOUR, None, &mut |agent, s| {
            samples.push(format!(
                "{agent} {}",
                serde_json::to_string(s).expect("json")
            ))
        })
        .expect("samples");
    samples.sort();
    let rollups = (0..3)
        .map(|h| {
            let mut merged = Rollup::new(T0 + h * HOUR);
            let (from, to) = (T0 + h * HOUR, T0 + (h + 1) * HOUR);
            store
                .scan_rollups(from, to, &mut |r| merged.merge(r))
                .expect("rollups");
            merged
        })
        .collect();
    (events, samples, rollups)
}

/// The store the batches make, written by this build.
fn written(dir: &Path) -> SledStore {
    let store = SledStore::open(dir).expect("open");
    for b in batches() {
        store.append(&b).expect("append");
    }
    store.compact(T0 + 2 * HOUR).expect("compact");
    store
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn stores_written_by_earlier_builds_read_back_whole() {
    let fresh = tempfile::tempdir().expect("tmp");
    let want = contents(&written(fresh.path()));
    assert_eq!((want.0.len(), want.1.len()), (18 * 85, 18 * 20));
    let stores = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stores");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&stores)
        .expect("tests/stores")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no stored store under {}",
        stores.display()
    );
    for dir in dirs {
        // Opening may write (sled recovers, orphans go): a copy keeps the fixture as written.
        let copy = tempfile::tempdir().expect("tmp");
        copy_dir(&dir, copy.path());
        let store = SledStore::open(copy.path()).expect("open an earlier build's store");
        assert!(
            contents(&store) == want,
            "{} reads back differently",
            dir.display()
        );
        // And it takes new batches and compacts alongside what it held.
        store.compact(T0 + 3 * HOUR).expect("compact");
        assert!(
            contents(&store) == want,
            "{} after compaction",
            dir.display()
        );
    }
}

/// Writes this build's store to `TDA_STORE_OUT` (see the module comment).
#[test]
#[ignore]
fn write_this_builds_store() {
    let out = std::env::var("TDA_STORE_OUT").expect("TDA_STORE_OUT=collector/tests/stores/<name>");
    assert!(!Path::new(&out).exists(), "{out} exists");
    drop(written(Path::new(&out)));
}
