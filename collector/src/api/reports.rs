//! The report endpoints: `GET /api/v1/reports` (the list), `GET /api/v1/reports/{file}` (a
//! file: `PROFILE/REPORT/STAMP.{html,md,json}`), `POST /api/v1/reports/run?profile=&report=`
//! (make one now).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use tda_daemon::{json, with_type, Refusal};
use tda_schema::timestamp::now_ms;

use super::params::{bad, Query};
use super::{internal, Answer, Path};
use crate::app::App;

/// Whether a path segment is a safe file name piece (no `..`, no separators).
fn safe(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !segment.contains("..")
}

/// `GET /api/v1/reports`: every report on disk, newest first.
pub async fn list(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    Ok(json(
        StatusCode::OK,
        &json!({ "reports": app.reports().list() }),
    ))
}

/// `GET /api/v1/reports/{profile}/{report}/{stamp}.{ext}`.
pub async fn file(app: Arc<App>, _: Request<Incoming>, path: Path) -> Answer {
    let rest = path.get("file");
    let not_found = |why: String| Refusal::new(StatusCode::NOT_FOUND, why);
    let parts: Vec<&str> = rest.split('/').collect();
    let [profile, report, file] = parts[..] else {
        return Err(not_found(
            "expected /api/v1/reports/PROFILE/REPORT/STAMP.EXT".into(),
        ));
    };
    if !parts.iter().all(|p| safe(p)) {
        return Err(bad("report: bad path"));
    }
    let kind = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("json") => "application/json",
        _ => return Err(not_found("report: .html, .md or .json".into())),
    };
    let path = app.reports().root.join(profile).join(report).join(file);
    match std::fs::read(&path) {
        Ok(body) => Ok(with_type(StatusCode::OK, body, kind)),
        Err(_) => Err(not_found(format!("no report {rest}"))),
    }
}

/// `POST /api/v1/reports/run?profile=&report=`: the report over the period that ends now;
/// `201` with its listing entry.
pub async fn run(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let q = Query::of(&req);
    let (Some(profile), Some(name)) = (q.get("profile"), q.get("report")) else {
        return Err(bad("profile and report: required"));
    };
    let entry = app
        .profiles
        .get(profile)
        .ok_or_else(|| bad(format!("profile: no profile `{profile}`")))?;
    let spec = entry
        .profile
        .reports
        .iter()
        .find(|r| r.name == name)
        .cloned()
        .ok_or_else(|| bad(format!("report: `{profile}` has no report `{name}`")))?;
    let now = now_ms();
    let (at, from) = crate::report::last_due(&spec, now).map_err(bad)?;
    let from = now - (at - from);
    // The report reads the store (ClickHouse blocks on its server): off the runtime's turn.
    let made = crate::fleet::blocking(|| app.reports().produce(&entry, &spec, from, now, now));
    made.map(|v| json(StatusCode::CREATED, &v))
        .map_err(|e| internal(format!("report: {e}")))
}
