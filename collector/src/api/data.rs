//! Stored data as asked: series, raw events, exports, an agent's samples, and the statistics
//! of each profile type.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use tda_daemon::{json, Response};
use tda_schema::answers::Series;
use tda_schema::ProfileType;

use super::params::{bad, Query};
use super::{behavioral, blocking_json, predictive, Answer, Path};
use crate::app::App;
use crate::export::{self, Data, Format};
use crate::query::{self, Agg};
use crate::stats::usage::bucket_count;

/// Most buckets a stats series may have; a longer range needs a coarser aggregation level.
pub const MAX_SERIES_BUCKETS: i64 = 50_000;
/// Most samples one samples query returns.
pub const MAX_SAMPLES: usize = 100_000;

/// `GET /api/v1/agents/{agent}/samples?from=&to=`: an agent's host samples, oldest first.
pub async fn samples(app: Arc<App>, req: Request<Incoming>, path: Path) -> Answer {
    let (from, to) = Query::of(&req).range("1h")?;
    let agent = path.get("agent").to_string();
    blocking_json(move || {
        let mut samples = Vec::new();
        app.store
            .scan_samples(from, to, Some(&agent), &mut |_, s| {
                if samples.len() < MAX_SAMPLES {
                    samples.push(s.clone());
                }
            })?;
        samples.sort_by_key(|s| s.timestamp);
        Ok(json!({ "agent_id": agent, "samples": samples }))
    })
    .await
}

/// `GET /api/v1/query?series=&from=&to=&step=&agg=&feature=&user=&status=&agent=&label.KEY=`.
pub async fn series(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let q = Query::of(&req);
    let (from, to) = q.range("1h")?;
    let (name, step, agg) = series_params(&q, from, to)?;
    let filter = q.filter()?;
    blocking_json(move || {
        let points = query::series(&*app.store, &name, from, to, step, agg, &filter)?;
        Ok(Series {
            series: name,
            agg,
            step_ms: step,
            from,
            to,
            points,
        })
    })
    .await
}

/// The series name, step (ms) and aggregation of a series query.
fn series_params(q: &Query, from: i64, to: i64) -> Result<(String, i64, Agg), tda_daemon::Refusal> {
    let name = q.required("series", "")?.to_string();
    let known = || {
        query::EVENT_SERIES
            .iter()
            .chain(&crate::store::SAMPLE_SERIES)
    };
    if !known().any(|s| *s == name) {
        let names: Vec<&str> = known().copied().collect();
        return Err(bad(format!(
            "series: `{name}` is not one of {}",
            names.join(", ")
        )));
    }
    let step = q.duration_ms("step")?.unwrap_or(60_000);
    if step < 1000 {
        return Err(bad("step: must be at least 1s"));
    }
    if (to - from) / step > query::MAX_POINTS {
        return Err(bad(format!(
            "step: more than {} points; use a larger step",
            query::MAX_POINTS
        )));
    }
    let agg = match q.parsed::<Agg>("agg")? {
        Some(agg) => agg,
        None => match name.as_str() {
            "requests" | "errors" => Agg::Count,
            "users" => Agg::Distinct,
            _ => Agg::Avg,
        },
    };
    if (agg == Agg::Distinct) != (name == "users") {
        return Err(bad(
            "agg: `distinct` goes with the `users` series, and only with it",
        ));
    }
    Ok((name, step, agg))
}

/// `GET /api/v1/events?from=&to=&feature=&user=&status=&label.KEY=&limit=&cursor=`.
pub async fn events(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let q = Query::of(&req);
    let (from, to) = q.range("1h")?;
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=query::MAX_PAGE).contains(l))
            .ok_or_else(|| bad(format!("limit: must be 1-{}", query::MAX_PAGE)))?,
    };
    let filter = q.filter()?;
    let cursor = q.get("cursor").map(str::to_string);
    let page = tokio::task::spawn_blocking(move || {
        query::events(&*app.store, from, to, &filter, limit, cursor.as_deref())
    })
    .await
    .map_err(|e| super::internal(format!("query task failed: {e}")))?;
    Ok(json(StatusCode::OK, &page.map_err(bad)?))
}

/// `GET /api/v1/export?data=events|samples&format=csv|parquet&from=&to=&<filters>`: the file,
/// streamed as it is read.
pub async fn export(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let q = Query::of(&req);
    let data: Data = q
        .required("data", "events or samples")?
        .parse()
        .map_err(|e| bad(format!("data: {e}")))?;
    let (from, to) = q.range("24h")?;
    let ask = export::Request {
        data,
        format: q.parsed::<Format>("format")?.unwrap_or(Format::Csv),
        from,
        to,
        filter: q.filter()?,
    };
    Ok(stream_export(app, ask))
}

fn stream_export(app: Arc<App>, ask: export::Request) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let kind = ask.format.content_type();
    let broken = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = export::ChannelWriter::new(tx);
        match export::write(&*app.store, &ask, out) {
            Ok(rows) => tracing::info!(rows, from = ask.from, to = ask.to, "export written"),
            Err(e) => {
                tracing::warn!(error = %e, "export stopped");
                // After the rows written so far: the client sees a broken transfer.
                let _ = broken.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let mut resp = tda_daemon::stream(rx, kind);
    let name = match kind {
        "application/vnd.apache.parquet" => "attachment; filename=\"export.parquet\"",
        _ => "attachment; filename=\"export.csv\"",
    };
    resp.headers_mut().insert(
        hyper::header::CONTENT_DISPOSITION,
        hyper::header::HeaderValue::from_static(name),
    );
    resp
}

/// `GET /api/v1/stats/{type}?from=&to=&profile=`: usage, performance, behavioral or
/// predictive statistics.
pub async fn stats(app: Arc<App>, req: Request<Incoming>, path: Path) -> Answer {
    let kind = ProfileType::parse(path.get("type"))
        .map_err(|e| tda_daemon::Refusal::new(StatusCode::NOT_FOUND, e))?;
    let q = Query::of(&req);
    let (from, to) = q.range("24h")?;
    let profile = q.get("profile").map(str::to_string);
    match kind {
        ProfileType::Usage => usage(app, from, to, profile.as_deref()).await,
        ProfileType::Performance => {
            blocking_json(move || crate::stats::performance::compute(&*app.store, from, to)).await
        }
        ProfileType::Behavioral => behavioral::stats(app, req, profile.as_deref()).await,
        ProfileType::Predictive => predictive::stats(app, req, profile.as_deref()).await,
    }
}

async fn usage(app: Arc<App>, from: i64, to: i64, profile: Option<&str>) -> Answer {
    let (profile, level) = app
        .profiles
        .aggregation_for(ProfileType::Usage, profile)
        .map_err(bad)?;
    if bucket_count(from, to, level.millis()) > MAX_SERIES_BUCKETS {
        return Err(bad(format!("from: range has more than {MAX_SERIES_BUCKETS} {} buckets; narrow it or use a profile with a coarser aggregation_level", level.as_str())));
    }
    blocking_json(move || crate::stats::usage::compute(&*app.store, from, to, level, profile)).await
}
