//! The browser SDKs from npm, unchanged (posthog-js's `dist/array.js`, `@segment/analytics-next`'s
//! UMD build), in headless Chromium, on a page served from another origin than the agent's
//! public intake: every call stored once, page context kept, identities linked, a retry through
//! a flaky proxy stored once, nothing refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tda_tests::browser::Browser;
use tda_tests::pages::{node_modules, Site};
use tda_tests::proxy::{Fault, Proxy};
use tda_tests::*;

const PH_KEY: &str = "phc_browser";
const WRITE_KEY: &str = "wk_browser";

/// A collector, and an agent whose public intake allows pages from `page_origin`.
fn started(dir: &Path, page_origin: &str) -> (Daemon, Daemon, u16) {
    let collector = CollectorSetup::new(&dir.join("collector"), "").start();
    let public = free_port();
    let intake = format!(
        "[intake.posthog]\nkeys = [\"{PH_KEY}\"]\n[intake.segment]\nkeys = [\"{WRITE_KEY}\"]\n\
         [intake.public]\nlisten = \"127.0.0.1:{public}\"\norigins = [\"{page_origin}\"]\n"
    );
    let agent = AgentSetup {
        intake,
        ..AgentSetup::new(&dir.join("agent"), &collector.url, collector.pid())
    }
    .start();
    (collector, agent, public)
}

/// A proxy in front of the public intake that loses the answer to the first request whose
/// head contains `marker` (the request reaches the intake; the browser sees the connection
/// drop and its SDK retries).
fn flaky(public: u16, marker: &'static str) -> (Proxy, Arc<AtomicBool>) {
    let cut = Arc::new(AtomicBool::new(false));
    let done = cut.clone();
    let proxy = Proxy::start_reading(format!("127.0.0.1:{public}"), move |_, head| {
        let text = String::from_utf8_lossy(head);
        if text.starts_with("POST ") && text.contains(marker) && !done.swap(true, Ordering::SeqCst)
        {
            Fault::CutResponse
        } else {
            Fault::Pass
        }
    });
    (proxy, cut)
}

fn count_by(events: &[Value], field: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let k = e[field].as_str().unwrap_or("").to_string();
        *out.entry(k).or_default() += 1;
    }
    out
}

/// The agent's health once it has deduplicated the retry of the answer the proxy cut: the
/// browser retries on its own schedule, which under load may come after every event is stored.
fn retry_deduplicated(agent: &Daemon) -> Value {
    wait_for("the cut answer's retry deduplicated", || {
        let (_, health) = get_json(&format!("{}/healthz", agent.url));
        (health["counters"]["events_deduplicated"].as_u64() >= Some(1)).then_some(health)
    })
}

/// The agent's refusal counters: all must stay 0.
fn assert_nothing_refused(agent: &Daemon) {
    let (_, health) = get_json(&format!("{}/healthz", agent.url));
    let c = &health["counters"];
    assert_eq!(
        (&c["requests_rejected"], &c["requests_unrouted"]),
        (&json!(0), &json!(0)),
        "{health}"
    );
    for k in [
        "refused_origin",
        "refused_ip_rate",
        "refused_key_rate",
        "refused_event_size",
        "refused_unknown_key",
    ] {
        assert_eq!(health["public"][k], 0, "{k}: {health}");
    }
}

fn posthog_page(intake: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>TD Generator</title></head><body>
<script src="/posthog/array.js"></script>
<script>
posthog.init("{PH_KEY}", {{api_host: "{intake}", autocapture: false, capture_pageview: true,
  capture_pageleave: true, disable_session_recording: true, persistence: "localStorage",
  loaded: function () {{ window.ready = true; }}}});
</script></body></html>"#
    )
}

#[test]
fn posthog_js_on_another_origin_stores_every_call_once() {
    let modules = node_modules();
    let site = Site::default().dir("/posthog/", &modules.join("posthog-js/dist"));
    // The page's origin is only known once it serves; the page names the intake, so serve
    // the page after the agent starts, on the origin the agent allows.
    let tmp = tempfile::tempdir().unwrap();
    let page_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let (collector, agent, public) = started(tmp.path(), &page_origin);
    let (proxy, cut) = flaky(public, "/e/");
    let intake = proxy.url.replace("127.0.0.1", "localhost");
    let site = site.page("/app.html", "text/html", posthog_page(&intake));
    let site_url = site.serve_on(page_port);
    let browser = Browser::start_as_visitor();
    browser.goto(&format!(
        "{site_url}/app.html?utm_source=newsletter&utm_campaign=dec"
    ));
    browser.wait("posthog-js loaded", "window.ready");
    let anonymous = browser.eval(
        "for (let i = 0; i < 10; i++) posthog.capture('export', {n: i}); return posthog.get_distinct_id();",
        json!([]),
    );
    // $pageview and the 10 anonymous captures reach the collector before the user logs in.
    recent_events(&collector.url, 11);
    browser.eval(
        "posthog.identify('user-42'); for (let i = 10; i < 20; i++) posthog.capture('export', {n: i});",
        json!([]),
    );
    recent_events(&collector.url, 21);
    // Leaving the page sends $pageleave in an unload beacon.
    browser.goto("about:blank");
    let events = recent_events(&collector.url, 22);
    assert!(cut.load(Ordering::SeqCst), "the proxy lost one answer");
    let features = count_by(&events, "feature");
    assert_eq!(
        features,
        BTreeMap::from([
            ("$pageleave".into(), 1),
            ("$pageview".into(), 1),
            ("export".into(), 20)
        ]),
        "every call once, the lost answer's retry deduplicated"
    );
    let anonymous = anonymous.as_str().unwrap().to_string();
    assert_eq!(
        count_by(&events, "user_id"),
        BTreeMap::from([(anonymous, 11), ("user-42".to_string(), 11)]),
        "calls after identify count under the user"
    );
    let view = events.iter().find(|e| e["feature"] == "$pageview").unwrap();
    let p = &view["properties"];
    assert_eq!(
        p["url"],
        format!("{site_url}/app.html?utm_source=newsletter&utm_campaign=dec"),
        "{view}"
    );
    assert_eq!(p["utm_source"], "newsletter", "{view}");
    assert_eq!(p["browser"], "Chrome", "{view}");
    assert_eq!(p["os"], "Linux", "{view}");
    assert_eq!(p["device_type"], "Desktop", "{view}");
    let screen = browser.eval("return [screen.width, screen.height];", json!([]));
    assert_eq!(
        json!([p["screen_width"], p["screen_height"]]),
        screen,
        "{view}"
    );
    assert_eq!(
        view["route"], "/app.html",
        "the page's path is the event's route"
    );
    assert!(
        p.as_object().unwrap().values().all(|v| !v.is_null()),
        "no null properties: {view}"
    );
    retry_deduplicated(&agent);
    assert_nothing_refused(&agent);
    assert_no_intake_errors(&browser, &intake);
}

fn segment_page(intake: &str, options: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>TD Generator</title></head><body>
<script>window.analytics = {{_cdn: location.origin}};</script>
<script src="/analytics-next/bundles/index.js"></script>
<script>
const ajs = AnalyticsNext.AnalyticsBrowser.load({{writeKey: "{WRITE_KEY}", cdnURL: "{intake}"}}, {options});
window.ajs = ajs;
ajs.then(function () {{ window.ready = true; }});
</script></body></html>"#
    )
}

#[test]
fn analytics_next_on_another_origin_stores_every_call_once() {
    analytics_next_stores_every_call_once("{}", "/v1/t");
}

#[test]
fn analytics_next_in_batching_mode_stores_every_call_once() {
    let batching = r#"{integrations: {"Segment.io": {deliveryStrategy:
        {strategy: "batching", config: {size: 5, timeout: 300}}}}}"#;
    analytics_next_stores_every_call_once(batching, "/v1/b");
}

/// analytics-next loaded with `options`; the proxy loses the answer to the first request to
/// `lost` (a route of the mode under test).
fn analytics_next_stores_every_call_once(options: &str, lost: &'static str) {
    let modules = node_modules();
    let umd = modules.join("@segment/analytics-next/dist/umd");
    let tmp = tempfile::tempdir().unwrap();
    let page_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let (collector, agent, public) = started(tmp.path(), &page_origin);
    let (proxy, cut) = flaky(public, lost);
    let intake = proxy.url.replace("127.0.0.1", "localhost");
    let site_url = Site::default()
        .dir("/analytics-next/bundles/", &umd)
        .page("/app.html", "text/html", segment_page(&intake, options))
        .serve_on(page_port);
    let browser = Browser::start_as_visitor();
    browser.goto(&format!("{site_url}/app.html?utm_source=newsletter"));
    browser.wait("analytics-next loaded", "window.ready");
    let anonymous = browser.eval(
        "return (async () => { await ajs.page(); \
         for (let i = 0; i < 10; i++) await ajs.track('export', {n: i}); \
         return (await ajs.user()).anonymousId(); })();",
        json!([]),
    );
    recent_events(&collector.url, 11);
    browser.eval(
        "return (async () => { await ajs.identify('user-42', {plan: 'pro'}); \
         await ajs.alias('user-42'); await ajs.group('team-1'); \
         for (let i = 10; i < 20; i++) await ajs.track('export', {n: i}); })();",
        json!([]),
    );
    let events = recent_events(&collector.url, 21);
    assert!(cut.load(Ordering::SeqCst), "the proxy lost one answer");
    assert_eq!(
        count_by(&events, "feature"),
        BTreeMap::from([("export".into(), 20), ("page".into(), 1)]),
        "every call once, the lost answer's retry deduplicated"
    );
    let anonymous = anonymous.as_str().unwrap().to_string();
    assert_eq!(
        count_by(&events, "user_id"),
        BTreeMap::from([(anonymous, 11), ("user-42".to_string(), 10)])
    );
    let page = events.iter().find(|e| e["feature"] == "page").unwrap();
    let p = &page["properties"];
    assert_eq!(
        p["url"],
        format!("{site_url}/app.html?utm_source=newsletter"),
        "{page}"
    );
    assert_eq!(
        page["route"], "/app.html",
        "the page's path is the event's route"
    );
    assert_eq!(p["title"], "TD Generator", "{page}");
    assert_eq!(p["utm_source"], "newsletter", "{page}");
    let health = retry_deduplicated(&agent);
    assert_nothing_refused(&agent);
    assert!(
        health["public"]["preflights"].as_u64() >= Some(1),
        "analytics-next's Basic authorisation is preflighted: {health}"
    );
    assert_no_intake_errors(&browser, &intake);
}

/// The browser's console names no failed request to the intake but the answer the proxy cut.
fn assert_no_intake_errors(browser: &Browser, intake: &str) {
    let errors: Vec<String> = browser
        .console_errors()
        .into_iter()
        .filter(|e| e.contains(intake) && !e.contains("ERR_EMPTY_RESPONSE"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
