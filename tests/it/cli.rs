//! The `tda` CLI against a real collector: profiles created as files, listed, refused; stats read.

use serde_json::Value;
use tda_tests::*;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn profile_created_by_cli_is_a_file_and_in_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let c = setup.start();
    let out = tda(
        &c.url,
        &[
            "profile",
            "create",
            "--name",
            "System Usage",
            "--type",
            "usage",
            "--collection-interval",
            "60",
            "--retention-period",
            "30",
            "--aggregation-level",
            "minute",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).starts_with("Profile created: system-usage"),
        "{}",
        stdout(&out)
    );
    let file = tmp.path().join("profiles/system-usage.toml");
    let on_disk = tda_schema::Profile::load(&file).unwrap();
    assert_eq!(
        (on_disk.name.as_str(), on_disk.settings.retention_period),
        ("System Usage", 30)
    );

    let list = tda(&c.url, &["profile", "list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["profiles"][0]["id"], "system-usage");
    assert_eq!(v["profiles"][0]["type"], "usage");
    assert!(stdout(&tda(&c.url, &["profile", "list"])).contains("system-usage"));

    let dup = tda(
        &c.url,
        &[
            "profile",
            "create",
            "--name",
            "system usage",
            "--type",
            "usage",
        ],
    );
    assert_eq!(dup.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr),
        "tda: 409: a profile named `system usage` already exists\n"
    );
    let bad = tda(
        &c.url,
        &["profile", "create", "--name", "P", "--type", "sales"],
    );
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(
        why.contains("invalid value 'sales' for '--type <KIND>'")
            && why.contains("[possible values: usage, performance, predictive, behavioral]"),
        "the CLI names the choices before asking the collector: {why}"
    );

    // A collector restarted on the same directory loads the created profile from its file.
    drop(c);
    let c = setup.start();
    let v: Value =
        serde_json::from_slice(&tda(&c.url, &["profile", "list", "--json"]).stdout).unwrap();
    assert_eq!(v["profiles"].as_array().unwrap().len(), 1);
}

#[test]
fn stats_commands_print_tables_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    let table = tda(&c.url, &["stats", "usage", "--since", "1h"]);
    assert!(table.status.success());
    assert!(
        stdout(&table).contains("total requests  0"),
        "{}",
        stdout(&table)
    );
    let json = tda(&c.url, &["--json", "stats", "performance", "--since", "1h"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["health"]["status"], "no_data");
    let bad = tda(&c.url, &["stats", "usage", "--since", "later"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("tda: 400: from: `later`"));
    let down = tda("http://127.0.0.1:1", &["profile", "list"]);
    assert!(String::from_utf8_lossy(&down.stderr)
        .starts_with("tda: cannot reach the collector at http://127.0.0.1:1"));
}

#[test]
fn output_into_a_pipe_closed_early_is_no_error() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    // `tda --json stats usage | head -c 0`: the reader is gone before the answer arrives.
    let mut child = std::process::Command::new(bin("tda"))
        .args([
            "--server", &c.url, "--json", "stats", "usage", "--since", "1h",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the pipe's read end closed
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_describes_the_cli_and_offline_commands_show_only_their_own_options() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(bin("tda"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        stdout(&out)
    };
    let top = help(&["--help"]);
    assert!(top.contains("behavioral"), "{top}");
    for offline in ["detect", "forecast"] {
        let text = help(&[offline, "--help"]);
        assert!(text.contains("--input"), "{text}");
        for collector_option in ["--server", "--token", "--json"] {
            assert!(!text.contains(collector_option), "{offline}: {text}");
        }
    }
    let stats = help(&["stats", "--help"]);
    assert!(
        stats.contains("--server") && stats.contains("--json"),
        "{stats}"
    );
}
