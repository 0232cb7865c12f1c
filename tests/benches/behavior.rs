//! Behavioral analyses at scale: the simulator's TD Generator traffic (its personas and
//! journeys) for USERS users over 28 days, about EVENTS events, is stored in a release collector
//! and compacted; then a 3-step funnel, daily and weekly retention, journeys, sessions,
//! interactions and the behavioral summary over the whole range are timed over HTTP (median of
//! 3 runs). Prints `key=value` figures. Run with `scripts/bench-behavior [EVENTS [USERS]]`
//! (default 10,000,000 events and 1,350,000 simulated users, of whom about 1 M send events).

#[path = "common/simulated.rs"]
mod simulated;

use simulated::store_simulated;
use tda_tests::bench::*;
use tda_tests::*;

const DAYS: i64 = 28;
const DAY_MS: i64 = 86_400_000;

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
        store_simulated(&collector.url, events, users, start, end);
        std::fs::write(&marker, "").expect("marker");
    }
    let range = format!("from={start}&to={end}");
    let base = collector.url.clone();
    let median = |path: &str| median_of_ms(&format!("{base}{path}"), 3);
    // The peak of storing the events, then (reset) the peak of answering the analyses.
    println!(
        "collector_rss_peak_store_kib={}",
        rss_peak_kib(collector.pid())
    );
    let reset = reset_rss_peak(collector.pid());
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
    let peak = rss_peak_kib(collector.pid());
    match reset {
        true => println!("collector_rss_peak_analyses_kib={peak}"),
        false => println!("collector_rss_peak_kib={peak} (the store's peak could not be reset)"),
    }
}
