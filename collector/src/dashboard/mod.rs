//! The dashboard: its assets (embedded in the binary: no CDN, nothing fetched at run time), the
//! live snapshot streamed to it (`GET /api/v1/live`, refreshed by a job), and the custom views of
//! the profiles' `[[view]]` panels evaluated server-side (`GET /api/v1/views`).

use hyper::StatusCode;
use serde_json::{json, Value};
use tda_daemon::{error, with_type, Response};
use tda_schema::sections::Chart;

use crate::alert::store::AlertStore;
use crate::profiles::Entry;
use crate::query::{self, Agg};
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::{DAY_MS, HOUR_MS, MINUTE_MS};

/// The embedded assets: path, body, content type.
pub const ASSETS: [(&str, &str, &str); 4] = [
    ("/", include_str!("index.html"), "text/html; charset=utf-8"),
    (
        "/assets/app.js",
        include_str!("app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/assets/charts.js",
        include_str!("charts.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/assets/style.css",
        include_str!("style.css"),
        "text/css; charset=utf-8",
    ),
];

/// The asset at `path`, if there is one.
pub fn asset(path: &str) -> Option<Response> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, body, kind)| {
            let mut resp = with_type(StatusCode::OK, *body, kind);
            if kind.starts_with("text/html") {
                resp.headers_mut().insert(
                    "content-security-policy",
                    hyper::header::HeaderValue::from_static(tda_daemon::http::PAGE_POLICY),
                );
            }
            resp
        })
}

/// The live values: requests per second over the last minute, and per minute over the last 5
/// (steadier under bursty traffic); active users, error rate and p95 latency over the last 5
/// minutes; agents and their health; firing and pending alerts.
pub fn snapshot(store: &dyn Storage, alerts: &AlertStore, now: i64) -> Result<Value, StoreError> {
    let minute = crate::stats::usage::compute(
        store,
        now - 60_000,
        now,
        tda_schema::AggregationLevel::Minute,
        None,
    )?;
    let five = crate::stats::usage::compute(
        store,
        now - 300_000,
        now,
        tda_schema::AggregationLevel::Minute,
        None,
    )?;
    let perf = crate::stats::performance::compute(store, now - 300_000, now)?;
    let alerts = alerts.alerts()?;
    let count = |phase| alerts.iter().filter(|a| a.state.phase == phase).count();
    Ok(json!({
        "t": now,
        "requests_per_s": minute.total_requests as f64 / 60.0,
        "requests_per_min_5m": five.total_requests as f64 / 5.0,
        "active_users_5m": five.active_users,
        "error_rate_5m": if five.total_requests == 0 { 0.0 } else { five.errors as f64 / five.total_requests as f64 },
        "p95_ms_5m": five.latency_ms.p95,
        "agents": perf.agents,
        "health": perf.health,
        "alerts_firing": count(crate::alert::rule::Phase::Firing),
        "alerts_pending": count(crate::alert::rule::Phase::Pending),
    }))
}

/// A step that gives a view 30-150 points over `range_ms`.
fn view_step(range_ms: i64) -> i64 {
    [
        MINUTE_MS,
        5 * MINUTE_MS,
        15 * MINUTE_MS,
        HOUR_MS,
        6 * HOUR_MS,
        DAY_MS,
    ]
    .into_iter()
    .find(|s| range_ms / s <= 150)
    .unwrap_or(DAY_MS)
}

/// One `[[view]]` panel's data.
fn view_data(store: &dyn Storage, view: &tda_schema::sections::View, now: i64) -> Value {
    let range = view.range.0.as_millis() as i64;
    let from = now - range;
    if view.query == "features" {
        return match crate::stats::usage::compute(
            store,
            from,
            now,
            tda_schema::AggregationLevel::Hour,
            None,
        ) {
            Ok(u) => json!({"features": u.features}),
            Err(e) => json!({"error": e.to_string()}),
        };
    }
    let selector = match crate::alert::metric::parse_selector(&view.query) {
        Ok(s) => s,
        Err(e) => return json!({"error": format!("query: {e}")}),
    };
    let (series, agg) = match crate::predictive::metric(&selector.metric) {
        Ok(x) => x,
        Err(e) => return json!({"error": format!("query: {e}")}),
    };
    let step = if view.chart == Chart::Number {
        range.max(1)
    } else {
        view_step(range)
    };
    let from = from.div_euclid(step) * step;
    match query::series(store, series, from, now, step, agg, &selector.filter) {
        Ok(points) => {
            let pts: Vec<(i64, f64)> = points
                .iter()
                .filter_map(|p| p.v.map(|v| (p.t, v)))
                .collect();
            json!({"step_ms": step, "points": pts, "value": pts.last().map(|p| p.1), "rate": agg == Agg::Rate})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Every profile's `[[view]]` panels with their data (`GET /api/v1/views`).
pub fn views(store: &dyn Storage, profiles: &[Entry], now: i64) -> Value {
    let panels: Vec<Value> = profiles
        .iter()
        .flat_map(|e| e.profile.views.iter().map(move |v| (e.id.clone(), v)))
        .map(|(profile, v)| {
            let mut panel = json!({"profile": profile, "title": v.title, "query": v.query, "chart": v.chart,
                "range_ms": v.range.0.as_millis() as i64});
            panel["data"] = view_data(store, v, now);
            panel
        })
        .collect();
    json!({ "views": panels })
}

/// Unknown dashboard paths.
pub fn not_found(path: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no asset {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_small_and_self_contained() {
        let total: usize = ASSETS.iter().map(|(_, body, _)| body.len()).sum();
        assert!(
            total < 300 * 1024,
            "{total} bytes (uncompressed) against a 300 KB gzipped budget"
        );
        for (path, body, _) in ASSETS {
            for external in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "import(",
                "fetch('http",
                "fetch(\"http",
            ] {
                assert!(
                    !body.contains(external),
                    "{path} loads something from elsewhere: {external}"
                );
            }
        }
        assert!(asset("/assets/app.js").is_some() && asset("/assets/nope.js").is_none());
    }
}
