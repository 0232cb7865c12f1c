//! The forecasting methods a forecast chooses among and combines: naive, seasonal naive,
//! Holt-Winters additive with a damped trend (parameters by grid search on one-step error), the
//! same on a short season after removing what a long one adds, and a robust seasonal profile
//! (the median of the last seasons at each phase, moved to the recent level). Each gives point
//! forecasts and the standard error of each step; any of them can run on the logarithm of a
//! positive series, so that seasonal swings proportional to the level stay proportional.

/// A fitted method's forecast: point forecasts and the standard error of each step, in the
/// series' own units or (when `log`) in logarithms.
#[derive(Debug, Clone)]
pub struct Fit {
    pub mean: Vec<f64>,
    pub se: Vec<f64>,
    pub log: bool,
}

impl Fit {
    /// The point forecasts in the series' units.
    pub fn point(&self) -> Vec<f64> {
        if self.log {
            self.mean.iter().map(|m| m.exp()).collect()
        } else {
            self.mean.clone()
        }
    }

    /// The interval `z` standard errors either side, in the series' units.
    pub fn band(&self, z: f64) -> (Vec<f64>, Vec<f64>) {
        let edge = |sign: f64| -> Vec<f64> {
            self.mean
                .iter()
                .zip(&self.se)
                .map(|(m, s)| {
                    let v = m + sign * z * s;
                    if self.log {
                        v.exp()
                    } else {
                        v
                    }
                })
                .collect()
        };
        (edge(-1.0), edge(1.0))
    }
}

/// One method, with its seasonal period(s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The last value (`Naive(1)`), or the value one season back (`Naive(p)`).
    Naive(usize),
    /// Holt-Winters additive with a damped trend on a season (1: none).
    HoltWinters(usize),
    /// Holt-Winters on the short season after removing what the long one (a multiple of it)
    /// adds: daily and weekly at once on hourly data.
    TwoSeasons(usize, usize),
    /// The median of the last seasons at each phase, moved to the level of the last season.
    Profile(usize),
}

impl Method {
    /// The method's name in answers.
    pub fn name(self) -> String {
        match self {
            Method::Naive(1) => "naive".into(),
            Method::Naive(p) => format!("seasonal naive ({p})"),
            Method::HoltWinters(1) => "damped Holt".into(),
            Method::HoltWinters(p) => format!("Holt-Winters additive damped ({p})"),
            Method::TwoSeasons(a, b) => {
                format!("Holt-Winters additive damped ({a}) with a {b}-step season")
            }
            Method::Profile(p) => format!("seasonal profile ({p})"),
        }
    }

    /// Its seasonal period (the short one of two; 1 when none).
    pub fn period(self) -> usize {
        match self {
            Method::Naive(p)
            | Method::HoltWinters(p)
            | Method::TwoSeasons(p, _)
            | Method::Profile(p) => p,
        }
    }

    /// Forecasts `h` steps after `y`; `None` when `y` is too short for the method.
    pub fn fit(self, y: &[f64], h: usize) -> Option<Fit> {
        let fit = match self {
            Method::Naive(p) => seasonal_naive(y, p, h),
            Method::HoltWinters(p) => HoltWinters::best(y, p).map(|hw| hw.forecast(y, h)),
            Method::TwoSeasons(short, long) => two_seasons(y, short, long, h),
            Method::Profile(p) => profile(y, p, h),
        }?;
        Some(Fit { log: false, ..fit })
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
    Some(Fit {
        mean,
        se,
        log: false,
    })
}

/// Seasons a profile takes its medians over.
const PROFILE_SEASONS: usize = 4;

/// Median of the last (up to four) seasons at each phase, shifted by how far the last season's
/// mean sits from the mean of those seasons.
fn profile(y: &[f64], p: usize, h: usize) -> Option<Fit> {
    let n = y.len();
    let k = (n / p).min(PROFILE_SEASONS);
    if p < 2 || k < 2 {
        return None;
    }
    let start = n - k * p;
    let shape: Vec<f64> = (0..p)
        .map(|phase| {
            let mut v: Vec<f64> = (0..k).map(|j| y[start + j * p + phase]).collect();
            v.sort_by(f64::total_cmp);
            if k % 2 == 1 {
                v[k / 2]
            } else {
                (v[k / 2 - 1] + v[k / 2]) / 2.0
            }
        })
        .collect();
    let shape_mean = shape.iter().sum::<f64>() / p as f64;
    let last_mean = y[n - p..].iter().sum::<f64>() / p as f64;
    let level = last_mean - shape_mean;
    // The phase of step `t` is `(t - start) % p`.
    let phase_of = |t: usize| (t - start) % p;
    let errors: Vec<f64> = (start..n)
        .map(|t| y[t] - shape[phase_of(t)] - level)
        .collect();
    let sigma = rms(&errors) * (k as f64 / (k as f64 - 1.0)).sqrt();
    let mean = (0..h).map(|i| shape[phase_of(n + i)] + level).collect();
    let se = (0..h)
        .map(|i| sigma * (1.0 + (i / p) as f64 * 0.5).sqrt())
        .collect();
    Some(Fit {
        mean,
        se,
        log: false,
    })
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
    if y.len() < 2 * long || long % short != 0 {
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

/// Holt-Winters additive with a damped trend.
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
        Fit {
            mean,
            se,
            log: false,
        }
    }
}
