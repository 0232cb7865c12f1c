//! The tables `tda` prints for each answer.

use std::fmt::Write as _;

use serde_json::Value;

pub(crate) fn alerts_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<9} {:>12}  summary",
        "profile", "rule", "state", "value"
    );
    for a in v["alerts"].as_array().into_iter().flatten() {
        let state = match (&a["silenced_by"], a["inhibited"].as_bool()) {
            (Value::String(id), _) => format!("{} (silenced {id})", s(&a["state"])),
            (_, Some(true)) => format!("{} (inhibited)", s(&a["state"])),
            _ => s(&a["state"]),
        };
        let summary = a["error"].as_str().map_or_else(
            || s(&a["annotations"]["summary"]),
            |e| format!("error: {e}"),
        );
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<9} {:>12}  {summary}",
            s(&a["profile"]),
            s(&a["rule"]),
            state,
            num(&a["value"], 3)
        );
    }
    let n = &v["notifications"];
    let _ = writeln!(
        out,
        "notifications: {} sent, {} retried, {} dropped; {} waiting",
        s(&n["sent"]),
        s(&n["retried"]),
        s(&n["dropped"]),
        s(&v["outbox"])
    );
    out
}

pub(crate) fn reports_table(v: &Value) -> String {
    let mut out = String::new();
    for r in v["reports"].as_array().into_iter().flatten() {
        let first = r["summary"]
            .as_array()
            .and_then(|a| a.first())
            .map(s)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<56} {} to {}  {first}",
            s(&r["id"]),
            s(&r["from"]),
            s(&r["to"])
        );
    }
    out
}

pub(crate) fn silences_table(v: &Value) -> String {
    let one = v.get("id").map(|_| vec![v.clone()]);
    let list = one.unwrap_or_else(|| v["silences"].as_array().cloned().unwrap_or_default());
    let mut out = String::new();
    for x in list {
        let until = time(&x["ends_at"]);
        let matchers: Vec<String> = x["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let _ = writeln!(
            out,
            "{:<8} until {until}  {}  {}",
            s(&x["id"]),
            matchers.join(", "),
            s(&x["comment"])
        );
    }
    out
}

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

pub(crate) fn num(v: &Value, decimals: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.decimals$}"))
}

pub(crate) fn latency_line(out: &mut String, l: &Value) {
    let (p50, p95, p99) = (num(&l["p50"], 1), num(&l["p95"], 1), num(&l["p99"], 1));
    let _ = writeln!(out, "  latency ms      p50 {p50}  p95 {p95}  p99 {p99}");
}

pub(crate) fn behavior_table(path: &str, v: &Value) -> String {
    let mut out = String::new();
    match path {
        "/api/v1/funnels" => {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>11} {:>9} {:>14}",
                "step", "users", "conversion", "drop-off", "median time"
            );
            for st in v["funnel"]["steps"].as_array().into_iter().flatten() {
                let pct = |k: &str| format!("{:.1} %", st[k].as_f64().unwrap_or(0.0) * 100.0);
                let time = st["median_time_ms"]
                    .as_i64()
                    .map_or("-".into(), |ms| format!("{:.1} min", ms as f64 / 60_000.0));
                let _ = writeln!(
                    out,
                    "{:<24} {:>8} {:>11} {:>9} {:>14}",
                    s(&st["step"]),
                    s(&st["users"]),
                    pct("conversion"),
                    pct("drop_off"),
                    time
                );
            }
        }
        "/api/v1/retention" => {
            let _ = writeln!(out, "cohort start              users  retention by period");
            for c in v["cohorts"].as_array().into_iter().flatten() {
                let cells: Vec<String> = c["retention"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{:.0}%", r.as_f64().unwrap_or(0.0) * 100.0))
                    .collect();
                let start = tda_schema::Timestamp(c["start_ms"].as_i64().unwrap_or(0)).to_rfc3339();
                let _ = writeln!(
                    out,
                    "{start:<25} {:>5}  {}",
                    s(&c["users"]),
                    cells.join(" ")
                );
            }
            let _ = writeln!(
                out,
                "DAU {}  WAU {}  MAU {}",
                s(&v["dau"]),
                s(&v["wau"]),
                s(&v["mau"])
            );
        }
        "/api/v1/journeys" => {
            for p in v["top_paths"].as_array().into_iter().flatten() {
                let path: Vec<String> = p["path"].as_array().into_iter().flatten().map(s).collect();
                let _ = writeln!(out, "{:>7}  {}", s(&p["sessions"]), path.join(" → "));
            }
        }
        _ => {
            for (k, val) in v.as_object().into_iter().flatten() {
                let _ = writeln!(out, "{k:<20} {}", s(val));
            }
        }
    }
    out
}

/// An epoch-ms field as RFC 3339.
pub(crate) fn time(v: &Value) -> String {
    v.as_i64()
        .map_or("-".into(), |t| tda_schema::Timestamp(t).to_rfc3339())
}

/// A share (0-1) as a percentage.
pub(crate) fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |x| format!("{:.1} %", 100.0 * x))
}

pub(crate) fn behavioral_table(v: &Value) -> String {
    let mut out = String::new();
    let profile = v["profile"].as_str().unwrap_or("no behavioral profile");
    let _ = writeln!(
        out,
        "Behavior ({profile}) {} .. {}",
        time(&v["from"]),
        time(&v["to"])
    );
    if v["computed_at"].is_i64() {
        let _ = writeln!(out, "  computed at     {}", time(&v["computed_at"]));
    }
    let a = &v["active_users"];
    let _ = writeln!(
        out,
        "  active users    {} last day, {} last week, {} last 30 days",
        s(&a["dau"]),
        s(&a["wau"]),
        s(&a["mau"])
    );
    let x = &v["sessions"];
    let _ = writeln!(
        out,
        "  sessions        {} by {} users, {} events each, bounce rate {}",
        s(&x["sessions"]),
        s(&x["users"]),
        num(&x["events_per_session"], 1),
        percent(&x["bounce_rate"])
    );
    for f in v["funnels"].as_array().into_iter().flatten() {
        let window = f["window_ms"]
            .as_i64()
            .map_or("-".into(), |w| format!("{} min", w / 60_000));
        let _ = writeln!(
            out,
            "\n  FUNNEL {} ({}, within {window})",
            s(&f["name"]),
            s(&f["mode"])
        );
        let _ = writeln!(out, "  {:<24} {:>8} {:>11}", "STEP", "USERS", "CONVERSION");
        for step in f["funnel"]["steps"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<24} {:>8} {:>11}",
                s(&step["step"]),
                s(&step["users"]),
                percent(&step["conversion"])
            );
        }
    }
    let segments = &v["segments"];
    if let Some(rules) = segments["rules"].as_array().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "\n  {:<40} {:>8}  RULE", "SEGMENT", "USERS");
        for r in rules {
            let _ = writeln!(
                out,
                "  {:<40} {:>8}  {}",
                s(&r["name"]),
                s(&r["users"]),
                s(&r["rule"])
            );
        }
    }
    if let Some(clusters) = segments["segmentation"]["clusters"].as_array() {
        let _ = writeln!(
            out,
            "\n  {:>8} {:>7}  WHAT SETS THE CLUSTER APART",
            "USERS", "SHARE"
        );
        for c in clusters {
            let _ = writeln!(
                out,
                "  {:>8} {:>7}  {}",
                s(&c["users"]),
                percent(&c["share"]),
                s(&c["description"])
            );
        }
    }
    if let Some(paths) = v["top_paths"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "\n  {:>8}  TOP PATH", "SESSIONS");
        for p in paths {
            let path: Vec<String> = p["path"].as_array().into_iter().flatten().map(s).collect();
            let _ = writeln!(out, "  {:>8}  {}", s(&p["sessions"]), path.join(" → "));
        }
    }
    out
}

pub(crate) fn predictive_table(v: &Value) -> String {
    let mut out = String::new();
    let profile = v["profile"]
        .as_str()
        .unwrap_or("no predictive profile: default metrics");
    let _ = writeln!(out, "Predictive ({profile}), step {} ms", s(&v["step_ms"]));
    let _ = writeln!(
        out,
        "{:<18} {:>7} {:<44} {:<36} {:>9}",
        "metric", "points", "trend", "forecast (mean over horizon)", "anomalies"
    );
    for m in v["metrics"].as_array().into_iter().flatten() {
        let trend = m["trend"]["summary"].as_str().unwrap_or("-");
        let trend = trend.split_once(": ").map_or(trend, |(_, t)| t);
        let forecast = format!(
            "{:.1} ({})",
            m["forecast"]["mean"].as_f64().unwrap_or(0.0),
            s(&m["forecast"]["model"])
        );
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:<44} {:<36} {:>9}",
            s(&m["metric"]),
            s(&m["points"]),
            trend,
            forecast,
            s(&m["anomalies"]["count"])
        );
    }
    out
}

pub(crate) fn usage_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Usage {} .. {} ({} buckets{})",
        s(&v["range"]["from"]),
        s(&v["range"]["to"]),
        s(&v["aggregation_level"]),
        v["profile"]
            .as_str()
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  total requests  {}", s(&v["total_requests"]));
    let _ = writeln!(out, "  active users    {}", s(&v["active_users"]));
    let _ = writeln!(out, "  errors          {}", s(&v["errors"]));
    latency_line(&mut out, &v["latency_ms"]);
    let _ = writeln!(
        out,
        "\n  {:<24} {:>10} {:>8} {:>8}",
        "FEATURE", "REQUESTS", "USERS", "ERRORS"
    );
    for f in v["features"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>8} {:>8}",
            s(&f["feature"]),
            s(&f["requests"]),
            s(&f["users"]),
            s(&f["errors"])
        );
    }
    out
}

pub(crate) fn performance_table(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Performance {} .. {}",
        s(&v["range"]["from"]),
        s(&v["range"]["to"])
    );
    let _ = writeln!(
        out,
        "  health          {} {}",
        s(&v["health"]["status"]),
        v["health"]["reasons"]
            .as_array()
            .map(|r| r.iter().map(s).collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  requests        {}", s(&v["requests"]));
    let _ = writeln!(
        out,
        "  error rate      {} %",
        v["error_rate"]
            .as_f64()
            .map_or("-".into(), |r| format!("{:.2}", r * 100.0))
    );
    latency_line(&mut out, &v["latency_ms"]);
    let _ = writeln!(out, "\n  {:<24} {:>8}", "ERROR", "COUNT");
    for e in v["top_errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<24} {:>8}", s(&e["error"]), s(&e["count"]));
    }
    let _ = writeln!(
        out,
        "\n  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
        "AGENT", "SAMPLES", "CPU%", "MEM%", "LOAD1", "PROC RSS MB"
    );
    for a in v["agents"].as_array().into_iter().flatten() {
        let avg = &a["average"];
        let rss = a["latest"]["process"]["rss_bytes"]
            .as_f64()
            .map_or("-".into(), |b| format!("{:.1}", b / 1048576.0));
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>6} {:>6} {:>6} {:>12}",
            s(&a["agent_id"]),
            s(&a["samples"]),
            num(&avg["cpu_percent"], 1),
            num(&avg["mem_used_percent"], 1),
            num(&avg["load1"], 2),
            rss
        );
    }
    out
}

pub(crate) fn series_table(v: &Value) -> String {
    let mut out = format!(
        "{} ({}, step {} s)\n",
        s(&v["series"]),
        s(&v["agg"]),
        v["step_ms"].as_i64().unwrap_or(0) / 1000
    );
    for p in v["points"].as_array().into_iter().flatten() {
        let t = tda_schema::Timestamp(p["t"].as_i64().unwrap_or(0)).to_rfc3339();
        let _ = writeln!(out, "  {t:<26} {:>14}", num(&p["v"], 3));
    }
    out
}

pub(crate) fn events_table(v: &Value) -> String {
    let mut out = format!(
        "{:<26} {:<16} {:<18} {:>6} {:>10} {}\n",
        "TIME", "USER", "FEATURE", "STATUS", "LATENCY MS", "ERROR"
    );
    for e in v["events"].as_array().into_iter().flatten() {
        let t = tda_schema::Timestamp(e["timestamp"].as_i64().unwrap_or(0)).to_rfc3339();
        let _ = writeln!(
            out,
            "{t:<26} {:<16} {:<18} {:>6} {:>10} {}",
            s(&e["user_id"]),
            s(&e["feature"]),
            s(&e["status"]),
            num(&e["latency_ms"], 1),
            e["error"].as_str().unwrap_or("")
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        let _ = writeln!(out, "next: --cursor {c}");
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
