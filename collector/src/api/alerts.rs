//! The alerting endpoints: `GET /api/v1/alerts`, and silences (`GET`, `POST` and
//! `DELETE /api/v1/silences[/{id}]`; changes need the admin token).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use tda_daemon::{json, read_body};
use tda_schema::alerting::parse_matchers;
use tda_schema::timestamp::{now_ms, parse_bound};

use super::params::bad;
use super::{internal, Answer, Path};
use crate::alert::store::Silence;
use crate::app::App;
use tda_schema::answers::{SilenceRow, SilencesAnswer};

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

/// `GET /api/v1/alerts`: every rule's alert with its state, silenced or inhibited.
pub async fn list(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let listed = tokio::task::spawn_blocking(move || {
        crate::alert::list(&app.alerts, &app.config().alerting, now_ms())
    })
    .await
    .map_err(|e| internal(format!("task failed: {e}")))?;
    let v = listed.map_err(|e| internal(format!("storage: {e}")))?;
    Ok(json(StatusCode::OK, &v))
}

/// `GET /api/v1/silences`: every silence, with whether it is active now.
pub async fn silences(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let now = now_ms();
    let list = app
        .alerts
        .store
        .silences()
        .map_err(|e| internal(format!("storage: {e}")))?;
    let silences = list
        .into_iter()
        .map(|s| SilenceRow {
            active: s.starts_at <= now && now < s.ends_at,
            silence: s,
        })
        .collect();
    Ok(json(StatusCode::OK, &SilencesAnswer { silences }))
}

/// `POST /api/v1/silences`: creates a silence; `201` with it.
pub async fn create_silence(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let body = read_body(req, MAX_BODY).await?;
    let new: NewSilence = serde_json::from_slice(&body).map_err(|e| bad(format!("body: {e}")))?;
    let id = app
        .alerts
        .store
        .new_id()
        .map_err(|e| internal(format!("storage: {e}")))?;
    let id = match app.fleet.shared() {
        true => format!(
            "s{id}-{:016x}",
            crate::sketch::distinct::hash(app.fleet.holder())
        ),
        false => format!("s{id}"),
    };
    let silence = new.into_silence(id, now_ms()).map_err(bad)?;
    app.sharing()
        .save_silence(&silence)
        .map_err(|e| internal(format!("storage: {e}")))?;
    tracing::info!(id = %silence.id, matchers = ?silence.matchers, ends_at = silence.ends_at, "silence created");
    Ok(json(StatusCode::CREATED, &silence))
}

/// `DELETE /api/v1/silences/{id}`: expires a silence now.
pub async fn expire_silence(app: Arc<App>, _: Request<Incoming>, path: Path) -> Answer {
    let id = path.get("id");
    let found = app
        .alerts
        .store
        .silences()
        .map(|l| l.into_iter().find(|s| s.id == id))
        .map_err(|e| internal(format!("storage: {e}")))?;
    let Some(mut s) = found else {
        return Err(tda_daemon::Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no silence `{id}`"),
        ));
    };
    s.ends_at = s.ends_at.min(now_ms());
    app.sharing()
        .save_silence(&s)
        .map_err(|e| internal(format!("storage: {e}")))?;
    Ok(json(StatusCode::OK, &s))
}
