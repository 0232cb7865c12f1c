//! Trends: the Theil-Sen slope (median of pairwise slopes, robust to outliers) with the
//! Mann-Kendall test of whether the series rises or falls at all (normal approximation with the
//! tie correction), reported per step and as a percentage of the series' median level.

use serde::Serialize;
use statrs::function::erf::erfc;

/// Pairs beyond which the slope is taken from an even subsample of points.
const MAX_POINTS: usize = 2_000;

/// A trend over a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Theil-Sen slope, value units per step.
    pub slope_per_step: f64,
    /// The slope as a percentage of the series' median, per step (`None` when the median is 0).
    pub percent_per_step: Option<f64>,
    /// Mann-Kendall S statistic.
    pub s: i64,
    /// Two-sided p-value of "no monotonic trend".
    pub p_value: f64,
    /// `rising`, `falling` or `flat` (p >= 0.05).
    pub direction: &'static str,
    /// Points used.
    pub points: usize,
}

/// The trend of `y` (non-finite values skipped); `None` with fewer than 3 points.
pub fn trend(y: &[f64]) -> Option<Trend> {
    let points: Vec<(f64, f64)> = y
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as f64, *v))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let stride = points.len().div_ceil(MAX_POINTS);
    let sample: Vec<(f64, f64)> = points.iter().step_by(stride).copied().collect();
    let mut slopes = Vec::with_capacity(sample.len() * (sample.len() - 1) / 2);
    let mut s = 0i64;
    for (i, a) in sample.iter().enumerate() {
        for b in &sample[i + 1..] {
            slopes.push((b.1 - a.1) / (b.0 - a.0));
            s += (b.1 - a.1).partial_cmp(&0.0).map_or(0, |o| o as i64);
        }
    }
    let slope = crate::robust::median(&mut slopes)?;
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let level = crate::robust::median(&mut values)?;
    let p_value = mann_kendall_p(s, &sample);
    let direction = match (p_value < 0.05, slope > 0.0) {
        (false, _) => "flat",
        (true, true) => "rising",
        (true, false) => "falling",
    };
    Some(Trend {
        slope_per_step: slope,
        percent_per_step: (level != 0.0).then(|| slope / level.abs() * 100.0),
        s,
        p_value,
        direction,
        points: points.len(),
    })
}

/// Two-sided p-value of the Mann-Kendall S, with the variance corrected for tied values.
fn mann_kendall_p(s: i64, sample: &[(f64, f64)]) -> f64 {
    let n = sample.len() as f64;
    let mut values: Vec<f64> = sample.iter().map(|p| p.1).collect();
    values.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut run = 1.0;
    for w in values.windows(2) {
        if w[0] == w[1] {
            run += 1.0;
        } else {
            ties += run * (run - 1.0) * (2.0 * run + 5.0);
            run = 1.0;
        }
    }
    ties += run * (run - 1.0) * (2.0 * run + 5.0);
    let var = (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0;
    if var <= 0.0 {
        return 1.0;
    }
    let z = match s {
        0 => 0.0,
        s if s > 0 => (s as f64 - 1.0) / var.sqrt(),
        s => (s as f64 + 1.0) / var.sqrt(),
    };
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_line_with_outliers_keeps_its_slope() {
        let mut y: Vec<f64> = (0..200)
            .map(|i| 100.0 + 2.0 * i as f64 + (i % 5) as f64)
            .collect();
        y[50] = 10_000.0;
        y[120] = -5_000.0;
        let t = trend(&y).unwrap();
        assert!((t.slope_per_step - 2.0).abs() < 0.05, "{t:?}");
        assert_eq!(t.direction, "rising");
        assert!(t.p_value < 1e-6, "{t:?}");
        let pct = t.percent_per_step.unwrap();
        assert!((pct - 2.0 / 301.5 * 100.0).abs() < 0.05, "{pct}");
    }

    #[test]
    fn noise_is_flat_and_short_input_is_none() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let y: Vec<f64> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 1000) as f64
            })
            .collect();
        let t = trend(&y).unwrap();
        assert_eq!(t.direction, "flat", "{t:?}");
        assert!(t.p_value > 0.05);
        assert_eq!(trend(&[1.0, 2.0]), None);
        assert_eq!(trend(&[3.0; 10]).unwrap().direction, "flat");
    }
}
