//! The model scheduler: every few seconds, for each predictive profile, feeds each metric's
//! streaming detector the steps that closed since it last ran (flagging anomalies as data
//! arrives), and reruns the profile's models when `models.every` has passed or the profile
//! changed; for each behavioral profile, reruns its analyses (summary, funnels, segments) on the
//! same rule. Both, and the reports, also rerun early when data arrives in bulk after they ran
//! (`arrivals`). State lives in `analytics/models/`, so a restart resumes where it stopped. One
//! loop runs the profiles in turn: a job never overlaps itself.

use tda_models::anomaly::Detector;
use tda_models::Model;
use tda_schema::ProfileType;

use crate::model_state::{ModelStore, ProfileState, Stream, MAX_FLAGS};
use crate::predictive::{self, Ask};
use crate::profiles::Entry;
use crate::store::Filter;
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::DAY_MS;

pub use crate::arrivals::Arrivals;

/// How long after a step ends before it is scored (late batches).
const GRACE_MS: i64 = 60_000;
/// Steps of history a new detector learns from (and the most a restart catches up).
const WARM_STEPS: i64 = 2_000;
/// History the scheduled models look at: at least two weeks.
const LOOKBACK_MS: i64 = 14 * DAY_MS;

/// What the scheduled models read and write.
pub struct Models<'a> {
    /// The data.
    pub store: &'a dyn Storage,
    /// Each profile's model state (`analytics/models/`).
    pub state: &'a ModelStore,
}

/// Runs the models of every predictive and behavioral profile that are due.
pub fn run_models(ctx: &Models, profiles: &[Entry], now: i64, arrivals: &mut Arrivals) {
    for entry in profiles {
        let done = match entry.profile.kind {
            ProfileType::Predictive => run_profile(ctx, entry, now, arrivals),
            ProfileType::Behavioral => run_behavioral(ctx, entry, now, arrivals),
            _ => continue,
        };
        if let Err(e) = done {
            tracing::error!(profile = %entry.id, error = %e, "scheduled models failed; will try again");
        }
    }
}

/// Whether a profile's scheduled run is due: it changed, `models.every` passed, or data arrived.
fn due(entry: &Entry, state: &ProfileState, now: i64, arrivals: &Arrivals) -> bool {
    let every = entry.profile.models.every.0.as_millis() as i64;
    state.profile_hash != entry.hash || now - state.last_run_ms >= every || arrivals.due(&entry.id)
}

/// Reruns a behavioral profile's analyses when they are due.
fn run_behavioral(
    ctx: &Models,
    entry: &Entry,
    now: i64,
    arrivals: &mut Arrivals,
) -> Result<(), StoreError> {
    let mut state = ctx.state.load(&entry.id)?;
    if !due(entry, &state, now, arrivals) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    state.result = Some(serde_json::json!(crate::behavior::scheduled::run(
        ctx.store, entry, now
    )?));
    state.last_run_ms = now;
    state.profile_hash = entry.hash.clone();
    ctx.state.save(&entry.id, &state)?;
    arrivals.ran(&entry.id);
    tracing::info!(profile = %entry.id, funnels = entry.profile.funnels.len(), elapsed_ms = started.elapsed().as_millis() as u64, "behavioral analyses ran");
    Ok(())
}

fn run_profile(
    ctx: &Models,
    entry: &Entry,
    now: i64,
    arrivals: &mut Arrivals,
) -> Result<(), StoreError> {
    let mut state = ctx.state.load(&entry.id)?;
    let metrics: Vec<String> = predictive::metrics_of(&entry.profile.models)
        .into_iter()
        .filter(|m| predictive::metric(m).is_ok())
        .collect();
    let step = entry.profile.settings.aggregation_level.millis();
    let sensitivity = entry.profile.models.sensitivity;
    // Steps are scored once closed, past the grace for late batches, and once their data came.
    let until = (now - GRACE_MS).min(arrivals.arrived_through(now));
    for m in &metrics {
        stream(ctx, &mut state, m, step, sensitivity, until, &entry.id)?;
    }
    state.streams.retain(|k, _| metrics.contains(k));
    if due(entry, &state, now, arrivals) {
        refit(ctx, entry, &mut state, &metrics, step, now)?;
        arrivals.ran(&entry.id);
    }
    ctx.state.save(&entry.id, &state)
}

/// Reruns the profile's models over the lookback and keeps their answer.
fn refit(
    ctx: &Models,
    entry: &Entry,
    state: &mut ProfileState,
    metrics: &[String],
    step: i64,
    now: i64,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let horizon_ms = entry.profile.models.horizon.0.as_millis() as i64;
    let lookback = LOOKBACK_MS
        .max(8 * horizon_ms)
        .min(step * crate::query::MAX_POINTS);
    let ask = Ask {
        metric: String::new(),
        from: now - lookback,
        to: now,
        step,
        horizon: ((horizon_ms / step).max(1) as usize).min(10_000),
        sensitivity: entry.profile.models.sensitivity,
        filter: Filter::default(),
    };
    let mut result = predictive::stats(ctx.store, &ask, metrics, Some(entry.id.clone()))?;
    result.computed_at = Some(now);
    state.result = Some(serde_json::json!(result));
    state.last_run_ms = now;
    state.profile_hash = entry.hash.clone();
    tracing::info!(profile = %entry.id, metrics = metrics.len(), elapsed_ms = started.elapsed().as_millis() as u64, "predictive models ran");
    Ok(())
}

/// Scores the steps of `metric` that closed, before `until`, since the stream's last step.
fn stream(
    ctx: &Models,
    state: &mut ProfileState,
    metric: &str,
    step: i64,
    sensitivity: f64,
    until: i64,
    profile: &str,
) -> Result<(), StoreError> {
    let closed_end = until.div_euclid(step) * step;
    let fresh = || Stream {
        detector: None,
        next_ms: closed_end - WARM_STEPS * step,
        step_ms: step,
        flags: Vec::new(),
    };
    let s = state
        .streams
        .entry(metric.to_string())
        .or_insert_with(fresh);
    if s.step_ms != step {
        *s = fresh();
    }
    let from = s.next_ms.max(closed_end - WARM_STEPS * step);
    if from >= closed_end {
        return Ok(());
    }
    let ask = Ask {
        metric: metric.to_string(),
        from,
        to: closed_end,
        step,
        horizon: 1,
        sensitivity,
        filter: Filter::default(),
    };
    // A new detector learns from the first data on (a count's zeros before it are no history).
    let (times, values) = match s.detector {
        None => predictive::load_closed(ctx.store, &ask)?,
        Some(_) => predictive::load(ctx.store, &ask)?,
    };
    if values.is_empty() {
        return Ok(()); // nothing stored yet: wait, so the first data is learnt from, not skipped
    }
    let config = predictive::detector_config(values.len().max(200), step, sensitivity);
    let detector = s.detector.get_or_insert_with(|| Detector::build(config));
    detector.fit(&values);
    for ((t, v), scored) in times.iter().zip(&values).zip(detector.output()) {
        if scored.score >= 0.5 {
            let (score, kind) = (scored.score, scored.kind.describe());
            tracing::warn!(%profile, %metric, at = %tda_schema::Timestamp(*t).to_rfc3339(), value = v, score, kind, "anomaly flagged");
            s.flags
                .push(predictive::flagged(*t, t + step, score, *v, scored.kind));
            if s.flags.len() > MAX_FLAGS {
                s.flags.remove(0);
            }
        }
    }
    s.next_ms = closed_end;
    Ok(())
}

#[cfg(test)]
mod tests;
