//! The tables `tda` prints for each answer.

use std::fmt::Write as _;

use serde_json::Value;
use tda_schema::answers::{
    AlertsAnswer, BehavioralStats, EventsPage, FunnelAnswer, JourneysAnswer, Latency, PathCount,
    PerformanceStats, PredictiveStats, ReportsAnswer, Retention, Series, SessionStats, Silence,
    UsageStats,
};
use tda_schema::Timestamp;

pub(crate) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `tda stats predictive`.
pub(crate) fn predictive_table(v: &PredictiveStats) -> String {
    let mut out = String::new();
    let profile = v
        .profile
        .as_deref()
        .unwrap_or("no predictive profile: default metrics");
    let _ = writeln!(out, "Predictive ({profile}), step {} ms", v.step_ms);
    let _ = writeln!(
        out,
        "{:<18} {:>7} {:<44} {:<36} {:>9}",
        "metric", "points", "trend", "forecast (mean over horizon)", "anomalies"
    );
    for m in &v.metrics {
        let trend = m.trend.summary.as_str();
        let trend = trend.split_once(": ").map_or(trend, |(_, t)| t);
        let forecast = format!("{:.1} ({})", m.forecast.mean, m.forecast.model);
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:<44} {:<36} {:>9}",
            m.metric, m.points, trend, forecast, m.anomalies.count
        );
    }
    out
}

pub(crate) fn profiles_table(v: &Value) -> String {
    let mut out = format!(
        "{:<22} {:<24} {:<12} {:<7} {:>9} {:>10} {:<7} {}\n",
        "ID", "NAME", "TYPE", "STATUS", "INTERVAL", "RETENTION", "LEVEL", "FILE"
    );
    for p in v["profiles"].as_array().into_iter().flatten() {
        let st = &p["settings"];
        let file = p["file"]
            .as_str()
            .and_then(|f| f.rsplit('/').next())
            .unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<22} {:<24} {:<12} {:<7} {:>8}s {:>9}d {:<7} {file}",
            s(&p["id"]),
            s(&p["name"]),
            s(&p["type"]),
            s(&p["status"]),
            s(&st["collection_interval"]),
            s(&st["retention_period"]),
            s(&st["aggregation_level"])
        );
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "error: {} (the last good version, if any, stays in force)",
            s(e)
        );
    }
    if let Some(e) = v["config"]["last_error"].as_str() {
        let _ = writeln!(out, "config error: {e} (the config in force stays)");
    }
    for f in v["config"]["restart_needed"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "restart needed: `{}` changed in {}",
            s(f),
            s(&v["config"]["file"])
        );
    }
    let r = &v["reload"];
    let ok = if r["last_reload_ok"] == true {
        "ok"
    } else {
        "with errors"
    };
    let _ = writeln!(
        out,
        "last reload {ok} at {}; last fully successful at {}",
        s(&r["last_reload_at"]),
        s(&r["last_success_at"])
    );
    out
}

/// An optional figure with `decimals` decimals, `-` when absent.
fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.decimals$}"))
}

fn latency_line(out: &mut String, l: &Latency) {
    let (p50, p95, p99) = (opt(l.p50, 1), opt(l.p95, 1), opt(l.p99, 1));
    let _ = writeln!(out, "  latency ms      p50 {p50}  p95 {p95}  p99 {p99}");
}

/// `tda stats usage`.
pub(crate) fn usage_table(u: &UsageStats) -> String {
    let mut out = String::new();
    let profile = u.profile.as_ref().map(|p| format!(", profile {p}"));
    let _ = writeln!(
        out,
        "Usage {} .. {} ({} buckets{})",
        u.range.from,
        u.range.to,
        u.aggregation_level.as_str(),
        profile.unwrap_or_default()
    );
    let _ = writeln!(out, "  total requests  {}", u.total_requests);
    let _ = writeln!(out, "  active users    {}", u.active_users);
    let _ = writeln!(out, "  errors          {}", u.errors);
    latency_line(&mut out, &u.latency_ms);
    let _ = writeln!(
        out,
        "\n  {:<24} {:>10} {:>8} {:>8}",
        "FEATURE", "REQUESTS", "USERS", "ERRORS"
    );
    for f in &u.features {
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>8} {:>8}",
            f.feature, f.requests, f.users, f.errors
        );
    }
    out
}

/// `tda stats performance`.
pub(crate) fn performance_table(p: &PerformanceStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Performance {} .. {}", p.range.from, p.range.to);
    let status = serde_json::to_value(p.health.status).unwrap_or_default();
    let _ = writeln!(
        out,
        "  health          {} {}",
        s(&status),
        p.health.reasons.join("; ")
    );
    let _ = writeln!(out, "  requests        {}", p.requests);
    let _ = writeln!(out, "  error rate      {:.2} %", p.error_rate * 100.0);
    latency_line(&mut out, &p.latency_ms);
    let _ = writeln!(out, "\n  {:<24} {:>8}", "ERROR", "COUNT");
    for e in &p.top_errors {
        let _ = writeln!(out, "  {:<24} {:>8}", e.error, e.count);
    }
    let _ = writeln!(
        out,
        "\n  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
        "AGENT", "SAMPLES", "CPU%", "MEM%", "LOAD1", "PROC RSS MB"
    );
    for a in &p.agents {
        let rss = a
            .latest
            .process
            .as_ref()
            .map(|p| p.rss_bytes as f64 / 1048576.0);
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
            a.agent_id,
            a.samples,
            opt(Some(a.average.cpu_percent), 1),
            opt(Some(a.average.mem_used_percent), 1),
            opt(Some(a.average.load1), 2),
            opt(rss, 1)
        );
    }
    out
}

/// `tda query`.
pub(crate) fn series_table(v: &Series) -> String {
    let agg = serde_json::to_value(v.agg).unwrap_or_default();
    let mut out = format!("{} ({}, step {} s)\n", v.series, s(&agg), v.step_ms / 1000);
    for p in &v.points {
        let t = Timestamp(p.t).to_rfc3339();
        let _ = writeln!(out, "  {t:<26} {:>14}", opt(p.v, 3));
    }
    out
}

/// `tda events`.
pub(crate) fn events_table(page: &EventsPage) -> String {
    let mut out = format!(
        "{:<26} {:<16} {:<18} {:>6} {:>10} {}\n",
        "TIME", "USER", "FEATURE", "STATUS", "LATENCY MS", "ERROR"
    );
    for e in &page.events {
        let status = e.status.map_or("-".into(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{:<26} {:<16} {:<18} {:>6} {:>10} {}",
            e.timestamp.to_rfc3339(),
            e.user_id,
            e.feature,
            status,
            opt(e.latency_ms, 1),
            e.error.as_deref().unwrap_or("")
        );
    }
    if let Some(c) = &page.next_cursor {
        let _ = writeln!(out, "next: --cursor {c}");
    }
    out
}

/// `tda behavior sessions`.
pub(crate) fn sessions_table(x: &SessionStats) -> String {
    let mut out = String::new();
    let minutes = |ms: Option<f64>| opt(ms.map(|m| m / 60_000.0), 1);
    let _ = writeln!(out, "sessions             {}", x.sessions);
    let _ = writeln!(out, "users                {}", x.users);
    let _ = writeln!(out, "events per session   {:.1}", x.events_per_session);
    let median = x.median_duration_ms.map(|m| m as f64);
    let _ = writeln!(out, "median length min    {}", minutes(median));
    let _ = writeln!(out, "mean length min      {}", minutes(x.mean_duration_ms));
    let _ = writeln!(out, "bounce rate          {:.1} %", x.bounce_rate * 100.0);
    let _ = writeln!(out, "sessions per user    {:.2}", x.sessions_per_user);
    out
}

/// `tda behavior funnel`.
pub(crate) fn funnel_table(f: &FunnelAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>11} {:>9} {:>14}",
        "step", "users", "conversion", "drop-off", "median time"
    );
    for st in &f.funnel.steps {
        let time = st
            .median_time_ms
            .map_or("-".into(), |ms| format!("{:.1} min", ms as f64 / 60_000.0));
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>11} {:>9} {:>14}",
            st.step,
            st.users,
            format!("{:.1} %", st.conversion * 100.0),
            format!("{:.1} %", st.drop_off * 100.0),
            time
        );
    }
    out
}

/// `tda behavior retention`.
pub(crate) fn retention_table(r: &Retention) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cohort start              users  retention by period");
    for c in &r.cohorts {
        let cells: Vec<String> = c
            .retention
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        let start = Timestamp(c.start_ms).to_rfc3339();
        let _ = writeln!(out, "{start:<25} {:>5}  {}", c.users, cells.join(" "));
    }
    let _ = writeln!(out, "DAU {}  WAU {}  MAU {}", r.dau, r.wau, r.mau);
    out
}

/// A phase's name as the API writes it.
fn named(x: &impl serde::Serialize) -> String {
    s(&serde_json::to_value(x).unwrap_or_default())
}

/// `tda alerts`.
pub(crate) fn alerts_table(v: &AlertsAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<9} {:>12}  summary",
        "profile", "rule", "state", "value"
    );
    for a in &v.alerts {
        let state = match (&a.silenced_by, a.inhibited) {
            (Some(id), _) => format!("{} (silenced {id})", named(&a.state)),
            (None, true) => format!("{} (inhibited)", named(&a.state)),
            (None, false) => named(&a.state),
        };
        let summary = match &a.error {
            Some(e) => format!("error: {e}"),
            None => a.annotations.get("summary").cloned().unwrap_or("-".into()),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<9} {:>12}  {summary}",
            a.profile,
            a.rule,
            state,
            opt(a.value, 3)
        );
    }
    let n = &v.notifications;
    let _ = writeln!(
        out,
        "notifications: {} sent, {} retried, {} dropped; {} waiting",
        n.sent, n.retried, n.dropped, v.outbox
    );
    out
}

/// `tda report list`.
pub(crate) fn reports_table(v: &ReportsAnswer) -> String {
    let mut out = String::new();
    for r in &v.reports {
        let first = r.summary.first().map_or("", String::as_str);
        let _ = writeln!(out, "{:<56} {} to {}  {first}", r.id, r.from, r.to);
    }
    out
}

/// `tda silence …`: the silences listed, or the one created or expired.
pub(crate) fn silences_table(list: &[Silence]) -> String {
    let mut out = String::new();
    for x in list {
        let until = Timestamp(x.ends_at).to_rfc3339();
        let _ = writeln!(
            out,
            "{:<8} until {until}  {}  {}",
            x.id,
            x.matchers.join(", "),
            x.comment
        );
    }
    out
}

/// An epoch-ms time as RFC 3339, `-` when absent.
fn when(t: Option<i64>) -> String {
    t.map_or("-".into(), |t| Timestamp(t).to_rfc3339())
}

/// `tda stats behavioral`: the scheduled run of a behavioral profile, or the summary now.
pub(crate) fn behavioral_table(v: &BehavioralStats) -> String {
    let mut out = String::new();
    let profile = v.profile.as_deref().unwrap_or("no behavioral profile");
    let _ = writeln!(
        out,
        "Behavior ({profile}) {} .. {}",
        when(v.from),
        when(v.to)
    );
    if v.computed_at.is_some() {
        let _ = writeln!(out, "  computed at     {}", when(v.computed_at));
    }
    let a = &v.active_users;
    let _ = writeln!(
        out,
        "  active users    {} last day, {} last week, {} last 30 days",
        a.dau, a.wau, a.mau
    );
    let x = &v.sessions;
    let _ = writeln!(
        out,
        "  sessions        {} by {} users, {:.1} events each, bounce rate {:.1} %",
        x.sessions,
        x.users,
        x.events_per_session,
        x.bounce_rate * 100.0
    );
    for f in v.funnels.iter().flatten() {
        let name = f.name.as_deref().unwrap_or("-");
        let mode = named(&f.mode);
        let window = format!("{} min", f.window_ms / 60_000);
        let _ = writeln!(out, "\n  FUNNEL {name} ({mode}, within {window})");
        let _ = writeln!(out, "  {:<24} {:>8} {:>11}", "STEP", "USERS", "CONVERSION");
        for step in &f.funnel.steps {
            let _ = writeln!(
                out,
                "  {:<24} {:>8} {:>9.1} %",
                step.step,
                step.users,
                step.conversion * 100.0
            );
        }
    }
    if let Some(segments) = &v.segments {
        segments_lines(&mut out, segments);
    }
    if !v.top_paths.is_empty() {
        let _ = writeln!(out, "\n  {:>8}  TOP PATH", "SESSIONS");
        for p in &v.top_paths {
            let _ = writeln!(out, "  {:>8}  {}", p.sessions, path(p));
        }
    }
    out
}

/// The rule segments and clusters of a behavioral run.
fn segments_lines(out: &mut String, segments: &tda_schema::answers::SegmentsAnswer) {
    if !segments.rules.is_empty() {
        let _ = writeln!(out, "\n  {:<40} {:>8}  RULE", "SEGMENT", "USERS");
        for r in &segments.rules {
            let _ = writeln!(out, "  {:<40} {:>8}  {}", r.name, r.users, r.rule);
        }
    }
    if let Some(seg) = &segments.segmentation {
        let _ = writeln!(
            out,
            "\n  {:>8} {:>7}  WHAT SETS THE CLUSTER APART",
            "USERS", "SHARE"
        );
        for c in &seg.clusters {
            let share = format!("{:.1} %", c.share * 100.0);
            let _ = writeln!(out, "  {:>8} {:>7}  {}", c.users, share, c.description);
        }
    }
}

/// A path's steps joined by arrows.
fn path(p: &PathCount) -> String {
    p.path.join(" → ")
}

/// `tda behavior journeys` (top paths).
pub(crate) fn journeys_table(v: &JourneysAnswer) -> String {
    let mut out = String::new();
    for p in &v.top_paths {
        let _ = writeln!(out, "{:>7}  {}", p.sessions, path(p));
    }
    out
}
