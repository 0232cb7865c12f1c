//! Whether deleting old data gives disk space back: fills a sled store with 48 hours of events,
//! deletes the older 24 (as retention does), and prints the store's size at each step, after a
//! reopen, and after writing 24 more hours (does new data reuse the freed space?). Prints
//! `key=value` figures. Run with `cargo bench -p tda-collector --bench reclaim -- [EVENTS_PER_HOUR]`.

use std::path::Path;

use tda_collector::store::{SledStore, Storage};
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, Timestamp};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_795_860_000_000;
const BATCH: usize = 10_000;

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.path() {
                p if p.is_dir() => dir_bytes(&p),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// Stores `hours` hours of events from `first_hour` on, `per_hour` a hour.
fn fill(store: &SledStore, first_hour: i64, hours: i64, per_hour: usize) {
    for h in first_hour..first_hour + hours {
        let events: Vec<Event> = (0..per_hour)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "timestamp": T0 + h * HOUR + (i as i64 * HOUR) / per_hour as i64,
                    "user_id": format!("u{:06}", (i * 7919 + h as usize * 31) % 200_000),
                    "feature": format!("feature-{}", i % 50), "status": 200,
                    "latency_ms": ((i * 37) % 5000) as f64 / 100.0
                }))
                .expect("event")
            })
            .collect();
        for (n, chunk) in events.chunks(BATCH).enumerate() {
            let batch = Batch {
                version: BATCH_FORMAT_VERSION,
                agent_id: "bench".into(),
                batch_id: format!("h{h}-{n}"),
                created_at: Timestamp(T0),
                events: chunk.to_vec(),
                samples: vec![],
            };
            store.append(&batch).expect("append");
        }
    }
}

fn main() {
    let per_hour: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let store = SledStore::open(tmp.path()).expect("open");
    fill(&store, 0, 48, per_hour);
    store.compact(T0 + 48 * HOUR).expect("compact");
    let full = dir_bytes(tmp.path());
    println!(
        "events_per_hour={per_hour} hours=48 size_full_mib={:.1}",
        mib(full)
    );
    let deleted = store.delete_before(T0 + 24 * HOUR).expect("delete");
    println!(
        "deleted_blocks={} size_after_delete_mib={:.1}",
        deleted.blocks,
        mib(dir_bytes(tmp.path()))
    );
    drop(store);
    let store = SledStore::open(tmp.path()).expect("reopen");
    println!("size_after_reopen_mib={:.1}", mib(dir_bytes(tmp.path())));
    fill(&store, 48, 24, per_hour);
    store.compact(T0 + 72 * HOUR).expect("compact");
    println!(
        "size_after_24h_more_mib={:.1} (48 h of data held, as at size_full)",
        mib(dir_bytes(tmp.path()))
    );
}
