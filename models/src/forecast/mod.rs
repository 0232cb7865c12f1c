//! Forecasts with 80 % and 95 % prediction intervals, by a combination of methods chosen by the
//! series' own rolling-origin backtest. The candidates ([`methods`]) are naive, and for each
//! seasonal period found in the data or known from the calendar (a day and a week of steps, when
//! the caller knows the step): seasonal naive, Holt-Winters additive damped, a robust seasonal
//! profile, and Holt-Winters on a short season with a long one (a multiple of it) removed; the
//! seasonal ones also on the logarithm of a positive series. Each is backtested from the last
//! few origins; the best few are averaged with weights by inverse backtest error (combinations
//! beat any one method on M4). The intervals are the methods' own, scaled so that the
//! combination's backtest errors fall inside them as often as they should. Series that never
//! went below zero are never forecast below zero.

mod methods;

use serde::{Deserialize, Serialize};

use crate::seasonality::periods;
use methods::{Fit, Method};

/// Forecast settings; the defaults serve every series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Backtest origins (each one horizon apart, from the end) used to choose and weight methods.
    pub backtests: usize,
    /// Steps a [`crate::Model`] forecast looks ahead.
    pub horizon: usize,
    /// Calendar seasons in steps (a day, a week) when the step is known, tried besides the
    /// periods found in the data.
    pub seasons: Vec<usize>,
    /// Methods averaged: the best this many by backtest error.
    pub combine: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            backtests: 3,
            horizon: 24,
            seasons: Vec::new(),
            combine: 3,
        }
    }
}

/// A forecast of `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The method, or the methods combined.
    pub model: String,
    /// The seasonal period of the best method (1 when none).
    pub period: usize,
    /// Point forecasts.
    pub mean: Vec<f64>,
    /// 80 % interval.
    pub lower80: Vec<f64>,
    /// 80 % interval.
    pub upper80: Vec<f64>,
    /// 95 % interval.
    pub lower95: Vec<f64>,
    /// 95 % interval.
    pub upper95: Vec<f64>,
    /// Mean absolute error of the forecast in its backtest.
    pub backtest_mae: f64,
}

/// A method, on the series or on its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    method: Method,
    log: bool,
}

impl Candidate {
    fn name(self) -> String {
        if self.log {
            format!("{} on logs", self.method.name())
        } else {
            self.method.name()
        }
    }

    fn fit(self, y: &[f64], h: usize) -> Option<Fit> {
        if !self.log {
            return self.method.fit(y, h);
        }
        let logs: Vec<f64> = y.iter().map(|v| v.ln()).collect();
        let fit = self.method.fit(&logs, h)?;
        Some(Fit { log: true, ..fit })
    }
}

/// A candidate's forecast in the series' units: points and the 95 % half-width of each step.
struct Outlook {
    point: Vec<f64>,
    half95: Vec<f64>,
}

impl Outlook {
    fn of(fit: &Fit) -> Outlook {
        let (lo, hi) = fit.band(1.96);
        Outlook {
            point: fit.point(),
            half95: lo
                .iter()
                .zip(&hi)
                .map(|(l, u)| (u - l).abs() / 2.0)
                .collect(),
        }
    }
}

/// The methods worth trying on `y` with these seasons.
fn candidates(y: &[f64], seasons: &[usize]) -> Vec<Candidate> {
    let n = y.len();
    let mut found: Vec<usize> = periods(y).iter().map(|p| p.steps).collect();
    for s in seasons {
        if !found.contains(s) {
            found.push(*s);
        }
    }
    found.retain(|p| *p >= 2 && n >= 2 * p + 2);
    let mut methods = vec![Method::Naive(1), Method::HoltWinters(1)];
    for p in &found {
        methods.extend([
            Method::Naive(*p),
            Method::HoltWinters(*p),
            Method::Profile(*p),
        ]);
        for long in found.iter().filter(|l| **l > *p && *l % *p == 0) {
            methods.push(Method::TwoSeasons(*p, *long));
        }
    }
    let positive = y.iter().all(|v| *v > 0.0);
    let mut out: Vec<Candidate> = methods
        .iter()
        .map(|m| Candidate {
            method: *m,
            log: false,
        })
        .collect();
    if positive {
        out.extend(
            methods
                .iter()
                .filter(|m| m.period() > 1)
                .map(|m| Candidate {
                    method: *m,
                    log: true,
                }),
        );
    }
    out
}

/// A candidate's backtest: its forecasts from each origin and their mean absolute error.
struct Backtest {
    candidate: Candidate,
    outlooks: Vec<Outlook>,
    mae: f64,
}

/// Forecasts from `origins` cut points, each `h` apart from the end; `None` when the series is
/// too short for the method at some origin.
fn backtest(c: Candidate, y: &[f64], h: usize, origins: usize) -> Option<Backtest> {
    let mut outlooks = Vec::with_capacity(origins);
    let (mut sum, mut count) = (0.0, 0usize);
    for k in 1..=origins {
        let cut = y.len().checked_sub(k * h)?;
        let o = Outlook::of(&c.fit(&y[..cut], h)?);
        for (a, b) in y[cut..cut + h].iter().zip(&o.point) {
            sum += (a - b).abs();
            count += 1;
        }
        outlooks.push(o);
    }
    let mae = sum / count.max(1) as f64;
    mae.is_finite().then_some(Backtest {
        candidate: c,
        outlooks,
        mae,
    })
}

/// Forecasts `horizon` steps after the end of `y`.
pub fn forecast(y: &[f64], horizon: usize, config: &ForecastConfig) -> Forecast {
    let clean: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
    let origins = config.backtests.max(1);
    // Backtests over the horizon, or over a shorter stretch when the series holds fewer than
    // `origins + 2` horizons (a week ahead from a week of history is still forecast by season).
    let h = horizon.max(1).min((clean.len() / (origins + 2)).max(1));
    let mut tested: Vec<Backtest> = candidates(&clean, &config.seasons)
        .into_iter()
        .filter_map(|c| backtest(c, &clean, h, origins))
        .collect();
    tested.sort_by(|a, b| a.mae.total_cmp(&b.mae));
    let non_negative = clean.iter().all(|v| *v >= 0.0);
    let mut chosen = Vec::new();
    for b in tested.into_iter().take(config.combine.max(1)) {
        if let Some(fit) = b.candidate.fit(&clean, horizon.max(1)) {
            chosen.push((b, Outlook::of(&fit)));
        }
    }
    if chosen.is_empty() {
        return last_value(&clean, horizon, non_negative);
    }
    let combined = combine(&clean, h, horizon, &chosen, non_negative);
    // A combination that did worse in the backtest than its best member is not used.
    if chosen.len() > 1 && chosen[0].0.mae < combined.backtest_mae {
        chosen.truncate(1);
        return combine(&clean, h, horizon, &chosen, non_negative);
    }
    combined
}

/// The weighted average of the chosen methods, with intervals scaled to the backtest errors.
fn combine(
    y: &[f64],
    h: usize,
    horizon: usize,
    chosen: &[(Backtest, Outlook)],
    non_negative: bool,
) -> Forecast {
    let raw: Vec<f64> = chosen.iter().map(|(b, _)| 1.0 / b.mae.max(1e-12)).collect();
    let total: f64 = raw.iter().sum();
    let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
    // The combination's backtest: errors in units of its 95 % half-width.
    let mut ratios = Vec::new();
    let mut abs_sum = 0.0;
    let origins = chosen[0].0.outlooks.len();
    for k in 0..origins {
        let cut = y.len() - (k + 1) * h;
        let at_origin: Vec<&Outlook> = chosen.iter().map(|(b, _)| &b.outlooks[k]).collect();
        let (point, half) = blend(&weights, &at_origin, h);
        for s in 0..h {
            let e = (y[cut + s] - point[s]).abs();
            abs_sum += e;
            ratios.push(e / half[s].max(1e-12));
        }
    }
    let finals: Vec<&Outlook> = chosen.iter().map(|(_, o)| o).collect();
    let (point, half) = blend(&weights, &finals, horizon);
    let scale = |q: f64, z: f64| interval_scale(&mut ratios.clone(), q).unwrap_or(z / 1.96);
    let (k80, k95) = (scale(0.8, 1.2816), scale(0.95, 1.96));
    let floor = |v: f64| if non_negative { v.max(0.0) } else { v };
    let band = |k: f64, sign: f64| -> Vec<f64> {
        point
            .iter()
            .zip(&half)
            .map(|(m, w)| floor(m + sign * k * w))
            .collect()
    };
    let names: Vec<String> = chosen.iter().map(|(b, _)| b.candidate.name()).collect();
    Forecast {
        model: if names.len() == 1 {
            names[0].clone()
        } else {
            format!("combination of {}", names.join(", "))
        },
        period: chosen[0].0.candidate.method.period(),
        lower80: band(k80, -1.0),
        upper80: band(k80, 1.0),
        lower95: band(k95, -1.0),
        upper95: band(k95, 1.0),
        mean: point.iter().map(|m| floor(*m)).collect(),
        backtest_mae: abs_sum / (origins * h).max(1) as f64,
    }
}

/// The weighted average of the outlooks' points and 95 % half-widths over `len` steps.
fn blend(weights: &[f64], outlooks: &[&Outlook], len: usize) -> (Vec<f64>, Vec<f64>) {
    let mut point = vec![0.0; len];
    let mut half = vec![0.0; len];
    for (w, o) in weights.iter().zip(outlooks) {
        for s in 0..len {
            point[s] += w * o.point[s];
            half[s] += w * o.half95[s];
        }
    }
    (point, half)
}

/// Backtest errors needed before their quantile is trusted more than the methods' own widths.
const PRIOR_ERRORS: f64 = 40.0;

/// The multiple of the 95 % half-width that holds share `q` of the backtest errors, shrunk
/// toward the methods' own multiple (`z / 1.96`) when there are few errors.
fn interval_scale(ratios: &mut [f64], q: f64) -> Option<f64> {
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = ((ratios.len() - 1) as f64 * q).round() as usize;
    let empirical = ratios[at];
    let own = match q {
        q if q >= 0.95 => 1.0,
        _ => 1.2816 / 1.96,
    };
    let n = ratios.len() as f64;
    Some(((n * empirical + PRIOR_ERRORS * own) / (n + PRIOR_ERRORS)).clamp(0.2 * own, 5.0 * own))
}

fn last_value(y: &[f64], h: usize, non_negative: bool) -> Forecast {
    let last = y.last().copied().unwrap_or(0.0);
    let last = if non_negative { last.max(0.0) } else { last };
    let flat = vec![last; h];
    Forecast {
        model: "last value".into(),
        period: 1,
        mean: flat.clone(),
        lower80: flat.clone(),
        upper80: flat.clone(),
        lower95: flat.clone(),
        upper95: flat,
        backtest_mae: f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_trend_and_season_and_brackets_the_truth() {
        let y: Vec<f64> = (0..240)
            .map(|i| {
                100.0 + 0.5 * i as f64 + 10.0 * (i as f64 * std::f64::consts::TAU / 12.0).sin()
            })
            .collect();
        let f = forecast(&y[..228], 12, &ForecastConfig::default());
        assert_eq!(f.period, 12, "{}", f.model);
        for (i, m) in f.mean.iter().enumerate() {
            assert!(
                (m - y[228 + i]).abs() < 2.0,
                "step {i}: {m} vs {}",
                y[228 + i]
            );
            assert!(f.lower95[i] <= *m && *m <= f.upper95[i]);
            assert!(f.lower80[i] >= f.lower95[i] && f.upper80[i] <= f.upper95[i]);
        }
    }

    #[test]
    fn daily_and_weekly_seasons_at_once() {
        let y: Vec<f64> = (0..24 * 7 * 8)
            .map(|i| {
                let day = 20.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
                let weekend = if (i / 24) % 7 >= 5 { -30.0 } else { 0.0 };
                100.0 + day + weekend + ((i * 7919) % 7) as f64
            })
            .collect();
        let cut = y.len() - 48;
        let f = forecast(&y[..cut], 48, &ForecastConfig::default());
        assert!(
            f.model.contains("168-step season"),
            "{} {:?}",
            f.model,
            periods(&y[..cut])
        );
        let mae = f
            .mean
            .iter()
            .zip(&y[cut..])
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / 48.0;
        assert!(mae < 4.0, "{mae}");
    }

    #[test]
    fn a_week_ahead_from_a_week_of_hourly_history_keeps_the_daily_cycle() {
        let day = |i: usize| 100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
        let y: Vec<f64> = (0..168).map(|i| day(i) + ((i * 7919) % 5) as f64).collect();
        let f = forecast(&y, 168, &ForecastConfig::default());
        assert_eq!(f.period, 24, "{}", f.model);
        let mae = (0..168)
            .map(|i| (f.mean[i] - day(168 + i)).abs())
            .sum::<f64>()
            / 168.0;
        assert!(mae < 10.0, "{} mae {mae}", f.model);
    }

    #[test]
    fn counts_are_never_forecast_below_zero_and_short_input_works() {
        let falling: Vec<f64> = (0..50).map(|i| (50 - i) as f64).collect();
        let f = forecast(&falling, 30, &ForecastConfig::default());
        assert!(f.mean.iter().chain(&f.lower95).all(|v| *v >= 0.0), "{f:?}");
        assert_eq!(
            forecast(&[3.0], 2, &ForecastConfig::default()).mean,
            vec![3.0, 3.0]
        );
        assert_eq!(forecast(&[], 1, &ForecastConfig::default()).mean, vec![0.0]);
    }
}
