//! The report endpoints: `GET /api/v1/reports` (the list), `GET /api/v1/reports/{id}.{html,md,json}`
//! (a file), `POST /api/v1/reports/run?profile=&report=` (admin: make one now).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use tda_daemon::{error, json, query, with_type, Response};
use tda_schema::timestamp::now_ms;

use crate::app::App;

/// Whether a path segment is a safe file name piece (no `..`, no separators).
fn safe(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !segment.contains("..")
}

impl App {
    /// `GET /api/v1/reports`.
    pub(crate) fn list_reports(&self) -> Response {
        json(StatusCode::OK, &json!({ "reports": super::list(self) }))
    }

    /// `GET /api/v1/reports/{profile}/{report}/{stamp}.{ext}`.
    pub(crate) fn report_file(&self, rest: &str) -> Response {
        let parts: Vec<&str> = rest.split('/').collect();
        let [profile, report, file] = parts[..] else {
            return error(
                StatusCode::NOT_FOUND,
                "expected /api/v1/reports/PROFILE/REPORT/STAMP.EXT",
            );
        };
        if !parts.iter().all(|p| safe(p)) {
            return error(StatusCode::BAD_REQUEST, "report: bad path");
        }
        let kind = match file.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("md") => "text/markdown; charset=utf-8",
            Some("json") => "application/json",
            _ => return error(StatusCode::NOT_FOUND, "report: .html, .md or .json"),
        };
        let path = self
            .config()
            .analytics_dir()
            .join("reports")
            .join(profile)
            .join(report)
            .join(file);
        match std::fs::read(&path) {
            Ok(body) => with_type(StatusCode::OK, body, kind),
            Err(_) => error(StatusCode::NOT_FOUND, &format!("no report {rest}")),
        }
    }

    /// `POST /api/v1/reports/run?profile=&report=` (admin): the report over the period that
    /// ends now; `201` with its listing entry.
    pub(crate) async fn run_report(&self, req: &Request<Incoming>) -> Response {
        if let Err(refusal) = self.authorize(req, crate::app::Scope::Admin) {
            return refusal.response();
        }
        let q = query(req);
        let (Some(profile), Some(name)) = (q.get("profile"), q.get("report")) else {
            return error(StatusCode::BAD_REQUEST, "profile and report: required");
        };
        let Some(entry) = self.profiles.get(profile) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("profile: no profile `{profile}`"),
            );
        };
        let Some(spec) = entry
            .profile
            .reports
            .iter()
            .find(|r| &r.name == name)
            .cloned()
        else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("report: `{profile}` has no report `{name}`"),
            );
        };
        let now = now_ms();
        let (at, from) = match super::last_due(&spec, now) {
            Ok(x) => x,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let from = now - (at - from);
        // The report reads the store (ClickHouse blocks on its server): off the runtime's turn.
        match crate::fleet::blocking(|| super::produce(self, &entry, &spec, from, now, now)) {
            Ok(v) => json(StatusCode::CREATED, &v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("report: {e}")),
        }
    }
}
