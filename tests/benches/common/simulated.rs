//! What the simulated-traffic benchmarks share: the simulator's TD Generator traffic as batch
//! bodies, stored in a collector and compacted. Included by the benches with `#[path]` (the
//! harness library does not depend on the agent crate).

use std::collections::HashSet;
use std::time::Instant;

use tda_agent::simulate::traffic::{Generator, TrafficConfig};
use tda_tests::bench::ingest;
use tda_tests::ADMIN_TOKEN;

/// Events per batch sent.
const BATCH: usize = 10_000;
/// Mean events per simulated session (measured on the simulator's personas).
const EVENTS_PER_SESSION: f64 = 3.6;

/// Generates the traffic, stores it in the collector at `url` and compacts it.
pub fn store_simulated(url: &str, events: usize, users: usize, start: i64, end: i64) {
    let t = Instant::now();
    let (bodies, sent, distinct) = generate(events, users, start, end);
    println!(
        "events={sent} users_with_events={distinct} simulated_users={users} days={}",
        (end - start) / 86_400_000
    );
    println!("generate_s={:.1}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    ingest(&format!("{url}/v1/batches"), bodies);
    println!("ingest_s={:.1}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let patient = tda_daemon::tls::blocking_client_builder()
        .timeout(std::time::Duration::from_secs(1800))
        .build()
        .expect("client");
    let resp = patient
        .post(format!("{url}/-/compact?before=now"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("compact");
    assert_eq!(resp.status().as_u16(), 200, "compact");
    println!("compact_s={:.1}", t.elapsed().as_secs_f64());
}

/// The simulator's traffic as zstd batch bodies, with the events sent and the distinct users.
fn generate(events: usize, users: usize, start: i64, end: i64) -> (Vec<Vec<u8>>, usize, usize) {
    let rate =
        events as f64 / (users as f64 * ((end - start) / 86_400_000) as f64 * EVENTS_PER_SESSION);
    let generator = Generator::new(TrafficConfig {
        users,
        start_ms: start,
        end_ms: end,
        sessions_per_user_day: rate,
        growth_per_week: 0.0,
        incidents: vec![],
        seed: 7,
    });
    let (mut bodies, mut pending, mut sent) = (Vec::new(), Vec::new(), 0);
    let mut seen: HashSet<String> = HashSet::new();
    let flush = |pending: &mut Vec<tda_schema::Event>, bodies: &mut Vec<Vec<u8>>| {
        let batch = serde_json::json!({"version": 1, "agent_id": "bench",
            "batch_id": format!("bench-{}", bodies.len()), "created_at": start, "events": pending});
        let json = serde_json::to_vec(&batch).expect("json");
        bodies.push(zstd::bulk::compress(&json, 3).expect("zstd"));
        pending.clear();
    };
    for (_, minute) in generator {
        for e in minute {
            if !seen.contains(&e.user_id) {
                seen.insert(e.user_id.clone());
            }
            pending.push(e);
            sent += 1;
            if pending.len() == BATCH {
                flush(&mut pending, &mut bodies);
            }
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut bodies);
    }
    (bodies, sent, seen.len())
}
