//! Helpers of the alerting tests: a feeder posting events with a latency the test sets, an
//! `[alerting]` section with one receiver, a threshold rule, and waits on alert states.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{get_json, http, now_ms, wait_for, TOKEN};

/// Posts one event every 50 ms stamped now, with the latency the test sets, until dropped.
pub struct Feeder {
    latency: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    /// Starts posting to `collector`.
    pub fn start(collector: &str, latency_ms: f64) -> Feeder {
        let latency = Arc::new(AtomicU64::new(latency_ms.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, url) = (
            latency.clone(),
            stop.clone(),
            format!("{collector}/v1/batches"),
        );
        let thread = std::thread::spawn(move || {
            let client = http();
            for i in 0u64.. {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let ms = f64::from_bits(l.load(Ordering::SeqCst));
                let body = json!({"version": 1, "agent_id": "feeder", "batch_id": format!("feed-{}-{i}", now_ms()),
                    "created_at": now_ms(), "events": [{"timestamp": now_ms(), "user_id": "u1", "feature": "generate", "latency_ms": ms, "status": 200}]});
                let _ = client.post(&url).bearer_auth(TOKEN).json(&body).send();
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Feeder {
            latency,
            stop,
            thread: Some(thread),
        }
    }

    /// Sets the latency of the next events.
    pub fn set(&self, ms: f64) {
        self.latency.store(ms.to_bits(), Ordering::SeqCst);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `[alerting]` with one webhook receiver and quick group timing.
pub fn alerting(receiver_url: &str, extra_receiver: &str) -> String {
    format!(
        "[alerting]\nevaluation_interval = \"200ms\"\nexternal_url = \"http://tda.test:7300\"\n\n[[alerting.receiver]]\nname = \"ops\"\nurl = \"{receiver_url}\"\n{extra_receiver}\n[alerting.route]\nreceiver = \"ops\"\ngroup_wait = \"300ms\"\ngroup_interval = \"500ms\"\nrepeat_interval = \"1h\"\n"
    )
}

/// A performance profile with one threshold rule on `generate`'s average latency.
pub const RULE: &str = "name = \"Latency\"\ntype = \"performance\"\n\n[[alert]]\nname = \"SlowGenerate\"\nkind = \"threshold\"\nmetric = \"latency_avg_ms{feature=\\\"generate\\\"}\"\nthreshold = 100\nrecovery = 50\nfor = \"1s\"\nwindow = \"1s\"\nlabels = { severity = \"page\" }\nannotations = { summary = \"generate takes {{ value }} ms (over {{ threshold }})\" }\n";

/// Waits until the collector has made `n` more evaluation and notification passes; returns its
/// alerts answer then.
pub fn after_passes(collector: &str, n: u64) -> Value {
    let passes = |v: &Value| v["passes"].as_u64().unwrap_or(0);
    let start = passes(&get_json(&format!("{collector}/api/v1/alerts")).1);
    wait_for(&format!("{n} more alert passes"), || {
        let (_, v) = get_json(&format!("{collector}/api/v1/alerts"));
        (passes(&v) >= start + n).then_some(v)
    })
}

/// The `SlowGenerate` alert as the collector reports it.
pub fn alert_state(collector: &str) -> Value {
    let (status, v) = get_json(&format!("{collector}/api/v1/alerts"));
    assert_eq!(status, 200, "{v}");
    v["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["rule"] == "SlowGenerate").cloned())
        .unwrap_or(Value::Null)
}

/// Waits until the `SlowGenerate` alert is in `state`.
pub fn wait_state(collector: &str, state: &str) -> Value {
    wait_for(&format!("the alert {state}"), || {
        let a = alert_state(collector);
        (a["state"] == state).then_some(a)
    })
}
