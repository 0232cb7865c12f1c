//! Forecasts with 80 % and 95 % prediction intervals. Candidates — seasonal naive, and
//! Holt-Winters additive with a damped trend for each seasonal period found in the data (and
//! without a season), and for two periods at once when one is a multiple of the other — are
//! compared by their own rolling-origin backtest on the series' last points; the best refits on
//! everything. Series that never went below zero are never forecast
//! below zero.

use serde::{Deserialize, Serialize};

use crate::seasonality::periods;

/// Forecast settings; the defaults serve every series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Backtest origins used to choose a model.
    pub backtests: usize,
    /// Steps a [`crate::Model`] forecast looks ahead.
    pub horizon: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            backtests: 3,
            horizon: 24,
        }
    }
}

/// A forecast of `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The chosen model.
    pub model: String,
    /// Its seasonal period (1 when none).
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
    /// Mean absolute error of the chosen model in its backtest.
    pub backtest_mae: f64,
}

/// A fitted model: point forecasts and the standard error of each step.
struct Fit {
    mean: Vec<f64>,
    se: Vec<f64>,
}

/// One candidate model.
#[derive(Debug, Clone, Copy)]
enum Candidate {
    SeasonalNaive(usize),
    HoltWinters(usize),
    /// Holt-Winters on the short season after removing what the long one (a multiple of it)
    /// adds: daily and weekly at once on hourly data.
    TwoSeasons(usize, usize),
}

impl Candidate {
    fn name(self) -> String {
        match self {
            Candidate::SeasonalNaive(1) => "naive".into(),
            Candidate::SeasonalNaive(p) => format!("seasonal naive ({p})"),
            Candidate::HoltWinters(1) => "damped Holt".into(),
            Candidate::HoltWinters(p) => format!("Holt-Winters additive damped ({p})"),
            Candidate::TwoSeasons(a, b) => {
                format!("Holt-Winters additive damped ({a}) with a {b}-step season")
            }
        }
    }

    fn period(self) -> usize {
        match self {
            Candidate::SeasonalNaive(p)
            | Candidate::HoltWinters(p)
            | Candidate::TwoSeasons(p, _) => p,
        }
    }

    fn fit(self, y: &[f64], h: usize) -> Option<Fit> {
        match self {
            Candidate::SeasonalNaive(p) => seasonal_naive(y, p, h),
            Candidate::HoltWinters(p) => HoltWinters::best(y, p).map(|hw| hw.forecast(y, h)),
            Candidate::TwoSeasons(short, long) => two_seasons(y, short, long, h),
        }
    }
}

fn seasonal_naive(y: &[f64], p: usize, h: usize) -> Option<Fit> {
    if y.len() <= p {
        return None;
    }
    let errors: Vec<f64> = (p..y.len()).map(|i| y[i] - y[i - p]).collect();
    let sigma = rms(&errors);
    let n = y.len();
    let mean = (0..h).map(|i| y[n - p + i % p]).collect();
    let se = (0..h)
        .map(|i| sigma * ((i / p) as f64 + 1.0).sqrt())
        .collect();
    Some(Fit { mean, se })
}

/// What the long season adds beyond the short one, by phase of the long season: deviations
/// from a trailing mean over the long season, averaged by long phase, minus their average by
/// short phase.
fn long_season_extra(y: &[f64], short: usize, long: usize) -> Vec<f64> {
    let mut sums = vec![(0.0, 0u32); long];
    let mut window: f64 = y[..long].iter().sum();
    for i in long..y.len() {
        window += y[i] - y[i - long];
        let cell = &mut sums[i % long];
        cell.0 += y[i] - window / long as f64;
        cell.1 += 1;
    }
    let profile: Vec<f64> = sums
        .iter()
        .map(|(s, n)| if *n > 0 { s / f64::from(*n) } else { 0.0 })
        .collect();
    let mut by_short = vec![(0.0, 0u32); short];
    for (phase, v) in profile.iter().enumerate() {
        by_short[phase % short].0 += v;
        by_short[phase % short].1 += 1;
    }
    profile
        .iter()
        .enumerate()
        .map(|(phase, v)| {
            let (s, n) = by_short[phase % short];
            v - s / f64::from(n.max(1))
        })
        .collect()
}

fn two_seasons(y: &[f64], short: usize, long: usize, h: usize) -> Option<Fit> {
    if y.len() < 3 * long || long % short != 0 {
        return None;
    }
    let extra = long_season_extra(y, short, long);
    let z: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(i, v)| v - extra[i % long])
        .collect();
    let mut fit = HoltWinters::best(&z, short)?.forecast(&z, h);
    for (k, m) in fit.mean.iter_mut().enumerate() {
        *m += extra[(y.len() + k) % long];
    }
    Some(fit)
}

fn rms(e: &[f64]) -> f64 {
    (e.iter().map(|v| v * v).sum::<f64>() / e.len().max(1) as f64).sqrt()
}

/// Holt-Winters additive with a damped trend; parameters by grid search on one-step error.
#[derive(Debug, Clone, Copy)]
struct HoltWinters {
    p: usize,
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// The state after running over a series.
struct State {
    level: f64,
    trend: f64,
    season: Vec<f64>,
    sse: f64,
    n: usize,
}

impl HoltWinters {
    fn init(&self, y: &[f64]) -> State {
        let p = self.p;
        let first = y[..p].iter().sum::<f64>() / p as f64;
        let trend = if p > 1 && y.len() >= 2 * p {
            (y[p..2 * p].iter().sum::<f64>() / p as f64 - first) / p as f64
        } else {
            y.get(1).map_or(0.0, |v| v - y[0])
        };
        let season = if p > 1 {
            y[..p].iter().map(|v| v - first).collect()
        } else {
            vec![0.0]
        };
        State {
            level: first,
            trend,
            season,
            sse: 0.0,
            n: 0,
        }
    }

    fn run(&self, y: &[f64]) -> State {
        let mut s = self.init(y);
        for (t, &x) in y.iter().enumerate().skip(self.p.max(1)) {
            let i = t % self.p;
            let predicted = s.level + self.phi * s.trend + s.season[i];
            let e = x - predicted;
            s.sse += e * e;
            s.n += 1;
            let level = self.alpha * (x - s.season[i])
                + (1.0 - self.alpha) * (s.level + self.phi * s.trend);
            s.trend = self.beta * (level - s.level) + (1.0 - self.beta) * self.phi * s.trend;
            if self.p > 1 {
                s.season[i] = self.gamma * (x - level) + (1.0 - self.gamma) * s.season[i];
            }
            s.level = level;
        }
        s
    }

    /// The parameters with the least one-step squared error over `y`.
    fn best(y: &[f64], p: usize) -> Option<HoltWinters> {
        if y.len() < 2 * p.max(2) + 2 {
            return None;
        }
        let gammas: &[f64] = if p > 1 {
            &[0.01, 0.05, 0.1, 0.2, 0.4]
        } else {
            &[0.0]
        };
        let mut best: Option<(f64, HoltWinters)> = None;
        for &alpha in &[0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9] {
            for &beta in &[0.0, 0.01, 0.05, 0.15] {
                for &gamma in gammas {
                    for &phi in &[0.9, 0.98, 1.0] {
                        let hw = HoltWinters {
                            p,
                            alpha,
                            beta,
                            gamma,
                            phi,
                        };
                        let sse = hw.run(y).sse;
                        if sse.is_finite() && best.is_none_or(|(b, _)| sse < b) {
                            best = Some((sse, hw));
                        }
                    }
                }
            }
        }
        best.map(|(_, hw)| hw)
    }

    fn forecast(&self, y: &[f64], h: usize) -> Fit {
        let s = self.run(y);
        let sigma = (s.sse / s.n.max(1) as f64).sqrt();
        let n = y.len();
        let (mut damp, mut var) = (0.0_f64, 1.0_f64);
        let mut mean = Vec::with_capacity(h);
        let mut se = Vec::with_capacity(h);
        for k in 1..=h {
            damp += self.phi.powi(k as i32);
            mean.push(s.level + damp * s.trend + s.season[(n + k - 1) % self.p]);
            se.push(sigma * var.sqrt());
            // ETS(A,Ad,A) variance: each further step adds (alpha (1 + beta damp) + gamma [season])^2.
            let seasonal = if self.p > 1 && k % self.p == 0 {
                self.gamma
            } else {
                0.0
            };
            var += (self.alpha * (1.0 + self.beta * damp) + seasonal).powi(2);
        }
        Fit { mean, se }
    }
}

/// Mean absolute error of `model` forecasting `h` steps from `origins` points before the end.
fn backtest(model: Candidate, y: &[f64], h: usize, origins: usize) -> Option<f64> {
    let mut errors = Vec::new();
    for k in 1..=origins {
        let cut = y.len().checked_sub(k * h)?;
        let fit = model.fit(&y[..cut], h)?;
        let truth = &y[cut..(cut + h).min(y.len())];
        errors.extend(truth.iter().zip(&fit.mean).map(|(a, b)| (a - b).abs()));
    }
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

/// Forecasts `horizon` steps after the end of `y`.
pub fn forecast(y: &[f64], horizon: usize, config: &ForecastConfig) -> Forecast {
    let clean: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
    let mut candidates = vec![Candidate::SeasonalNaive(1), Candidate::HoltWinters(1)];
    let found: Vec<usize> = periods(&clean).iter().map(|p| p.steps).collect();
    for p in &found {
        candidates.push(Candidate::SeasonalNaive(*p));
        candidates.push(Candidate::HoltWinters(*p));
        for long in found.iter().filter(|l| **l > *p && *l % *p == 0) {
            candidates.push(Candidate::TwoSeasons(*p, *long));
        }
    }
    let h = horizon.max(1);
    let scored: Vec<(f64, Candidate)> = candidates
        .iter()
        .filter_map(|m| backtest(*m, &clean, h, config.backtests).map(|e| (e, *m)))
        .collect();
    let (mae, model) = scored
        .into_iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((f64::NAN, Candidate::SeasonalNaive(1)));
    let fit = model
        .fit(&clean, horizon)
        .unwrap_or_else(|| last_value(&clean, horizon));
    finish(model, fit, mae, clean.iter().all(|v| *v >= 0.0))
}

fn last_value(y: &[f64], h: usize) -> Fit {
    let last = y.last().copied().unwrap_or(0.0);
    Fit {
        mean: vec![last; h],
        se: vec![0.0; h],
    }
}

fn finish(model: Candidate, fit: Fit, backtest_mae: f64, non_negative: bool) -> Forecast {
    let floor = |v: f64| if non_negative { v.max(0.0) } else { v };
    let band = |z: f64, sign: f64| -> Vec<f64> {
        fit.mean
            .iter()
            .zip(&fit.se)
            .map(|(m, s)| floor(m + sign * z * s))
            .collect()
    };
    Forecast {
        model: model.name(),
        period: model.period(),
        lower80: band(1.2816, -1.0),
        upper80: band(1.2816, 1.0),
        lower95: band(1.96, -1.0),
        upper95: band(1.96, 1.0),
        mean: fit.mean.iter().map(|m| floor(*m)).collect(),
        backtest_mae,
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
