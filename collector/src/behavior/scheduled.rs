//! The scheduled run of a behavioral profile: over its `models.lookback` ending now, the
//! behavioral summary, the profile's `[[funnel]]`s, its `[[segment]]` rules and the automatic
//! segments, as one answer the scheduler keeps (served by `GET /api/v1/stats/behavioral`).

use tda_schema::answers::{BehavioralStats, SegmentsAnswer};

use super::{funnels, retention, segments, summary, Activity};
use crate::profiles::Entry;
use crate::store::aggregate::FunnelQuery;
use crate::store::Filter;
use crate::store::{Storage, StoreError};

/// Runs every analysis of a behavioral profile over `[now - lookback, now)`.
pub fn run(store: &dyn Storage, entry: &Entry, now: i64) -> Result<BehavioralStats, StoreError> {
    let lookback = entry.profile.models.lookback.0.as_millis() as i64;
    let mut answer = run_range(store, entry, now - lookback, now)?;
    answer.computed_at = Some(now);
    Ok(answer)
}

/// Runs every analysis of a behavioral profile over `[from, to)`.
pub fn run_range(
    store: &dyn Storage,
    entry: &Entry,
    from: i64,
    to: i64,
) -> Result<BehavioralStats, StoreError> {
    let rules = super::rules(&entry.profile.models);
    let all = Filter::default();
    let users = Activity::load(store, from, to, &all, None)?;
    let mut answer = summary(&users, rules, to);
    let mut funnels = Vec::new();
    for spec in &entry.profile.funnels {
        let q = FunnelQuery {
            from,
            to,
            filter: &all,
            steps: &spec.steps,
            window_ms: spec.window.0.as_millis() as i64,
            mode: spec.mode,
            breakdown: spec.breakdown.as_deref(),
        };
        let f = match funnels::pushed_down(store, &q)? {
            Some(f) => f,
            None if q.breakdown.is_some() => {
                let broken_down = Activity::load(store, from, to, &all, q.breakdown)?;
                funnels::funnel(&broken_down, q.steps, q.window_ms, q.mode)
            }
            None => funnels::funnel(&users, q.steps, q.window_ms, q.mode),
        };
        funnels.push(funnels::answer(Some(spec.name.clone()), &q, f));
    }
    answer.funnels = Some(funnels);
    let weekly = match store.pushdown() {
        Some(_) => retention::compute(store, (from, to), &all, retention::Period::Week)?,
        None => retention::retention(&users, retention::Period::Week, to),
    };
    answer.retention_weekly = Some(weekly);
    answer.segments = Some(SegmentsAnswer {
        users: users.len(),
        rules: segments::rule_segments(&users, &entry.profile.segments, rules, to),
        segmentation: segments::segment(&users, rules, to),
        assignment: None,
    });
    answer.profile = Some(entry.id.clone());
    answer.from = Some(from);
    answer.to = Some(to);
    Ok(answer)
}
