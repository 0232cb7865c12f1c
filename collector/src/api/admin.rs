//! Health, the OpenAPI document, agents' settings, profiles, and the admin actions (reload,
//! compaction now).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use tda_daemon::{json, read_body, Refusal};
use tda_schema::timestamp::{now_ms, parse_bound};
use tda_schema::Profile;

use super::params::{bad, Query};
use super::{blocking_json, internal, Answer, Path};
use crate::app::App;
use crate::jobs::compaction;
use crate::profiles::CreateError;

/// Largest profile creation body, bytes.
const MAX_PROFILE_BODY: usize = 64 * 1024;

/// `GET /healthz`: up, the intake's counters, and this collector's place in the fleet.
pub async fn health(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let fleet = &app.fleet;
    Ok(json(
        StatusCode::OK,
        &json!({ "status": "ok", "ingest": app.ingest.snapshot(),
            "fleet": {"shared_store": fleet.shared(), "leads": fleet.leads(), "holder": fleet.holder()} }),
    ))
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi(_: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    Ok(tda_daemon::with_type(
        StatusCode::OK,
        super::OPENAPI,
        "application/json",
    ))
}

/// `GET /v1/agents/{agent}/settings`: the sampling an agent should use, from the profiles.
pub async fn agent_settings(app: Arc<App>, _: Request<Incoming>, path: Path) -> Answer {
    let agent = path.get("agent");
    let (interval, profiles) = app.profiles.sampling_for(agent);
    Ok(json(
        StatusCode::OK,
        &json!({ "agent_id": agent, "collection_interval": interval, "profiles": profiles }),
    ))
}

/// `POST /-/reload`: reloads the config file and the profiles now; answers what changed.
pub async fn reload(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    match tokio::task::spawn_blocking(move || app.reload()).await {
        Ok(report) => Ok(json(StatusCode::OK, &report)),
        Err(e) => Err(internal(format!("reload task failed: {e}"))),
    }
}

/// `POST /-/compact[?before=TIME]`: compacts the hours ended before `before` (default:
/// `storage.compact_after` ago) now, and answers what it merged.
pub async fn compact(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let after = app.config().storage.compact_after.0.as_millis() as i64;
    let before = match Query::of(&req).get("before") {
        None => now_ms() - after,
        Some(b) => parse_bound(b, now_ms()).map_err(|e| bad(format!("before: {e}")))?,
    };
    blocking_json(move || compaction::run_once(&app, before)).await
}

/// `GET /api/v1/profiles`: per file its status, hash, last error and the version in force;
/// plus reload counters and the config file's status.
pub async fn list_profiles(app: Arc<App>, _: Request<Incoming>, _: Path) -> Answer {
    let profiles: Vec<serde_json::Value> = app
        .profiles
        .status()
        .into_iter()
        .map(|f| {
            let mut v = f.active.as_ref().map_or_else(|| json!({}), |e| json!(e));
            v["file"] = json!(f.file);
            v["status"] = f.status.into();
            v["hash"] = f.hash.into();
            v["last_error"] = json!(f.last_error);
            v
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "profiles": profiles,
            "errors": app.profiles.errors(),
            "reload": app.profiles.stats(),
            "config": app.config_status(),
        }),
    ))
}

/// `POST /api/v1/profiles`: a new profile from its JSON; `201` with it.
pub async fn create_profile(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    let body = read_body(req, MAX_PROFILE_BODY).await?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let profile: Profile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            "body".to_string()
        } else {
            path
        };
        bad(format!("{at}: {}", e.into_inner()))
    })?;
    match app.profiles.create(profile) {
        Ok(entry) => Ok(json(StatusCode::CREATED, &entry)),
        Err(e @ CreateError::Invalid(_)) => Err(bad(e.to_string())),
        Err(e @ CreateError::Duplicate(_)) => {
            Err(Refusal::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ CreateError::Io { .. }) => Err(internal(e.to_string())),
    }
}
