//! Live reload against a real collector and agent with real files: edits apply within 2 s, bad
//! edits keep the last good version and say where they are wrong, bursts coalesce, renames and
//! deletes are seen, SIGHUP and `POST /-/reload` work, agents follow the sampling interval, and
//! the `validate` commands exit as they should.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;
use tda_tests::*;

const USAGE: &str =
    "name = \"Usage\"\ntype = \"usage\"\n[settings]\naggregation_level = \"minute\"\n";

fn profiles(c: &Daemon) -> Value {
    get_json(&format!("{}/api/v1/profiles", c.url)).1
}

fn level(c: &Daemon) -> String {
    get_json(&format!("{}/api/v1/stats/usage?from=1h", c.url)).1["aggregation_level"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn reloads(c: &Daemon) -> u64 {
    profiles(c)["reload"]["reloads_total"].as_u64().unwrap()
}

/// Waits for `check`, failing if it takes longer than `within`.
fn within<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let v = wait_for(what, &mut check);
    assert!(
        start.elapsed() <= within,
        "{what} took {:?}, more than {within:?}",
        start.elapsed()
    );
    v
}

#[test]
fn an_edit_is_live_and_a_bad_edit_keeps_the_last_good_version() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[reload]\npoll_interval = \"1h\"\n");
    setup.profile("usage.toml", USAGE);
    setup.profile("perf.toml", "name = \"Perf\"\ntype = \"performance\"\n");
    let c = setup.start();
    assert_eq!(level(&c), "minute");
    let perf_loaded = profiles(&c)["profiles"][0]["loaded_at"].clone();

    setup.profile("usage.toml", &USAGE.replace("minute", "hour"));
    within(Duration::from_secs(2), "the edit to be live", || {
        (level(&c) == "hour").then_some(())
    });

    setup.profile(
        "usage.toml",
        &USAGE
            .replace("\"usage\"", "\"sales\"")
            .replace("minute", "day"),
    );
    let file = setup.dir.join("profiles/usage.toml");
    let v = within(
        Duration::from_secs(2),
        "the bad edit to be reported",
        || {
            let v = profiles(&c);
            (v["errors"].as_array()?.len() == 1).then_some(v)
        },
    );
    let want = format!("{}:2:8: unknown variant `sales`, expected one of `usage`, `performance`, `predictive`, `behavioral`", file.display());
    assert_eq!(v["errors"][0], want.as_str());
    let usage = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == file.to_str().unwrap())
        .unwrap();
    assert_eq!(
        (
            usage["status"].as_str(),
            usage["settings"]["aggregation_level"].as_str()
        ),
        (Some("error"), Some("hour"))
    );
    assert_eq!(v["reload"]["last_reload_ok"], false);
    assert_eq!(level(&c), "hour", "the last good version stays in force");
    assert_eq!(
        profiles(&c)["profiles"][0]["loaded_at"],
        perf_loaded,
        "the unchanged profile was not reloaded"
    );
    let listed = tda(&c.url, &["profile", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(&format!("error: {want}")), "{text}");
    assert!(text.contains("usage        error"), "{text}");

    setup.profile("usage.toml", &USAGE.replace("minute", "day"));
    within(Duration::from_secs(2), "the fix to be live", || {
        (level(&c) == "day").then_some(())
    });
    let v = profiles(&c);
    assert_eq!(
        (
            v["errors"].as_array().unwrap().len(),
            &v["reload"]["last_reload_ok"]
        ),
        (0, &Value::Bool(true))
    );
}

#[test]
fn ten_saves_in_100_ms_cause_one_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[reload]\npoll_interval = \"1h\"\n");
    setup.profile("usage.toml", USAGE);
    let c = setup.start();
    let before = reloads(&c);
    for i in 0..10 {
        let level = if i == 9 { "day" } else { "hour" };
        setup.profile(
            "usage.toml",
            &format!("{USAGE}# save {i}\n").replace("minute", level),
        );
        std::thread::sleep(Duration::from_millis(10)); // the burst itself: ten saves over 100 ms
    }
    wait_for("the last save to be live", || {
        (level(&c) == "day").then_some(())
    });
    assert_eq!(reloads(&c), before + 1);
    std::thread::sleep(Duration::from_millis(600)); // three debounce periods: no late second reload
    assert_eq!(reloads(&c), before + 1);
}

#[test]
fn rename_saves_and_deletes_are_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[reload]\npoll_interval = \"1h\"\n");
    setup.profile("usage.toml", USAGE);
    let c = setup.start();
    let dir = setup.dir.join("profiles");
    // An editor's atomic save: write a temporary file, rename it over the profile.
    fs::write(dir.join(".usage.toml.swp"), USAGE.replace("minute", "hour")).unwrap();
    fs::rename(dir.join(".usage.toml.swp"), dir.join("usage.toml")).unwrap();
    within(Duration::from_secs(2), "the rename-save", || {
        (level(&c) == "hour").then_some(())
    });
    fs::remove_file(dir.join("usage.toml")).unwrap();
    within(Duration::from_secs(2), "the delete", || {
        profiles(&c)["profiles"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    assert_eq!(level(&c), "minute", "no usage profile: the default level");
}

#[test]
fn the_poll_finds_changes_without_file_events() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(
        tmp.path(),
        "[reload]\nwatch = false\npoll_interval = \"300ms\"\n",
    );
    setup.profile("usage.toml", USAGE);
    let c = setup.start();
    setup.profile(
        "usage.toml",
        &format!("{USAGE}# a longer file\n").replace("minute", "hour"),
    );
    within(Duration::from_secs(2), "the poll to apply the edit", || {
        (level(&c) == "hour").then_some(())
    });
}

#[test]
fn sighup_and_the_reload_endpoint_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(
        tmp.path(),
        "[reload]\nwatch = false\npoll_interval = \"1h\"\n",
    );
    setup.profile("usage.toml", USAGE);
    let c = setup.start();
    setup.profile("usage.toml", &USAGE.replace("minute", "hour"));
    assert_eq!(
        level(&c),
        "minute",
        "no events, no poll: nothing reloads by itself"
    );
    c.signal("HUP");
    wait_for("SIGHUP to reload", || (level(&c) == "hour").then_some(()));

    setup.profile("usage.toml", &USAGE.replace("minute", "day"));
    let url = format!("{}/-/reload", c.url);
    assert_eq!(post(&url, &[], vec![]).0, 401);
    assert_eq!(
        post(
            &url,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            vec![]
        )
        .0,
        403,
        "an agent token is not an admin token"
    );
    let (status, v) = post(
        &url,
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        vec![],
    );
    assert_eq!(status, 200);
    assert_eq!(v["profiles"]["changed"], serde_json::json!(["usage"]));
    assert_eq!(level(&c), "day");
}

#[test]
fn collector_config_edits_apply_or_ask_for_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "[reload]\npoll_interval = \"1h\"\n");
    let c = setup.start();
    let batch = |token: &str| {
        let body = format!(
            "{{\"version\":1,\"agent_id\":\"a\",\"batch_id\":\"{}\",\"created_at\":{}}}",
            now_ms(),
            now_ms()
        );
        post(
            &format!("{}/v1/batches", c.url),
            &[("authorization", &format!("Bearer {token}"))],
            body.into_bytes(),
        )
        .0
    };
    assert_eq!(batch(TOKEN), 200);

    // A token file edit takes effect at the next reload: the old token is revoked.
    fs::write(setup.dir.join("tokens"), "rotated-token\n").unwrap();
    c.signal("HUP");
    wait_for("the rotated token", || {
        (batch("rotated-token") == 200).then_some(())
    });
    assert_eq!(batch(TOKEN), 401);

    // A live setting applies, a restart-only setting is named, the rest of the edit still applies.
    let text = fs::read_to_string(setup.config_file()).unwrap();
    let edited = text
        .replace("127.0.0.1:", "127.0.0.2:")
        .replace("[auth]", "[limits]\nmax_body_bytes = 50\n[auth]");
    fs::write(setup.config_file(), edited).unwrap();
    let v = wait_for("the config reload", || {
        let v = profiles(&c);
        (!v["config"]["restart_needed"].as_array()?.is_empty()).then_some(v)
    });
    assert_eq!(v["config"]["restart_needed"], serde_json::json!(["listen"]));
    assert_eq!(
        batch("rotated-token"),
        413,
        "the new body limit is in force"
    );

    // A broken config keeps the one in force and says where it is wrong.
    fs::write(setup.config_file(), "listen = \n").unwrap();
    let v = wait_for("the config error", || {
        let v = profiles(&c);
        v["config"]["last_error"].as_str().map(str::to_string)
    });
    assert!(
        v.starts_with(&format!("{}:1:10:", setup.config_file().display())),
        "{v}"
    );
    assert_eq!(batch("rotated-token"), 413, "still the last good config");
}

#[test]
fn an_agent_follows_the_collectors_sampling_interval_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("c"), "[reload]\npoll_interval = \"1h\"\n");
    let perf = |secs: u64| {
        format!("name = \"Perf\"\ntype = \"performance\"\nagents = [\"test-*\"]\n[settings]\ncollection_interval = {secs}\n")
    };
    setup.profile("perf.toml", &perf(1));
    let c = setup.start();
    let agent = start_agent(&tmp.path().join("a"), &c.url, c.pid());
    let health = || get_json(&format!("{}/healthz", agent.url)).1;
    wait_for("the collector's interval", || {
        (health()["sampling"]["source"] == "collector").then_some(())
    });
    let samples = || -> Vec<i64> {
        let v = get_json(&format!(
            "{}/api/v1/agents/test-agent/samples?from=10m",
            c.url
        ))
        .1;
        v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["timestamp"].as_i64().unwrap())
            .collect()
    };
    wait_for("three samples a second apart", || {
        (samples().len() >= 3).then_some(())
    });

    setup.profile("perf.toml", &perf(3));
    wait_for("the agent to take 3 s", || {
        (health()["sampling"]["interval_secs"] == 3).then_some(())
    });
    let switched = samples().len();
    let ts = wait_for("three samples at the new interval", || {
        let ts = samples();
        (ts.len() >= switched + 3).then_some(ts)
    });
    let gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, g) in gaps.iter().enumerate() {
        assert!((700..=3_400).contains(g), "gap {i} is {g} ms: {gaps:?}");
    }
    assert!(
        gaps[..switched - 2].iter().all(|g| *g <= 1_400),
        "1 s before the change: {gaps:?}"
    );
    assert!(
        gaps[switched..].iter().all(|g| *g >= 2_600),
        "3 s after the change: {gaps:?}"
    );
    assert_eq!(
        health()["counters"]["samples_taken"].as_u64().unwrap() as usize,
        samples().len().max(ts.len())
    );
}

#[test]
fn an_agent_config_edit_moves_it_to_another_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let first = CollectorSetup::new(&tmp.path().join("c1"), "").start();
    let second = CollectorSetup::new(&tmp.path().join("c2"), "").start();
    let agent_dir = tmp.path().join("a");
    let agent = start_agent(&agent_dir, &first.url, first.pid());
    let config = agent_dir.join("agent.toml");
    let text = fs::read_to_string(&config).unwrap();
    let listen = text
        .lines()
        .find(|l| l.starts_with("listen"))
        .unwrap()
        .to_string();
    fs::write(
        &config,
        text.replace(&first.url, &second.url)
            .replace(&listen, "listen = \"127.0.0.1:1\""),
    )
    .unwrap();
    let health = wait_for("the agent to reload", || {
        let v = get_json(&format!("{}/healthz", agent.url)).1;
        (v["collector"] == second.url.as_str()).then_some(v)
    });
    assert_eq!(
        health["config"]["restart_needed"],
        serde_json::json!(["intake.listen"])
    );
    let t0 = now_ms() - 1000;
    let ev = format!("[{{\"timestamp\":{t0},\"user_id\":\"u\",\"feature\":\"f\"}}]");
    assert_eq!(
        post(&format!("{}/v1/events", agent.url), &[], ev.into_bytes()).0,
        202
    );
    wait_for("the event at the second collector", || {
        (usage(&second.url, t0, t0 + 1)["total_requests"] == 1).then_some(())
    });
    assert_eq!(usage(&first.url, t0, t0 + 1)["total_requests"], 0);
}

#[test]
fn validate_commands_list_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let run = |bin_name: &str, config: &std::path::Path| {
        let out = std::process::Command::new(bin(bin_name))
            .arg("validate")
            .arg("--config")
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, _) = run("tda-collector", &setup.config_file());
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("{}: OK\n", setup.config_file().display()));
    setup.profile(
        "a.toml",
        "name = \"A\"\ntype = \"usage\"\n[settings]\nretention_period = 0\n",
    );
    setup.profile("b.toml", "name = \"B\"\ntype = \"usage\"\nbogus = 1\n");
    let (code, _, stderr) = run("tda-collector", &setup.config_file());
    assert_eq!(code, Some(1));
    let dir = setup.dir.join("profiles");
    assert_eq!(stderr, format!(
        "{}:4: settings.retention_period: 0 must be 1-36500 days\n{}:3:1: unknown field `bogus`, expected one of `name`, `type`, `agents`, `settings`, `alert`, `models`, `report`, `view`, `segment`, `funnel`\n2 problem(s)\n",
        dir.join("a.toml").display(), dir.join("b.toml").display()));

    let agent_dir = tmp.path().join("agent");
    fs::create_dir_all(&agent_dir).unwrap();
    fs::write(
        agent_dir.join("agent.toml"),
        "[collector]\nurl = \"ftp://x\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run("tda-agent", &agent_dir.join("agent.toml"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!(
            "{}: collector.url: `ftp://x` is not an http(s) URL",
            agent_dir.join("agent.toml").display()
        )),
        "{stderr}"
    );
    let example =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"));
    let (code, _, stderr) = run("tda-agent", example);
    assert_eq!(
        code,
        Some(1),
        "the example names /etc/tda/agent-token, which is not here"
    );
    assert!(stderr.contains("/etc/tda/agent-token"), "{stderr}");
}
