//! What a report says, by its profile's family, as one JSON document: a title, summary lines,
//! charts (series with optional forecast bands and markers) and tables, plus the stats they came
//! from. The renderers turn it into HTML and Markdown.

use serde_json::{json, Value};
use tda_schema::{ProfileType, Timestamp};

use crate::predictive::{self, Ask};
use crate::profiles::Entry;
use crate::query::{self, Agg};
use crate::store::Filter;
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::HOUR_MS;

/// Format version of a report document.
pub const VERSION: u8 = 1;

/// A chart: one series of `[t, v]` points, an optional band of `[t, low, high]` after it (a
/// forecast), and marked times (anomalies).
fn chart(
    title: &str,
    unit: &str,
    points: Vec<(i64, f64)>,
    band: Vec<(i64, f64, f64)>,
    marks: Vec<i64>,
) -> Value {
    json!({"title": title, "unit": unit, "points": points, "band": band, "marks": marks})
}

fn table(title: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Value {
    json!({"title": title, "columns": columns, "rows": rows})
}

/// A step that gives a chart 24-200 points over the period.
fn step_for(from: i64, to: i64) -> i64 {
    let span = (to - from).max(HOUR_MS);
    [60_000, 300_000, 900_000, HOUR_MS, 6 * HOUR_MS, 24 * HOUR_MS]
        .into_iter()
        .find(|s| span / s <= 200)
        .unwrap_or(24 * HOUR_MS)
}

fn series(
    store: &dyn Storage,
    name: &str,
    agg: Agg,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, f64)>, StoreError> {
    let step = step_for(from, to);
    let points = query::series(store, name, from, to, step, agg, &Filter::default())?;
    Ok(points
        .into_iter()
        .filter_map(|p| p.v.map(|v| (p.t, v)))
        .collect())
}

/// The report document of `entry`'s family over `[from, to)`.
pub fn build(
    store: &dyn Storage,
    entry: &Entry,
    name: &str,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Value, StoreError> {
    let mut doc = match entry.profile.kind {
        ProfileType::Usage => usage(store, entry, from, to)?,
        ProfileType::Performance => performance(store, from, to)?,
        ProfileType::Predictive => predictive_doc(store, entry, from, to)?,
        ProfileType::Behavioral => behavioral(store, entry, from, to)?,
    };
    doc["version"] = json!(VERSION);
    doc["profile"] = json!(entry.id);
    doc["profile_name"] = json!(entry.profile.name);
    doc["report"] = json!(name);
    doc["family"] = json!(entry.profile.kind);
    doc["from"] = json!(Timestamp(from).to_rfc3339());
    doc["to"] = json!(Timestamp(to).to_rfc3339());
    doc["from_ms"] = json!(from);
    doc["to_ms"] = json!(to);
    doc["generated_at"] = json!(Timestamp(now).to_rfc3339());
    Ok(doc)
}

fn usage(store: &dyn Storage, entry: &Entry, from: i64, to: i64) -> Result<Value, StoreError> {
    let level = entry.profile.settings.aggregation_level;
    let stats = crate::stats::usage::compute(store, from, to, level, Some(entry.id.clone()))?;
    let rows = stats
        .features
        .iter()
        .take(15)
        .map(|f| {
            vec![
                json!(f.feature),
                json!(f.requests),
                json!(f.users),
                json!(f.errors),
            ]
        })
        .collect();
    let l = &stats.latency_ms;
    Ok(json!({
        "title": "Usage",
        "summary": [
            format!("{} requests from {} active users", stats.total_requests, stats.active_users),
            format!("{} errors ({:.2} %)", stats.errors, 100.0 * stats.errors as f64 / stats.total_requests.max(1) as f64),
            format!("latency p50 {} ms, p95 {} ms, p99 {} ms", ms(l.p50), ms(l.p95), ms(l.p99)),
        ],
        "charts": [
            chart("Requests", "requests", series(store, "requests", Agg::Count, from, to)?, vec![], vec![]),
            chart("Active users", "users", series(store, "users", Agg::Distinct, from, to)?, vec![], vec![]),
        ],
        "tables": [table("Features", &["feature", "requests", "users", "errors"], rows)],
        "data": stats,
    }))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

fn performance(store: &dyn Storage, from: i64, to: i64) -> Result<Value, StoreError> {
    let stats = crate::stats::performance::compute(store, from, to)?;
    let errors = stats
        .top_errors
        .iter()
        .map(|e| vec![json!(e.error), json!(e.count)])
        .collect();
    let l = &stats.latency_ms;
    Ok(json!({
        "title": "Performance",
        "summary": [
            format!("{} requests, {} errors (error rate {:.2} %)", stats.requests, stats.errors, stats.error_rate * 100.0),
            format!("latency p50 {} ms, p95 {} ms, p99 {} ms", ms(l.p50), ms(l.p95), ms(l.p99)),
            format!("{} agents reporting", stats.agents.len()),
        ],
        "charts": [
            chart("Latency p95", "ms", series(store, "latency_ms", Agg::Quantile(95), from, to)?, vec![], vec![]),
            chart("Errors", "errors", series(store, "errors", Agg::Count, from, to)?, vec![], vec![]),
            chart("Host CPU", "%", series(store, "host.cpu_percent", Agg::Avg, from, to)?, vec![], vec![]),
        ],
        "tables": [table("Top errors", &["error", "count"], errors)],
        "data": stats,
    }))
}

fn predictive_doc(
    store: &dyn Storage,
    entry: &Entry,
    from: i64,
    to: i64,
) -> Result<Value, StoreError> {
    let models = &entry.profile.models;
    let metrics = predictive::metrics_of(models);
    let step = step_for(from, to).max(HOUR_MS);
    let horizon_ms = models.horizon.0.as_millis() as i64;
    let base = Ask {
        metric: String::new(),
        from,
        to,
        step,
        horizon: ((horizon_ms / step).max(1) as usize).min(500),
        sensitivity: models.sensitivity,
        filter: Filter::default(),
    };
    let stats = predictive::stats(store, &base, &metrics, Some(entry.id.clone()))?;
    let mut charts = Vec::new();
    let mut summary = Vec::new();
    for m in metrics.iter().filter(|m| predictive::metric(m).is_ok()) {
        let ask = Ask {
            metric: m.clone(),
            ..base.clone()
        };
        let (times, values) = predictive::load_closed(store, &ask)?;
        let found = predictive::anomalies_in(&times, &values, step, ask.sensitivity);
        let f = predictive::forecast_of(&values, ask.horizon, step);
        let last = times.last().copied().unwrap_or(to);
        let band = (0..f.mean.len())
            .map(|i| (last + (i as i64 + 1) * step, f.lower95[i], f.upper95[i]))
            .collect();
        summary.push(format!("{m}: {} anomalies flagged", found.len()));
        charts.push(chart(
            &format!("{m} with its forecast (95 % band)"),
            m,
            times.into_iter().zip(values).collect(),
            band,
            found.iter().map(|a| a.start_ms).collect(),
        ));
    }
    summary.extend(stats.metrics.iter().map(|m| m.trend.summary.clone()));
    let rows = stats
        .metrics
        .iter()
        .map(|m| {
            vec![
                json!(m.metric),
                json!(m.trend.percent_per_week),
                json!(m.trend.p_value),
                json!(m.forecast.model),
                json!(m.anomalies.count),
            ]
        })
        .collect();
    Ok(json!({
        "title": "Predictive",
        "summary": summary,
        "charts": charts,
        "tables": [table("Metrics", &["metric", "trend % per week", "p-value", "forecast model", "anomalies"], rows)],
        "data": stats,
    }))
}

fn behavioral(store: &dyn Storage, entry: &Entry, from: i64, to: i64) -> Result<Value, StoreError> {
    let run = crate::behavior::scheduled::run_range(store, entry, from, to)?;
    let mut tables = Vec::new();
    for f in run.funnels.iter().flatten() {
        let rows = f
            .funnel
            .steps
            .iter()
            .map(|s| {
                vec![
                    json!(s.step),
                    json!(s.users),
                    json!(s.conversion),
                    json!(s.median_time_ms),
                ]
            })
            .collect();
        tables.push(table(
            &format!("Funnel: {}", f.name.as_deref().unwrap_or("")),
            &["step", "users", "conversion", "median time (ms)"],
            rows,
        ));
    }
    let cohorts = run
        .retention_weekly
        .iter()
        .flat_map(|r| &r.cohorts)
        .map(|c| {
            vec![
                json!(Timestamp(c.start_ms).to_rfc3339()),
                json!(c.users),
                json!(c.retention),
            ]
        })
        .collect();
    tables.push(table(
        "Weekly retention",
        &["cohort", "users", "retention by week"],
        cohorts,
    ));
    let clusters = run
        .segments
        .iter()
        .filter_map(|s| s.segmentation.as_ref())
        .flat_map(|s| &s.clusters);
    let segments = clusters
        .map(|c| vec![json!(c.users), json!(c.share), json!(c.description)])
        .collect();
    tables.push(table(
        "Segments",
        &["users", "share", "what sets them apart"],
        segments,
    ));
    let (s, active) = (&run.sessions, &run.active_users);
    Ok(json!({
        "title": "Behavior",
        "summary": [
            format!("{} sessions by {} users, bounce rate {:.1} %", s.sessions, s.users, s.bounce_rate * 100.0),
            format!("active users: {} on the last day, {} in the last week", active.dau, active.wau),
        ],
        "charts": [chart("Active users", "users", series(store, "users", Agg::Distinct, from, to)?, vec![], vec![])],
        "tables": tables,
        "data": run,
    }))
}
