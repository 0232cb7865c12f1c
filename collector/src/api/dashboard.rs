//! The dashboard's routes: its page and assets, the live snapshot (as server-sent events, or one
//! JSON answer) and the custom views.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tda_daemon::{error, json, Response};
use tda_schema::timestamp::now_ms;

use super::{blocking_json, Answer, Path};
use crate::app::App;
use crate::dashboard;

/// A request no API route took: the dashboard's page and assets (`GET`), else `405` on them or
/// `404`.
pub fn page(method: &Method, path: &str) -> Response {
    let dashboard = path == "/" || path.starts_with("/assets/");
    match (method, dashboard) {
        (&Method::GET, true) => {
            dashboard::asset(path).unwrap_or_else(|| dashboard::not_found(path))
        }
        (_, true) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

/// `GET /api/v1/views`: every profile's `[[view]]` panels with their data.
pub async fn views(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let profiles = app.profiles.list();
    let views = crate::fleet::blocking(|| dashboard::views(&*app.store, &profiles, now_ms()));
    Ok(json(StatusCode::OK, &views))
}

/// `GET /api/v1/live`: the live snapshot now, to a request that accepts only JSON; else
/// server-sent events, one `snapshot` event per refresh.
pub async fn live(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    if accepts_only_json(&req) {
        return blocking_json(move || {
            dashboard::snapshot(&*app.store, &app.alerts.store, now_ms())
        })
        .await;
    }
    Ok(stream(&app))
}

/// Whether the request asks for JSON and not an event stream (`Accept`).
fn accepts_only_json(req: &Request<Incoming>) -> bool {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

/// `GET /api/v1/live`: server-sent events, one `snapshot` event per refresh; the stream ends
/// when the collector stops (so shutdown is not held up by open dashboards). (A request that
/// accepts only JSON gets one snapshot instead.)
fn stream(app: &App) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<tda_daemon::Chunk>(4);
    let mut snapshots = app.live_snapshot.subscribe();
    let mut stopping = app.stopping.subscribe();
    tokio::spawn(async move {
        if tx
            .send(Ok(Bytes::from_static(b"retry: 2000\n\n")))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                _ = stopping.changed() => return,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let Some(v) = snapshots.borrow_and_update().clone() else { continue };
                    let event = format!("event: snapshot\ndata: {v}\n\n");
                    if tx.send(Ok(Bytes::from(event))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tda_daemon::stream(rx, "text/event-stream")
}
