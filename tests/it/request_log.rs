//! The agent follows a JSON-lines request log: lines become events in the collector with the
//! mapped fields, through rotation and truncation and across a restart, each line once.

use std::io::Write;
use std::path::Path;

use tda_tests::*;

fn append(path: &Path, users: std::ops::Range<u32>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let t0 = now_ms() - 30_000;
    for i in users {
        writeln!(f, "{{\"time\": {}, \"uid\": \"u{i}\", \"path\": \"/api/v1/generate\", \"code\": 200, \"ms\": {i}, \"name\": \"generate\", \"verb\": \"POST\"}}", t0 + i as i64).unwrap();
    }
}

/// User ids of the collector's events of the last ten minutes, once there are `n`.
fn stored_users(collector: &str, n: usize) -> Vec<String> {
    let events = recent_events(collector, n);
    let mut users: Vec<String> = events
        .iter()
        .map(|e| e["user_id"].as_str().unwrap().to_string())
        .collect();
    users.sort_by_key(|u| u[1..].parse::<u32>().unwrap());
    users
}

fn expected(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("u{i}")).collect()
}

#[test]
fn the_request_log_is_followed_through_rotation_truncation_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let log = tmp.path().join("td-generator").join("requests.jsonl");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    append(&log, 0..5); // written before the agent's first start: not read (start_at = "end")
    let setup = AgentSetup {
        tables: format!(
            "[request_log]\npath = {:?}\ntimestamp = [\"time\"]\nuser_id = [\"uid\"]\npoll_interval = \"200ms\"\n\
             [request_log.mapping]\nfeature = [\"name\"]\nroute = [\"path\"]\nstatus = [\"code\"]\nlatency_ms = [\"ms\"]\n",
            log.display().to_string()
        ),
        ..AgentSetup::new(&tmp.path().join("agent"), &collector.url, collector.pid())
    };
    let mut agent = setup.start();
    wait_for("the tail at the end of the log", || {
        tmp.path()
            .join("agent/spool/request-log.position")
            .exists()
            .then_some(())
    });
    append(&log, 5..10);
    assert_eq!(stored_users(&collector.url, 5), expected(5..10));
    let (_, page) = get_json(&format!(
        "{}/api/v1/events?from={}&to={}&limit=1",
        collector.url,
        now_ms() - 600_000,
        now_ms() + 60_000
    ));
    let e = &page["events"][0];
    assert_eq!(
        (&e["feature"], &e["route"], &e["status"]),
        (&"generate".into(), &"/api/v1/generate".into(), &200.into())
    );
    assert_eq!(e["properties"], serde_json::json!({"verb": "POST"}));

    // Rotation: logrotate renames the file; the service writes a bit more to the old one, then
    // opens a new one.
    append(&log, 10..12);
    std::fs::rename(&log, log.with_extension("jsonl.1")).unwrap();
    append(&log.with_extension("jsonl.1"), 12..13);
    append(&log, 13..15);
    assert_eq!(stored_users(&collector.url, 10), expected(5..15));

    // copytruncate: the file is emptied in place and written again.
    std::fs::write(&log, "").unwrap();
    append(&log, 15..18);
    assert_eq!(stored_users(&collector.url, 13), expected(5..18));

    // A restart: lines written while the agent is down are read once, and nothing before.
    agent.terminate();
    append(&log, 18..21);
    let agent = setup.start();
    assert_eq!(stored_users(&collector.url, 16), expected(5..21));
    append(&log, 21..22);
    assert_eq!(stored_users(&collector.url, 17), expected(5..22));
    assert_eq!(agent_counters(&agent.url)["log_lines_rejected"], 0);
}

#[test]
fn bad_lines_are_refused_with_file_and_line_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let log = tmp.path().join("requests.jsonl");
    std::fs::write(&log, "").unwrap();
    let agent = AgentSetup {
        tables: format!(
            "[request_log]\npath = {:?}\nstart_at = \"beginning\"\nuser_id = [\"uid\"]\ntimestamp = [\"time\"]\n",
            log.display().to_string()
        ),
        ..AgentSetup::new(&tmp.path().join("agent"), &collector.url, collector.pid())
    }
    .start();
    std::fs::write(
        &log,
        "{\"uid\": \"u0\", \"route\": \"/a\"}\nnot json\n{\"route\": \"/b\"}\n",
    )
    .unwrap();
    append(&log, 1..3);
    assert_eq!(stored_users(&collector.url, 3), expected(0..3));
    let counters = wait_for("two lines refused", || {
        let c = agent_counters(&agent.url);
        (c["log_lines_rejected"] == 2).then_some(c)
    });
    assert_eq!(counters["log_events_read"], 3);
    let text = agent.log_text();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request log line refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(
        refused[0].contains("line=2") && refused[0].contains("not JSON"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("line=3") && refused[1].contains("no user id (looked for uid)"),
        "{}",
        refused[1]
    );
    assert!(refused[0].contains("requests.jsonl"), "{}", refused[0]);
}
