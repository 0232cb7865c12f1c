//! The dashboard's first paint and time to interactive on localhost with EVENTS events stored
//! (default 1,000,000: the simulator's traffic over 7 days), in a real headless Chromium: each
//! page is loaded 3 times; first contentful paint is the browser's paint timing, interactive is
//! when the page's data is drawn (`data-first-render-ms`, set after the first render). Prints
//! `key=value` figures. Run with `cargo bench -p tda-tests --bench dashboard [-- EVENTS]`.

#[path = "common/simulated.rs"]
mod simulated;

use serde_json::json;
use tda_tests::browser::Browser;
use tda_tests::*;

const DAY_MS: i64 = 86_400_000;

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let setup = CollectorSetup::new(
        &tmp.path().join("c"),
        "[limits]\nmax_body_bytes = 67108864\nmax_decompressed_bytes = 268435456\n",
    );
    let collector = setup.start();
    let end = now_ms();
    simulated::store_simulated(&collector.url, events, events / 20, end - 7 * DAY_MS, end);
    let b = Browser::start();
    for page in ["overview", "usage", "performance", "behavioral"] {
        let mut fcp = Vec::new();
        let mut interactive = Vec::new();
        for visit in 0..3 {
            b.goto(&format!("{}/?visit={visit}#/{page}", collector.url));
            let done = b.wait(
                "the page drawn",
                "document.body.dataset.firstRenderMs && [document.body.dataset.firstRenderMs, (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime]",
            );
            interactive.push(
                done[0]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
            );
            fcp.push(done[1].as_f64().unwrap_or(f64::NAN));
        }
        fcp.sort_by(f64::total_cmp);
        interactive.sort_by(f64::total_cmp);
        println!("{page}_first_contentful_paint_ms={:.0}", fcp[1]);
        println!("{page}_interactive_ms={:.0}", interactive[1]);
    }
    let _ = b.eval("return 1;", json!([]));
}
