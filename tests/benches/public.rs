//! The public intake under browser-shaped load: a release agent (`intake.ack = "durable"`, the
//! default) behind what a reverse proxy sends it: a few keep-alive connections from 127.0.0.1
//! (a trusted proxy) naming 5,000 visitors in `X-Forwarded-For`, each request posthog-js's
//! gzipped JSON array of 1 to 3 events (2 on average) with the page's `Origin`. Requests are
//! sent open-loop on a schedule (not one after another), so a slow answer does not slow the
//! offered rate; each answer's time is taken from its scheduled start.
//!
//! Window 0: 5,000 events/s on the loopback intake's PostHog route (no guards), the baseline.
//! Window 1: the same on the public intake. Window 2: the same, while one IP floods the public
//! intake as fast as four connections take answers; the visitors' answer times are compared
//! with window 1.
//! Prints `key=value` figures. Run with `scripts/bench-public [SECONDS] [EVENTS_PER_S] [memory]`
//! (`memory`: the agent answers once events are in memory instead of fsynced).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tda_tests::*;

const ORIGIN: &str = "https://app.example.com";
const KEY: &str = "phc_bench";
const VISITORS: u64 = 5_000;

/// The body of request `n`: 1, 2 or 3 events, gzipped as posthog-js sends it.
fn body(n: u64, events: u64, now: i64) -> Vec<u8> {
    let batch: Vec<_> = (0..events)
        .map(|i| {
            let name = ["$pageview", "export", "generate"][(n + i) as usize % 3];
            json!({"event": name,
                "distinct_id": format!("anon-{}", n % VISITORS), "uuid": format!("{n}-{i}"),
                "timestamp": now,
                "properties": {"token": KEY, "$lib": "web", "$lib_version": "1.449.2",
                    "$current_url": format!("{ORIGIN}/app/{}", n % 40), "$pathname": format!("/app/{}", n % 40),
                    "$browser": "Chrome", "$os": "Linux", "$device_type": "Desktop",
                    "$screen_width": 1920, "$screen_height": 1080, "$session_id": format!("s-{}", n % VISITORS)}})
        })
        .collect();
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&serde_json::to_vec(&batch).expect("json"))
        .expect("gzip");
    z.finish().expect("gzip")
}

/// The visitor address of request `n`.
fn visitor(n: u64) -> String {
    let v = n % VISITORS;
    format!("10.{}.{}.{}", v >> 16, (v >> 8) & 255, v & 255)
}

/// Answer times (ms, from each request's scheduled start) and statuses of one window.
struct Window {
    times: Vec<f64>,
    failed: u64,
    events: u64,
    secs: f64,
}

impl Window {
    fn print(&self, label: &str) {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        let q = |p: f64| t[((t.len() - 1) as f64 * p) as usize];
        println!(
            "{label}_events_per_s={:.0} {label}_requests={} {label}_failed={} \
             {label}_answer_p50_ms={:.2} {label}_answer_p99_ms={:.2} {label}_answer_max_ms={:.2}",
            self.events as f64 / self.secs,
            t.len(),
            self.failed,
            q(0.5),
            q(0.99),
            t[t.len() - 1]
        );
    }
}

/// Sends the visitors' requests on schedule for `secs` at `rate` events/s.
async fn visitors(url: &str, rate: f64, secs: u64, first: u64) -> Window {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let requests = (rate / 2.0 * secs as f64) as u64;
    let now = now_ms();
    let bodies: Vec<(u64, Vec<u8>)> = (first..first + requests)
        .map(|n| (n % 3 + 1, body(n, n % 3 + 1, now)))
        .collect();
    let events: u64 = bodies.iter().map(|(e, _)| e).sum();
    let gap = Duration::from_secs_f64(2.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(bodies.len());
    for (i, (_, b)) in bodies.into_iter().enumerate() {
        let at = start + gap * i as u32;
        let (client, url, ip) = (client.clone(), url.to_string(), visitor(first + i as u64));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let resp = client
                .post(&url)
                .header("origin", ORIGIN)
                .header("content-type", "text/plain")
                .header("x-forwarded-for", ip)
                .body(b)
                .send()
                .await;
            let ok = matches!(&resp, Ok(r) if r.status().as_u16() == 200);
            (at.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut w = Window {
        times: Vec::new(),
        failed: 0,
        events,
        secs: secs as f64,
    };
    for t in tasks {
        let (ms, ok) = t.await.expect("task");
        w.times.push(ms);
        w.failed += u64::from(!ok);
    }
    w
}

/// One IP posting back to back on `lanes` connections until `stop`: (answered 200, refused 429).
async fn flood(url: String, lanes: usize, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let now = now_ms();
    let tasks: Vec<_> = (0..lanes as u64)
        .map(|lane| {
            let (url, stop, ok, refused) = (url.clone(), stop.clone(), ok.clone(), refused.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let b = body(10_000_000_000 + lane * 1_000_000_000 + n, 1, now);
                    n += 1;
                    let resp = client
                        .post(&url)
                        .header("origin", ORIGIN)
                        .header("x-forwarded-for", "203.0.113.66")
                        .body(b)
                        .send()
                        .await;
                    match resp.map(|r| r.status().as_u16()) {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => refused.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<f64>().ok());
    let secs = args.next().unwrap_or(20.0) as u64;
    let rate = args.next().unwrap_or(5_000.0);
    let ack = if std::env::args().any(|a| a == "memory") {
        "memory"
    } else {
        "durable"
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let collector = CollectorSetup::new(&tmp.path().join("c"), "").start();
    let port = free_port();
    let agent = AgentSetup {
        batch: String::new(),
        intake: format!(
            "ack = \"{ack}\"\n[intake.posthog]\nkeys = [\"{KEY}\"]\n[intake.segment]\nenabled = false\n\
             [intake.public]\nlisten = \"127.0.0.1:{port}\"\norigins = [\"{ORIGIN}\"]\n\
             trusted_proxies = [\"127.0.0.1\"]\n"
        ),
        ..AgentSetup::new(&tmp.path().join("a"), &collector.url, collector.pid())
    }
    .start();
    let url = format!("http://127.0.0.1:{port}/e/");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    println!("window_secs={secs} offered_events_per_s={rate} visitors={VISITORS} ack={ack}");
    // Three seconds to warm up (connections, the spool's first files), not reported.
    rt.block_on(visitors(
        &format!("{}/e/", agent.url),
        rate,
        3,
        3_000_000_000,
    ));
    // The same load on the loopback intake's PostHog route, no guards: the baseline.
    let local = rt.block_on(visitors(
        &format!("{}/e/", agent.url),
        rate,
        secs,
        2_000_000_000,
    ));
    local.print("loopback");
    let steady = rt.block_on(visitors(&url, rate, secs, 0));
    steady.print("steady");
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = rt.spawn(flood(url.clone(), 4, stop.clone()));
    let t0 = Instant::now();
    let during = rt.block_on(visitors(&url, rate, secs, 1_000_000_000));
    stop.store(true, Ordering::Relaxed);
    let (ok, refused) = rt.block_on(flooding).expect("flood");
    let flood_secs = t0.elapsed().as_secs_f64();
    during.print("with_flood");
    println!(
        "flood_requests_per_s={:.0} flood_accepted={ok} flood_refused={refused}",
        (ok + refused) as f64 / flood_secs
    );
    let p99 = |w: &Window| {
        let mut t = w.times.clone();
        t.sort_by(f64::total_cmp);
        t[((t.len() - 1) as f64 * 0.99) as usize]
    };
    println!(
        "public_p99_ratio_to_loopback={:.2} visitors_p99_ratio_with_flood={:.2}",
        p99(&steady) / p99(&local),
        p99(&during) / p99(&steady)
    );
    let h = agent_counters(&agent.url);
    println!(
        "agent_events_received={} agent_requests_rejected={}",
        h["events_received"], h["requests_rejected"]
    );
    drop(agent);
    drop(collector);
}
