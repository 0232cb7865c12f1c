//! Export of events and samples as CSV and Parquet, by the API and by `tda export`, read back
//! by independent readers (Python's csv module, pyarrow): every row, every field, in time order.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tda_schema::Timestamp;
use tda_tests::*;

/// 120 events over 40 minutes (three export windows), every third a failed export call.
fn events(t0: i64) -> Vec<Value> {
    (0..120)
        .map(|i: i64| {
            let mut e = json!({"timestamp": t0 + i * 20_000 + 7, "user_id": format!("u{}", i % 7), "feature": if i % 3 == 0 { "export" } else { "generate" }});
            if i % 3 == 0 {
                e["status"] = json!(503);
                e["error"] = json!("Timeout, \"upstream\"");
            } else {
                e["route"] = json!("/api/v1/generate");
                e["latency_ms"] = json!(10.5 + i as f64);
                e["properties"] = json!({"plan": "pro", "n": i});
            }
            e
        })
        .collect()
}

fn sample(t: i64, cpu: f64) -> Value {
    json!({"timestamp": t, "cpu_percent": cpu, "cpu_per_core": [cpu], "mem_total_bytes": 1000, "mem_used_bytes": 400,
           "swap_total_bytes": 0, "swap_used_bytes": 0, "load": [0.5, 0.25, 0.125], "disk_total_bytes": 100, "disk_available_bytes": 60,
           "disk_read_bytes": 1, "disk_written_bytes": 2, "net_rx_bytes": 3, "net_tx_bytes": 4, "net_rx_packets": 5, "net_tx_packets": 6,
           "net_rx_errors": 0, "net_tx_errors": 0})
}

fn store(url: &str, agent: &str, events: Vec<Value>, samples: Vec<Value>) {
    let batch = json!({"version": 1, "agent_id": agent, "batch_id": format!("b-{agent}"), "created_at": now_ms(), "events": events, "samples": samples});
    let (status, v) = post(
        &format!("{url}/v1/batches"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        serde_json::to_vec(&batch).unwrap(),
    );
    assert_eq!(status, 200, "{v}");
}

fn read(path: &Path, kind: &str) -> Vec<Value> {
    let out = Command::new(python::python())
        .arg(python::script("read_export.py"))
        .args([path.to_str().unwrap(), kind])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn download(url: &str, to: &Path) -> u16 {
    let resp = http().get(url).send().unwrap();
    let status = resp.status().as_u16();
    std::fs::write(to, resp.bytes().unwrap()).unwrap();
    status
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn events_and_samples_export_as_csv_and_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(&tmp.path().join("collector"), "").start();
    let t0 = (now_ms() - 3 * 3_600_000) / 60_000 * 60_000;
    let sent = events(t0);
    store(
        &c.url,
        "a1",
        sent.clone(),
        vec![sample(t0 + 1000, 12.5), sample(t0 + 61_000, 50.0)],
    );
    store(&c.url, "a2", vec![], vec![sample(t0 + 2000, 99.0)]);
    let (from, to) = (t0, t0 + 3_600_000);

    // CSV from the API: a header, then every event in time order with every field.
    let csv = tmp.path().join("events.csv");
    let url = format!(
        "{}/api/v1/export?data=events&format=csv&from={from}&to={to}",
        c.url
    );
    assert_eq!(download(&url, &csv), 200);
    let rows = read(&csv, "csv");
    assert_eq!(rows.len(), 120);
    for (row, e) in rows.iter().zip(&sent) {
        assert_eq!(
            row["timestamp"],
            Timestamp(e["timestamp"].as_i64().unwrap()).to_rfc3339()
        );
        for field in [
            "user_id",
            "feature",
            "route",
            "status",
            "latency_ms",
            "error",
        ] {
            assert_eq!(row[field], text(&e[field]), "{field} of {e}");
        }
        let props = row["properties"].as_str().unwrap();
        let want = e.get("properties").cloned().unwrap_or(Value::Null);
        assert_eq!(
            if props.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(props).unwrap()
            },
            want
        );
    }

    // Parquet through `tda export` (a filter too): typed columns, nulls where a field is absent.
    let pq = tmp.path().join("export.parquet");
    let out = tda_export(
        &c.url,
        &[
            "--data",
            "events",
            "--format",
            "parquet",
            "--feature",
            "export",
        ],
        from,
        to,
        &pq,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("40 events written to {}", pq.display())
    );
    let rows = read(&pq, "parquet");
    let failed: Vec<&Value> = sent.iter().filter(|e| e["feature"] == "export").collect();
    assert_eq!(rows.len(), failed.len());
    for (row, e) in rows.iter().zip(failed) {
        assert_eq!(row["timestamp"], e["timestamp"]);
        assert_eq!(
            (&row["user_id"], &row["status"], &row["error"]),
            (&e["user_id"], &json!(503), &e["error"])
        );
        assert_eq!(
            (&row["route"], &row["latency_ms"], &row["properties"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
    }

    // Samples of one agent as Parquet from the API.
    let samples = tmp.path().join("samples.parquet");
    let url = format!(
        "{}/api/v1/export?data=samples&format=parquet&agent=a1&from={from}&to={to}",
        c.url
    );
    assert_eq!(download(&url, &samples), 200);
    let rows = read(&samples, "parquet");
    let cpu: Vec<(&Value, &Value, &Value)> = rows
        .iter()
        .map(|r| (&r["agent_id"], &r["cpu_percent"], &r["load5"]))
        .collect();
    assert_eq!(
        cpu,
        [
            (&json!("a1"), &json!(12.5), &json!(0.25)),
            (&json!("a1"), &json!(50.0), &json!(0.25))
        ]
    );
    assert_eq!(rows[0]["process_rss_bytes"], Value::Null);

    // The CLI's CSV with its row check, and a bad request named.
    let out = tda_export(
        &c.url,
        &["--data", "samples"],
        from,
        to,
        &tmp.path().join("s.csv"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&tmp.path().join("s.csv"), "csv").len(), 3);
    let (status, v) = get_json(&format!("{}/api/v1/export?format=xlsx&data=events", c.url));
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("format: `xlsx` is not csv or parquet"))
    );
}

/// The `.blk` segment files under `dir`.
fn block_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(block_files(&p));
        } else if p.extension().is_some_and(|e| e == "blk") {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_storage_fault_mid_export_breaks_the_transfer_instead_of_ending_it_short() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("collector");
    let c = CollectorSetup::new(&dir, "").start();
    let t0 = (now_ms() - 4 * 3_600_000) / 3_600_000 * 3_600_000;
    let first: Vec<Value> = events(t0).into_iter().take(50).collect();
    store(&c.url, "a1", first, vec![]);
    let before = block_files(&dir.join("data"));
    store(&c.url, "a2", events(t0 + 2 * 3_600_000), vec![]);
    // A real fault: the later hour's block file is damaged on disk (its checksum no longer
    // matches), as a failing disk would leave it.
    let damaged: Vec<_> = block_files(&dir.join("data"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    let mut bytes = std::fs::read(&damaged[0]).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&damaged[0], bytes).unwrap();
    let (from, to) = (t0, t0 + 3 * 3_600_000);

    // The API: the transfer breaks (no chunked end) instead of ending as if whole. What
    // arrives first is at most the header and the first hour's rows (hyper may close the
    // connection before the last chunk before the fault leaves its buffer).
    let url = format!(
        "{}/api/v1/export?data=events&format=csv&from={from}&to={to}",
        c.url
    );
    // The fault can come before hyper has written the head: then the request itself fails.
    if let Ok(mut resp) = http().get(&url).send() {
        assert_eq!(resp.status(), 200);
        let mut got = Vec::new();
        let err = std::io::Read::read_to_end(&mut resp, &mut got).expect_err("a broken transfer");
        assert!(!err.to_string().is_empty());
        let text = String::from_utf8_lossy(&got);
        assert!(text.lines().count() <= 1 + 50, "{text}");
        if let Some(header) = text.lines().next().filter(|_| text.contains('\n')) {
            assert!(header.starts_with("timestamp,user_id,"), "{header}");
        }
    }
    wait_for("the collector to log why", || {
        c.log_text().contains("export stopped").then_some(())
    });

    // `tda export` says so and names the incomplete file, for both formats.
    for format in ["csv", "parquet"] {
        let file = tmp.path().join(format!("broken.{format}"));
        let out = tda_export(
            &c.url,
            &["--data", "events", "--format", format],
            from,
            to,
            &file,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{format}: {stderr}");
        assert!(
            stderr.contains("the export broke off"),
            "{format}: {stderr}"
        );
    }
}
