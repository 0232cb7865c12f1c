//! Seasonal periods found from the data: peaks of the autocorrelation of the linearly detrended
//! series, with their strength (the autocorrelation at the period).

use serde::Serialize;

/// A seasonal period and how strongly the series repeats at it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Period {
    /// Length in steps.
    pub steps: usize,
    /// Autocorrelation at that lag, in (0, 1].
    pub strength: f64,
}

/// Autocorrelation below which a peak is not a season.
const MIN_STRENGTH: f64 = 0.2;

/// Removes the least-squares line.
pub fn detrend(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n.max(1.0);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, y)| y - mean_y - slope * (i as f64 - mean_x))
        .collect()
}

/// Clips values beyond 3 MADs of the median, so a few spikes do not drown the season.
fn robust(x: &[f64]) -> Vec<f64> {
    let mut sorted = x.to_vec();
    let Some((median, mad)) = crate::robust::median_mad(&mut sorted) else {
        return x.to_vec();
    };
    let limit = 3.0 * 1.4826 * mad;
    if limit <= 0.0 {
        return x.to_vec();
    }
    let clipped: Vec<f64> = x
        .iter()
        .map(|v| v.clamp(median - limit, median + limit))
        .collect();
    let mean = clipped.iter().sum::<f64>() / clipped.len() as f64;
    clipped.iter().map(|v| v - mean).collect()
}

/// Autocorrelation of `x` (mean already removed) at lags `0..=max_lag`.
fn acf(x: &[f64], max_lag: usize) -> Vec<f64> {
    let var: f64 = x.iter().map(|v| v * v).sum();
    if var <= 0.0 {
        return vec![0.0; max_lag + 1];
    }
    (0..=max_lag)
        .map(|k| x.iter().zip(&x[k..]).map(|(a, b)| a * b).sum::<f64>() / var)
        .collect()
}

/// The lag next to a peak `k` whose multiples repeat best: a true period keeps its
/// autocorrelation at 2 and 3 times itself, a neighbour drifts out of phase.
fn refine(r: &[f64], k: usize) -> Period {
    let echo = |lag: usize| {
        let multiples: Vec<f64> = (1..=3)
            .map(|j| j * lag)
            .filter(|m| *m < r.len())
            .map(|m| r[m])
            .collect();
        multiples.iter().sum::<f64>() / multiples.len().max(1) as f64
    };
    let best = [k - 1, k, k + 1]
        .into_iter()
        .filter(|l| *l >= 2)
        .max_by(|a, b| echo(*a).total_cmp(&echo(*b)))
        .unwrap_or(k);
    Period {
        steps: best,
        strength: r[best],
    }
}

/// Seasonal periods of at least 2 steps, main first, at most 3. The main period is the shortest
/// autocorrelation peak within 60 % of the strongest (so 12, not its multiple 24, on monthly
/// data); a multiple of a chosen period is kept only when it is clearly stronger than it (a
/// weekly pattern on top of a daily one); other peaks need half the strongest's strength. A
/// period needs three repetitions in the data.
pub fn periods(values: &[f64]) -> Vec<Period> {
    let n = values.len();
    if n < 8 {
        return Vec::new();
    }
    let x = robust(&detrend(values));
    let max_lag = (n / 3).min(1_000);
    let r = acf(&x, max_lag);
    let peaks: Vec<Period> = (2..max_lag)
        .filter(|&k| r[k] > r[k - 1] && r[k] >= r[k + 1] && r[k] >= MIN_STRENGTH)
        .map(|k| refine(&r, k))
        .collect();
    let strongest = peaks.iter().map(|p| p.strength).fold(0.0, f64::max);
    let mut chosen: Vec<Period> = Vec::new();
    for p in peaks {
        let share = if chosen.is_empty() { 0.6 } else { 0.5 };
        if p.strength < share * strongest {
            continue;
        }
        let is_multiple_of = |c: &&Period| {
            let ratio = p.steps as f64 / c.steps as f64;
            (ratio - ratio.round()).abs() < 0.05 * ratio
        };
        if chosen
            .iter()
            .filter(is_multiple_of)
            .all(|c| p.strength > c.strength + 0.05)
        {
            chosen.push(p);
        }
        if chosen.len() == 3 {
            break;
        }
    }
    chosen
}

/// Seasonal periods fit to report to a person: those of [`periods`] whose autocorrelation peak
/// rises above the lowest autocorrelation in the half period before it by at least twice
/// Bartlett's standard error at that lag, so the ripples on the slowly decaying autocorrelation
/// of a smooth series (minutes of a daily cycle) are not called seasons. Each spans at least
/// three cycles of the data.
pub fn significant_periods(values: &[f64]) -> Vec<Period> {
    let found = periods(values);
    let Some(longest) = found.iter().map(|p| p.steps).max() else {
        return found;
    };
    let r = acf(&robust(&detrend(values)), longest);
    let n = values.len() as f64;
    found
        .into_iter()
        .filter(|p| {
            let k = p.steps;
            let trough = r[k / 2..k].iter().copied().fold(f64::INFINITY, f64::min);
            let se = ((1.0 + 2.0 * r[1..k].iter().map(|v| v * v).sum::<f64>()) / n).sqrt();
            r[k] - trough >= 2.0 * se
        })
        .collect()
}

/// The calendar's seasons in steps of `step_secs` seconds: a day and a week for steps that divide
/// a day, a week and a year for daily steps, a year for weekly, monthly and quarterly steps;
/// none for other steps. Ops data follows people's days and weeks, so these are worth trying
/// even when the data is too short or too noisy for [`periods`] to find them.
pub fn calendar_seasons(step_secs: f64) -> Vec<usize> {
    const DAY: f64 = 86_400.0;
    let near = |a: f64, b: f64| (a - b).abs() <= 0.01 * b;
    if !(step_secs.is_finite() && step_secs > 0.0) {
        return Vec::new();
    }
    let per_day = DAY / step_secs;
    if step_secs < DAY && near(per_day, per_day.round()) {
        let d = per_day.round() as usize;
        return vec![d, 7 * d];
    }
    if near(step_secs, DAY) {
        return vec![7, 365];
    }
    if near(step_secs, 7.0 * DAY) {
        return vec![52];
    }
    if (28.0 * DAY..=31.0 * DAY).contains(&step_secs) {
        return vec![12];
    }
    if (89.0 * DAY..=92.0 * DAY).contains(&step_secs) {
        return vec![4];
    }
    Vec::new()
}

/// The main seasonal period, if any.
pub fn main_period(values: &[f64]) -> Option<Period> {
    periods(values).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_daily_and_weekly_periods_and_none_in_noise() {
        let hourly: Vec<f64> = (0..24 * 7 * 6)
            .map(|i| {
                let day = (i as f64 * std::f64::consts::TAU / 24.0).sin() * 10.0;
                let week = if (i / 24) % 7 >= 5 { -8.0 } else { 0.0 };
                50.0 + day + week + ((i * 7919) % 11) as f64 * 0.2 + i as f64 * 0.01
            })
            .collect();
        let found: Vec<usize> = periods(&hourly).iter().map(|p| p.steps).collect();
        assert_eq!(found.first(), Some(&24), "{found:?}");
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let noise: Vec<f64> = (0..500)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 1000) as f64
            })
            .collect();
        assert!(periods(&noise).is_empty(), "{:?}", periods(&noise));
        let reported: Vec<usize> = significant_periods(&hourly)
            .iter()
            .map(|p| p.steps)
            .collect();
        assert_eq!(reported.first(), Some(&24), "{reported:?}");
    }

    #[test]
    fn a_day_of_minutes_has_no_season_to_report() {
        // 24 h of per-minute requests: half a daily cycle up and down, Poisson-like noise, and
        // bursts; the autocorrelation decays slowly with ripples, none of them a season.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 10_000) as f64 / 10_000.0
        };
        let mut burst = 0.0;
        let minutes: Vec<f64> = (0..1_440)
            .map(|i| {
                let day = 20.0 + 15.0 * (i as f64 * std::f64::consts::TAU / 1_440.0).sin();
                burst = if next() < 0.02 { 30.0 } else { burst * 0.8 };
                (day + burst + 6.0 * (next() - 0.5)).round()
            })
            .collect();
        assert_eq!(significant_periods(&minutes), Vec::new());
    }

    #[test]
    fn calendar_seasons_by_step() {
        assert_eq!(calendar_seasons(3_600.0), vec![24, 168]);
        assert_eq!(calendar_seasons(300.0), vec![288, 2_016]);
        assert_eq!(calendar_seasons(86_400.0), vec![7, 365]);
        assert_eq!(calendar_seasons(31.0 * 86_400.0), vec![12]);
        assert_eq!(calendar_seasons(7.0 * 86_400.0), vec![52]);
        assert_eq!(calendar_seasons(7_000.0), Vec::<usize>::new());
        assert_eq!(calendar_seasons(0.0), Vec::<usize>::new());
    }
}
