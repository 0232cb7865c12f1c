//! The behavioral analyses over a range: sessions, journeys, funnels, retention, segments,
//! interactions and the summary; funnels and retention counted by the backend when it can.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tda_daemon::{json, Refusal};
use tda_schema::timestamp::DAY_MS;
use tda_schema::ProfileType;

use super::params::{bad, Query};
use super::{blocking_json, internal, Answer, Path};
use crate::app::App;
use crate::behavior::{self, funnels, journeys, retention, sessions, Activity};
use crate::profiles::Entry;
use crate::store::aggregate::{FunnelMode, FunnelQuery};
use crate::store::{Filter, Storage, StoreError};
use tda_schema::answers::{JourneysAnswer, SegmentsAnswer};

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

/// `GET /api/v1/sessions`.
pub async fn sessions(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Sessions).await
}

/// `GET /api/v1/journeys?start=&length=&feature_of_interest=`.
pub async fn journeys(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Journeys).await
}

/// `GET /api/v1/funnels?steps=a,b,c&window=&mode=&breakdown=`.
pub async fn funnels(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Funnels).await
}

/// `GET /api/v1/retention?period=day|week`.
pub async fn retention(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Retention).await
}

/// `GET /api/v1/segments?users=true`.
pub async fn segments(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Segments).await
}

/// `GET /api/v1/interactions`.
pub async fn interactions(app: Arc<App>, req: Request<Incoming>, _: Path) -> Answer {
    analyse(app, &req, Behavior::Interactions).await
}

/// `GET /api/v1/stats/behavioral[?profile=]`: the scheduler's last run of the profile when no
/// range is asked for, else the summary computed now.
pub async fn stats(app: Arc<App>, req: Request<Incoming>, profile: Option<&str>) -> Answer {
    if let Some(answer) = scheduled_answer(&app, &req, profile, ProfileType::Behavioral)? {
        return Ok(answer);
    }
    analyse(app, &req, Behavior::Summary).await
}

/// The profile named `id`, or (none named) the first profile of `kind`, if any.
pub(super) fn profile_or_first(
    app: &App,
    id: Option<&str>,
    kind: ProfileType,
) -> Result<Option<Entry>, Refusal> {
    match id {
        Some(id) => app
            .profiles
            .get(id)
            .map(Some)
            .ok_or_else(|| bad(format!("profile: no profile `{id}`"))),
        None => Ok(app
            .profiles
            .list()
            .into_iter()
            .find(|e| e.profile.kind == kind)),
    }
}

/// The scheduler's last answer for the profile (`id`, else the first of `kind`), when no range
/// is asked for and it ran for the profile's version in force.
pub(super) fn scheduled_answer(
    app: &App,
    req: &Request<Incoming>,
    id: Option<&str>,
    kind: ProfileType,
) -> Result<Option<tda_daemon::Response>, Refusal> {
    let q = Query::of(req);
    if q.has("from") || q.has("to") {
        return Ok(None);
    }
    let Some(entry) = profile_or_first(app, id, kind).ok().flatten() else {
        return Ok(None);
    };
    match app.models.load(&entry.id) {
        Ok(state) if state.result.is_some() && state.profile_hash == entry.hash => {
            Ok(Some(json(StatusCode::OK, &state.result)))
        }
        Ok(_) => Ok(None),
        Err(err) => Err(internal(err.to_string())),
    }
}

/// Over the events of the range (default the last 7 days) and the event filters, with the
/// session rules of the behavioral profile (`?profile=`, else the first one, else 30 min and
/// 24 h).
async fn analyse(app: Arc<App>, req: &Request<Incoming>, what: Behavior) -> Answer {
    let q = Query::of(req);
    let (from, to) = q.range("7d")?;
    let profile = profile_or_first(&app, q.get("profile"), ProfileType::Behavioral)?;
    let filter = q.filter()?;
    let mut params = Params::of(&q, what)?;
    params.segments = profile
        .as_ref()
        .map(|e| e.profile.segments.clone())
        .unwrap_or_default();
    let rules = behavior::rules(&profile.map(|e| e.profile.models).unwrap_or_default());
    blocking_json(move || {
        let store = &*app.store;
        if let Some(answer) = counted(store, (from, to), &filter, what, &params)? {
            return Ok(answer);
        }
        let breakdown = params
            .breakdown
            .as_deref()
            .filter(|_| matches!(what, Behavior::Funnels));
        let users = Activity::load(store, from, to, &filter, breakdown)?;
        Ok(answer(&users, what, &params, rules, to))
    })
    .await
}

/// A funnel or retention answer counted by the backend, when it can count it; `None` makes the
/// caller fold the users' activity.
fn counted(
    store: &dyn Storage,
    (from, to): (i64, i64),
    filter: &Filter,
    what: Behavior,
    p: &Params,
) -> Result<Option<Value>, StoreError> {
    Ok(match what {
        Behavior::Funnels => {
            let q = FunnelQuery {
                from,
                to,
                filter,
                steps: &p.steps,
                window_ms: p.window_ms,
                mode: p.mode,
                breakdown: p.breakdown.as_deref(),
            };
            funnels::pushed_down(store, &q)?.map(|f| json!(funnels::answer(None, &q, f)))
        }
        Behavior::Retention => {
            retention::pushed_down(store, (from, to), filter, p.period)?.map(|r| json!(r))
        }
        _ => None,
    })
}

/// The parameters of a behavioral request.
#[derive(Debug, Clone)]
struct Params {
    steps: Vec<String>,
    window_ms: i64,
    mode: FunnelMode,
    breakdown: Option<String>,
    period: retention::Period,
    start: Option<String>,
    length: usize,
    feature: Option<String>,
    with_users: bool,
    segments: Vec<tda_schema::segment_rule::Segment>,
}

impl Params {
    fn of(q: &Query, what: Behavior) -> Result<Params, Refusal> {
        let length = match q.get("length") {
            None => 4,
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| (1..=20).contains(n))
                .ok_or_else(|| bad("length: must be 1-20"))?,
        };
        let funnel = matches!(what, Behavior::Funnels);
        let mode = if funnel { q.parsed("mode")? } else { None };
        let period = match what {
            Behavior::Retention => q.parsed("period")?,
            _ => None,
        };
        let steps: Vec<String> = q
            .get("steps")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if funnel && !(2..=20).contains(&steps.len()) {
            return Err(bad(
                "steps: 2 to 20 comma-separated features, for example `steps=login,search,export`",
            ));
        }
        let text = |name: &str| q.get(name).map(str::to_string);
        Ok(Params {
            steps,
            window_ms: q.duration_ms("window")?.unwrap_or(DAY_MS),
            mode: mode.unwrap_or_default(),
            breakdown: text("breakdown"),
            period: period.unwrap_or(retention::Period::Day),
            start: text("start"),
            length,
            feature: text("feature_of_interest"),
            with_users: q.get("users") == Some("true"),
            segments: Vec::new(),
        })
    }
}

fn answer(
    users: &Activity,
    what: Behavior,
    p: &Params,
    rules: sessions::SessionRules,
    to: i64,
) -> Value {
    match what {
        Behavior::Sessions => json!(sessions::stats(users, rules)),
        Behavior::Journeys => {
            let paths = journeys::Paths::of(users, rules);
            let around = p
                .feature
                .as_ref()
                .map(|f| journeys::neighbours(users, &paths, f));
            let (next, previous) = around.map_or((None, None), |(n, p)| (Some(n), Some(p)));
            json!(JourneysAnswer {
                top_paths: journeys::top_paths(users, &paths, p.start.as_deref(), p.length, 20),
                transitions: journeys::transitions(users, &paths, 50),
                next,
                previous,
            })
        }
        Behavior::Funnels => json!(funnels::Answer {
            name: None,
            mode: p.mode,
            window_ms: p.window_ms,
            funnel: funnels::funnel(users, &p.steps, p.window_ms, p.mode),
        }),
        Behavior::Retention => json!(retention::retention(users, p.period, to)),
        Behavior::Segments => {
            let seg = behavior::segments::segment(users, rules, to);
            let assignment = p.with_users.then(|| {
                seg.as_ref()
                    .map(|s| s.assignment.clone())
                    .unwrap_or_default()
            });
            json!(SegmentsAnswer {
                users: users.len(),
                rules: behavior::segments::rule_segments(users, &p.segments, rules, to),
                segmentation: seg,
                assignment,
            })
        }
        Behavior::Interactions => json!(behavior::interactions::interactions(users)),
        Behavior::Summary => json!(behavior::summary(users, rules, to)),
    }
}
