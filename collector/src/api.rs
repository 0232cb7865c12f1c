//! The collector's HTTP routes: batch intake, stats, profiles, health and the dashboard page.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use tda_daemon::{error, json, query, read_body, with_type, Response};
use tda_schema::config::LimitsConfig;
use tda_schema::timestamp::{now_ms, parse_bound};
use tda_schema::{Profile, ProfileType};

use crate::dashboard;
use crate::ingest::{self, Tokens};
use crate::profiles::{CreateError, Profiles};
use crate::stats::performance::PerformanceAcc;
use crate::stats::usage::{bucket_count, UsageAcc};
use crate::store::Storage;

/// Most buckets a stats series may have; a longer range needs a coarser aggregation level.
pub const MAX_SERIES_BUCKETS: i64 = 50_000;
/// Largest profile creation body, bytes.
const MAX_PROFILE_BODY: usize = 64 * 1024;

/// Everything the routes share.
pub struct App {
    /// Where batches go and stats come from.
    pub store: Arc<dyn Storage>,
    /// Profiles in force.
    pub profiles: Profiles,
    /// Agent tokens.
    pub tokens: Tokens,
    /// Request limits.
    pub limits: LimitsConfig,
}

impl App {
    /// Routes one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response {
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/") => {
                with_type(StatusCode::OK, dashboard::PAGE, "text/html; charset=utf-8")
            }
            (Method::GET, "/healthz") => {
                json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
            }
            (Method::POST, "/v1/batches") => {
                ingest::handle(req, &self.tokens, &self.limits, self.store.clone()).await
            }
            (Method::GET, "/api/v1/profiles") => self.list_profiles(),
            (Method::POST, "/api/v1/profiles") => self.create_profile(req).await,
            (Method::GET, p) if p.starts_with("/api/v1/stats/") => {
                self.stats(&req, &p["/api/v1/stats/".len()..]).await
            }
            (_, "/" | "/healthz" | "/v1/batches" | "/api/v1/profiles") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            (_, p) => error(StatusCode::NOT_FOUND, &format!("no route {p}")),
        }
    }

    fn list_profiles(&self) -> Response {
        json(
            StatusCode::OK,
            &serde_json::json!({ "profiles": self.profiles.list(), "errors": self.profiles.errors() }),
        )
    }

    async fn create_profile(&self, req: Request<Incoming>) -> Response {
        let body = match read_body(req, MAX_PROFILE_BODY).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let mut de = serde_json::Deserializer::from_slice(&body);
        let profile: Profile = match serde_path_to_error::deserialize(&mut de) {
            Ok(p) => p,
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("{at}: {}", e.into_inner()),
                );
            }
        };
        match self.profiles.create(profile) {
            Ok(entry) => json(StatusCode::CREATED, &entry),
            Err(e @ CreateError::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(e @ CreateError::Duplicate(_)) => error(StatusCode::CONFLICT, &e.to_string()),
            Err(e @ CreateError::Io { .. }) => {
                error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
        }
    }

    async fn stats(&self, req: &Request<Incoming>, kind: &str) -> Response {
        let kind = match ProfileType::parse(kind) {
            Ok(k) => k,
            Err(e) => return error(StatusCode::NOT_FOUND, &e),
        };
        let q = query(req);
        let now = now_ms();
        let bound = |name: &str, default: &str| {
            parse_bound(q.get(name).map_or(default, String::as_str), now)
                .map_err(|e| format!("{name}: {e}"))
        };
        let (from, to) = match (bound("from", "24h"), bound("to", "0s")) {
            (Ok(f), Ok(t)) if f < t => (f, t),
            (Ok(_), Ok(_)) => return error(StatusCode::BAD_REQUEST, "from: must be before to"),
            (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        };
        match kind {
            ProfileType::Usage => {
                self.usage(from, to, q.get("profile").map(String::as_str))
                    .await
            }
            ProfileType::Performance => self.performance(from, to).await,
            other => error(
                StatusCode::NOT_IMPLEMENTED,
                &format!("{other} analytics are not built yet; usage and performance are"),
            ),
        }
    }

    async fn usage(&self, from: i64, to: i64, profile: Option<&str>) -> Response {
        let (profile, level) = match self.profiles.aggregation_for(ProfileType::Usage, profile) {
            Ok(x) => x,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        if bucket_count(from, to, level.millis()) > MAX_SERIES_BUCKETS {
            return error(StatusCode::BAD_REQUEST, &format!("from: range has more than {MAX_SERIES_BUCKETS} {} buckets; narrow it or use a profile with a coarser aggregation_level", level.as_str()));
        }
        let store = self.store.clone();
        blocking_json(move || {
            let mut acc = UsageAcc::new(from, to, level);
            store.scan_events(from, to, &mut |e| acc.add(e))?;
            Ok(acc.finish(profile))
        })
        .await
    }

    async fn performance(&self, from: i64, to: i64) -> Response {
        let store = self.store.clone();
        blocking_json(move || {
            let mut acc = PerformanceAcc::new(from, to);
            store.scan_events(from, to, &mut |e| acc.add_event(e))?;
            store.scan_samples(from, to, &mut |agent, s| acc.add_sample(agent, s))?;
            Ok(acc.finish())
        })
        .await
    }
}

/// Runs a storage query off the async threads and answers with its JSON.
async fn blocking_json<T, F>(f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "stats query failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, &format!("storage: {e}"))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("query task failed: {e}"),
        ),
    }
}
