//! The collector's HTTP routes: batch intake, stats, profiles, health and the dashboard page.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use tda_daemon::{error, json, query, read_body, Refusal, Response};
use tda_schema::timestamp::{now_ms, parse_bound};
use tda_schema::{Profile, ProfileType};

use crate::app::App;
use crate::behavior;
use crate::dashboard;
use crate::ingest;
use crate::jobs::compaction;
use crate::predictive;
use crate::profiles::CreateError;
use crate::query::{self, Agg};
use crate::stats::usage::bucket_count;
use crate::store::Filter;
use tda_schema::timestamp::{DAY_MS, HOUR_MS};

/// Most buckets a stats series may have; a longer range needs a coarser aggregation level.
pub const MAX_SERIES_BUCKETS: i64 = 50_000;
/// Most samples one samples query returns.
pub const MAX_SAMPLES: usize = 100_000;
/// Largest profile creation body, bytes.
const MAX_PROFILE_BODY: usize = 64 * 1024;

/// The OpenAPI 3 description of the routes below, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every API route [`App::handle`] serves (method, path template), besides the dashboard's
/// page and assets; `openapi.json` describes exactly these (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/agents/{agent}/settings"),
    ("POST", "/-/reload"),
    ("POST", "/-/compact"),
    ("GET", "/api/v1/agents/{agent}/samples"),
    ("GET", "/api/v1/profiles"),
    ("POST", "/api/v1/profiles"),
    ("GET", "/api/v1/query"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/export"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/journeys"),
    ("GET", "/api/v1/funnels"),
    ("GET", "/api/v1/retention"),
    ("GET", "/api/v1/segments"),
    ("GET", "/api/v1/interactions"),
    ("GET", "/api/v1/trends"),
    ("GET", "/api/v1/forecast"),
    ("GET", "/api/v1/anomalies"),
    ("GET", "/api/v1/patterns"),
    ("GET", "/api/v1/stats/{type}"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/silences"),
    ("POST", "/api/v1/silences"),
    ("DELETE", "/api/v1/silences/{id}"),
    ("GET", "/api/v1/reports"),
    ("POST", "/api/v1/reports/run"),
    ("GET", "/api/v1/reports/{file}"),
    ("GET", "/api/v1/views"),
    ("GET", "/api/v1/live"),
];

impl App {
    /// Routes one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response {
        let path = req.uri().path().to_string();
        if req.method() == Method::GET && path.starts_with("/api/v1/") {
            if let Err(refusal) = self.authorize(&req, crate::app::Scope::Read) {
                return refusal.response();
            }
        }
        match (req.method().clone(), path.as_str()) {
            (Method::GET, p) if p == "/" || p.starts_with("/assets/") => {
                dashboard::asset(p).unwrap_or_else(|| dashboard::not_found(p))
            }
            (Method::GET, "/api/v1/live") if accepts_only_json(&req) => {
                let app = self.clone();
                blocking_json(move || dashboard::snapshot(&app, now_ms())).await
            }
            (Method::GET, "/api/v1/live") => dashboard::live(&self),
            (Method::GET, "/api/v1/openapi.json") => {
                tda_daemon::with_type(StatusCode::OK, OPENAPI, "application/json")
            }
            (Method::GET, "/api/v1/views") => crate::fleet::blocking(|| dashboard::views(&self)),
            (Method::GET, "/healthz") => json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok", "ingest": self.ingest.snapshot(),
                    "fleet": {"shared_store": self.fleet.shared(), "leads": self.fleet.leads(), "holder": self.fleet.holder()} }),
            ),
            (Method::GET, "/metrics") => crate::metrics::render(&self),
            (Method::POST, "/v1/batches") => ingest::handle(req, &self).await,
            (Method::POST, "/-/reload") => self.reload_endpoint(&req).await,
            (Method::POST, "/-/compact") => self.compact_endpoint(&req).await,
            (Method::GET, p) if p.starts_with("/v1/agents/") && p.ends_with("/settings") => {
                self.agent_settings(&req, &p["/v1/agents/".len()..p.len() - "/settings".len()])
            }
            (Method::GET, p) if p.starts_with("/api/v1/agents/") && p.ends_with("/samples") => {
                let agent = p["/api/v1/agents/".len()..p.len() - "/samples".len()].to_string();
                self.samples(&req, agent).await
            }
            (Method::GET, "/api/v1/profiles") => self.list_profiles(),
            (Method::GET, "/api/v1/query") => self.query_series(&req).await,
            (Method::GET, "/api/v1/events") => self.query_events(&req).await,
            (Method::GET, "/api/v1/export") => self.export(&req),
            (Method::GET, "/api/v1/sessions") => self.behavioral(&req, Behavior::Sessions).await,
            (Method::GET, "/api/v1/journeys") => self.behavioral(&req, Behavior::Journeys).await,
            (Method::GET, "/api/v1/funnels") => self.behavioral(&req, Behavior::Funnels).await,
            (Method::GET, "/api/v1/retention") => self.behavioral(&req, Behavior::Retention).await,
            (Method::GET, "/api/v1/segments") => self.behavioral(&req, Behavior::Segments).await,
            (Method::GET, "/api/v1/interactions") => {
                self.behavioral(&req, Behavior::Interactions).await
            }
            (Method::GET, "/api/v1/trends") => self.predict(&req, predictive::trends).await,
            (Method::GET, "/api/v1/forecast") => self.predict(&req, predictive::forecasts).await,
            (Method::GET, "/api/v1/anomalies") if query(&req).contains_key("profile") => {
                self.streamed_anomalies(&req)
            }
            (Method::GET, "/api/v1/anomalies") => self.predict(&req, predictive::anomalies).await,
            (Method::GET, "/api/v1/patterns") => self.predict(&req, predictive::patterns).await,
            (Method::POST, "/api/v1/profiles") => self.create_profile(req).await,
            (Method::GET, "/api/v1/alerts") => self.alerts_endpoint().await,
            (Method::GET, "/api/v1/reports") => self.list_reports(),
            (Method::POST, "/api/v1/reports/run") => self.run_report(&req).await,
            (Method::GET, p) if p.starts_with("/api/v1/reports/") => {
                self.report_file(&p["/api/v1/reports/".len()..])
            }
            (Method::GET, "/api/v1/silences") => self.list_silences(),
            (Method::POST, "/api/v1/silences") => self.create_silence(req).await,
            (Method::DELETE, p) if p.starts_with("/api/v1/silences/") => {
                self.expire_silence(&req, &p["/api/v1/silences/".len()..])
            }
            (Method::GET, p) if p.starts_with("/api/v1/stats/") => {
                self.stats(&req, &p["/api/v1/stats/".len()..]).await
            }
            (_, "/" | "/healthz" | "/metrics" | "/v1/batches" | "/api/v1/profiles") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            (_, p) => error(StatusCode::NOT_FOUND, &format!("no route {p}")),
        }
    }

    /// Per file: its status, hash, last error and the version in force; plus reload counters.
    fn list_profiles(&self) -> Response {
        let profiles: Vec<serde_json::Value> = self
            .profiles
            .status()
            .into_iter()
            .map(|f| {
                let mut v = f
                    .active
                    .as_ref()
                    .map_or_else(|| serde_json::json!({}), |e| serde_json::json!(e));
                v["file"] = serde_json::json!(f.file);
                v["status"] = f.status.into();
                v["hash"] = f.hash.into();
                v["last_error"] = serde_json::json!(f.last_error);
                v
            })
            .collect();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "profiles": profiles,
                "errors": self.profiles.errors(),
                "reload": self.profiles.stats(),
                "config": self.config_status(),
            }),
        )
    }

    async fn reload_endpoint(self: &Arc<Self>, req: &Request<Incoming>) -> Response {
        if let Err(resp) = self.authorize(req, crate::app::Scope::Admin) {
            return resp.response();
        }
        let app = self.clone();
        match tokio::task::spawn_blocking(move || app.reload()).await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reload task failed: {e}"),
            ),
        }
    }

    /// `POST /-/compact[?before=TIME]` (admin): compacts the hours ended before `before`
    /// (default: `storage.compact_after` ago) now, and answers what it merged.
    async fn compact_endpoint(self: &Arc<Self>, req: &Request<Incoming>) -> Response {
        if let Err(resp) = self.authorize(req, crate::app::Scope::Admin) {
            return resp.response();
        }
        let after = self.config().storage.compact_after.0.as_millis() as i64;
        let before = match query(req).get("before").map(|b| parse_bound(b, now_ms())) {
            None => now_ms() - after,
            Some(Ok(t)) => t,
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("before: {e}")),
        };
        let app = self.clone();
        blocking_json(move || compaction::run_once(&app, before)).await
    }

    /// `GET /v1/agents/{id}/settings`: the sampling an agent should use, from the profiles.
    fn agent_settings(&self, req: &Request<Incoming>, agent: &str) -> Response {
        if let Err(resp) = self.authorize(req, crate::app::Scope::Ingest) {
            return resp.response();
        }
        let (interval, profiles) = self.profiles.sampling_for(agent);
        json(
            StatusCode::OK,
            &serde_json::json!({ "agent_id": agent, "collection_interval": interval, "profiles": profiles }),
        )
    }

    /// `GET /api/v1/agents/{id}/samples?from=&to=`: an agent's host samples, oldest first.
    async fn samples(&self, req: &Request<Incoming>, agent: String) -> Response {
        let (from, to) = match range(req, "1h") {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        let store = self.store.clone();
        blocking_json(move || {
            let mut samples = Vec::new();
            store.scan_samples(from, to, Some(&agent), &mut |_, s| {
                if samples.len() < MAX_SAMPLES {
                    samples.push(s.clone());
                }
            })?;
            samples.sort_by_key(|s| s.timestamp);
            Ok(serde_json::json!({ "agent_id": agent, "samples": samples }))
        })
        .await
    }

    async fn create_profile(&self, req: Request<Incoming>) -> Response {
        if let Err(refusal) = self.authorize(&req, crate::app::Scope::Admin) {
            return refusal.response();
        }
        let body = match read_body(req, MAX_PROFILE_BODY).await {
            Ok(b) => b,
            Err(refusal) => return refusal.response(),
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
        let (from, to) = match range(req, "24h") {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        match kind {
            ProfileType::Usage => {
                self.usage(from, to, q.get("profile").map(String::as_str))
                    .await
            }
            ProfileType::Performance => self.performance(from, to).await,
            ProfileType::Behavioral => {
                let id = q.get("profile").map(String::as_str);
                match self.scheduled_answer(req, id, ProfileType::Behavioral) {
                    Some(answer) => answer,
                    None => self.behavioral(req, Behavior::Summary).await,
                }
            }
            ProfileType::Predictive => {
                self.predictive_stats(req, q.get("profile").map(String::as_str))
                    .await
            }
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
        blocking_json(move || crate::stats::usage::compute(&*store, from, to, level, profile)).await
    }

    async fn performance(&self, from: i64, to: i64) -> Response {
        let store = self.store.clone();
        blocking_json(move || crate::stats::performance::compute(&*store, from, to)).await
    }
}

impl App {
    /// `GET /api/v1/query?series=&from=&to=&step=&agg=&feature=&user=&status=&agent=&label.KEY=`.
    async fn query_series(&self, req: &Request<Incoming>) -> Response {
        let (from, to) = match range(req, "1h") {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        let q = query(req);
        let parsed = series_params(&q, from, to).and_then(|p| filter(&q).map(|f| (p, f)));
        let ((name, step, agg), filter) = match parsed {
            Ok(x) => x,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let store = self.store.clone();
        blocking_json(move || {
            let points = query::series(&*store, &name, from, to, step, agg, &filter)?;
            Ok(serde_json::json!({ "series": name, "agg": agg, "step_ms": step, "from": from, "to": to, "points": points }))
        })
        .await
    }

    /// `GET /api/v1/events?from=&to=&feature=&user=&status=&label.KEY=&limit=&cursor=`.
    async fn query_events(&self, req: &Request<Incoming>) -> Response {
        let (from, to) = match range(req, "1h") {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        let q = query(req);
        let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(l)) if (1..=query::MAX_PAGE).contains(&l) => l,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("limit: must be 1-{}", query::MAX_PAGE),
                )
            }
        };
        let filter = match filter(&q) {
            Ok(f) => f,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let (store, cursor) = (self.store.clone(), q.get("cursor").cloned());
        match tokio::task::spawn_blocking(move || {
            query::events(&*store, from, to, &filter, limit, cursor.as_deref())
        })
        .await
        {
            Ok(Ok(page)) => json(StatusCode::OK, &page),
            Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &e),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("query task failed: {e}"),
            ),
        }
    }
}

type Params = std::collections::HashMap<String, String>;

impl App {
    /// `GET /api/v1/export?data=events|samples&format=csv|parquet&from=&to=&<filters>`: the
    /// file, streamed as it is read.
    fn export(&self, req: &Request<Incoming>) -> Response {
        use crate::export::{self, Data, Format};
        let q = query(req);
        let parsed = (|| {
            let data = Data::parse(q.get("data").ok_or("data: required (events or samples)")?)?;
            let format = Format::parse(q.get("format").map_or("csv", String::as_str))?;
            let (from, to) = range(req, "24h").map_err(|r| r.message)?;
            Ok::<_, String>(export::Request {
                data,
                format,
                from,
                to,
                filter: filter(&q)?,
            })
        })();
        let ask = match parsed {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let (store, kind) = (self.store.clone(), ask.format.content_type());
        let broken = tx.clone();
        tokio::task::spawn_blocking(move || {
            let out = export::ChannelWriter::new(tx);
            match export::write(&*store, &ask, out) {
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
}

impl App {
    /// The profile named `id`, or (none named) the first profile of `kind`, if any.
    /// The scheduler's last answer for the profile (`?profile=`, else the first of `kind`),
    /// when no range is asked for and it ran for the profile's version in force.
    fn scheduled_answer(
        &self,
        req: &Request<Incoming>,
        id: Option<&str>,
        kind: ProfileType,
    ) -> Option<Response> {
        let q = query(req);
        if q.contains_key("from") || q.contains_key("to") {
            return None;
        }
        let entry = self.profile_or_first(id, kind).ok().flatten()?;
        match self.models.load(&entry.id) {
            Ok(state) if state.result.is_some() && state.profile_hash == entry.hash => {
                Some(json(StatusCode::OK, &state.result))
            }
            Ok(_) => None,
            Err(err) => Some(error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())),
        }
    }

    fn profile_or_first(
        &self,
        id: Option<&str>,
        kind: ProfileType,
    ) -> Result<Option<crate::profiles::Entry>, String> {
        match id {
            Some(id) => self
                .profiles
                .get(id)
                .map(Some)
                .ok_or_else(|| format!("profile: no profile `{id}`")),
            None => Ok(self
                .profiles
                .list()
                .into_iter()
                .find(|e| e.profile.kind == kind)),
        }
    }
}

/// The behavioral analyses the API serves.
#[derive(Debug, Clone, Copy)]
enum Behavior {
    Sessions,
    Journeys,
    Funnels,
    Retention,
    Segments,
    Interactions,
    Summary,
}

impl App {
    /// `GET /api/v1/{sessions,journeys,funnels,retention,segments}` and `/api/v1/stats/behavioral`:
    /// over the events of the range (default the last 7 days) and the event filters, with the
    /// session rules of the behavioral profile (`?profile=`, else the first one, else 30 min and
    /// 24 h).
    async fn behavioral(&self, req: &Request<Incoming>, what: Behavior) -> Response {
        let q = query(req);
        let (from, to) = match range(req, "7d") {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        let profile = match self.profile_or_first(
            q.get("profile").map(String::as_str),
            ProfileType::Behavioral,
        ) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let segments = profile
            .as_ref()
            .map(|e| e.profile.segments.clone())
            .unwrap_or_default();
        let rules = behavior::rules(&profile.map(|e| e.profile.models).unwrap_or_default());
        let parsed = filter(&q).and_then(|f| behavior_params(&q, what).map(|p| (f, p)));
        let (filter, mut params) = match parsed {
            Ok(x) => x,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        params.segments = segments;
        let store = self.store.clone();
        blocking_json(move || {
            let breakdown = params
                .breakdown
                .as_deref()
                .filter(|_| matches!(what, Behavior::Funnels));
            if let Some(answer) = counted(&*store, (from, to), &filter, what, &params)? {
                return Ok(answer);
            }
            let users = behavior::Activity::load(&*store, from, to, &filter, breakdown)?;
            Ok(behavior_answer(&users, what, &params, rules, to))
        })
        .await
    }
}

/// A funnel or retention answer counted by the backend, when it can count it; `None` makes the
/// caller fold the users' activity.
fn counted(
    store: &dyn crate::store::Storage,
    (from, to): (i64, i64),
    filter: &Filter,
    what: Behavior,
    p: &BehaviorParams,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    use behavior::{funnels, retention};
    Ok(match what {
        Behavior::Funnels => {
            let q = crate::store::aggregate::FunnelQuery {
                from,
                to,
                filter,
                steps: &p.steps,
                window_ms: p.window_ms,
                mode: p.mode.unwrap_or_default(),
                breakdown: p.breakdown.as_deref(),
            };
            funnels::pushed_down(store, &q)?
                .map(|f| serde_json::json!(funnels::Answer::new(None, &q, f)))
        }
        Behavior::Retention => {
            let period = p.period.unwrap_or(retention::Period::Day);
            retention::pushed_down(store, (from, to), filter, period)?.map(|r| serde_json::json!(r))
        }
        _ => None,
    })
}

/// The parameters of a behavioral request.
#[derive(Debug, Clone, Default)]
struct BehaviorParams {
    steps: Vec<String>,
    window_ms: i64,
    mode: Option<crate::store::aggregate::FunnelMode>,
    breakdown: Option<String>,
    period: Option<behavior::retention::Period>,
    start: Option<String>,
    length: usize,
    feature: Option<String>,
    with_users: bool,
    segments: Vec<tda_schema::segment_rule::Segment>,
}

fn behavior_params(q: &Params, what: Behavior) -> Result<BehaviorParams, String> {
    let mut p = BehaviorParams {
        length: 4,
        window_ms: DAY_MS,
        ..Default::default()
    };
    if let Some(w) = q.get("window") {
        p.window_ms = humantime::parse_duration(w)
            .map_err(|e| format!("window: `{w}`: {e}"))?
            .as_millis() as i64;
    }
    if let Some(n) = q.get("length") {
        p.length = n
            .parse()
            .ok()
            .filter(|n| (1..=20).contains(n))
            .ok_or("length: must be 1-20")?;
    }
    p.start = q.get("start").cloned();
    p.feature = q.get("feature_of_interest").cloned();
    p.breakdown = q.get("breakdown").cloned();
    p.with_users = q.get("users").is_some_and(|v| v == "true");
    if let Behavior::Funnels = what {
        p.steps = q
            .get("steps")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !(2..=20).contains(&p.steps.len()) {
            return Err(
                "steps: 2 to 20 comma-separated features, for example `steps=login,search,export`"
                    .into(),
            );
        }
        p.mode = Some(
            q.get("mode")
                .map_or(Ok(Default::default()), |m| m.parse())
                .map_err(|e| format!("mode: {e}"))?,
        );
    }
    if let Behavior::Retention = what {
        p.period = Some(behavior::retention::Period::parse(
            q.get("period").map_or("day", String::as_str),
        )?);
    }
    Ok(p)
}

fn behavior_answer(
    users: &behavior::Activity,
    what: Behavior,
    p: &BehaviorParams,
    rules: behavior::sessions::SessionRules,
    to: i64,
) -> serde_json::Value {
    use behavior::{funnels, journeys, retention, sessions};
    match what {
        Behavior::Sessions => serde_json::json!(sessions::stats(users, rules)),
        Behavior::Journeys => {
            let paths = journeys::Paths::of(users, rules);
            let mut v = serde_json::json!({
                "top_paths": journeys::top_paths(users, &paths, p.start.as_deref(), p.length, 20),
                "transitions": journeys::transitions(users, &paths, 50),
            });
            if let Some(f) = &p.feature {
                let (next, previous) = journeys::neighbours(users, &paths, f);
                v["next"] = serde_json::json!(next);
                v["previous"] = serde_json::json!(previous);
            }
            v
        }
        Behavior::Funnels => {
            let mode = p.mode.unwrap_or_default();
            let f = funnels::funnel(users, &p.steps, p.window_ms, mode);
            serde_json::json!(funnels::Answer {
                name: None,
                mode,
                window_ms: p.window_ms,
                funnel: f,
            })
        }
        Behavior::Retention => {
            let period = p.period.unwrap_or(retention::Period::Day);
            serde_json::json!(retention::retention(users, period, to))
        }
        Behavior::Segments => {
            let seg = behavior::segments::segment(users, rules, to);
            let by_rule = behavior::segments::rule_segments(users, &p.segments, rules, to);
            let mut v =
                serde_json::json!({ "users": users.len(), "rules": by_rule, "segmentation": seg });
            if p.with_users {
                let assignment = seg.map(|s| s.assignment).unwrap_or_default();
                v["assignment"] = serde_json::json!(assignment);
            }
            v
        }
        Behavior::Interactions => serde_json::json!(behavior::interactions::interactions(users)),
        Behavior::Summary => behavior::summary(users, rules, to),
    }
}

/// A predictive model run over a stored metric.
type ModelRun = fn(
    &dyn crate::store::Storage,
    &predictive::Ask,
) -> Result<serde_json::Value, crate::store::StoreError>;

impl App {
    /// `GET /api/v1/{trends,forecast,anomalies,patterns}?metric=&from=&to=&step=&horizon=&sensitivity=`
    /// plus the event filters.
    async fn predict(&self, req: &Request<Incoming>, run: ModelRun) -> Response {
        let ask = match ask(req, None) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let store = self.store.clone();
        blocking_json(move || run(&*store, &ask)).await
    }

    /// `GET /api/v1/anomalies?profile=ID`: what the scheduler's streaming detectors flagged for
    /// the profile's metrics, oldest first.
    fn streamed_anomalies(&self, req: &Request<Incoming>) -> Response {
        let id = query(req).get("profile").cloned().unwrap_or_default();
        if self.profiles.get(&id).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("profile: no profile `{id}`"),
            );
        }
        let state = match self.models.load(&id) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        let mut flags: Vec<serde_json::Value> = Vec::new();
        for (metric, stream) in &state.streams {
            for a in &stream.flags {
                let mut v = serde_json::json!(a);
                v["metric"] = serde_json::json!(metric);
                flags.push(v);
            }
        }
        flags.sort_by_key(|f| f["start_ms"].as_i64());
        let scored: serde_json::Map<String, serde_json::Value> = state
            .streams
            .iter()
            .map(|(m, s)| (m.clone(), serde_json::json!(s.next_ms)))
            .collect();
        let body = serde_json::json!({"profile": id, "scored_until": scored, "anomalies": flags});
        json(StatusCode::OK, &body)
    }

    /// `GET /api/v1/stats/predictive[?profile=]`: every metric of the predictive profile (the
    /// first one when none is named; default metrics without one): the scheduler's last answer
    /// (with `computed_at`) when no range is asked for, else computed now.
    async fn predictive_stats(&self, req: &Request<Incoming>, id: Option<&str>) -> Response {
        let entry = match self.profile_or_first(id, ProfileType::Predictive) {
            Ok(e) => e,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        if let Some(answer) = self.scheduled_answer(req, id, ProfileType::Predictive) {
            return answer;
        }
        let models = entry
            .as_ref()
            .map(|e| e.profile.models.clone())
            .unwrap_or_default();
        let mut ask = match ask(req, entry.as_ref().map(|e| &e.profile)) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        if !query(req).contains_key("sensitivity") {
            ask.sensitivity = models.sensitivity;
        }
        let metrics = predictive::metrics_of(&models);
        if let Some(bad) = metrics.iter().find_map(|m| predictive::metric(m).err()) {
            return error(StatusCode::BAD_REQUEST, &bad);
        }
        let (store, id) = (self.store.clone(), entry.map(|e| e.id));
        blocking_json(move || predictive::stats(&*store, &ask, &metrics, id)).await
    }
}

/// The model parameters of a request: `metric` (default `requests`), range (default the last
/// 7 days), `step` (default the profile's aggregation level, else 1h), `horizon` (a duration or a
/// number of steps; default the profile's, else 24 steps), `sensitivity` (0-1, default 0.5).
fn ask(req: &Request<Incoming>, profile: Option<&Profile>) -> Result<predictive::Ask, String> {
    let q = query(req);
    let (from, to) = range(req, "7d").map_err(|r| r.message)?;
    let metric = q
        .get("metric")
        .cloned()
        .unwrap_or_else(|| "requests".into());
    predictive::metric(&metric)?;
    let duration = |name: &str, text: &str| {
        humantime::parse_duration(text)
            .map(|d| d.as_millis() as i64)
            .map_err(|e| format!("{name}: `{text}`: {e}"))
    };
    let step = match q.get("step") {
        Some(s) => duration("step", s)?,
        None => profile.map_or(HOUR_MS, |p| p.settings.aggregation_level.millis()),
    };
    if step < 1000 || (to - from) / step > query::MAX_POINTS {
        return Err(format!(
            "step: must be at least 1s and give at most {} points",
            query::MAX_POINTS
        ));
    }
    let horizon = match q.get("horizon") {
        Some(h) => match h.parse::<usize>() {
            Ok(n) => n,
            Err(_) => (duration("horizon", h)? / step) as usize,
        },
        None => profile.map_or(24, |p| {
            (p.models.horizon.0.as_millis() as i64 / step) as usize
        }),
    };
    if !(1..=10_000).contains(&horizon) {
        return Err("horizon: must be 1-10000 steps".into());
    }
    let sensitivity = match q.get("sensitivity") {
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| format!("sensitivity: `{s}` is not a number from 0 to 1"))?,
        None => 0.5,
    };
    Ok(predictive::Ask {
        metric,
        from,
        to,
        step,
        horizon,
        sensitivity,
        filter: filter(&q)?,
    })
}

/// The series name, step (ms) and aggregation of a series query.
fn series_params(q: &Params, from: i64, to: i64) -> Result<(String, i64, Agg), String> {
    let name = q.get("series").ok_or("series: required")?.clone();
    if !query::EVENT_SERIES.contains(&name.as_str())
        && !crate::store::SAMPLE_SERIES.contains(&name.as_str())
    {
        let known: Vec<&str> = query::EVENT_SERIES
            .iter()
            .chain(&crate::store::SAMPLE_SERIES)
            .copied()
            .collect();
        return Err(format!(
            "series: `{name}` is not one of {}",
            known.join(", ")
        ));
    }
    let step = match q.get("step") {
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| format!("step: `{s}`: {e}"))?
            .as_millis() as i64,
        None => 60_000,
    };
    if step < 1000 {
        return Err("step: must be at least 1s".into());
    }
    if (to - from) / step > query::MAX_POINTS {
        return Err(format!(
            "step: more than {} points; use a larger step",
            query::MAX_POINTS
        ));
    }
    let default_agg = match name.as_str() {
        "requests" | "errors" => "count",
        "users" => "distinct",
        _ => "avg",
    };
    let agg = Agg::parse(q.get("agg").map_or(default_agg, String::as_str))?;
    if (agg == Agg::Distinct) != (name == "users") {
        return Err("agg: `distinct` goes with the `users` series, and only with it".into());
    }
    Ok((name, step, agg))
}

fn filter(q: &Params) -> Result<Filter, String> {
    let status = match q.get("status") {
        Some(s) => Some(
            s.parse::<u16>()
                .map_err(|_| format!("status: `{s}` is not an HTTP status"))?,
        ),
        None => None,
    };
    let mut labels: Vec<(String, String)> = q
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("label.").map(|k| (k.to_string(), v.clone())))
        .collect();
    labels.sort();
    if labels.iter().any(|(k, _)| k.is_empty()) {
        return Err("label.: a label filter is `label.KEY=VALUE`".into());
    }
    Ok(Filter {
        feature: q.get("feature").cloned(),
        user: q.get("user").cloned(),
        status,
        agent: q.get("agent").cloned(),
        labels,
    })
}

/// The `from` and `to` query parameters (defaults: `default_from` ago, and now).
fn range(req: &Request<Incoming>, default_from: &str) -> Result<(i64, i64), Refusal> {
    let q = query(req);
    let now = now_ms();
    let bound = |name: &str, default: &str| {
        parse_bound(q.get(name).map_or(default, String::as_str), now)
            .map_err(|e| format!("{name}: {e}"))
    };
    match (bound("from", default_from), bound("to", "0s")) {
        (Ok(f), Ok(t)) if f < t => Ok((f, t)),
        (Ok(_), Ok(_)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "from: must be before to",
        )),
        (Err(e), _) | (_, Err(e)) => Err(Refusal::new(StatusCode::BAD_REQUEST, e)),
    }
}

/// Runs a storage query off the async threads and answers with its JSON.
/// Whether the request asks for JSON and not an event stream (`Accept`).
fn accepts_only_json(req: &Request<Incoming>) -> bool {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

async fn blocking_json<T, F>(f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(crate::store::StoreError::Invalid(why))) => error(StatusCode::BAD_REQUEST, &why),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_description_has_exactly_the_routes_served() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(spec["openapi"], "3.0.3");
        let mut described: Vec<(String, String)> = spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        described.sort();
        served.sort();
        assert_eq!(described, served);
        for (path, ops) in spec["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path}: operationId"
                );
                assert!(
                    op["responses"]
                        .as_object()
                        .is_some_and(|r| r.keys().any(|k| k.starts_with('2'))),
                    "{method} {path}: a 2xx response"
                );
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "path" {
                        let name = param["name"].as_str().unwrap();
                        assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
                    }
                }
            }
        }
    }
}
