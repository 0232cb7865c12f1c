//! The alerting endpoints: `GET /api/v1/alerts`, and silences (`GET`, `POST` and
//! `DELETE /api/v1/silences[/{id}]`; changes need the admin token).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tda_daemon::{error, json, read_body, Response};
use tda_schema::alerting::parse_matchers;
use tda_schema::timestamp::{now_ms, parse_bound};

use super::store::Silence;
use crate::app::App;

/// Largest silence body, bytes.
const MAX_BODY: usize = 16 * 1024;

/// `POST /api/v1/silences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    /// Matchers, all of which an alert must meet (`["alertname=HighErrors"]`).
    matchers: Vec<String>,
    /// Start (RFC 3339 or epoch ms); now when absent.
    #[serde(default)]
    starts_at: Option<serde_json::Value>,
    /// End (RFC 3339 or epoch ms), or give `duration`.
    #[serde(default)]
    ends_at: Option<serde_json::Value>,
    /// Length from the start (`2h`), when `ends_at` is absent.
    #[serde(default)]
    duration: Option<String>,
    /// Why.
    #[serde(default)]
    comment: String,
    /// Who.
    #[serde(default)]
    created_by: String,
}

fn time_of(v: &serde_json::Value, field: &str, now: i64) -> Result<i64, String> {
    match v {
        serde_json::Value::Number(n) => {
            n.as_i64().ok_or_else(|| format!("{field}: not an integer"))
        }
        serde_json::Value::String(s) => parse_bound(s, now).map_err(|e| format!("{field}: {e}")),
        _ => Err(format!("{field}: a time (RFC 3339 or epoch ms)")),
    }
}

impl NewSilence {
    fn into_silence(self, id: String, now: i64) -> Result<Silence, String> {
        if self.matchers.is_empty() {
            return Err("matchers: at least one".into());
        }
        parse_matchers(&self.matchers, "matchers")?;
        let starts_at = match &self.starts_at {
            Some(v) => time_of(v, "starts_at", now)?,
            None => now,
        };
        let ends_at = match (&self.ends_at, &self.duration) {
            (Some(v), _) => time_of(v, "ends_at", now)?,
            (None, Some(d)) => {
                starts_at
                    + humantime::parse_duration(d)
                        .map_err(|e| format!("duration: `{d}`: {e}"))?
                        .as_millis() as i64
            }
            (None, None) => return Err("ends_at or duration: required".into()),
        };
        if ends_at <= starts_at {
            return Err("ends_at: must be after starts_at".into());
        }
        Ok(Silence {
            id,
            matchers: self.matchers,
            starts_at,
            ends_at,
            comment: self.comment,
            created_by: self.created_by,
        })
    }
}

impl App {
    /// `GET /api/v1/alerts`.
    pub(crate) async fn alerts_endpoint(self: &Arc<Self>) -> Response {
        let app = self.clone();
        match tokio::task::spawn_blocking(move || super::list(&app, now_ms())).await {
            Ok(Ok(v)) => json(StatusCode::OK, &v),
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("task failed: {e}"),
            ),
        }
    }

    /// `GET /api/v1/silences`: every silence, with whether it is active now.
    pub(crate) fn list_silences(&self) -> Response {
        let now = now_ms();
        match self.alerts.store.silences() {
            Ok(list) => {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|s| {
                        let mut v = json!(s);
                        v["active"] = json!(s.starts_at <= now && now < s.ends_at);
                        v
                    })
                    .collect();
                json(StatusCode::OK, &json!({ "silences": rows }))
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
        }
    }

    /// `POST /api/v1/silences` (admin): creates a silence; `201` with it.
    pub(crate) async fn create_silence(&self, req: Request<Incoming>) -> Response {
        if let Err(refusal) = self.authorize(&req, crate::app::Scope::Admin) {
            return refusal.response();
        }
        let body = match read_body(req, MAX_BODY).await {
            Ok(b) => b,
            Err(refusal) => return refusal.response(),
        };
        let new: NewSilence = match serde_json::from_slice(&body) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body: {e}")),
        };
        let id = match self.alerts.store.new_id() {
            Ok(id) if self.fleet.shared() => format!(
                "s{id}-{:016x}",
                crate::sketch::distinct::hash(self.fleet.holder())
            ),
            Ok(id) => format!("s{id}"),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
        };
        let silence = match new.into_silence(id, now_ms()) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        match crate::fleet::save_silence(self, &silence) {
            Ok(()) => {
                tracing::info!(id = %silence.id, matchers = ?silence.matchers, ends_at = silence.ends_at, "silence created");
                json(StatusCode::CREATED, &silence)
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
        }
    }

    /// `DELETE /api/v1/silences/{id}` (admin): expires a silence now.
    pub(crate) fn expire_silence(&self, req: &Request<Incoming>, id: &str) -> Response {
        if let Err(refusal) = self.authorize(req, crate::app::Scope::Admin) {
            return refusal.response();
        }
        let store = &self.alerts.store;
        let found = store.silences().map(|l| l.into_iter().find(|s| s.id == id));
        match found {
            Ok(Some(mut s)) => {
                s.ends_at = s.ends_at.min(now_ms());
                match crate::fleet::save_silence(self, &s) {
                    Ok(()) => json(StatusCode::OK, &s),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
                }
            }
            Ok(None) => error(StatusCode::NOT_FOUND, &format!("no silence `{id}`")),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}")),
        }
    }
}
