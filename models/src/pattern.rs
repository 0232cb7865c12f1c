//! Patterns: change points (shifts of level, and of slope) by binary segmentation with a penalty
//! that grows with the noise and the series length; and the peak hours of the day and days of
//! the week of a timestamped series (UTC).

use serde::Serialize;

/// Fewest points on either side of a change point.
const MIN_SEGMENT: usize = 8;
/// Most change points reported per kind.
const MAX_CHANGES: usize = 10;

/// A point where the series' level or slope changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChangePoint {
    /// Index of the first point after the change.
    pub index: usize,
    /// `level` or `trend`.
    pub kind: &'static str,
    /// Mean before and after (of values for a level change, of steps for a trend change).
    pub before: f64,
    /// Mean after.
    pub after: f64,
}

/// Sum of squared deviations from the mean of `x[a..b]`, from prefix sums.
fn cost(sum: &[f64], sq: &[f64], a: usize, b: usize) -> f64 {
    let n = (b - a) as f64;
    let s = sum[b] - sum[a];
    (sq[b] - sq[a]) - s * s / n
}

/// Change points in the mean of `x`, each cutting the cost by more than `penalty`.
fn mean_shifts(x: &[f64], penalty: f64) -> Vec<usize> {
    let mut sum = vec![0.0; x.len() + 1];
    let mut sq = vec![0.0; x.len() + 1];
    for (i, v) in x.iter().enumerate() {
        sum[i + 1] = sum[i] + v;
        sq[i + 1] = sq[i] + v * v;
    }
    let mut cuts = Vec::new();
    let mut segments = vec![(0, x.len())];
    while let Some((a, b)) = segments.pop() {
        if b - a < 2 * MIN_SEGMENT || cuts.len() >= MAX_CHANGES {
            continue;
        }
        let whole = cost(&sum, &sq, a, b);
        let best = (a + MIN_SEGMENT..=b - MIN_SEGMENT)
            .map(|k| (whole - cost(&sum, &sq, a, k) - cost(&sum, &sq, k, b), k))
            .max_by(|p, q| p.0.total_cmp(&q.0));
        if let Some((gain, k)) = best.filter(|(gain, _)| *gain > penalty) {
            let _ = gain;
            cuts.push(k);
            segments.push((a, k));
            segments.push((k, b));
        }
    }
    cuts.sort_unstable();
    cuts
}

/// The noise variance, from the MAD of second differences (a shift of level or of slope
/// touches only one or two of them; white noise gives them 6 times its variance).
fn noise_variance(x: &[f64]) -> f64 {
    let mut d: Vec<f64> = x.windows(3).map(|w| w[2] - 2.0 * w[1] + w[0]).collect();
    let mad = crate::robust::median_mad(&mut d).map_or(0.0, |(_, m)| m);
    let sigma = 1.4826 * mad / 6f64.sqrt();
    (sigma * sigma).max(1e-12)
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// Level shifts in `x`, and slope shifts (shifts in the mean step), strongest evidence first
/// within each kind, in time order.
pub fn change_points(x: &[f64]) -> Vec<ChangePoint> {
    let x: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if x.len() < 2 * MIN_SEGMENT {
        return Vec::new();
    }
    let var = noise_variance(&x);
    let penalty = |n: usize| 8.0 * var * (n as f64).ln();
    let mut out: Vec<ChangePoint> = Vec::new();
    let levels = mean_shifts(&x, penalty(x.len()));
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(levels.iter().copied())
        .chain([x.len()])
        .collect();
    for w in bounds.windows(3) {
        out.push(ChangePoint {
            index: w[1],
            kind: "level",
            before: mean(&x[w[0]..w[1]]),
            after: mean(&x[w[1]..w[2]]),
        });
    }
    let steps: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let slope_penalty = 8.0 * 2.0 * var * (steps.len() as f64).ln() * MIN_SEGMENT as f64;
    let slopes = mean_shifts(&steps, slope_penalty);
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(slopes.iter().copied())
        .chain([steps.len()])
        .collect();
    for w in bounds.windows(3) {
        out.push(ChangePoint {
            index: w[1] + 1,
            kind: "trend",
            before: mean(&steps[w[0]..w[1]]),
            after: mean(&steps[w[1]..w[2]]),
        });
    }
    out
}

/// Mean value per hour of day (0-23, UTC) and per day of week (0 = Monday), of `(epoch ms,
/// value)` points; the three highest of each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peaks {
    /// Hours of the day with the highest mean, highest first.
    pub hours: Vec<u8>,
    /// Days of the week with the highest mean (0 = Monday), highest first.
    pub weekdays: Vec<u8>,
}

/// The peak hours and weekdays of timestamped values.
pub fn peaks(points: &[(i64, f64)]) -> Peaks {
    let mut hours = [(0.0, 0u32); 24];
    let mut days = [(0.0, 0u32); 7];
    for (t, v) in points.iter().filter(|(_, v)| v.is_finite()) {
        let secs = t.div_euclid(1000);
        let hour = secs.div_euclid(3600).rem_euclid(24) as usize;
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let day = (secs.div_euclid(86_400) + 3).rem_euclid(7) as usize;
        hours[hour].0 += v;
        hours[hour].1 += 1;
        days[day].0 += v;
        days[day].1 += 1;
    }
    let top = |cells: &[(f64, u32)]| -> Vec<u8> {
        let mut means: Vec<(f64, u8)> = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 > 0)
            .map(|(i, c)| (c.0 / f64::from(c.1), i as u8))
            .collect();
        means.sort_by(|a, b| b.0.total_cmp(&a.0));
        means.into_iter().take(3).map(|m| m.1).collect()
    };
    Peaks {
        hours: top(&hours),
        weekdays: top(&days),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        let _ = n;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f64 / 1000.0 - 0.5
        }
    }

    #[test]
    fn finds_a_level_shift_and_a_slope_change_and_nothing_in_noise() {
        let mut e = noisy(300, 7);
        let level: Vec<f64> = (0..300)
            .map(|i| if i < 180 { 10.0 } else { 14.0 } + e())
            .collect();
        let cps = change_points(&level);
        let found: Vec<(usize, &str)> = cps.iter().map(|c| (c.index, c.kind)).collect();
        assert!(
            found
                .iter()
                .any(|(i, k)| *k == "level" && i.abs_diff(180) <= 2),
            "{found:?}"
        );
        let mut e = noisy(300, 11);
        let flat: Vec<f64> = (0..300).map(|_| 10.0 + e()).collect();
        assert!(
            change_points(&flat).is_empty(),
            "{:?}",
            change_points(&flat)
        );
        let mut e = noisy(300, 13);
        let bent: Vec<f64> = (0..300)
            .map(|i| if i < 150 { 0.0 } else { (i - 150) as f64 * 0.5 } + e() * 0.2)
            .collect();
        let kinds: Vec<&str> = change_points(&bent).iter().map(|c| c.kind).collect();
        assert!(kinds.contains(&"trend"), "{:?}", change_points(&bent));
    }

    #[test]
    fn peak_hours_and_days() {
        // 2026-11-23 was a Monday.
        let monday = 1_795_392_000_000i64;
        let points: Vec<(i64, f64)> = (0..24 * 14)
            .map(|h| {
                let t = monday + h as i64 * 3_600_000;
                let hour = h % 24;
                let day = (h / 24) % 7;
                (
                    t,
                    if hour == 14 { 100.0 } else { 10.0 } + if day == 2 { 50.0 } else { 0.0 },
                )
            })
            .collect();
        let p = peaks(&points);
        assert_eq!(p.hours[0], 14);
        assert_eq!(p.weekdays[0], 2);
    }
}
