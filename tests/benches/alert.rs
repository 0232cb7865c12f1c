//! Time from the event that breaches an alert rule to the webhook request that tells of it: a
//! release collector evaluating every second (`group_wait = "0s"`), ten rules each watching its
//! own feature, one breaching event posted at a time at spread phases of the evaluation cycle;
//! prints each latency, the median and the worst. Run with `cargo bench -p tda-tests --bench alert`.

use std::time::Instant;

use serde_json::json;
use tda_tests::receiver::Receiver;
use tda_tests::*;

const RULES: usize = 10;

fn main() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let config = format!(
        "[alerting]\nevaluation_interval = \"1s\"\n\n[[alerting.receiver]]\nname = \"ops\"\nurl = \"{}\"\n\n[alerting.route]\nreceiver = \"ops\"\ngroup_wait = \"0s\"\n",
        receiver.url("/hook")
    );
    let setup = CollectorSetup::new(tmp.path(), &config);
    let rules: String = (0..RULES)
        .map(|i| format!("\n[[alert]]\nname = \"breach-{i}\"\nkind = \"threshold\"\nmetric = \"requests{{feature=\\\"f{i}\\\"}}\"\nthreshold = 0\nwindow = \"1m\"\n"))
        .collect();
    setup.profile(
        "bench.toml",
        &format!("name = \"Bench\"\ntype = \"usage\"\n{rules}"),
    );
    let c = setup.start();
    let mut latencies = Vec::new();
    for i in 0..RULES {
        // Post at a different phase of the evaluation cycle each time (pacing, not waiting).
        std::thread::sleep(std::time::Duration::from_millis((i as u64 * 373) % 1000));
        let body = json!({"version": 1, "agent_id": "bench", "batch_id": format!("b{i}"), "created_at": now_ms(),
            "events": [{"timestamp": now_ms(), "user_id": "u", "feature": format!("f{i}")}]});
        let sent = Instant::now();
        let (status, _) = post(
            &format!("{}/v1/batches", c.url),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            body.to_string().into_bytes(),
        );
        assert_eq!(status, 200);
        let got = receiver.wait_for(i + 1);
        let n = got[i].json();
        assert_eq!(n["groupLabels"]["alertname"], format!("breach-{i}"));
        let ms = got[i].at.duration_since(sent).as_secs_f64() * 1000.0;
        println!("breach_to_webhook_ms[{i}]={ms:.0}");
        latencies.push(ms);
    }
    latencies.sort_by(f64::total_cmp);
    println!("evaluation_interval_ms=1000");
    println!("breach_to_webhook_p50_ms={:.0}", latencies[RULES / 2]);
    println!("breach_to_webhook_max_ms={:.0}", latencies[RULES - 1]);
}
