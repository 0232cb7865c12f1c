//! Streaming, causal anomaly scores: each point's surprise is its distance from the median of
//! the recent window in units of that window's spread (MAD), taken at the same phase of the
//! series' season as well when one is known; the score is how unlikely the recent average
//! surprise is against the long-run distribution of surprises (the "anomaly likelihood" idea),
//! mapped to [0, 1] so that 0.5 means a tail probability of 1e-5. One parameter set for every
//! series; a score uses only the current and earlier points.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

use crate::robust::median_mad;

/// Parameters of the detector; the defaults serve every series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Points whose median and MAD give a point's expected value and spread.
    pub window: usize,
    /// Points averaged into the recent surprise.
    pub short: usize,
    /// Surprises kept for the long-run distribution.
    pub long: usize,
    /// Points, and surprises measured, before the first non-zero score.
    pub warmup: usize,
    /// Tail probability that maps to a score of 0.5.
    pub flag_tail: f64,
    /// Points after a flag during which scores stay below 0.5 (one alert per incident).
    pub quiet_after_flag: usize,
    /// Autocorrelation at the season above which a point is compared with the same phase of
    /// earlier seasons instead of with the recent window.
    pub seasonal_strength: f64,
    /// Points of history at which the season is first looked for (then at every doubling).
    pub season_after: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            window: 300,
            short: 6,
            long: 2_000,
            warmup: 150,
            flag_tail: 1e-5,
            quiet_after_flag: 120,
            seasonal_strength: 0.7,
            season_after: 512,
        }
    }
}

/// The state of one series' detector; feed it points in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    config: AnomalyConfig,
    recent: VecDeque<f64>,
    surprises: VecDeque<f64>,
    seen: usize,
    quiet: usize,
    /// The last points, enough for four seasons of the longest period looked for.
    history: VecDeque<f64>,
    /// The season in use, re-estimated from `history` as it grows.
    season: Option<usize>,
    /// Recent differences from the same phase of earlier seasons.
    residuals: VecDeque<f64>,
    /// Scores of the last [`crate::Model::fit`] (not kept across saves).
    #[serde(skip)]
    pub(crate) last_scores: Vec<f64>,
}

/// Longest season looked for, in points.
const MAX_SEASON: usize = 1_000;

impl Detector {
    /// A detector with no history.
    pub fn new(config: AnomalyConfig) -> Self {
        Detector {
            config,
            recent: VecDeque::with_capacity(config.window + 1),
            surprises: VecDeque::with_capacity(config.long + 1),
            seen: 0,
            quiet: 0,
            history: VecDeque::new(),
            season: None,
            residuals: VecDeque::new(),
            last_scores: Vec::new(),
        }
    }

    /// Estimates the season at `season_after` points of history and at every power of two after.
    fn update_season(&mut self) {
        let n = self.seen + 1;
        let after = self.config.season_after.max(8);
        if n == after || (n > after && n.is_power_of_two()) {
            let h: Vec<f64> = self.history.iter().copied().collect();
            self.season = crate::seasonality::main_period(&h)
                .filter(|p| p.strength >= self.config.seasonal_strength)
                .map(|p| p.steps);
        }
    }

    /// Distance of `value` from the median of the same phase in the last three seasons, in MADs
    /// of the recent such distances; `None` without a season or before a window of them.
    fn seasonal_surprise(&mut self, value: f64) -> Option<f64> {
        let p = self.season?;
        let n = self.history.len();
        if n < 3 * p {
            return None;
        }
        let mut same_phase = [
            self.history[n - p],
            self.history[n - 2 * p],
            self.history[n - 3 * p],
        ];
        same_phase.sort_by(f64::total_cmp);
        let residual = value - same_phase[1];
        let surprise = if self.residuals.len() >= self.config.window {
            let mut r: Vec<f64> = self.residuals.iter().copied().collect();
            let (median, mad) = median_mad(&mut r)?;
            let spread = (1.4826 * mad).max(1e-3 * value.abs()).max(1e-9);
            Some(((residual - median).abs() / spread).min(100.0))
        } else {
            None
        };
        self.residuals.push_back(residual);
        if self.residuals.len() > self.config.window {
            self.residuals.pop_front();
        }
        surprise
    }

    /// How far `value` is from the recent window's median, in MADs (`None` until the window
    /// fills).
    fn surprise(&self, value: f64) -> Option<f64> {
        if self.recent.len() < self.config.window {
            return None;
        }
        let mut w: Vec<f64> = self.recent.iter().copied().collect();
        let (median, mad) = median_mad(&mut w)?;
        let (lo, hi) = self
            .recent
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        // A flat window has no MAD: fall back to a sliver of its range or its level.
        let spread = (1.4826 * mad)
            .max(0.05 * (hi - lo))
            .max(1e-3 * median.abs())
            .max(1e-9);
        Some(((value - median).abs() / spread).min(100.0))
    }

    /// Scores the next point, in [0, 1]; >= 0.5 flags it.
    pub fn score(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.update_season();
        let s = self
            .seasonal_surprise(value)
            .or_else(|| self.surprise(value));
        self.remember(value, s);
        self.seen += 1;
        if self.seen <= self.config.warmup || self.surprises.len() < self.config.warmup {
            return 0.0;
        }
        let score = self.likelihood_score();
        if self.quiet > 0 {
            self.quiet -= 1;
            return score.min(0.49);
        }
        if score >= 0.5 {
            self.quiet = self.config.quiet_after_flag;
        }
        score
    }

    fn remember(&mut self, value: f64, surprise: Option<f64>) {
        self.recent.push_back(value);
        if self.recent.len() > self.config.window {
            self.recent.pop_front();
        }
        self.history.push_back(value);
        if self.history.len() > 4 * MAX_SEASON {
            self.history.pop_front();
        }
        if let Some(s) = surprise {
            self.surprises.push_back(s);
            if self.surprises.len() > self.config.long {
                self.surprises.pop_front();
            }
        }
    }

    /// How unlikely the mean of the last `short` surprises is, against the kept ones before.
    fn likelihood_score(&self) -> f64 {
        let short = self.config.short.min(self.surprises.len());
        // The long run excludes the recent points, so an outburst does not dilute itself.
        let past = self.surprises.len() - short;
        let n = past.max(1) as f64;
        let history = || self.surprises.iter().take(past);
        let mean = history().sum::<f64>() / n;
        let var = history().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt().max(1e-6);
        let recent = self.surprises.iter().rev().take(short).sum::<f64>() / short as f64;
        let z = (recent - mean) / std;
        let tail = 0.5 * erfc(z / std::f64::consts::SQRT_2);
        (tail.max(1e-300).ln() / self.config.flag_tail.ln() * 0.5).clamp(0.0, 1.0)
    }
}

/// Scores a whole series in order, as the streaming detector would.
pub fn score_series(values: &[f64], config: AnomalyConfig) -> Vec<f64> {
    let mut d = Detector::new(config);
    values.iter().map(|v| d.score(*v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                100.0
                    + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin()
                    + ((i * 7919) % 13) as f64 * 0.3
            })
            .collect()
    }

    #[test]
    fn a_spike_is_flagged_and_quiet_data_is_not() {
        let mut values = wave(2_000);
        values[1_500] += 80.0;
        let scores = score_series(&values, AnomalyConfig::default());
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        assert!(scores[1_500] >= 0.5, "spike scored {}", scores[1_500]);
        let false_flags = scores[..1_500].iter().filter(|s| **s >= 0.5).count();
        assert_eq!(false_flags, 0);
    }

    #[test]
    fn scores_are_causal() {
        let mut values = wave(600);
        let before = score_series(&values, AnomalyConfig::default());
        values[500] += 1_000.0;
        let after = score_series(&values, AnomalyConfig::default());
        assert_eq!(before[..500], after[..500]);
    }

    #[test]
    fn flat_and_non_finite_input_do_not_panic() {
        let mut values = vec![5.0; 1_000];
        values[700] = f64::NAN;
        values[900] = 6.0;
        let scores = score_series(&values, AnomalyConfig::default());
        assert_eq!(scores[700], 0.0);
        assert!(scores[900] >= 0.5, "{}", scores[900]);
    }
}
