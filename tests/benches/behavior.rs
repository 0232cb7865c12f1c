//! Behavioral analyses at scale: the simulator's TD Generator traffic (its personas and
//! journeys) for USERS users over 28 days, about EVENTS events, is stored in a release collector
//! and compacted; then a 3-step funnel, daily and weekly retention, journeys, sessions,
//! interactions and the behavioral summary over the whole range are timed over HTTP (median of
//! 3 runs). Prints `key=value` figures. Run with `scripts/bench-behavior [EVENTS [USERS]]`
//! (default 10,000,000 events and 1,350,000 simulated users, of whom about 1 M send events).

use std::collections::HashSet;
use std::time::Instant;

use tda_agent::simulate::traffic::{Generator, TrafficConfig};
use tda_tests::bench::*;
use tda_tests::*;

const DAYS: i64 = 28;
const DAY_MS: i64 = 86_400_000;
/// Events per batch sent.
const BATCH: usize = 10_000;
/// Mean events per simulated session (measured on the simulator's personas).
const EVENTS_PER_SESSION: f64 = 3.6;

/// Generates the traffic, stores it in the collector at `url` and compacts it.
fn store(url: &str, events: usize, users: usize, start: i64, end: i64) {
    let t = Instant::now();
    let (bodies, sent, distinct) = generate(events, users, start, end);
    println!("events={sent} users_with_events={distinct} simulated_users={users} days={DAYS}");
    println!("generate_s={:.1}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    ingest(&format!("{url}/v1/batches"), bodies);
    println!("ingest_s={:.1}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let patient = reqwest::blocking::Client::builder()
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

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse::<usize>().ok());
    let events = args.next().unwrap_or(10_000_000);
    let users = args.next().unwrap_or(1_350_000);
    let end = (now_ms() / DAY_MS) * DAY_MS;
    let start = end - DAYS * DAY_MS;
    // TDA_BENCH_DIR keeps the stored data for the next run (with the same arguments, on the
    // same day), which then only times the queries.
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = std::env::var_os("TDA_BENCH_DIR").map_or(tmp.path().to_path_buf(), Into::into);
    let marker = dir.join(format!("stored-{events}-{users}-{end}"));
    let setup = CollectorSetup::new(
        &dir.join("c"),
        "[limits]\nmax_body_bytes = 67108864\nmax_decompressed_bytes = 268435456\n",
    );
    setup.profile(
        "keep.toml",
        "name = \"Keep\"\ntype = \"usage\"\n[settings]\nretention_period = 60\n",
    );
    let collector = setup.start();
    if !marker.exists() {
        store(&collector.url, events, users, start, end);
        std::fs::write(&marker, "").expect("marker");
    }
    let range = format!("from={start}&to={end}");
    let base = collector.url.clone();
    let median = |path: &str| {
        let client = http();
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                let resp = client.get(format!("{base}{path}")).send().expect("query");
                assert_eq!(resp.status().as_u16(), 200, "{path}");
                let _ = resp.bytes();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[1]
    };
    let (_, summary) = get_json(&format!("{base}/api/v1/sessions?{range}"));
    println!(
        "stored_users={} sessions={}",
        summary["users"], summary["sessions"]
    );
    let queries = [
        (
            "funnel_3_steps_ms",
            format!("/api/v1/funnels?{range}&steps=login,generate,download&window=1h"),
        ),
        ("retention_daily_ms", format!("/api/v1/retention?{range}")),
        (
            "retention_weekly_ms",
            format!("/api/v1/retention?{range}&period=week"),
        ),
        ("journeys_ms", format!("/api/v1/journeys?{range}")),
        ("sessions_ms", format!("/api/v1/sessions?{range}")),
        ("interactions_ms", format!("/api/v1/interactions?{range}")),
        (
            "stats_behavioral_ms",
            format!("/api/v1/stats/behavioral?{range}"),
        ),
    ];
    for (name, path) in queries {
        println!("{name}={:.0}", median(&path));
    }
    println!("collector_rss_peak_kib={}", rss_peak_kib(collector.pid()));
}

/// The simulator's traffic as zstd batch bodies, with the events sent and the distinct users.
fn generate(events: usize, users: usize, start: i64, end: i64) -> (Vec<Vec<u8>>, usize, usize) {
    let rate = events as f64 / (users as f64 * DAYS as f64 * EVENTS_PER_SESSION);
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
