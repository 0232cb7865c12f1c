//! Behavioral analyses over the peers' event workload (`gen_events.py`: 24 h, 200 k users, 50
//! event names): the events are stored in a release collector, then a 3-step funnel, daily
//! retention, journeys and sessions over the whole range are timed (median of 3 runs).
//! Prints `key=value` figures. Run with `scripts/bench-behavior [ROWS]` (default 1,000,000).

use std::time::Instant;

use tda_tests::bench::*;
use tda_tests::*;

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let (bodies, first, last) = peer_event_batches(&tmp.path().join("gen"), rows, 10_000);
    let setup = CollectorSetup::new(
        &tmp.path().join("c"),
        "[limits]\nmax_body_bytes = 67108864\nmax_decompressed_bytes = 268435456\n",
    );
    let collector = setup.start();
    ingest(&format!("{}/v1/batches", collector.url), bodies);
    let hour = |ts: &serde_json::Value| {
        tda_schema::Timestamp::parse(ts.as_str().expect("ts"))
            .expect("ts")
            .0
            / 3_600_000
            * 3_600_000
    };
    let range = format!("from={}&to={}", hour(&first), hour(&last) + 3_600_000);
    let base = &collector.url;
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
    println!("rows={rows}");
    println!(
        "funnel_3_steps_ms={:.0}",
        median(&format!(
            "/api/v1/funnels?{range}&steps=page_view,search,checkout&window=1h"
        ))
    );
    println!(
        "retention_daily_ms={:.0}",
        median(&format!("/api/v1/retention?{range}"))
    );
    println!(
        "journeys_ms={:.0}",
        median(&format!("/api/v1/journeys?{range}"))
    );
    println!(
        "sessions_ms={:.0}",
        median(&format!("/api/v1/sessions?{range}"))
    );
    println!("collector_rss_peak_kib={}", rss_peak_kib(collector.pid()));
}
