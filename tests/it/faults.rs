//! Nothing lost, nothing doubled: fault tests with real processes. Each prints
//! sent / stored / duplicated / dropped and the time to recover.
//!
//! (Over 600 lines: one test per fault, each with its own setup, so one can be read alone.)

use std::fs;
use std::time::{Duration, Instant};

use tda_tests::proxy::{Fault, Proxy};
use tda_tests::traffic::{events, Traffic, LANE_MS};
use tda_tests::*;

/// Lane `lane`'s events: `[t0 + lane * LANE_MS, t0 + (lane + 1) * LANE_MS)`.
fn lane_range(t0: i64, lane: u64) -> (i64, i64) {
    let start = t0 + lane as i64 * LANE_MS;
    (start, start + LANE_MS)
}

fn stored(collector: &str, t0: i64, lanes: u64) -> u64 {
    (0..lanes)
        .map(|l| {
            let (from, to) = lane_range(t0, l);
            usage(collector, from, to)["total_requests"]
                .as_u64()
                .unwrap()
        })
        .sum()
}

fn collector_counter(c: &Daemon, name: &str) -> u64 {
    get_json(&format!("{}/healthz", c.url)).1["ingest"][name]
        .as_u64()
        .unwrap_or(0)
}

fn report(test: &str, sent: u64, stored: u64, duplicated: u64, dropped: u64, recovered: Duration) {
    eprintln!("{test}: sent={sent} stored={stored} duplicated={duplicated} dropped={dropped} recovered_in_ms={}", recovered.as_millis());
}

/// The events start about 4.6 days ago, lanes 27.8 hours apart: all in the past, all within the
/// default 30-day retention.
fn t0() -> i64 {
    now_ms() - 4 * LANE_MS
}

/// `n` agents `agent-0` … shipping to `collector`, each under `<dir>/a<i>`.
fn start_agents(dir: &std::path::Path, collector: &str, n: usize) -> Vec<Daemon> {
    (0..n)
        .map(|i| {
            let mut a = AgentSetup::new(&dir.join(format!("a{i}")), collector, std::process::id());
            a.id = format!("agent-{i}");
            a.start()
        })
        .collect()
}

/// A sender per agent, lane `i` for agent `i`.
fn start_traffic(agents: &[Daemon], t0: i64, per_request: u64, every: Duration) -> Vec<Traffic> {
    agents
        .iter()
        .enumerate()
        .map(|(i, a)| Traffic::start(&a.url, t0, i as u64, per_request, every))
        .collect()
}

/// An agent under `<dir>/a` shipping to `collector`, closing a batch at every 100 events.
fn hundred_event_batches(dir: &std::path::Path, collector: &str) -> AgentSetup {
    let mut agent = AgentSetup::new(&dir.join("a"), collector, std::process::id());
    agent.batch = "max_events = 100\nmax_age_ms = 200".into();
    agent
}

/// Posts `n` requests of 100 events of lane 0 (events `0..n * 100`).
fn post_hundreds(agent: &str, t0: i64, n: u64) {
    for i in 0..n {
        let (status, _) = post(
            &format!("{agent}/v1/events"),
            &[],
            events(t0, 0, i * 100, 100),
        );
        assert_eq!(status, 202);
    }
}

#[test]
fn kill_9_the_collector_ten_times_under_load_from_three_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let mut collector = setup.start();
    let t0 = t0();
    let agents = start_agents(tmp.path(), &collector.url, 3);
    let traffic = start_traffic(&agents, t0, 20, Duration::from_millis(20));
    for round in 0..10 {
        // Let ingest run for a varying while, then crash the collector mid-stream.
        std::thread::sleep(Duration::from_millis(300 + 70 * round));
        collector.kill();
        collector = setup.start();
    }
    let restarted = Instant::now();
    let sent: u64 = traffic.into_iter().map(Traffic::stop).sum();
    let total = wait_for("every accepted event stored", || {
        let s = stored(&collector.url, t0, 3);
        (s >= sent).then_some(s)
    });
    let dropped: u64 = agents
        .iter()
        .map(|a| agent_counters(&a.url)["events_dropped"].as_u64().unwrap())
        .sum();
    report(
        "kill_9_collector",
        sent,
        total,
        collector_counter(&collector, "batches_duplicate"),
        dropped,
        restarted.elapsed(),
    );
    assert!(sent > 1000, "sustained ingest: {sent}");
    assert_eq!(total, sent, "stored == sent exactly");
    assert_eq!(dropped, 0);
}

#[test]
fn a_two_minute_collector_outage_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let mut collector = setup.start();
    let t0 = t0();
    let agents = start_agents(tmp.path(), &collector.url, 2);
    let traffic = start_traffic(&agents, t0, 10, Duration::from_millis(100));
    std::thread::sleep(Duration::from_secs(1));
    collector.kill();
    std::thread::sleep(Duration::from_secs(120)); // the outage under test
    let spooled: u64 = agents
        .iter()
        .map(|a| agent_counters(&a.url)["spool_batches"].as_u64().unwrap())
        .sum();
    let collector = setup.start();
    let back = Instant::now();
    let sent: u64 = traffic.into_iter().map(Traffic::stop).sum();
    let total = wait_for("the outage's events delivered", || {
        let s = stored(&collector.url, t0, 2);
        (s >= sent).then_some(s)
    });
    report(
        "collector_outage_2min",
        sent,
        total,
        collector_counter(&collector, "batches_duplicate"),
        0,
        back.elapsed(),
    );
    eprintln!("collector_outage_2min: spool_batches_at_return={spooled}");
    assert!(
        spooled > 50,
        "the agents spooled during the outage: {spooled}"
    );
    assert_eq!(total, sent);
}

#[test]
fn kill_9_an_agent_mid_shipment_then_restart_it() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let t0 = t0();
    // The collector is away while 40 batches of 100 events are spooled.
    let proxy = Proxy::start(format!("127.0.0.1:{}", setup.port), |_| {
        Fault::Delay(Duration::from_millis(40))
    });
    let agent_setup = hundred_event_batches(tmp.path(), &proxy.url);
    let mut agent = agent_setup.start();
    post_hundreds(&agent.url, t0, 40);
    wait_for("4000 events spooled", || {
        (agent_counters(&agent.url)["events_spooled"] == 4000).then_some(())
    });
    let collector = setup.start();
    wait_for("shipping under way", || {
        (agent_counters(&agent.url)["batches_sent"].as_u64() >= Some(5)).then_some(())
    });
    agent.kill();
    let left = fs::read_dir(agent_setup.dir.join("spool")).unwrap().count();
    let restarted = Instant::now();
    let agent = agent_setup.start();
    let total = wait_for("all 4000 events stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= 4000 && agent_counters(&agent.url)["spool_batches"] == 0).then_some(s)
    });
    report(
        "kill_9_agent",
        4000,
        total,
        collector_counter(&collector, "batches_duplicate"),
        0,
        restarted.elapsed(),
    );
    eprintln!("kill_9_agent: spool_files_after_kill={left}");
    assert!(
        left > 0 && left < 40,
        "killed mid-shipment: {left} files left"
    );
    assert_eq!(total, 4000);
}

/// A fixed permutation-like mix of `n` (splitmix64's finaliser).
fn scramble(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_faulty_network_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let collector = setup.start();
    // The first connections get one fault each, then a fixed mix in a scrambled order. Not a
    // cycle: the agent's own requests come in patterns (a health probe, then the batch), and a
    // cycle can line up with one so the batch always meets a fault.
    let proxy = Proxy::start(format!("127.0.0.1:{}", setup.port), |n| match n {
        0 => Fault::Reset,
        1 => Fault::CutResponse,
        2 => Fault::CutRequest,
        3 => Fault::Delay(Duration::from_millis(150)),
        n => [
            Fault::Pass,
            Fault::CutResponse,
            Fault::Pass,
            Fault::Reset,
            Fault::Delay(Duration::from_millis(100)),
        ][(scramble(n) % 5) as usize],
    });
    let agent_setup = hundred_event_batches(tmp.path(), &proxy.url);
    let agent = agent_setup.start();
    let t0 = t0();
    let start = Instant::now();
    post_hundreds(&agent.url, t0, 30);
    let total = wait_for("all 3000 events stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= 3000 && agent_counters(&agent.url)["spool_batches"] == 0).then_some(s)
    });
    let dup = collector_counter(&collector, "batches_duplicate");
    report("faulty_network", 3000, total, dup, 0, start.elapsed());
    let counts: Vec<u64> = proxy
        .counts
        .by_fault
        .iter()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    eprintln!("faulty_network: connections pass/reset/cut_request/delay/cut_response = {counts:?}");
    assert_eq!(total, 3000, "no loss, no double");
    assert!(
        dup >= 1,
        "a response cut after the store was retried and recognised as a duplicate"
    );
    assert!(
        counts.iter().all(|c| *c >= 1),
        "every fault happened: {counts:?}"
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let mut agent_setup =
        hundred_event_batches(tmp.path(), &format!("http://127.0.0.1:{}", setup.port));
    agent_setup.spool = "dir = \"spool\"\nmax_bytes = 65536".into();
    let agent = agent_setup.start();
    let t0 = t0();
    let sent: u64 = 200 * 100;
    post_hundreds(&agent.url, t0, 200);
    let counters = wait_for("every event spooled", || {
        let c = agent_counters(&agent.url);
        (c["events_spooled"] == sent).then_some(c)
    });
    assert!(
        counters["events_dropped"].as_u64() > Some(0),
        "a 64 KiB spool cannot hold 20,000 events"
    );
    let collector = setup.start();
    let start = Instant::now();
    // The spool is empty only once every kept batch is acknowledged, so count after that.
    wait_for("the spool drained", || {
        (agent_counters(&agent.url)["spool_batches"] == 0).then_some(())
    });
    let total = stored(&collector.url, t0, 1);
    // Read after the drain: batches of samples alone may still have pushed old ones out.
    let dropped = agent_counters(&agent.url)["events_dropped"]
        .as_u64()
        .unwrap();
    report(
        "spool_full",
        sent,
        total,
        collector_counter(&collector, "batches_duplicate"),
        dropped,
        start.elapsed(),
    );
    assert_eq!(total + dropped, sent, "the dropped counter is exact");
    let (from, _) = lane_range(t0, 0);
    assert_eq!(
        usage(&collector.url, from, from + dropped as i64)["total_requests"],
        0,
        "the oldest were dropped"
    );
    assert_eq!(
        usage(&collector.url, from + dropped as i64, from + sent as i64)["total_requests"],
        total,
        "the newest were kept"
    );
    let log = fs::read_to_string(agent_setup.dir.join("agent.log")).unwrap();
    assert_eq!(
        log.matches("spool full: dropping the oldest").count(),
        1,
        "one log line per episode"
    );
}

#[test]
fn a_corrupt_spool_tail_is_reported_and_the_good_records_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let agent_setup =
        hundred_event_batches(tmp.path(), &format!("http://127.0.0.1:{}", setup.port));
    let mut agent = agent_setup.start();
    let t0 = t0();
    post_hundreds(&agent.url, t0, 10);
    wait_for("1000 events spooled", || {
        (agent_counters(&agent.url)["events_spooled"] == 1000).then_some(())
    });
    assert!(agent.terminate().success());
    let spool = agent_setup.dir.join("spool");
    let mut files: Vec<_> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let last = files.last().unwrap().clone();
    let data = fs::read(&last).unwrap();
    let lost = u64::from_le_bytes(data[9..17].try_into().unwrap()); // the events in that batch
    fs::write(&last, &data[..data.len() - 10]).unwrap(); // a torn tail
    let agent = agent_setup.start();
    let c = agent_counters(&agent.url);
    assert_eq!(c["spool_corrupt"], 1);
    assert_eq!(
        c["spool_batches"].as_u64().unwrap() as usize,
        files.len() - 1
    );
    let log = fs::read_to_string(agent_setup.dir.join("agent.log")).unwrap();
    assert!(
        log.contains("corrupt spool file removed"),
        "reported in the log"
    );
    let collector = setup.start();
    let start = Instant::now();
    wait_for("the spool drained", || {
        (agent_counters(&agent.url)["spool_batches"] == 0).then_some(())
    });
    let total = stored(&collector.url, t0, 1);
    report(
        "corrupt_spool_tail",
        1000,
        total,
        collector_counter(&collector, "batches_duplicate"),
        lost,
        start.elapsed(),
    );
    assert_eq!(total, 1000 - lost);
}

#[test]
fn a_full_write_queue_answers_429_with_retry_after_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "[limits]\nmax_inflight_batches = 1\n").start();
    let t0 = t0();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8u64)
        .map(|lane| {
            let (url, barrier) = (format!("{}/v1/batches", c.url), barrier.clone());
            std::thread::spawn(move || {
                let events: serde_json::Value = serde_json::from_slice(&events(t0, lane, 0, 2000)).unwrap();
                let batch = serde_json::json!({"version": 1, "agent_id": "a", "batch_id": format!("b{lane}"), "created_at": t0, "events": events});
                let body = serde_json::to_vec(&batch).unwrap();
                let client = http();
                barrier.wait();
                let mut throttled = 0;
                loop {
                    let resp = client.post(&url).bearer_auth(TOKEN).body(body.clone()).send().unwrap();
                    if resp.status().as_u16() != 429 {
                        assert_eq!(resp.status().as_u16(), 200);
                        return throttled;
                    }
                    assert_eq!(resp.headers()["retry-after"], "1");
                    throttled += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20)); // the client's backoff
                }
            })
        })
        .collect();
    let throttled: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let total = stored(&c.url, t0, 8);
    report(
        "write_queue_full",
        16_000,
        total,
        collector_counter(&c, "batches_duplicate"),
        0,
        Duration::ZERO,
    );
    eprintln!("write_queue_full: answers_429={throttled}");
    assert!(throttled >= 1 && collector_counter(&c, "batches_throttled") == u64::from(throttled));
    assert_eq!(total, 16_000);
}

#[test]
fn sigterm_finishes_in_flight_batches_and_exits_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let mut collector = setup.start();
    let t0 = t0();
    let agent = start_agent(&tmp.path().join("a"), &collector.url, std::process::id());
    let traffic = Traffic::start(&agent.url, t0, 0, 50, Duration::from_millis(10));
    std::thread::sleep(Duration::from_secs(1)); // ingest under way
    let asked = Instant::now();
    let status = collector.terminate();
    let exit = asked.elapsed();
    let collector = setup.start();
    let sent = traffic.stop();
    let total = wait_for("everything stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= sent).then_some(s)
    });
    report(
        "collector_sigterm",
        sent,
        total,
        collector_counter(&collector, "batches_duplicate"),
        0,
        exit,
    );
    assert!(status.success(), "{status}");
    assert!(
        exit < Duration::from_secs(12),
        "exited {exit:?} after SIGTERM"
    );
    assert_eq!(total, sent);
}

#[test]
fn a_full_spool_under_refuse_intake_answers_503_and_a_kill_9_loses_nothing_it_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    // The collector is away: the spool fills.
    let mut agent_setup =
        hundred_event_batches(tmp.path(), &format!("http://127.0.0.1:{}", setup.port));
    agent_setup.spool = "dir = \"spool\"\nmax_bytes = 65536\nwhen_full = \"refuse_intake\"".into();
    let mut agent = agent_setup.start();
    let t0 = t0();
    let client = http();
    let (mut accepted, mut refused) = (0u64, 0u64);
    while refused < 20 {
        let resp = client
            .post(format!("{}/v1/events", agent.url))
            .body(events(t0, 0, accepted, 100))
            .send()
            .unwrap();
        match resp.status().as_u16() {
            202 => accepted += 100,
            503 => {
                assert_eq!(resp.headers()["retry-after"], "5");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(accepted < 1_000_000, "the intake never refused");
    }
    let counters = agent_counters(&agent.url);
    assert_eq!(counters["intake_refused"].as_u64(), Some(refused));
    agent.kill(); // every accepted event is in the spool or the write-ahead log
    let collector = setup.start();
    let agent = agent_setup.start();
    let start = Instant::now();
    let total = wait_for("every accepted event stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= accepted && agent_counters(&agent.url)["spool_batches"] == 0).then_some(s)
    });
    report(
        "refuse_intake_kill_9",
        accepted,
        total,
        collector_counter(&collector, "batches_duplicate"),
        0,
        start.elapsed(),
    );
    eprintln!("refuse_intake_kill_9: refused_requests={refused}");
    assert_eq!(
        total, accepted,
        "accepted == stored, none lost, none doubled"
    );
}

#[test]
fn kill_9_an_agent_under_load_loses_nothing_it_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let collector = setup.start();
    let t0 = t0();
    let mut agent_setup =
        AgentSetup::new(&tmp.path().join("a"), &collector.url, std::process::id());
    agent_setup.batch = "max_age_ms = 5000".into(); // a wide-open batch when the kill comes
    let mut agent = agent_setup.start();
    let traffic = Traffic::start(&agent.url, t0, 0, 50, Duration::from_millis(5));
    wait_for("traffic under way", || {
        (traffic.accepted() >= 3_000).then_some(())
    });
    agent.kill();
    let accepted = traffic.stop();
    let agent = agent_setup.start();
    let start = Instant::now();
    let total = wait_for("every acknowledged event stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= accepted && agent_counters(&agent.url)["spool_batches"] == 0).then_some(s)
    });
    report(
        "kill_9_agent_durable",
        accepted,
        total,
        collector_counter(&collector, "batches_duplicate"),
        0,
        start.elapsed(),
    );
    // Every acknowledged event is stored once; beyond them at most the request the kill cut
    // off after its events were written but before its answer arrived.
    let (from, _) = lane_range(t0, 0);
    assert_eq!(
        usage(&collector.url, from, from + accepted as i64)["total_requests"],
        accepted,
        "acknowledged == stored exactly"
    );
    assert!(
        total == accepted || total == accepted + 50,
        "{total} stored for {accepted} acknowledged"
    );
}

#[test]
fn agents_resume_within_seconds_of_the_collector_returning() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "");
    let t0 = t0();
    let agent =
        hundred_event_batches(tmp.path(), &format!("http://127.0.0.1:{}", setup.port)).start();
    post_hundreds(&agent.url, t0, 5);
    // Long enough for the retry backoff to grow past 10 s.
    wait_for("the backoff grown", || {
        (agent_counters(&agent.url)["send_retries"].as_u64() >= Some(8)).then_some(())
    });
    let collector = setup.start();
    let back = Instant::now();
    wait_for("the agent sending again", || {
        (agent_counters(&agent.url)["batches_sent"].as_u64() >= Some(1)).then_some(())
    });
    let resumed = back.elapsed();
    eprintln!("agent_resume: resumed_in_ms={}", resumed.as_millis());
    assert!(
        resumed < Duration::from_secs(3),
        "the agent came back {resumed:?} after the collector (its health probe runs every second)"
    );
    let total = wait_for("all 500 stored", || {
        let s = stored(&collector.url, t0, 1);
        (s >= 500).then_some(s)
    });
    assert_eq!(total, 500);
}

#[test]
fn an_event_the_collector_refuses_costs_itself_not_its_batch() {
    let tmp = tempfile::tempdir().unwrap();
    // A collector with a smaller body limit than the agent's batches can reach.
    let collector =
        CollectorSetup::new(&tmp.path().join("c"), "[limits]\nmax_body_bytes = 65536\n").start();
    let agent = hundred_event_batches(tmp.path(), &collector.url).start();
    let t0 = t0();
    let client = http();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: String = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdef"[(state % 16) as usize])
        })
        .collect();
    for i in 0..20u64 {
        let mut evs: Vec<serde_json::Value> =
            serde_json::from_slice(&events(t0, 0, i * 100, 100)).unwrap();
        if i == 7 {
            // One poison event among good ones: too large for this collector once batched.
            evs[42]["properties"] = serde_json::json!({ "blob": noise });
        }
        let resp = client
            .post(format!("{}/v1/events", agent.url))
            .json(&evs)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }
    let counters = wait_for("every batch stored or quarantined", || {
        let c = agent_counters(&agent.url);
        (c["spool_batches"] == 0 && c["events_quarantined"] == 1).then_some(c)
    });
    let total = stored(&collector.url, t0, 1);
    report(
        "poison_event",
        2000,
        total,
        collector_counter(&collector, "batches_duplicate"),
        1,
        Duration::ZERO,
    );
    eprintln!("poison_event: batches_split={}", counters["batches_split"]);
    assert_eq!(total, 1999, "every event but the poison one stored");
    assert!(counters["batches_split"].as_u64() >= Some(1));
    assert_eq!(counters["events_quarantined"], 1);
}
