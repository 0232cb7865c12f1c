//! The OpenAPI description served at `/api/v1/openapi.json`: every operation it lists is a
//! route the collector serves, and schemathesis (PyPI) drives every operation with generated
//! requests: no 5xx, and every response's status, content type and body match the description.

use std::process::Command;

use serde_json::{json, Value};
use tda_tests::*;

fn started(dir: &std::path::Path) -> Daemon {
    let c = CollectorSetup::new(dir, "").start();
    let t0 = now_ms() - 3_600_000;
    let events: Vec<Value> = (0..200)
        .map(|i| (i, ["login", "search", "export"][i as usize % 3]))
        .map(|(i, feature)| json!({"timestamp": t0 + i * 10_000, "user_id": format!("u{}", i % 9), "feature": feature, "latency_ms": 5.0 + i as f64, "status": if i % 10 == 0 { 500 } else { 200 }}))
        .collect();
    let batch = json!({"version": 1, "agent_id": "a1", "batch_id": "b1", "created_at": now_ms(), "events": events});
    let (status, _) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        serde_json::to_vec(&batch).unwrap(),
    );
    assert_eq!(status, 200);
    c
}

#[test]
fn every_described_operation_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let c = started(tmp.path());
    let (status, spec) = get_json(&format!("{}/api/v1/openapi.json", c.url));
    assert_eq!(status, 200);
    let client = http();
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        if path == "/api/v1/live" {
            continue; // a stream that never ends; the dashboard test reads it
        }
        let concrete = path
            .replace("{agent}", "a1")
            .replace("{type}", "usage")
            .replace("{id}", "no-such-silence")
            .replace("{file}", "p/r/x.json");
        for method in ops.as_object().unwrap().keys() {
            let req = client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", c.url),
                )
                .bearer_auth(ADMIN_TOKEN);
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().unwrap();
            assert!(
                !body.contains("no route") && status != 405,
                "{method} {path}: {status} {body}"
            );
            let described = ops[method]["responses"].as_object().unwrap();
            assert!(
                described.contains_key(&status.to_string()),
                "{method} {path}: {status} is not described"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 32);
    let (status, v) = get_json(&format!("{}/api/v1/nothing-here", c.url));
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("no route /api/v1/nothing-here"))
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_the_description() {
    let tmp = tempfile::tempdir().unwrap();
    let c = started(&tmp.path().join("collector"));
    let out = Command::new(python::tool("schemathesis"))
        .args(["run", &format!("{}/api/v1/openapi.json", c.url)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--exclude-path", "/api/v1/live", "--max-examples", "30", "--seed", "7", "--request-timeout", "30"])
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(tmp.path())
        .output()
        .expect("schemathesis (scripts/test-venv installs it)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    let cases = printed
        .lines()
        .find(|l| l.trim_start().ends_with(" passed") && l.contains(" generated, "));
    let cases = cases.unwrap_or_else(|| panic!("no test case summary in {printed}"));
    let (generated, passed) = cases.trim().split_once(" generated, ").unwrap();
    assert_eq!(format!("{generated} passed"), passed, "{printed}");
}
