//! The two storage backends side by side: the simulator's TD Generator traffic (USERS users over
//! 14 days, about EVENTS events) is ingested over HTTP by a collector on sled and by one on
//! ClickHouse (`TDA_CLICKHOUSE_URL`; `scripts/bench-backends` starts a private server), then the
//! same queries are timed on each (median of 3, over HTTP). Prints `key=value` figures per
//! backend. Run with `scripts/bench-backends [EVENTS [USERS]]` (default 2,000,000 and 200,000).

#[path = "common/simulated.rs"]
mod simulated;

use simulated::store_simulated;
use tda_tests::bench::*;
use tda_tests::*;

const DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;
const LIMITS: &str = "[limits]\nmax_body_bytes = 67108864\nmax_decompressed_bytes = 268435456\n";
const KEEP: &str = "name = \"Keep\"\ntype = \"usage\"\n[settings]\nretention_period = 60\n";

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse::<usize>().ok());
    let events = args.next().unwrap_or(2_000_000);
    let users = args.next().unwrap_or(200_000);
    let url = std::env::var("TDA_CLICKHOUSE_URL")
        .expect("TDA_CLICKHOUSE_URL: run scripts/bench-backends, which starts a ClickHouse server");
    let end = (now_ms() / DAY_MS) * DAY_MS;
    let start = end - DAYS * DAY_MS;
    let tmp = tempfile::tempdir().expect("tmp");
    let database = format!("tda_bench_{}", std::process::id());
    let backends = [
        ("sled", String::new()),
        (
            "clickhouse",
            format!("[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\nurl = \"{url}\"\ndatabase = \"{database}\"\ntimeout = \"10m\"\n"),
        ),
    ];
    let range = format!("from={start}&to={end}");
    let queries = [
        ("usage_ms", format!("/api/v1/stats/usage?{range}")),
        (
            "usage_day_ms",
            format!("/api/v1/stats/usage?from={}&to={end}", end - DAY_MS),
        ),
        (
            "performance_ms",
            format!("/api/v1/stats/performance?{range}"),
        ),
        (
            "p95_hourly_ms",
            format!("/api/v1/query?{range}&series=latency_ms&agg=p95&step=1h"),
        ),
        (
            "requests_by_minute_day_ms",
            format!(
                "/api/v1/query?from={}&to={end}&series=requests&agg=count&step=1m&feature=generate",
                end - DAY_MS
            ),
        ),
        (
            "funnel_3_steps_ms",
            format!("/api/v1/funnels?{range}&steps=login,generate,download&window=1h"),
        ),
        ("retention_daily_ms", format!("/api/v1/retention?{range}")),
        ("sessions_ms", format!("/api/v1/sessions?{range}")),
        (
            "events_page_ms",
            format!("/api/v1/events?{range}&feature=download&limit=100"),
        ),
    ];
    for (name, storage) in backends {
        let setup = CollectorSetup::new(&tmp.path().join(name), &format!("{LIMITS}{storage}"));
        setup.profile("keep.toml", KEEP);
        let collector = setup.start();
        println!("backend={name}");
        store_simulated(&collector.url, events, users, start, end);
        for (query, path) in &queries {
            println!(
                "{name}.{query}={:.0}",
                median_of_ms(&format!("{}{path}", collector.url), 3)
            );
        }
        println!(
            "{name}.collector_rss_peak_kib={}",
            rss_peak_kib(collector.pid())
        );
        let bytes = match name {
            "sled" => dir_bytes(&setup.dir.join("data")),
            _ => {
                let q = format!("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{database}' AND active");
                let text = http().post(&url).body(q).send().and_then(|r| r.text());
                text.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
            }
        };
        println!("{name}.disk_mib={:.0}", bytes as f64 / 1_048_576.0);
    }
}
