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
    /// Points before the first non-zero score.
    pub warmup: usize,
    /// Tail probability that maps to a score of 0.5.
    pub flag_tail: f64,
    /// Points after a flag during which scores stay below 0.5 (one alert per incident).
    pub quiet_after_flag: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            window: 64,
            short: 4,
            long: 2_000,
            warmup: 150,
            flag_tail: 1e-5,
            quiet_after_flag: 200,
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
}

impl Detector {
    /// A detector with no history.
    pub fn new(config: AnomalyConfig) -> Self {
        Detector {
            config,
            recent: VecDeque::with_capacity(config.window + 1),
            surprises: VecDeque::with_capacity(config.long + 1),
            seen: 0,
            quiet: 0,
        }
    }

    /// How far `value` is from the recent window's median, in MADs (0 until the window fills).
    fn surprise(&self, value: f64) -> f64 {
        if self.recent.len() < self.config.window {
            return 0.0;
        }
        let mut w: Vec<f64> = self.recent.iter().copied().collect();
        let Some((median, mad)) = median_mad(&mut w) else {
            return 0.0;
        };
        let (lo, hi) = self
            .recent
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        // A flat window has no MAD: fall back to a sliver of its range or its level.
        let spread = (1.4826 * mad)
            .max(0.05 * (hi - lo))
            .max(1e-3 * median.abs())
            .max(1e-9);
        ((value - median).abs() / spread).min(100.0)
    }

    /// Scores the next point, in [0, 1]; >= 0.5 flags it.
    pub fn score(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let s = self.surprise(value);
        self.remember(value, s);
        self.seen += 1;
        if self.seen <= self.config.warmup || self.surprises.len() < 2 * self.config.short {
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

    fn remember(&mut self, value: f64, surprise: f64) {
        self.recent.push_back(value);
        if self.recent.len() > self.config.window {
            self.recent.pop_front();
        }
        self.surprises.push_back(surprise);
        if self.surprises.len() > self.config.long {
            self.surprises.pop_front();
        }
    }

    /// How unlikely the mean of the last `short` surprises is, against all kept surprises.
    fn likelihood_score(&self) -> f64 {
        let n = self.surprises.len() as f64;
        let mean = self.surprises.iter().sum::<f64>() / n;
        let var = self
            .surprises
            .iter()
            .map(|s| (s - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt().max(1e-6);
        let short = self.config.short.min(self.surprises.len());
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
        let mut values = wave(1_000);
        values[800] += 80.0;
        let scores = score_series(&values, AnomalyConfig::default());
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        assert!(scores[800] >= 0.5, "spike scored {}", scores[800]);
        let false_flags = scores[..800].iter().filter(|s| **s >= 0.5).count();
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
        let mut values = vec![5.0; 400];
        values[300] = f64::NAN;
        values[350] = 6.0;
        let scores = score_series(&values, AnomalyConfig::default());
        assert_eq!(scores[300], 0.0);
        assert!(scores[350] >= 0.5);
    }
}
