//! The collector's HTTP edge. One route table ([`ROUTES`]: method, path pattern, who may call,
//! handler) drives dispatch, authorisation, `405`s and the OpenAPI check; the handlers live
//! beside it by area. Handlers answer `Err(Refusal)` for a request they refuse.

mod admin;
mod alerts;
mod behavioral;
mod dashboard;
mod data;
mod ingest;
mod metrics;
mod params;
mod predictive;
mod reports;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use tda_daemon::{error, json, Refusal, Response};

use crate::app::App;
use crate::auth::Scope;
use crate::store::StoreError;

/// The OpenAPI 3 description of [`ROUTES`], served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What a handler answers: a response, or a refusal (`4xx`/`5xx` with a JSON error).
type Answer = Result<Response, Refusal>;

/// A route's handler: the app, the request and the path's parameters.
type Handler =
    fn(Arc<App>, Request<Incoming>, Path) -> Pin<Box<dyn Future<Output = Answer> + Send>>;

/// One route.
pub struct Route {
    /// The HTTP method.
    pub method: &'static str,
    /// The path, with `{name}` for a parameter (one segment; the last one takes the rest).
    pub pattern: &'static str,
    /// The scope a caller's token needs; `None`: open to all.
    pub scope: Option<Scope>,
    handler: Handler,
    /// Told of each refusal of the route (its scope's included), to count it.
    refused: fn(&App, &Refusal),
}

/// A route to `handler`, an `async fn(Arc<App>, Request<Incoming>, Path) -> Answer`.
macro_rules! route {
    ($method:literal, $pattern:literal, $scope:expr, $handler:path) => {
        route!($method, $pattern, $scope, $handler, |_, _| {})
    };
    ($method:literal, $pattern:literal, $scope:expr, $handler:path, $refused:expr) => {
        Route {
            method: $method,
            pattern: $pattern,
            scope: $scope,
            handler: |app, req, path| Box::pin($handler(app, req, path)),
            refused: $refused,
        }
    };
}

const READ: Option<Scope> = Some(Scope::Read);
const ADMIN: Option<Scope> = Some(Scope::Admin);
const INGEST: Option<Scope> = Some(Scope::Ingest);

/// Every route of the API (the dashboard's page and assets aside); `openapi.json` describes
/// exactly these (a test checks both ways).
pub static ROUTES: &[Route] = &[
    route!("GET", "/healthz", None, admin::health),
    route!("GET", "/metrics", None, metrics::render),
    route!("GET", "/api/v1/openapi.json", READ, admin::openapi),
    route!(
        "POST",
        "/v1/batches",
        INGEST,
        ingest::batch,
        ingest::refused
    ),
    route!(
        "GET",
        "/v1/agents/{agent}/settings",
        INGEST,
        admin::agent_settings
    ),
    route!("POST", "/-/reload", ADMIN, admin::reload),
    route!("POST", "/-/compact", ADMIN, admin::compact),
    route!("GET", "/api/v1/agents/{agent}/samples", READ, data::samples),
    route!("GET", "/api/v1/profiles", READ, admin::list_profiles),
    route!("POST", "/api/v1/profiles", ADMIN, admin::create_profile),
    route!("GET", "/api/v1/query", READ, data::series),
    route!("GET", "/api/v1/events", READ, data::events),
    route!("GET", "/api/v1/export", READ, data::export),
    route!("GET", "/api/v1/sessions", READ, behavioral::sessions),
    route!("GET", "/api/v1/journeys", READ, behavioral::journeys),
    route!("GET", "/api/v1/funnels", READ, behavioral::funnels),
    route!("GET", "/api/v1/retention", READ, behavioral::retention),
    route!("GET", "/api/v1/segments", READ, behavioral::segments),
    route!(
        "GET",
        "/api/v1/interactions",
        READ,
        behavioral::interactions
    ),
    route!("GET", "/api/v1/trends", READ, predictive::trends),
    route!("GET", "/api/v1/forecast", READ, predictive::forecast),
    route!("GET", "/api/v1/anomalies", READ, predictive::anomalies),
    route!("GET", "/api/v1/patterns", READ, predictive::patterns),
    route!("GET", "/api/v1/stats/{type}", READ, data::stats),
    route!("GET", "/api/v1/alerts", READ, alerts::list),
    route!("GET", "/api/v1/silences", READ, alerts::silences),
    route!("POST", "/api/v1/silences", ADMIN, alerts::create_silence),
    route!(
        "DELETE",
        "/api/v1/silences/{id}",
        ADMIN,
        alerts::expire_silence
    ),
    route!("GET", "/api/v1/reports", READ, reports::list),
    route!("POST", "/api/v1/reports/run", ADMIN, reports::run),
    route!("GET", "/api/v1/reports/{file}", READ, reports::file),
    route!("GET", "/api/v1/views", READ, dashboard::views),
    route!("GET", "/api/v1/live", READ, dashboard::live),
];

/// The parameters a route's pattern took from the path.
pub struct Path(Vec<(&'static str, String)>);

impl Path {
    /// The parameter `name` (empty when the pattern has none of that name).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The parameters of `path` if it matches `pattern`: a `{name}` takes one non-empty segment,
/// or all the rest when it is the pattern's last.
fn matches(pattern: &'static str, path: &str) -> Option<Path> {
    let wanted: Vec<&'static str> = pattern.split('/').collect();
    let given: Vec<&str> = path.split('/').collect();
    let mut params = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) else {
            if given.get(i) != Some(w) {
                return None;
            }
            continue;
        };
        let value = if i + 1 == wanted.len() {
            given.get(i..).map(|rest| rest.join("/"))?
        } else {
            given.get(i)?.to_string()
        };
        if value.is_empty() {
            return None;
        }
        params.push((name, value));
    }
    let last_takes_rest = wanted.last().is_some_and(|w| w.starts_with('{'));
    (given.len() == wanted.len() || last_takes_rest).then_some(Path(params))
}

/// Routes one request: the first route whose method and pattern match, after its scope is
/// checked; `405` (with `Allow`) when only other methods match; else the dashboard's page and
/// assets, or `404`.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response {
    let path = req.uri().path().to_string();
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = matches(route.pattern, &path) else {
            continue;
        };
        if route.method != req.method().as_str() {
            allowed.push(route.method);
            continue;
        }
        let allowed = match route.scope {
            Some(scope) => app.authorize(&req, scope),
            None => Ok(()),
        };
        let answer = match allowed {
            Ok(()) => (route.handler)(app.clone(), req, params).await,
            Err(refusal) => Err(refusal),
        };
        return answer.unwrap_or_else(|refusal| {
            (route.refused)(&app, &refusal);
            refusal.response()
        });
    }
    if !allowed.is_empty() {
        let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        if let Ok(v) = hyper::header::HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(hyper::header::ALLOW, v);
        }
        return resp;
    }
    dashboard::page(req.method(), &path)
}

/// Runs a storage query off the async threads and answers with its JSON: `400` for a question
/// the store cannot answer as asked, `500` for a store that failed.
async fn blocking_json<T, F>(f: F) -> Answer
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(json(StatusCode::OK, &v)),
        Ok(Err(StoreError::Invalid(why))) => Err(params::bad(why)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "stats query failed");
            Err(internal(format!("storage: {e}")))
        }
        Err(e) => Err(internal(format!("query task failed: {e}"))),
    }
}

/// A `500 Internal Server Error` refusal saying `why`.
fn internal(why: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, why)
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
            .map(|r| (r.method.to_string(), r.pattern.to_string()))
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

    #[test]
    fn the_openapi_description_states_each_routes_scope() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for r in ROUTES {
            let op = &spec["paths"][r.pattern][r.method.to_lowercase()];
            let open = op["security"].as_array().is_some_and(|s| s.is_empty());
            assert_eq!(open, r.scope.is_none(), "{} {}", r.method, r.pattern);
        }
    }

    #[test]
    fn patterns_take_one_segment_or_the_last_takes_the_rest() {
        let p = matches("/v1/agents/{agent}/settings", "/v1/agents/web-1/settings").unwrap();
        assert_eq!(p.get("agent"), "web-1");
        assert!(matches("/v1/agents/{agent}/settings", "/v1/agents//settings").is_none());
        assert!(matches("/v1/agents/{agent}/settings", "/v1/agents/a/b/settings").is_none());
        let p = matches("/api/v1/reports/{file}", "/api/v1/reports/p/r/x.html").unwrap();
        assert_eq!(p.get("file"), "p/r/x.html");
        assert!(matches("/api/v1/reports/{file}", "/api/v1/reports/").is_none());
        assert!(matches("/api/v1/alerts", "/api/v1/alerts/x").is_none());
        assert!(matches("/healthz", "/healthz").is_some_and(|p| p.0.is_empty()));
    }
}
