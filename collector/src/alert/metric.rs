//! What an alert rule watches: a selector (`metric` or `metric{agent="web-1",feature="export"}`)
//! naming a usage, performance or host series with filters, its value over the rule's trailing
//! window, and for forecast and anomaly rules what the models make of its recent history.

use tda_models::Model;
use tda_schema::sections::{AlertKind, AlertRule, Condition};

use super::rule::Level;
use crate::predictive;
use crate::query::{self, Agg};
use crate::store::Filter;
use crate::store::{Storage, StoreError};
use tda_schema::timestamp::{DAY_MS, HOUR_MS, MINUTE_MS};

/// Metric names a rule may watch besides the predictive ones: errors per request.
pub const ERROR_RATE: &str = "error_rate";

/// A metric with its filters.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Metric name (see [`predictive::metric`], plus `error_rate`).
    pub metric: String,
    /// Filters: `agent`, `feature`, `user`, `status`, `label.KEY`.
    pub filter: Filter,
}

/// Parses `metric` or `metric{key="value", …}` and checks the metric exists.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    let (name, rest) = match text.split_once('{') {
        Some((n, r)) => (
            n.trim(),
            Some(
                r.strip_suffix('}')
                    .ok_or_else(|| format!("`{text}`: missing `}}`"))?,
            ),
        ),
        None => (text.trim(), None),
    };
    if name != ERROR_RATE {
        predictive::metric(name)?;
    }
    let mut filter = Filter::default();
    for pair in rest
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}`: expected key=\"value\""))?;
        let (k, v) = (k.trim(), v.trim().trim_matches('"').to_string());
        match k {
            "agent" => filter.agent = Some(v),
            "feature" => filter.feature = Some(v),
            "user" => filter.user = Some(v),
            "status" => {
                filter.status = Some(
                    v.parse()
                        .map_err(|_| format!("status: `{v}` is not a number"))?,
                )
            }
            l if l.starts_with("label.") => filter.labels.push((l[6..].to_string(), v)),
            _ => {
                return Err(format!(
                    "`{k}`: filters are agent, feature, user, status and label.KEY"
                ))
            }
        }
    }
    Ok(Selector {
        metric: name.to_string(),
        filter,
    })
}

/// One evaluation's finding: where the value stands (`None`: no data) and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Against the rule's threshold and recovery.
    pub level: Option<Level>,
    /// The value compared (the forecast's extreme, the anomaly score …).
    pub value: Option<f64>,
}

/// The metric's value over `[from, to)`; `None` when there is no data (no samples, no events
/// for a latency or an error rate; a count without events is 0).
pub fn value(
    store: &dyn Storage,
    sel: &Selector,
    from: i64,
    to: i64,
) -> Result<Option<f64>, StoreError> {
    let one = |series: &str, agg: Agg| whole(store, series, agg, &sel.filter, from, to);
    if sel.metric == ERROR_RATE {
        let requests = one("requests", Agg::Count)?.unwrap_or(0.0);
        let errors = one("errors", Agg::Count)?.unwrap_or(0.0);
        return Ok((requests > 0.0).then(|| errors / requests));
    }
    let (series, agg) = predictive::metric(&sel.metric).map_err(corrupt)?;
    one(series, agg)
}

/// How many events (event metrics) or samples (host metrics) `[from, to)` holds.
fn data_points(store: &dyn Storage, sel: &Selector, from: i64, to: i64) -> Result<f64, StoreError> {
    let series = if sel.metric == ERROR_RATE {
        "requests"
    } else {
        predictive::metric(&sel.metric).map_err(corrupt)?.0
    };
    let series = if query::EVENT_SERIES.contains(&series) {
        "requests"
    } else {
        series
    };
    Ok(whole(store, series, Agg::Count, &sel.filter, from, to)?.unwrap_or(0.0))
}

/// A series aggregated over all of `[from, to)`.
fn whole(
    store: &dyn Storage,
    series: &str,
    agg: Agg,
    filter: &Filter,
    from: i64,
    to: i64,
) -> Result<Option<f64>, StoreError> {
    let points = query::series(store, series, from, to, (to - from).max(1), agg, filter)?;
    Ok(points.first().and_then(|p| p.v))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Invalid(format!("alert metric: {message}"))
}

/// Evaluates a rule at `now`.
pub fn observe(
    store: &dyn Storage,
    rule: &AlertRule,
    sel: &Selector,
    now: i64,
) -> Result<Observation, StoreError> {
    let window = (rule.window.0.as_millis() as i64).max(1_000);
    let threshold = rule.threshold.unwrap_or(0.5);
    let level = |v: f64| Level::of(v, threshold, rule.recovery, rule.condition);
    Ok(match rule.kind {
        AlertKind::Threshold => {
            let v = value(store, sel, now - window, now)?;
            Observation {
                level: v.map(level),
                value: v,
            }
        }
        AlertKind::RateOfChange => {
            let before = value(store, sel, now - 2 * window, now - window)?;
            let after = value(store, sel, now - window, now)?;
            let per_minute = before
                .zip(after)
                .map(|(a, b)| (b - a) / (window as f64 / 60_000.0));
            Observation {
                level: per_minute.map(level),
                value: per_minute,
            }
        }
        AlertKind::Absence => {
            let n = data_points(store, sel, now - window, now)?;
            Observation {
                level: Some(if n == 0.0 {
                    Level::Breach
                } else {
                    Level::Clear
                }),
                value: Some(n),
            }
        }
        AlertKind::Forecast => forecast(store, rule, sel, window, now)?,
        AlertKind::Anomaly => {
            let score = anomaly_score(store, sel, window, now)?;
            let recovery = rule.recovery.or(Some(threshold * 0.6));
            Observation {
                level: score.map(|s| Level::of(s, threshold, recovery, Condition::Above)),
                value: score,
            }
        }
    })
}

/// The series of `sel` in steps of `step` over the last `steps` steps before `now`.
fn history(
    store: &dyn Storage,
    sel: &Selector,
    step: i64,
    steps: i64,
    now: i64,
) -> Result<Vec<f64>, StoreError> {
    let to = now.div_euclid(step) * step;
    let ask = predictive::Ask {
        metric: sel.metric.clone(),
        from: to - steps * step,
        to,
        step,
        horizon: 1,
        sensitivity: 0.5,
        filter: sel.filter.clone(),
    };
    if sel.metric == ERROR_RATE {
        let mut out = Vec::new();
        for i in 0..steps {
            let from = ask.from + i * step;
            if let Some(v) = value(store, sel, from, from + step)? {
                out.push(v);
            }
        }
        return Ok(out);
    }
    Ok(predictive::load(store, &ask)?.1)
}

/// A forecast rule: the forecast's extreme over `horizon` against the threshold, while the
/// current value is beyond `guard` (when set).
fn forecast(
    store: &dyn Storage,
    rule: &AlertRule,
    sel: &Selector,
    window: i64,
    now: i64,
) -> Result<Observation, StoreError> {
    let horizon = rule.horizon.map_or(DAY_MS, |h| h.0.as_millis() as i64);
    let step = if horizon <= DAY_MS {
        5 * MINUTE_MS
    } else {
        HOUR_MS
    }
    .max(window.min(HOUR_MS));
    let steps = ((horizon / step).max(1) * 8).clamp(48, 2_000);
    let values = history(store, sel, step, steps, now)?;
    if values.len() < 24 {
        return Ok(Observation {
            level: None,
            value: None,
        });
    }
    let ahead = ((horizon / step).max(1) as usize).min(2_000);
    let mut model =
        tda_models::model::ForecastModel::build(predictive::forecast_config(ahead, step));
    model.fit(&values);
    let mean = model.output().mean;
    let extreme = match rule.condition {
        Condition::Above => mean.iter().copied().fold(f64::MIN, f64::max),
        Condition::Below => mean.iter().copied().fold(f64::MAX, f64::min),
    };
    let threshold = rule.threshold.unwrap_or(0.0);
    let mut level = Level::of(extreme, threshold, rule.recovery, rule.condition);
    if let Some(guard) = rule.guard {
        let now_value = value(store, sel, now - window, now)?;
        let guarded =
            now_value.is_some_and(|v| Level::of(v, guard, None, rule.condition) == Level::Breach);
        if !guarded && level == Level::Breach {
            level = Level::Hold;
        }
    }
    Ok(Observation {
        level: Some(level),
        value: Some(extreme),
    })
}

/// The streaming detector's score of the last closed window, from up to 500 windows of history.
fn anomaly_score(
    store: &dyn Storage,
    sel: &Selector,
    window: i64,
    now: i64,
) -> Result<Option<f64>, StoreError> {
    let values = history(store, sel, window, 500, now)?;
    if values.len() < 30 {
        return Ok(None);
    }
    let config = predictive::detector_config(values.len(), window, 0.5);
    let scores = tda_models::run::<tda_models::anomaly::Detector>(config, &values);
    Ok(scores.last().map(|s| s.score))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_with_filters_and_refuse_unknown_metrics() {
        let s = parse_selector("host.cpu_percent{agent=\"web-1\"}").unwrap();
        assert_eq!(
            (s.metric.as_str(), s.filter.agent.as_deref()),
            ("host.cpu_percent", Some("web-1"))
        );
        let s =
            parse_selector("error_rate{feature=export, label.plan=\"pro\", status=500}").unwrap();
        assert_eq!(s.filter.feature.as_deref(), Some("export"));
        assert_eq!(
            s.filter.labels,
            vec![("plan".to_string(), "pro".to_string())]
        );
        assert_eq!(s.filter.status, Some(500));
        assert!(parse_selector("nope").is_err());
        assert!(parse_selector("requests{agent=x").is_err());
        assert!(parse_selector("requests{colour=red}").is_err());
    }
}
