//! The dashboard in a real headless Chromium, against a collector fed by the simulator through an
//! agent: every page loads without console errors, charts hold data points, a live value changes
//! without a reload, dragging across a chart zooms the query range, a profile's `[[view]]` shows,
//! and the dark theme applies. Screenshots go to `target/test-artifacts/dashboard/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tda_tests::browser::{artifacts, Browser};
use tda_tests::*;

const PAGES: [&str; 9] = [
    "overview",
    "usage",
    "performance",
    "predictive",
    "behavioral",
    "alerts",
    "reports",
    "profiles",
    "views",
];

/// Posts a few events a second stamped now until dropped, so live values move.
struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    fn start(collector: &str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, url) = (stop.clone(), format!("{collector}/v1/batches"));
        let t = std::thread::spawn(move || {
            let client = http();
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                let n = 1 + i % 7;
                let events: Vec<_> = (0..n)
                    .map(|k| json!({"timestamp": now_ms(), "user_id": format!("live-{}", (i + k) % 17), "feature": "generate", "latency_ms": 50 + (i % 40), "status": 200}))
                    .collect();
                let body = json!({"version": 1, "agent_id": "live", "batch_id": format!("live-{i}-{}", now_ms()), "created_at": now_ms(), "events": events});
                let _ = client.post(&url).bearer_auth(TOKEN).json(&body).send();
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Traffic(stop, Some(t))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Loads the dashboard at `page` (a fresh load each time) and waits until it has rendered.
fn open(b: &Browser, base: &str, page: &str) {
    static VISITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = VISITS.fetch_add(1, Ordering::SeqCst);
    b.goto(&format!("{base}/?visit={n}#/{page}"));
    b.wait(
        &format!("the {page} page rendered"),
        &format!(
            "document.querySelector('#page').dataset.page === '{page}' && document.querySelector('#page').getAttribute('aria-busy') === 'false' && document.body.dataset.rendered"
        ),
    );
}

fn chart_points(b: &Browser) -> Vec<u64> {
    let v = b.eval(
        "return [...document.querySelectorAll('#page svg[data-points]')].map(s => Number(s.dataset.points));",
        json!([]),
    );
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_u64())
        .collect()
}

#[test]
fn every_page_works_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = CollectorSetup::new(&tmp.path().join("collector"), "");
    setup.profile(
        "web.toml",
        "name = \"Web\"\ntype = \"usage\"\n\n[[view]]\ntitle = \"Generate latency p95\"\nquery = \"latency_p95_ms{feature=\\\"generate\\\"}\"\nchart = \"line\"\nrange = \"7d\"\n\n[[view]]\ntitle = \"Requests, 6-hourly\"\nquery = \"requests\"\nchart = \"bar\"\nrange = \"7d\"\n\n[[report]]\nname = \"Hourly\"\nevery = \"hourly\"\n",
    );
    setup.profile(
        "behavior.toml",
        "name = \"Behavior\"\ntype = \"behavioral\"\n",
    );
    let collector = setup.start();
    let agent = start_agent(
        &tmp.path().join("agent"),
        &collector.url,
        std::process::id(),
    );
    let truth = simulate(
        &agent,
        &["--users", "150", "--duration", "3d"],
        &tmp.path().join("truth.json"),
    );
    wait_all_sent(&agent, &truth);
    let _traffic = Traffic::start(&collector.url);

    let b = Browser::start();
    let shots = artifacts("dashboard");
    b.goto(&format!("{}/#/overview", collector.url));
    let _ = b.console_errors();
    for page in PAGES {
        open(&b, &collector.url, page);
        if page == "overview" {
            b.wait(
                "a live value",
                "document.getElementById('live-rpm').textContent !== '–'",
            );
        }
        b.screenshot(&shots.join(format!("{page}.png")));
        let errors = b.console_errors();
        assert!(errors.is_empty(), "{page}: console errors {errors:?}");
        let error_text = b.eval(
            "return [...document.querySelectorAll('#page .error')].map(e => e.textContent);",
            json!([]),
        );
        assert_eq!(error_text, json!([]), "{page}: the page shows an error");
        let points = chart_points(&b);
        match page {
            "overview" | "usage" | "performance" | "predictive" | "behavioral" | "views" => {
                assert!(
                    !points.is_empty() && points[0] > 0,
                    "{page}: charts {points:?}"
                );
            }
            _ => {}
        }
    }

    // A live value changes without a reload.
    open(&b, &collector.url, "overview");
    b.eval("window.__marker = 'same page';", json!([]));
    let first = b.wait("the live time", "document.getElementById('live-state').textContent.startsWith('live ·') && document.getElementById('live-state').textContent");
    let changed = b.wait(
        "the live value to change",
        &format!("document.getElementById('live-state').textContent !== {first} && document.getElementById('live-state').textContent"),
    );
    assert_ne!(first, changed);
    assert_eq!(
        b.eval("return window.__marker;", json!([])),
        "same page",
        "no reload"
    );

    // Dragging across the usage chart zooms: the queries then ask for the dragged range.
    open(&b, &collector.url, "usage");
    let before = b.eval("return document.body.dataset.lastQuery;", json!([]));
    b.drag_across("#page figure.chart svg", 0.3, 0.6);
    let from = b.wait("the zoomed range", "document.body.dataset.from");
    b.wait("the page redrawn for the zoom", &format!("document.body.dataset.lastQuery !== {before} && document.body.dataset.lastQuery.includes('from={}')", from.as_str().unwrap()));
    let zoomed = b.eval(
        "return Number(document.body.dataset.to) - Number(document.body.dataset.from);",
        json!([]),
    );
    let span = zoomed.as_f64().unwrap();
    assert!(
        span > 0.0 && span < 0.5 * 86_400_000.0,
        "dragging 30 % of 24 h selects about 7 h, got {span} ms"
    );
    b.wait(
        "the zoom shown",
        "!document.getElementById('zoomed').hidden",
    );
    b.screenshot(&shots.join("usage-zoomed.png"));

    // Series toggles hide a series.
    // The zoomed page may still be drawing: wait for its first chart's lines.
    let lines = b.wait(
        "the zoomed page's first chart",
        "document.querySelectorAll('#page figure.chart')[0]?.querySelectorAll('polyline').length",
    );
    b.eval(
        "document.querySelector('#page .legend button[data-series=errors]').click();",
        json!([]),
    );
    let after = b.eval("return document.querySelectorAll('#page figure.chart')[0].querySelectorAll('polyline').length;", json!([]));
    assert_eq!(
        after.as_u64().unwrap() + 1,
        lines.as_u64().unwrap(),
        "toggling `errors` hides its line"
    );

    // The profile's custom view appears with data.
    open(&b, &collector.url, "views");
    let view = b.wait(
        "the custom view",
        "document.querySelector('[data-view=\"Generate latency p95\"] svg')?.dataset.points",
    );
    assert!(
        view.as_str().unwrap().parse::<u64>().unwrap() > 10,
        "{view}"
    );
    // Bars over several days are labelled with their dates.
    let bars = b.eval(
        "return [...document.querySelectorAll('[data-view=\"Requests, 6-hourly\"] svg text[text-anchor=end]')].map(t => t.textContent);",
        json!([]),
    );
    let bar_labels: Vec<&str> = bars
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(!bar_labels.is_empty(), "{bars}");
    assert!(
        bar_labels
            .iter()
            .all(|l| l.len() == 11 && l.as_bytes()[2] == b'-' && l.as_bytes()[5] == b' '),
        "MM-DD HH:MM: {bars}"
    );

    // At 7 days the usage chart draws the API's hourly points, its time axis is dated at even
    // calendar steps, and its value axis at round numbers.
    open(&b, &collector.url, "usage");
    let rendered = b.eval("return document.body.dataset.rendered;", json!([]));
    b.eval("const r = document.getElementById('range'); r.value = '7d'; r.dispatchEvent(new Event('change'));", json!([]));
    b.wait("the 7-day usage page", &format!("document.body.dataset.rendered !== {rendered} && document.querySelector('#page').getAttribute('aria-busy') === 'false' && document.body.dataset.lastQuery"));
    let last = b.eval("return document.body.dataset.lastQuery;", json!([]));
    // Plain numbers and `3600s`: nothing to percent-decode.
    let query: std::collections::HashMap<&str, &str> = last
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(query["step"], "3600s", "{last}");
    let api_points: usize = ["requests", "errors"]
        .iter()
        .map(|series| {
            let (_, v) = get_json(&format!(
                "{}/api/v1/query?series={series}&from={}&to={}&step=3600s",
                collector.url, query["from"], query["to"]
            ));
            v["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| !p["v"].is_null())
                .count()
        })
        .sum();
    let drawn = chart_points(&b)[0] as usize;
    assert_eq!(drawn, api_points, "the chart draws the API's points");
    assert!(drawn <= 2 * 170, "{drawn} points over 7 days at 1 h");
    let axis = b.eval(
        "const svg = document.querySelector('#page figure.chart svg');          const xs = [...svg.querySelectorAll('.tick-x')];          const ys = [...svg.querySelectorAll('.tick-y')].map(t => t.textContent);          return { labels: xs.map(t => t.textContent), at: xs.map(t => Number(t.getAttribute('x'))), values: ys };",
        json!([]),
    );
    let labels: Vec<&str> = axis["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(labels.len() >= 3, "{axis}");
    let distinct: std::collections::HashSet<&&str> = labels.iter().collect();
    assert_eq!(distinct.len(), labels.len(), "repeated time labels: {axis}");
    assert!(
        labels
            .iter()
            .all(|l| l.len() == 5 && l.as_bytes()[2] == b'-'),
        "7-day labels are dates (MM-DD): {axis}"
    );
    let at: Vec<f64> = axis["at"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| (g - gaps[0]).abs() < 0.5),
        "unevenly spaced dates: {axis}"
    );
    let values: Vec<f64> = axis["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let t = v.as_str().unwrap();
            match t.strip_suffix('k') {
                Some(k) => k.parse::<f64>().unwrap() * 1e3,
                None => t.parse().unwrap(),
            }
        })
        .collect();
    let step = values[1] - values[0];
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 2.5, 5.0]
            .iter()
            .any(|m| (mantissa - m).abs() < 1e-9)
            && values
                .windows(2)
                .all(|w| (w[1] - w[0] - step).abs() < 1e-9 * step.max(1.0)),
        "value ticks at round steps: {axis}"
    );
    b.screenshot(&shots.join("usage-7d.png"));

    // At 7 days the agent's minutes of host samples still show (as dots at the right).
    open(&b, &collector.url, "performance");
    let rendered = b.eval("return document.body.dataset.rendered;", json!([]));
    b.eval("const r = document.getElementById('range'); r.value = '7d'; r.dispatchEvent(new Event('change'));", json!([]));
    b.wait("the 7-day performance page", &format!("document.body.dataset.rendered !== {rendered} && document.querySelector('#page').getAttribute('aria-busy') === 'false'"));
    let host = b.eval(
        "const svg = [...document.querySelectorAll('#page figure.chart')].find(f => f.textContent.includes('host CPU')).querySelector('svg'); \
         return { points: Number(svg.dataset.points), drawn: svg.querySelectorAll('polyline, circle.dot').length, labels: [...svg.querySelectorAll('.tick-x')].map(t => t.textContent) };",
        json!([]),
    );
    assert!(host["points"].as_u64().unwrap() >= 1, "{host}");
    assert!(
        host["drawn"].as_u64().unwrap() >= 2,
        "a line and its dots: {host}"
    );
    let host_labels: Vec<&Value> = host["labels"].as_array().unwrap().iter().collect();
    let unique: std::collections::HashSet<String> =
        host_labels.iter().map(|l| l.to_string()).collect();
    assert_eq!(unique.len(), host_labels.len(), "{host}");

    // A page can be captured the usual way: headless Chromium with a virtual-time budget
    // settles (the live values are polled, no request stays open).
    let shot = shots.join("overview-cli.png");
    let _ = std::fs::remove_file(&shot);
    let mut chromium = std::process::Command::new(tda_tests::browser::CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{}/#/overview", collector.url))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ended = wait_for("chromium --screenshot to finish", || {
        chromium.try_wait().unwrap()
    });
    assert!(ended.success() && shot.exists(), "{ended:?}");

    // Dark theme and keyboard: the theme toggle works, charts take focus and show a tooltip.
    b.eval("document.getElementById('theme').click();", json!([]));
    let theme = b.eval("return document.documentElement.dataset.theme;", json!([]));
    assert_eq!(theme, "dark");
    open(&b, &collector.url, "overview");
    b.eval("const s = document.querySelector('#page figure.chart svg'); s.focus(); s.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));", json!([]));
    b.wait("the keyboard tooltip", "!document.getElementById('tooltip').hidden && document.getElementById('tooltip').textContent");
    b.screenshot(&shots.join("overview-dark.png"));
    let label = b.eval(
        "return document.querySelector('#page figure.chart svg').getAttribute('aria-label');",
        json!([]),
    );
    assert!(label.as_str().unwrap().contains("points"), "{label}");
    assert!(b.console_errors().is_empty());
}

#[test]
fn a_read_token_guards_the_api_and_the_live_stream() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("read-tokens"), "reader-token\n").unwrap();
    let setup = CollectorSetup::new(tmp.path(), "");
    let config = std::fs::read_to_string(setup.config_file()).unwrap();
    std::fs::write(
        setup.config_file(),
        config.replace("[auth]\n", "[auth]\nread_tokens_file = \"read-tokens\"\n"),
    )
    .unwrap();
    let c = setup.start();
    let url = |path: &str| format!("{}{path}", c.url);
    let status = |req: reqwest::blocking::RequestBuilder| req.send().unwrap().status().as_u16();
    assert_eq!(status(http().get(url("/api/v1/stats/usage"))), 401);
    assert_eq!(
        status(http().get(url("/api/v1/stats/usage")).bearer_auth("wrong")),
        401
    );
    assert_eq!(
        status(
            http()
                .get(url("/api/v1/stats/usage"))
                .bearer_auth("reader-token")
        ),
        200
    );
    assert_eq!(
        status(http().get(url("/api/v1/alerts")).bearer_auth(ADMIN_TOKEN)),
        200,
        "admins read too"
    );
    assert_eq!(
        status(http().get(url("/api/v1/stats/usage")).bearer_auth(TOKEN)),
        403,
        "an agent's token does not read analytics"
    );
    assert_eq!(status(http().get(url("/api/v1/live"))), 401);
    let live = http()
        .get(url("/api/v1/live?token=reader-token"))
        .send()
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    drop(live);
    assert_eq!(
        status(http().get(url("/"))),
        200,
        "the page itself holds no data"
    );
    assert_eq!(status(http().get(url("/assets/app.js"))), 200);
}

#[test]
fn responses_carry_security_headers_and_the_dashboard_a_strict_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let c = CollectorSetup::new(tmp.path(), "").start();
    let page = http().get(&c.url).send().unwrap();
    let header = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let policy = header(&page, "content-security-policy");
    assert!(
        policy.contains("script-src 'self'") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    assert!(
        !policy.contains("unsafe"),
        "no inline script or style: {policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let api = http()
        .get(format!("{}/api/v1/stats/usage", c.url))
        .send()
        .unwrap();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(header(&page, name), value, "{name} on the page");
        assert_eq!(header(&api, name), value, "{name} on the API");
    }
}
