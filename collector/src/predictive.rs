//! Predictive analytics over stored series, computed on request: the trend, forecast, anomalies
//! and patterns of a metric (usage metrics from events and rollups, host metrics from samples),
//! and the predictive stats of a profile.

use tda_models::anomaly::{AnomalyConfig, Detector, Kind};
use tda_models::forecast::{Forecast, ForecastConfig};
use tda_models::model::{ForecastModel, PatternModel, TrendModel};
use tda_models::pattern::peaks;
use tda_models::run;
use tda_schema::answers::{
    AnomaliesAnswer, AnomalyKind, AnomalySummary, ChangePoint, ForecastAnswer, ForecastPoint,
    ForecastSummary, MetricModels, ModelBasis, PatternsAnswer, PredictiveStats, ReportedTrend,
    SeasonalPeriod, TrendAnswer,
};

pub use tda_schema::answers::Anomaly;

use crate::query::{self, Agg};
use crate::store::{Filter, SAMPLE_SERIES};
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::DAY_MS;

/// Metrics when a predictive profile names none.
pub const DEFAULT_METRICS: [&str; 3] = ["requests", "active_users", "latency_p95_ms"];

/// The metrics a profile's models work on: its `models.metrics`, else [`DEFAULT_METRICS`].
pub fn metrics_of(models: &tda_schema::sections::ModelSettings) -> Vec<String> {
    if models.metrics.is_empty() {
        DEFAULT_METRICS.iter().map(|m| m.to_string()).collect()
    } else {
        models.metrics.clone()
    }
}

/// The stored series and aggregation behind a metric name: `requests`, `errors`,
/// `active_users`, `latency_pNN_ms`, `latency_avg_ms`, or a host/process series (averaged).
pub fn metric(name: &str) -> Result<(&'static str, Agg), String> {
    let quantile = name
        .strip_prefix("latency_p")
        .and_then(|r| r.strip_suffix("_ms"))
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| (1..=99).contains(n));
    if let Some(q) = quantile {
        return Ok(("latency_ms", Agg::Quantile(q)));
    }
    Ok(match name {
        "requests" => ("requests", Agg::Count),
        "errors" => ("errors", Agg::Count),
        "active_users" | "users" => ("users", Agg::Distinct),
        "latency_avg_ms" => ("latency_ms", Agg::Avg),
        _ => match SAMPLE_SERIES.iter().find(|s| **s == name) {
            Some(s) => (s, Agg::Avg),
            None => {
                return Err(format!(
                    "metric: `{name}` is not requests, errors, active_users, latency_pNN_ms, latency_avg_ms, or one of {}",
                    SAMPLE_SERIES.join(", ")
                ))
            }
        },
    })
}

/// What to model: a metric over `[from, to)` in steps.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Metric name (see [`metric`]).
    pub metric: String,
    /// Start, epoch ms (aligned down to the step).
    pub from: i64,
    /// End, epoch ms.
    pub to: i64,
    /// Step, ms.
    pub step: i64,
    /// Forecast steps.
    pub horizon: usize,
    /// Anomaly sensitivity, 0-1 (0.5: the detector's default gain).
    pub sensitivity: f64,
    /// Event filters.
    pub filter: Filter,
}

/// The metric's values by step, gaps (steps without data) carried from the previous value.
pub fn load(store: &dyn Storage, ask: &Ask) -> Result<(Vec<i64>, Vec<f64>), StoreError> {
    let (series, agg) =
        metric(&ask.metric).map_err(|m| StoreError::Invalid(format!("metric: {m}")))?;
    let from = ask.from.div_euclid(ask.step) * ask.step;
    let points = query::series(store, series, from, ask.to, ask.step, agg, &ask.filter)?;
    let mut last = None;
    let mut times = Vec::with_capacity(points.len());
    let mut values = Vec::with_capacity(points.len());
    for p in points {
        let v = p.v.or(last);
        if let Some(v) = v {
            times.push(p.t);
            values.push(v);
            last = Some(v);
        }
    }
    Ok((times, values))
}

/// The metric's values as the models take them: closed steps only (the step still filling is
/// left out, or it would read as a drop), from the first whole step with data (a count's zeros
/// before the service sent anything are no history, and the step where it began is partial).
pub fn load_closed(store: &dyn Storage, ask: &Ask) -> Result<(Vec<i64>, Vec<f64>), StoreError> {
    let closed = Ask {
        to: ask.to.div_euclid(ask.step) * ask.step,
        ..ask.clone()
    };
    let (mut times, mut values) = load(store, &closed)?;
    let mut first = values
        .iter()
        .position(|v| *v != 0.0)
        .unwrap_or(values.len());
    if first > 0 {
        first = (first + 1).min(values.len()); // data began inside that step: it is partial
    }
    times.drain(..first);
    values.drain(..first);
    Ok((times, values))
}

/// Detector settings for a series of `n` points of `step_ms` at a sensitivity: the default
/// model with the calendar's day and week in steps, its warm-ups shortened for short series so
/// that hourly data over a week is scored too, but with the default's caution: a young range
/// (a week of hourly data has not seen its weekly pattern twice) needs a larger excess to flag.
/// The sensitivity scales the gain: 0.5 is the default, each 0.1 more multiplies it by 10^0.2.
pub fn detector_config(n: usize, step_ms: i64, sensitivity: f64) -> AnomalyConfig {
    let d = AnomalyConfig::default().with_step(step_ms as f64 / 1_000.0);
    let s = sensitivity.clamp(0.05, 0.95);
    let warmup = d.warmup.min((n / 8).max(12));
    AnomalyConfig {
        warmup,
        // Caution is `caution x warmup / points seen`: keep the default warm-up's in it.
        caution: d.caution * d.warmup as f64 / warmup as f64,
        quiet_after_flag: d.quiet_after_flag.min((n / 20).max(3)),
        gain: d.gain * 10f64.powf(2.0 * (s - 0.5)),
        season_after: d.season_after.min((n / 4).max(64)),
        season_warmup: d.season_warmup.min((n / 6).max(24)),
        ..d
    }
}

/// A stretch over `[start_ms, end_ms)` the detector flagged as `kind`.
pub fn flagged(start_ms: i64, end_ms: i64, score: f64, value: f64, kind: Kind) -> Anomaly {
    let kind = match kind {
        Kind::Outlier => AnomalyKind::Outlier,
        Kind::LevelShift => AnomalyKind::LevelShift,
        Kind::VarianceChange => AnomalyKind::VarianceChange,
        Kind::SeasonalBreak => AnomalyKind::SeasonalBreak,
        Kind::Stuck => AnomalyKind::Stuck,
    };
    Anomaly {
        kind: Some(kind),
        ..Anomaly::at(start_ms, end_ms, score, value)
    }
}

/// The stretches of `values` (at `times`, `step` apart) the detector flags.
pub fn anomalies_in(times: &[i64], values: &[f64], step: i64, sensitivity: f64) -> Vec<Anomaly> {
    let scores = run::<Detector>(detector_config(values.len(), step, sensitivity), values);
    let mut out: Vec<Anomaly> = Vec::new();
    let mut i = 0;
    while i < scores.len() {
        if scores[i].score < 0.5 {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < scores.len() && scores[j + 1].score >= 0.3 {
            j += 1;
        }
        let score = scores[i..=j].iter().map(|s| s.score).fold(0.0, f64::max);
        out.push(flagged(
            times[i],
            times[j] + step,
            score,
            values[i],
            scores[i].kind,
        ));
        i = j + 1;
    }
    out
}

/// Forecast settings for `horizon` steps of `step_ms`: the calendar's day and week (in steps) are
/// tried besides the periods found in the data.
pub fn forecast_config(horizon: usize, step_ms: i64) -> ForecastConfig {
    ForecastConfig {
        horizon,
        seasons: tda_models::seasonality::calendar_seasons(step_ms as f64 / 1_000.0),
        ..ForecastConfig::default()
    }
}

/// The forecast of `horizon` steps of `step_ms` after `values`.
pub fn forecast_of(values: &[f64], horizon: usize, step_ms: i64) -> Forecast {
    run::<ForecastModel>(forecast_config(horizon, step_ms), values)
}

fn basis(ask: &Ask, points: usize) -> ModelBasis {
    ModelBasis {
        metric: ask.metric.clone(),
        from: ask.from,
        to: ask.to,
        step_ms: ask.step,
        points,
    }
}

/// Days of history a trend needs before it is reported.
const TREND_DAYS: usize = 7;

/// A metric's trend as reported: over its daily means (a day's own cycle is no trend), only on
/// `TREND_DAYS` days or more, as the change per week relative to the mean level; on the log
/// scale for a series above zero, so a count never falls by more than 100 % a week.
pub fn reported_trend(metric: &str, times: &[i64], values: &[f64], step: i64) -> ReportedTrend {
    let per_day = (DAY_MS / step).max(1) as usize;
    let mut days: Vec<(i64, f64, usize)> = Vec::new();
    for (t, v) in times.iter().zip(values) {
        let day = t.div_euclid(DAY_MS);
        match days.last_mut() {
            Some((d, sum, n)) if *d == day => {
                *sum += v;
                *n += 1;
            }
            _ => days.push((day, *v, 1)),
        }
    }
    // Whole days only: the first and last may be partial.
    let means: Vec<f64> = days
        .iter()
        .filter(|(_, _, n)| *n * 2 > per_day)
        .map(|(_, sum, n)| sum / *n as f64)
        .collect();
    if means.len() < TREND_DAYS {
        let summary = format!(
            "{metric}: too little history for a trend ({} of {TREND_DAYS} days)",
            means.len()
        );
        return ReportedTrend {
            direction: None,
            percent_per_week: None,
            p_value: None,
            days: Some(means.len()),
            summary,
        };
    }
    let positive = means.iter().all(|m| *m > 0.0);
    let scaled: Vec<f64> = if positive {
        means.iter().map(|m| m.ln()).collect()
    } else {
        means.clone()
    };
    let Some(t) = run::<TrendModel>((), &scaled) else {
        return ReportedTrend {
            direction: None,
            percent_per_week: None,
            p_value: None,
            days: None,
            summary: format!("{metric}: no trend"),
        };
    };
    let level = means.iter().sum::<f64>() / means.len() as f64;
    let per_week = if positive {
        Some(((7.0 * t.slope_per_step).exp() - 1.0) * 100.0)
    } else {
        (level != 0.0).then(|| (7.0 * t.slope_per_step / level.abs() * 100.0).max(-100.0))
    };
    ReportedTrend {
        direction: Some(t.direction.to_string()),
        percent_per_week: per_week,
        p_value: Some(t.p_value),
        days: Some(means.len()),
        summary: summary(metric, t.direction, per_week, t.p_value),
    }
}

/// `GET /api/v1/trends`.
pub fn trends(store: &dyn Storage, ask: &Ask) -> Result<TrendAnswer, StoreError> {
    let (times, values) = load_closed(store, ask)?;
    let trend = reported_trend(&ask.metric, &times, &values, ask.step);
    Ok(TrendAnswer {
        basis: basis(ask, values.len()),
        percent_per_week: trend.percent_per_week,
        summary: trend.summary.clone(),
        trend,
    })
}

fn summary(metric: &str, direction: &str, per_week: Option<f64>, p: f64) -> String {
    match per_week {
        Some(w) if direction != "flat" => format!("{metric}: {w:+.1} % per week (p {})", p_text(p)),
        _ => format!("{metric}: no significant trend (p {})", p_text(p)),
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}

/// `GET /api/v1/forecast`.
pub fn forecasts(store: &dyn Storage, ask: &Ask) -> Result<ForecastAnswer, StoreError> {
    let (times, values) = load_closed(store, ask)?;
    let f: Forecast = forecast_of(&values, ask.horizon, ask.step);
    let next = times.last().copied().unwrap_or(ask.from);
    let forecast = (0..ask.horizon)
        .map(|i| ForecastPoint {
            t: next + (i as i64 + 1) * ask.step,
            forecast: f.mean[i],
            lower80: f.lower80[i],
            upper80: f.upper80[i],
            lower95: f.lower95[i],
            upper95: f.upper95[i],
        })
        .collect();
    Ok(ForecastAnswer {
        basis: basis(ask, values.len()),
        period_steps: f.period,
        backtest_mae: f.backtest_mae.is_finite().then_some(f.backtest_mae),
        model: f.model,
        forecast,
    })
}

/// `GET /api/v1/anomalies`.
pub fn anomalies(store: &dyn Storage, ask: &Ask) -> Result<AnomaliesAnswer, StoreError> {
    let (times, values) = load_closed(store, ask)?;
    Ok(AnomaliesAnswer {
        basis: basis(ask, values.len()),
        anomalies: anomalies_in(&times, &values, ask.step, ask.sensitivity),
    })
}

/// `GET /api/v1/patterns`.
pub fn patterns(store: &dyn Storage, ask: &Ask) -> Result<PatternsAnswer, StoreError> {
    let (times, values) = load_closed(store, ask)?;
    let found = run::<PatternModel>((), &values);
    let seasonal_periods = found
        .periods
        .iter()
        .map(|p| SeasonalPeriod {
            steps: p.steps,
            ms: p.steps as i64 * ask.step,
            strength: p.strength,
        })
        .collect();
    let change_points = found
        .change_points
        .iter()
        .map(|c| ChangePoint {
            t: times[c.index.min(times.len() - 1)],
            kind: c.kind.to_string(),
            before: c.before,
            after: c.after,
        })
        .collect();
    let pairs: Vec<(i64, f64)> = times.iter().copied().zip(values.iter().copied()).collect();
    let p = peaks(&pairs);
    Ok(PatternsAnswer {
        basis: basis(ask, values.len()),
        seasonal_periods,
        change_points,
        peak_weekdays: p
            .weekdays
            .iter()
            .map(|d| WEEKDAYS[*d as usize].to_string())
            .collect(),
        peak_hours_utc: p.hours,
    })
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `GET /api/v1/stats/predictive`: trend, forecast, anomalies and seasons of each metric.
pub fn stats(
    store: &dyn Storage,
    base: &Ask,
    metrics: &[String],
    profile: Option<String>,
) -> Result<PredictiveStats, StoreError> {
    let mut out = Vec::new();
    for m in metrics {
        let ask = Ask {
            metric: m.clone(),
            ..base.clone()
        };
        let (times, values) = load_closed(store, &ask)?;
        let f: Forecast = forecast_of(&values, ask.horizon, ask.step);
        let found = anomalies_in(&times, &values, ask.step, ask.sensitivity);
        out.push(MetricModels {
            metric: m.clone(),
            points: values.len(),
            trend: reported_trend(m, &times, &values, ask.step),
            forecast: ForecastSummary {
                horizon_steps: ask.horizon,
                mean: f.mean.iter().sum::<f64>() / f.mean.len().max(1) as f64,
                last: f.mean.last().copied(),
                upper95_last: f.upper95.last().copied(),
                model: f.model,
            },
            anomalies: AnomalySummary {
                count: found.len(),
                latest: found.last().cloned(),
            },
            seasonal_periods_steps: run::<PatternModel>((), &values)
                .periods
                .iter()
                .map(|p| p.steps)
                .collect(),
        });
    }
    Ok(PredictiveStats {
        kind: "predictive".into(),
        profile,
        from: base.from,
        to: base.to,
        step_ms: base.step,
        metrics: out,
        computed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Hourly points from day 20,000 (epoch days) with a daily cycle around `level(day)`.
    fn hourly(days: usize, level: impl Fn(f64) -> f64) -> (Vec<i64>, Vec<f64>) {
        let start = 20_000 * DAY_MS;
        (0..days * 24)
            .map(|i| {
                let cycle = 1.0 + 0.5 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
                (
                    start + i as i64 * HOUR,
                    (level(i as f64 / 24.0) * cycle).round(),
                )
            })
            .unzip()
    }

    #[test]
    fn a_day_of_a_daily_cycle_is_no_trend() {
        let (t, v) = hourly(1, |_| 100.0);
        let got = serde_json::json!(reported_trend("requests", &t[6..], &v[6..], HOUR));
        assert_eq!(got["direction"], serde_json::Value::Null, "{got}");
        assert_eq!(
            got["summary"],
            "requests: too little history for a trend (1 of 7 days)"
        );
    }

    #[test]
    fn a_count_halving_every_week_falls_50_percent_a_week() {
        let (t, v) = hourly(21, |d| 1_000.0 * 0.5f64.powf(d / 7.0));
        let got = serde_json::json!(reported_trend("requests", &t, &v, HOUR));
        assert_eq!(got["direction"], "falling", "{got}");
        let w = got["percent_per_week"].as_f64().unwrap();
        assert!((w + 50.0).abs() < 1.0, "{got}");
        assert_eq!(got["days"], 21);
    }

    #[test]
    fn a_count_falling_to_nothing_falls_less_than_100_percent() {
        let (t, v) = hourly(14, |d| (1_000.0 - 70.0 * d).max(1.0));
        let got = serde_json::json!(reported_trend("requests", &t, &v, HOUR));
        let w = got["percent_per_week"].as_f64().unwrap();
        assert!((-100.0..-50.0).contains(&w), "{got}");
    }

    #[test]
    fn a_steady_weekly_pattern_is_flat() {
        let (t, v) = hourly(28, |d| if (d as i64) % 7 >= 5 { 40.0 } else { 100.0 });
        let got = serde_json::json!(reported_trend("requests", &t, &v, HOUR));
        assert_eq!(got["direction"], "flat", "{got}");
    }
}
