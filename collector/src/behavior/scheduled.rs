//! The scheduled run of a behavioral profile: over its `models.lookback` ending now, the
//! behavioral summary, the profile's `[[funnel]]`s, its `[[segment]]` rules and the automatic
//! segments, as one JSON answer the scheduler keeps (served by `GET /api/v1/stats/behavioral`).

use serde_json::{json, Value};
use tda_schema::sections::FunnelMode;

use super::{funnels, retention, segments, summary, Activity};
use crate::profiles::Entry;
use crate::query::Filter;
use crate::store::{Storage, StoreError};

impl From<FunnelMode> for funnels::Mode {
    fn from(m: FunnelMode) -> Self {
        match m {
            FunnelMode::Ordered => funnels::Mode::Ordered,
            FunnelMode::Strict => funnels::Mode::Strict,
            FunnelMode::Unordered => funnels::Mode::Unordered,
        }
    }
}

/// Runs every analysis of a behavioral profile over `[now - lookback, now)`.
pub fn run(store: &dyn Storage, entry: &Entry, now: i64) -> Result<Value, StoreError> {
    let lookback = entry.profile.models.lookback.0.as_millis() as i64;
    let mut answer = run_range(store, entry, now - lookback, now)?;
    answer["computed_at"] = json!(now);
    Ok(answer)
}

/// Runs every analysis of a behavioral profile over `[from, to)`.
pub fn run_range(
    store: &dyn Storage,
    entry: &Entry,
    from: i64,
    to: i64,
) -> Result<Value, StoreError> {
    let rules = super::rules(&entry.profile.models);
    let all = Filter::default();
    let users = Activity::load(store, from, to, &all, None)?;
    let mut answer = summary(&users, rules, to);
    let mut funnels = Vec::new();
    for spec in &entry.profile.funnels {
        let broken_down;
        let activity = match &spec.breakdown {
            Some(key) => {
                broken_down = Activity::load(store, from, to, &all, Some(key))?;
                &broken_down
            }
            None => &users,
        };
        let window_ms = spec.window.0.as_millis() as i64;
        let f = funnels::funnel(activity, &spec.steps, window_ms, spec.mode.into());
        funnels.push(
            json!({"name": spec.name, "mode": spec.mode, "window_ms": window_ms, "funnel": f}),
        );
    }
    answer["funnels"] = json!(funnels);
    answer["retention_weekly"] = json!(retention::retention(&users, retention::Period::Week, to));
    answer["segments"] = json!({
        "users": users.len(),
        "rules": segments::rule_segments(&users, &entry.profile.segments, rules, to),
        "segmentation": segments::segment(&users, rules, to),
    });
    answer["profile"] = json!(entry.id);
    answer["from"] = json!(from);
    answer["to"] = json!(to);
    Ok(answer)
}
