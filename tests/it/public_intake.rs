//! The agent's public intake over real HTTP: only the SDK routes and their documents are
//! reachable, other origins and unknown keys are refused, size and rate limits hold per IP
//! and per key without slowing other clients, TLS works, and every refusal is counted by
//! reason in `/healthz` and `/metrics`.

use std::path::Path;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use tda_tests::pki::Pki;
use tda_tests::*;

const PAGE: &str = "https://app.example.com";

/// A collector and an agent with a public intake on its own port, its rest in `public`.
fn started(dir: &Path, public: &str, port: u16) -> (Daemon, Daemon) {
    let collector = CollectorSetup::new(&dir.join("collector"), "").start();
    let intake = format!(
        "[intake.posthog]\nkeys = [\"phc_site\"]\n[intake.segment]\nkeys = [\"wk_site\"]\n\
         [intake.public]\nlisten = \"127.0.0.1:{port}\"\norigins = [\"{PAGE}\"]\n{public}\n"
    );
    let agent = AgentSetup {
        intake,
        ..AgentSetup::new(&dir.join("agent"), &collector.url, collector.pid())
    }
    .start();
    (collector, agent)
}

/// posthog-js's body of `n` events for `key`.
fn events(key: &str, n: usize, pad: usize) -> Vec<u8> {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event": "export", "distinct_id": "anon-1", "uuid": format!("u-{i}-{pad}"),
                   "properties": {"token": key, "note": "x".repeat(pad)}})
        })
        .collect();
    serde_json::to_vec(&batch).unwrap()
}

fn send(req: RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().unwrap_or(Value::Null))
}

fn from_page(
    client: &Client,
    url: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    send(
        client
            .post(url)
            .header("origin", PAGE)
            .header("content-type", "text/plain")
            .body(body),
    )
}

fn health(agent: &Daemon) -> Value {
    get_json(&format!("{}/healthz", agent.url)).1
}

#[test]
fn the_public_intake_serves_only_sdk_routes_to_allowed_origins_within_its_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let limits = "trusted_proxies = [\"127.0.0.1\"]\nmax_body_bytes = 65536\nmax_event_bytes = 2048\n\
                  per_ip = { per_second = 0.01, burst = 11 }\nper_key = { per_second = 0.01, burst = 60 }";
    let (collector, agent) = started(tmp.path(), limits, port);
    let public = format!("http://127.0.0.1:{port}");
    let c = http();
    let ip = |req: RequestBuilder, addr: &str| req.header("x-forwarded-for", addr);

    // 1. The preflight grants the page's origin and the headers it asks for.
    let (status, h, _) = send(
        ip(
            c.request(reqwest::Method::OPTIONS, format!("{public}/e/")),
            "192.0.2.1",
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type"),
    );
    assert_eq!(status, 204);
    assert_eq!(h["access-control-allow-origin"], PAGE);
    assert_eq!(h["access-control-allow-headers"], "content-type");
    // 2. Events from the page: stored, the answer readable by the page.
    let (status, h, v) = from_page(&c, &format!("{public}/e/"), events("phc_site", 3, 0));
    assert_eq!((status, v), (200, json!({"status": 1})));
    assert_eq!(h["access-control-allow-origin"], PAGE);
    // 3. Another origin: refused, no grant.
    let (status, h, _) = send(
        c.post(format!("{public}/e/"))
            .header("origin", "https://evil.example")
            .body(events("phc_site", 1, 0)),
    );
    assert_eq!(status, 403);
    assert!(!h.contains_key("access-control-allow-origin"));
    // 4. An unknown key: 401, readable by the page.
    let (status, h, _) = from_page(&c, &format!("{public}/e/"), events("phc_other", 1, 0));
    assert_eq!(status, 401);
    assert_eq!(h["access-control-allow-origin"], PAGE);
    // 5. Nothing else of the agent is reachable.
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/v1/events"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _, _) = send(c.request(m, format!("{public}{path}")).body("[]"));
        assert_eq!(status, 404, "{method} {path}");
    }
    // 6. An event over max_event_bytes refuses its request; a body over max_body_bytes too.
    let (status, _, v) = from_page(&c, &format!("{public}/e/"), events("phc_site", 1, 4000));
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_event_bytes"),
        "{v}"
    );
    let (status, _, _) = from_page(&c, &format!("{public}/e/"), events("phc_site", 40, 1900));
    assert_eq!(status, 413);
    // 7. The SDKs' documents.
    let (status, h, v) = send(
        c.post(format!("{public}/flags/?v=2"))
            .header("origin", PAGE)
            .body("{}"),
    );
    assert_eq!(
        (status, &v["flags"], &v["sessionRecording"]),
        (200, &json!({}), &json!(false))
    );
    assert_eq!(h["access-control-allow-origin"], PAGE);
    let resp = c
        .get(format!("{public}/array/phc_site/config.js"))
        .send()
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/javascript");
    assert!(resp
        .text()
        .unwrap()
        .contains("_POSTHOG_REMOTE_CONFIG[\"phc_site\"]"));
    let (status, _, _) = send(c.get(format!("{public}/array/phc_other/config")));
    assert_eq!(status, 404);
    let (status, _, v) = send(c.get(format!("{public}/v1/projects/wk_site/settings")));
    assert_eq!(status, 200);
    let segment = &v["integrations"]["Segment.io"];
    assert_eq!(
        (&segment["apiHost"], &segment["protocol"]),
        (&json!(format!("127.0.0.1:{port}/v1")), &json!("http"))
    );
    // 8. Eleven requests since 2. came from 127.0.0.1 (the trusted proxy, naming no client; the
    // refused origin took no token): its bucket of 11 is empty, while a client the proxy names
    // is served, until its own runs out.
    let (status, h, _) = from_page(&c, &format!("{public}/e/"), events("phc_site", 1, 0));
    assert_eq!(status, 429);
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((90..=100).contains(&retry), "a token every 100 s: {retry}");
    let flood: Vec<u16> = (0..14)
        .map(|i| {
            send(
                ip(c.post(format!("{public}/e/")), "203.0.113.9").body(events(
                    "phc_site",
                    1,
                    100 + i,
                )),
            )
            .0
        })
        .collect();
    let other =
        send(ip(c.post(format!("{public}/e/")), "198.51.100.1").body(events("phc_site", 1, 200)));
    assert_eq!(flood, [[200; 11].as_slice(), &[429; 3]].concat());
    assert_eq!(other.0, 200, "another client is not slowed by the flood");
    // 9. The key's bucket of 60 events: 3 + 11 + 1 taken; 45 more pass, then one more does not.
    let (status, _, _) = send(
        ip(c.post(format!("{public}/batch/")), "198.51.100.2").body(events("phc_site", 45, 300)),
    );
    assert_eq!(status, 200);
    let (status, _, v) = send(
        ip(c.post(format!("{public}/batch/")), "198.51.100.2").body(events("phc_site", 1, 400)),
    );
    assert_eq!(status, 429, "{v}");

    let stored = 3 + 11 + 1 + 45;
    wait_for("events stored", || {
        let (_, h) = get_json(&format!("{}/healthz", agent.url));
        (h["counters"]["events_sent"] == stored).then_some(())
    });
    let h = health(&agent);
    assert_eq!(
        h["public"],
        json!({"requests": 31, "preflights": 1, "refused_origin": 1, "refused_ip_rate": 4,
               "refused_key_rate": 1, "refused_event_size": 1, "refused_unknown_key": 1}),
        "{h}"
    );
    let metrics = agent_metrics(&agent.url);
    for line in [
        "tda_agent_public_requests_refused_total{reason=\"origin\"} 1",
        "tda_agent_public_requests_refused_total{reason=\"ip_rate\"} 4",
        "tda_agent_public_requests_refused_total{reason=\"key_rate\"} 1",
        "tda_agent_public_requests_total 31",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    drop(collector);
}

#[test]
fn the_public_intake_serves_tls_and_refuses_a_bad_config_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "public");
    let cert = pki.issue("intake", "localhost");
    let port = free_port();
    let tls = format!(
        "[intake.public.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.cert.display(),
        cert.key.display()
    );
    let (_collector, agent) = started(tmp.path(), &tls, port);
    let client = pki.client(None);
    let resp = client
        .post(format!("https://localhost:{port}/i/v0/e/"))
        .header("origin", PAGE)
        .body(events("phc_site", 2, 0))
        .send()
        .expect("HTTPS request");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = client
        .get(format!(
            "https://localhost:{port}/v1/projects/wk_site/settings"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["integrations"]["Segment.io"]["protocol"], "https");
    drop(agent);

    // A bad public intake is refused by name: an origin with a path; no project keys.
    let dir = tmp.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.toml");
    for (toml, want) in [
        (
            "[intake.public]\norigins = [\"https://app.example.com/path\"]\n",
            "intake.public.origins: `https://app.example.com/path` is not an origin",
        ),
        (
            "[intake.public]\norigins = [\"https://app.example.com\"]\n",
            "intake.posthog.keys: the public intake needs the project keys it accepts",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let out = std::process::Command::new(bin("tda-agent"))
            .args(["--config", file.to_str().unwrap(), "validate"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("agent.toml") && text.contains(want), "{text}");
    }
}
