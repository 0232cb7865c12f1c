//! Reports end to end: a real collector makes a profile's scheduled report over the last hour's
//! events (HTML with SVG charts, Markdown, JSON), announces it to a real receiver, serves and lists
//! it, deletes reports past `keep_for`, and makes behavioral and predictive reports on request.

use serde_json::{json, Value};
use tda_tests::receiver::Receiver;
use tda_tests::*;

const HOUR: i64 = 3_600_000;

/// Posts `n` events spread over `[from, from + span)`, every 7th one failing.
fn post_events(c: &Daemon, id: &str, from: i64, span: i64, n: i64, features: &[&str]) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let f = features[i as usize % features.len()];
            json!({"timestamp": from + i * span / n, "user_id": format!("u{}", i % 13), "feature": f,
                "status": if i % 7 == 0 { 500 } else { 200 }, "latency_ms": 10 + i % 90})
        })
        .collect();
    let body = json!({"version": 1, "agent_id": "t", "batch_id": id, "created_at": now_ms(), "events": events});
    let (status, v) = post(
        &format!("{}/v1/batches", c.url),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{v}");
}

fn get_text(url: &str) -> (u16, String, String) {
    let resp = http().get(url).send().expect("get");
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        resp.status().as_u16(),
        kind,
        resp.text().unwrap_or_default(),
    )
}

#[test]
fn an_hourly_report_is_written_announced_served_and_pruned() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(
        tmp.path(),
        "[alerting]\nexternal_url = \"http://tda.test:7300\"\n",
    );
    // Stored before the profile exists, so the first scheduled run finds them.
    let c = setup.start();
    let last_hour = now_ms() / HOUR * HOUR - HOUR;
    post_events(
        &c,
        "hour",
        last_hour,
        HOUR,
        600,
        &["generate", "export", "search"],
    );
    post_events(&c, "outside", last_hour - HOUR, HOUR, 50, &["generate"]);
    let old = tmp
        .path()
        .join("data/analytics/reports/web/hourly-usage/20200101T000000Z.json");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, "{}").unwrap();
    setup.profile(
        "web.toml",
        &format!("name = \"Web\"\ntype = \"usage\"\n[settings]\naggregation_level = \"minute\"\n\n[[report]]\nname = \"Hourly usage\"\nevery = \"hourly\"\nformats = [\"html\", \"markdown\"]\nwebhook = \"{}\"\nkeep_for = \"30d\"\n", receiver.url("/reports")),
    );
    let listed = wait_for("the hourly report", || {
        let (_, v) = get_json(&format!("{}/api/v1/reports", c.url));
        v["reports"].as_array().filter(|a| !a.is_empty()).cloned()
    });
    let r = &listed[0];
    assert_eq!(r["profile"], "web");
    assert_eq!(r["family"], "usage");
    assert_eq!(r["summary"][0], "600 requests from 13 active users");
    assert_eq!(r["summary"][1], "86 errors (14.33 %)");
    wait_for("the old report deleted", || (!old.exists()).then_some(()));

    let id = r["id"].as_str().unwrap();
    let (status, kind, html) = get_text(&format!("{}/api/v1/reports/{id}.html", c.url));
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.starts_with("<!doctype html>") && html.contains("Web"));
    let svg = html.split("<svg").nth(1).expect("a chart");
    let line = svg
        .split("class=\"series\"")
        .nth(1)
        .unwrap()
        .split("points=\"")
        .nth(1)
        .unwrap();
    let points = line.split('"').next().unwrap().split(' ').count();
    assert_eq!(points, 60, "one point per minute of the hour");
    assert!(
        html.contains("<td>generate</td><td>200</td>"),
        "feature table"
    );
    let (status, _, md) = get_text(&format!("{}/api/v1/reports/{id}.md", c.url));
    assert_eq!(status, 200);
    assert!(md.contains("| generate | 200 | 13 |"), "{md}");
    let (status, doc) = get_json(&format!("{}/api/v1/reports/{id}.json", c.url));
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["total_requests"], 600);
    assert_eq!(
        doc["to_ms"].as_i64().unwrap() - doc["from_ms"].as_i64().unwrap(),
        HOUR
    );

    let got = receiver.wait_for(1);
    let ready = got[0].json();
    assert_eq!(ready["event"], "report_ready");
    assert_eq!(ready["summary"][0], "600 requests from 13 active users");
    assert_eq!(
        ready["links"]["html"],
        format!("http://tda.test:7300/api/v1/reports/{id}.html")
    );
    let shown = tda(&c.url, &["report", "show", id]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout), md);
    let listed = tda(&c.url, &["report", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(id));
}

#[test]
fn behavioral_and_predictive_reports_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    setup.profile(
        "product.toml",
        "name = \"Product\"\ntype = \"behavioral\"\n\n[[funnel]]\nname = \"Export\"\nsteps = [\"login\", \"export\"]\nwindow = \"1h\"\n\n[[report]]\nname = \"Daily\"\nevery = \"daily\"\nat = \"23:59\"\ntimezone = \"Pacific/Kiritimati\"\n",
    );
    setup.profile(
        "trend.toml",
        "name = \"Trend\"\ntype = \"predictive\"\n[models]\nmetrics = [\"requests\"]\nhorizon = \"6h\"\n\n[[report]]\nname = \"Weekly\"\nevery = \"weekly\"\nformats = [\"html\", \"json\"]\n",
    );
    let c = setup.start();
    let now = now_ms();
    post_events(
        &c,
        "b",
        now - 20 * HOUR,
        20 * HOUR,
        400,
        &["login", "export"],
    );
    post_events(
        &c,
        "p",
        now - 6 * 24 * HOUR,
        5 * 24 * HOUR,
        3_000,
        &["generate"],
    );
    let run = |profile: &str, report: &str| {
        let resp = http()
            .post(format!(
                "{}/api/v1/reports/run?profile={profile}&report={report}",
                c.url
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        resp.json::<Value>().unwrap()
    };
    let b = run("product", "Daily");
    let (_, doc) = get_json(&format!(
        "{}/api/v1/reports/{}.json",
        c.url,
        b["id"].as_str().unwrap()
    ));
    let funnel = &doc["tables"][0];
    assert_eq!(funnel["title"], "Funnel: Export");
    assert_eq!(funnel["rows"][0][1], 13, "every user logged in");
    assert_eq!(doc["data"]["sessions"]["users"], 13);
    let p = run("trend", "Weekly");
    let (status, _, html) = get_text(&format!(
        "{}/api/v1/reports/{}.html",
        c.url,
        p["id"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    assert!(
        html.contains("class=\"band\""),
        "the forecast's interval is drawn"
    );
    let refused = http()
        .post(format!(
            "{}/api/v1/reports/run?profile=trend&report=Weekly",
            c.url
        ))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let (status, _, _) = get_text(&format!("{}/api/v1/reports/../../tokens", c.url));
    assert_ne!(status, 200, "no way out of the reports directory");
}
