//! The predictive models over a stored metric (trends, forecast, anomalies, patterns), the
//! scheduler's streaming anomaly flags, and a predictive profile's statistics.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tda_daemon::{json, Refusal};
use tda_schema::timestamp::HOUR_MS;
use tda_schema::{Profile, ProfileType};

use super::behavioral::{profile_or_first, scheduled_answer};
use super::params::{bad, Query};
use super::{blocking_json, internal, Answer, Path};
use crate::app::App;
use crate::predictive::{self, Ask};
use crate::query;
use crate::store::{Storage, StoreError};

/// `GET /api/v1/trends?metric=&from=&to=&step=&horizon=&sensitivity=` plus the event filters.
pub async fn trends(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    run(app, &req, predictive::trends).await
}

/// `GET /api/v1/forecast?…` (as trends).
pub async fn forecast(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    run(app, &req, predictive::forecasts).await
}

/// `GET /api/v1/patterns?…` (as trends).
pub async fn patterns(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    run(app, &req, predictive::patterns).await
}

/// `GET /api/v1/anomalies?…` (as trends), or with `?profile=ID` what the scheduler's streaming
/// detectors flagged for the profile's metrics, oldest first.
pub async fn anomalies(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    match Query::of(&req).get("profile") {
        Some(id) => streamed_anomalies(&app, id),
        None => run(app, &req, predictive::anomalies).await,
    }
}

/// A predictive model's answer over a stored metric.
async fn run<T>(
    app: Arc<App>,
    req: &Request<Incoming>,
    model: fn(&dyn Storage, &Ask) -> Result<T, StoreError>,
) -> Answer
where
    T: serde::Serialize + Send + 'static,
{
    let ask = ask(&Query::of(req), None)?;
    blocking_json(move || model(&*app.store, &ask)).await
}

fn streamed_anomalies(app: &App, id: &str) -> Answer {
    if app.profiles.get(id).is_none() {
        return Err(bad(format!("profile: no profile `{id}`")));
    }
    let state = app.models.load(id).map_err(|e| internal(e.to_string()))?;
    let mut flags: Vec<Value> = Vec::new();
    for (metric, stream) in &state.streams {
        for a in &stream.flags {
            let mut v = json!(a);
            v["metric"] = json!(metric);
            flags.push(v);
        }
    }
    flags.sort_by_key(|f| f["start_ms"].as_i64());
    let scored: serde_json::Map<String, Value> = state
        .streams
        .iter()
        .map(|(m, s)| (m.clone(), json!(s.next_ms)))
        .collect();
    let body = json!({"profile": id, "scored_until": scored, "anomalies": flags});
    Ok(json(StatusCode::OK, &body))
}

/// `GET /api/v1/stats/predictive[?profile=]`: every metric of the predictive profile (the first
/// one when none is named; default metrics without one): the scheduler's last answer (with
/// `computed_at`) when no range is asked for, else computed now.
pub async fn stats(app: Arc<App>, req: Request<Incoming>, id: Option<&str>) -> Answer {
    let entry = profile_or_first(&app, id, ProfileType::Predictive)?;
    if let Some(answer) = scheduled_answer(&app, &req, id, ProfileType::Predictive)? {
        return Ok(answer);
    }
    let models = entry
        .as_ref()
        .map(|e| e.profile.models.clone())
        .unwrap_or_default();
    let q = Query::of(&req);
    let mut ask = ask(&q, entry.as_ref().map(|e| &e.profile))?;
    if !q.has("sensitivity") {
        ask.sensitivity = models.sensitivity;
    }
    let metrics = predictive::metrics_of(&models);
    if let Some(why) = metrics.iter().find_map(|m| predictive::metric(m).err()) {
        return Err(bad(why));
    }
    let id = entry.map(|e| e.id);
    blocking_json(move || predictive::stats(&*app.store, &ask, &metrics, id)).await
}

/// The model parameters of a request: `metric` (default `requests`), range (default the last
/// 7 days), `step` (default the profile's aggregation level, else 1h), `horizon` (a duration or
/// a number of steps; default the profile's, else 24 steps), `sensitivity` (0-1, default 0.5).
fn ask(q: &Query, profile: Option<&Profile>) -> Result<Ask, Refusal> {
    let (from, to) = q.range("7d")?;
    let metric = q.get("metric").unwrap_or("requests").to_string();
    predictive::metric(&metric).map_err(bad)?;
    let step = match q.duration_ms("step")? {
        Some(s) => s,
        None => profile.map_or(HOUR_MS, |p| p.settings.aggregation_level.millis()),
    };
    if step < 1000 || (to - from) / step > query::MAX_POINTS {
        return Err(bad(format!(
            "step: must be at least 1s and give at most {} points",
            query::MAX_POINTS
        )));
    }
    let horizon = match q.get("horizon") {
        Some(h) => match h.parse::<usize>() {
            Ok(n) => n,
            Err(_) => (q.duration_ms("horizon")?.unwrap_or(0) / step) as usize,
        },
        None => profile.map_or(24, |p| {
            (p.models.horizon.0.as_millis() as i64 / step) as usize
        }),
    };
    if !(1..=10_000).contains(&horizon) {
        return Err(bad("horizon: must be 1-10000 steps"));
    }
    let sensitivity = match q.get("sensitivity") {
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| bad(format!("sensitivity: `{s}` is not a number from 0 to 1")))?,
        None => 0.5,
    };
    Ok(Ask {
        metric,
        from,
        to,
        step,
        horizon,
        sensitivity,
        filter: q.filter()?,
    })
}
