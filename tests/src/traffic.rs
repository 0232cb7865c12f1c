//! Steady event traffic for fault tests: a thread per agent posting numbered events, counting
//! exactly what each agent accepted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

/// Posts `per_request` events every `every` to an agent until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// Width of a lane: sender `lane`'s events lie in `[t0 + lane * LANE_MS, t0 + (lane + 1) * LANE_MS)`.
pub const LANE_MS: i64 = 100_000_000;

/// Events `first..first + count` of sender `lane`: timestamps `t0 + lane * LANE_MS + index` ms,
/// so every event is unique and a range query counts exactly one lane.
pub fn events(t0: i64, lane: u64, first: u64, count: u64) -> Vec<u8> {
    let evs: Vec<serde_json::Value> = (first..first + count)
        .map(|i| {
            json!({"timestamp": t0 + (lane as i64) * LANE_MS + i as i64, "user_id": format!("u{lane}-{}", i % 997),
                "feature": "generate", "status": 200, "latency_ms": (i % 500) as f64})
        })
        .collect();
    serde_json::to_vec(&evs).expect("json")
}

impl Traffic {
    /// Starts posting to `agent_url`; lane numbers keep senders' events apart.
    pub fn start(
        agent_url: &str,
        t0: i64,
        lane: u64,
        per_request: u64,
        every: Duration,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (s, a, url) = (
            stop.clone(),
            accepted.clone(),
            format!("{agent_url}/v1/events"),
        );
        let thread = std::thread::spawn(move || {
            let client = crate::http();
            while !s.load(Ordering::Relaxed) {
                let first = a.load(Ordering::Relaxed);
                let body = events(t0, lane, first, per_request);
                let ok = client
                    .post(&url)
                    .body(body)
                    .send()
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if ok {
                    a.fetch_add(per_request, Ordering::Relaxed);
                }
                std::thread::sleep(every);
            }
        });
        Traffic {
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// Events accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops sending and returns the number of events the agent accepted.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.accepted()
    }
}
