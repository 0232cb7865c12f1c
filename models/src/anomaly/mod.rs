//! Streaming, causal anomaly scores by novelty: a point is anomalous when something about the
//! recent series lies outside everything the last `memory` points showed. An ensemble of
//! features, each for one shape of ops incident, is watched this way: the value (spike, outage),
//! the means of the last 8 and 32 points (level shift, drift), the median step over the last 32
//! (variance change), and, when the series has a season, the same over its difference from the
//! same phase of the last three seasons (broken daily pattern); a run of repeated values longer
//! than any before is a stuck signal. A feature's excess beyond its range, as a share of the
//! range's width, times `gain`, is its score; the highest score is the point's, so 0.5 means
//! the same on every series: some feature went past the range of its last `memory` values by
//! 1 / (2 x gain) of that range. New series are judged with more caution while their range is
//! still being learnt, and one incident raises one flag. One parameter set for every series; a
//! score uses only the current and earlier points.
//!
//! (Over 600 lines with its unit tests, kept beside the scoring they pin down: the code is
//! about 510.)

mod range;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use range::Range;

/// Parameters of the detector; the defaults serve every series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Points each feature's range looks back over.
    pub memory: usize,
    /// Lengths of the recent stretches whose means are features.
    pub mean_lengths: [usize; 2],
    /// Points whose median step is the spread feature.
    pub spread_length: usize,
    /// Weights of the value, the two stretch means and the spread: each feature's excess is
    /// multiplied by its weight (the seasonal features take the first three).
    pub weights: [f64; 4],
    /// The spread's excess is measured against at least this share of its own size (a scale
    /// changes by ratios: a few per cent more jitter is no incident).
    pub spread_relative: f64,
    /// Score per unit of excess (a feature beyond its range by 1 / (2 x gain) of the range's
    /// width scores 0.5).
    pub gain: f64,
    /// Points before the first non-zero score.
    pub warmup: usize,
    /// Caution while a range is young: excesses are divided by 1 + caution x warmup / points
    /// seen (for the seasonal features: season_warmup / differences seen).
    pub caution: f64,
    /// Points after a flag during which scores stay below 0.5 (one alert per incident).
    pub quiet_after_flag: usize,
    /// Autocorrelation at the season above which the seasonal features are watched.
    pub seasonal_strength: f64,
    /// Points of history at which the season is first looked for, and again every as many
    /// points after.
    pub season_after: usize,
    /// Calendar seasons in points (a day and a week of steps; 0 when the step is unknown),
    /// tried besides the periods found in the data.
    pub calendar: [usize; 2],
    /// Points of seasonal differences seen before they are scored (their range is learnt
    /// first).
    pub season_warmup: usize,
    /// Weight of the raw value and means once the seasonal features score.
    pub raw_weight_in_season: f64,
    /// Repeats beyond the longest earlier run at which a run starts to count as stuck (a run of
    /// twice the longest plus this scores 0.5).
    pub stuck_after: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            memory: 4_000,
            mean_lengths: [8, 32],
            spread_length: 32,
            weights: [1.0, 1.0, 1.0, 0.5],
            spread_relative: 1.0,
            gain: 15.0,
            warmup: 150,
            caution: 2.0,
            quiet_after_flag: 50,
            seasonal_strength: 0.7,
            season_after: 1_024,
            calendar: [0, 0],
            season_warmup: 600,
            raw_weight_in_season: 0.5,
            stuck_after: 12,
        }
    }
}

impl AnomalyConfig {
    /// These settings for a series of `step_secs`-second steps: the calendar's day and week (or
    /// the first two calendar seasons of longer steps) in points.
    pub fn with_step(self, step_secs: f64) -> Self {
        let mut calendar = [0; 2];
        for (slot, p) in calendar
            .iter_mut()
            .zip(crate::seasonality::calendar_seasons(step_secs))
        {
            *slot = p;
        }
        AnomalyConfig { calendar, ..self }
    }
}

/// What made a point anomalous: the feature with the highest score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The value itself left its range (a spike, a drop, an outage).
    Outlier,
    /// The mean of a recent stretch left its range (a level shift or a drift).
    LevelShift,
    /// The step-to-step spread left its range.
    VarianceChange,
    /// The difference from the same phase of earlier seasons left its range.
    SeasonalBreak,
    /// The value has repeated for longer than ever before.
    Stuck,
}

impl Kind {
    /// The kind in words, for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Outlier => "outlier",
            Kind::LevelShift => "level shift",
            Kind::VarianceChange => "variance change",
            Kind::SeasonalBreak => "broken seasonal pattern",
            Kind::Stuck => "stuck signal",
        }
    }
}

/// A point's score and the kind of feature that scored highest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// In [0, 1]; >= 0.5 flags the point.
    pub score: f64,
    /// What the score is about.
    pub kind: Kind,
}

/// Raw points kept: three seasons to compare with (three weeks of 5-minute steps).
const HISTORY: usize = 6_100;
/// A calendar season is used when the seasonal differences' spread is at most this share of the
/// series' own spread (periods found in the data need only their autocorrelation).
const CALENDAR_GAIN: f64 = 0.5;
/// Value changes a series must have shown before a run of repeats can be stuck.
const CHANGES_BEFORE_STUCK: usize = 20;

/// The features of one stream (the raw series, or its seasonal differences) and their ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Features {
    /// The last values, newest last (enough for the longest stretch).
    recent: VecDeque<f64>,
    /// Ranges of the value, the two stretch means and (raw stream only) the spread.
    ranges: Vec<Range>,
}

impl Features {
    fn new(c: &AnomalyConfig, with_spread: bool) -> Self {
        let n = if with_spread { 4 } else { 3 };
        Features {
            recent: VecDeque::new(),
            ranges: (0..n).map(|_| Range::new(c.memory)).collect(),
        }
    }

    /// The features' excesses for the next value (each feature once it can be computed), then
    /// the features are learnt.
    fn step(&mut self, c: &AnomalyConfig, v: f64) -> [f64; 4] {
        self.recent.push_back(v);
        let keep = c.mean_lengths[0]
            .max(c.mean_lengths[1])
            .max(c.spread_length + 1);
        if self.recent.len() > keep {
            self.recent.pop_front();
        }
        let values = [
            Some(v),
            self.mean(c.mean_lengths[0]),
            self.mean(c.mean_lengths[1]),
            self.spread(c.spread_length),
        ];
        let mut excess = [0.0; 4];
        let ranges = self.ranges.iter_mut().zip(c.weights);
        for (j, ((e, (range, weight)), value)) in
            excess.iter_mut().zip(ranges).zip(values).enumerate()
        {
            if let Some(x) = value {
                // The spread is a scale: only a change that is large against it counts.
                let relative = if j == 3 { c.spread_relative } else { 0.0 };
                *e = range.excess(x, relative) * weight;
                range.push(x);
            }
        }
        excess
    }

    fn mean(&self, k: usize) -> Option<f64> {
        (k > 0 && self.recent.len() >= k)
            .then(|| self.recent.iter().rev().take(k).sum::<f64>() / k as f64)
    }

    /// Median |step| over the last `l` steps.
    fn spread(&self, l: usize) -> Option<f64> {
        if l == 0 || self.recent.len() < l + 1 {
            return None;
        }
        let last: Vec<f64> = self.recent.iter().rev().take(l + 1).copied().collect();
        let mut steps: Vec<f64> = last.windows(2).map(|w| (w[0] - w[1]).abs()).collect();
        steps.sort_by(f64::total_cmp);
        let n = steps.len();
        Some(if n % 2 == 1 {
            steps[n / 2]
        } else {
            (steps[n / 2 - 1] + steps[n / 2]) / 2.0
        })
    }
}

/// Runs of repeated values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Runs {
    last: Option<f64>,
    run: usize,
    longest: usize,
    changes: usize,
}

impl Runs {
    /// The stuck score of the run `v` continues or starts.
    fn step(&mut self, v: f64, stuck_after: usize) -> f64 {
        if self.last == Some(v) {
            self.run += 1;
        } else {
            self.longest = self.longest.max(self.run);
            self.run = 0;
            self.changes += usize::from(self.last.is_some());
        }
        self.last = Some(v);
        if self.changes < CHANGES_BEFORE_STUCK || self.run <= self.longest {
            return 0.0;
        }
        0.5 * (self.run - self.longest) as f64 / (self.longest + stuck_after.max(1)) as f64
    }
}

impl Runs {
    /// True while the value has repeated (three times or more) for longer than ever before, on
    /// a series that changes value.
    fn unprecedented(&self) -> bool {
        self.changes >= CHANGES_BEFORE_STUCK && self.run >= 2 && self.run > self.longest
    }
}

/// The state of one series' detector; feed it points in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    config: AnomalyConfig,
    seen: usize,
    quiet: usize,
    /// The last raw points.
    history: VecDeque<f64>,
    /// The season whose differences are watched, re-estimated from `history` as it grows.
    season: Option<usize>,
    /// For series that never went below zero, seasonal differences are taken between
    /// logarithms of the values plus this offset (so a drop to a fifth is as large at night as
    /// at the peak); `None` for other series.
    log_offset: Option<f64>,
    raw: Features,
    /// Features of the seasonal differences (while a season is in use) and how many were seen.
    seasonal: Option<(Features, usize)>,
    runs: Runs,
    /// Scores of the last [`crate::Model::fit`] (not kept across saves).
    #[serde(skip)]
    pub(crate) last_scores: Vec<Scored>,
}

impl Detector {
    /// A detector with no history.
    pub fn new(config: AnomalyConfig) -> Self {
        Detector {
            config,
            seen: 0,
            quiet: 0,
            history: VecDeque::new(),
            season: None,
            log_offset: None,
            raw: Features::new(&config, true),
            seasonal: None,
            runs: Runs::default(),
            last_scores: Vec::new(),
        }
    }

    /// Scores the next point, in [0, 1]; >= 0.5 flags it.
    pub fn score(&mut self, value: f64) -> f64 {
        self.score_with_kind(value).0
    }

    /// Scores the next point and names the feature that scored highest.
    pub fn scored(&mut self, value: f64) -> Scored {
        let (score, kind) = self.score_with_kind(value);
        Scored { score, kind }
    }

    /// Scores the next point and names the feature that scored highest.
    pub fn score_with_kind(&mut self, value: f64) -> (f64, Kind) {
        if !value.is_finite() {
            return (0.0, Kind::Outlier);
        }
        let c = self.config;
        let (excess, kind) = self.excess(value);
        self.remember(value);
        self.seen += 1;
        self.update_season();
        if self.seen <= c.warmup {
            return (0.0, kind);
        }
        let score = (excess * c.gain).clamp(0.0, 1.0);
        if self.quiet > 0 {
            self.quiet -= 1;
            return (score.min(0.49), kind);
        }
        if score >= 0.5 {
            self.quiet = c.quiet_after_flag;
        }
        (score, kind)
    }

    /// The highest feature excess for the next value (the stuck score in excess units), and its
    /// kind; every feature learns the value.
    fn excess(&mut self, value: f64) -> (f64, Kind) {
        let c = self.config;
        let kinds = [
            Kind::Outlier,
            Kind::LevelShift,
            Kind::LevelShift,
            Kind::VarianceChange,
        ];
        let mut best = (0.0, Kind::Outlier);
        let raw = self.raw.step(&c, value);
        // A value whose level is usual but wrong for its phase is a broken seasonal pattern; a
        // point or stretch beyond the usual levels as well is an outlier or a shift.
        let usual_level = raw[..3].iter().all(|e| *e == 0.0);
        let mut seasonal_on = false;
        if let Some(diff) = self.seasonal_difference(value) {
            if let Some((features, seen)) = &mut self.seasonal {
                let excess = features.step(&c, diff);
                *seen += 1;
                // Young seasonal ranges get the same caution as a young series.
                let young = 1.0 + c.caution * c.season_warmup as f64 / *seen as f64;
                seasonal_on = *seen > c.season_warmup;
                for (j, e) in excess[..3].iter().enumerate() {
                    let kind = match j {
                        _ if usual_level => Kind::SeasonalBreak,
                        0 => Kind::Outlier,
                        _ => Kind::LevelShift,
                    };
                    if seasonal_on && e / young > best.0 {
                        best = (e / young, kind);
                    }
                }
            }
        }
        let young = 1.0 + c.caution * c.warmup as f64 / (self.seen + 1) as f64;
        for (j, (e, kind)) in raw.into_iter().zip(kinds).enumerate() {
            // With a season in use, the level of the raw series is judged mainly by its
            // seasonal differences (a new daily peak after growth is not an incident).
            let e = if seasonal_on && j < 3 {
                e * c.raw_weight_in_season / young
            } else {
                e / young
            };
            if e > best.0 {
                best = (e, kind);
            }
        }
        let stuck = self.runs.step(value, c.stuck_after) / c.gain.max(1e-9) / young;
        if stuck > best.0 {
            best = (stuck, Kind::Stuck);
        }
        // Whatever feature noticed it first, a value repeated longer than ever is stuck.
        if self.runs.unprecedented() {
            best.1 = Kind::Stuck;
        }
        best
    }

    /// The point minus the median of the same phase in the last three seasons (in logarithms for
    /// non-negative series).
    fn seasonal_difference(&self, value: f64) -> Option<f64> {
        let p = self.season?;
        let n = self.history.len();
        if n < 3 * p {
            return None;
        }
        Some(difference(
            value,
            [
                self.history[n - p],
                self.history[n - 2 * p],
                self.history[n - 3 * p],
            ],
            self.log_offset,
        ))
    }

    fn remember(&mut self, value: f64) {
        self.history.push_back(value);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// Looks for the season every `season_after` points; a new season restarts the seasonal
    /// features.
    fn update_season(&mut self) {
        let n = self.seen;
        let every = self.config.season_after.max(8);
        if n % every != 0 {
            return;
        }
        let h: Vec<f64> = self.history.iter().copied().collect();
        let log_offset = log_offset(&h);
        let season = best_season(&h, &self.config, log_offset);
        // The offset moves with the level; only a new season or scale restarts the features.
        if season != self.season || log_offset.is_some() != self.log_offset.is_some() {
            self.season = season;
            self.log_offset = log_offset;
            self.seasonal = season.map(|_| (Features::new(&self.config, false), 0));
        }
    }
}

/// The season whose differences reach least far: among the periods found in `h` with the
/// configured autocorrelation, and the calendar's seasons when they remove enough of the
/// series' spread.
fn best_season(h: &[f64], c: &AnomalyConfig, log_offset: Option<f64>) -> Option<usize> {
    // Three seasons to compare with, and a season of differences to judge them by.
    let fits = |p: usize| p >= 2 && 4 * p <= h.len();
    let found = crate::seasonality::periods(h)
        .into_iter()
        .filter(|p| p.strength >= c.seasonal_strength && fits(p.steps))
        .map(|p| (p.steps, f64::INFINITY));
    let own = mad(h.iter().map(|v| transform(*v, log_offset)).collect());
    let calendar = c
        .calendar
        .into_iter()
        .filter(|p| fits(*p))
        .map(|p| (p, CALENDAR_GAIN * own));
    found
        .chain(calendar)
        .filter_map(|(p, limit)| {
            let diffs: Vec<f64> = (3 * p..h.len())
                .map(|t| difference(h[t], [h[t - p], h[t - 2 * p], h[t - 3 * p]], log_offset))
                .collect();
            let (spread, extent) = (mad(diffs.clone()), extent(diffs));
            (spread <= limit).then_some((p, extent))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(p, _)| p)
}

/// `value` minus the median of `same` (the same phase in earlier seasons), after [`transform`].
fn difference(value: f64, mut same: [f64; 3], log_offset: Option<f64>) -> f64 {
    same.sort_by(f64::total_cmp);
    transform(value, log_offset) - transform(same[1], log_offset)
}

/// ln(v + offset) for series compared in logarithms, `v` for others.
fn transform(v: f64, log_offset: Option<f64>) -> f64 {
    match log_offset {
        Some(c) => (v.max(0.0) + c).ln(),
        None => v,
    }
}

/// Share of a non-negative series' median that is added before taking logarithms.
const LOG_OFFSET_SHARE: f64 = 0.05;

/// The log offset for `h`: a share of its median when it never went below zero and its median is
/// above zero; `None` otherwise.
fn log_offset(h: &[f64]) -> Option<f64> {
    if h.iter().any(|v| *v < 0.0) {
        return None;
    }
    let mut v = h.to_vec();
    let median = crate::robust::median(&mut v)?;
    (median > 0.0).then_some(LOG_OFFSET_SHARE * median)
}

/// The 99th percentile of the absolute deviations from the median: how far the differences
/// reach, which is what bounds the novelty detector's sensitivity.
fn extent(mut v: Vec<f64>) -> f64 {
    let Some(m) = crate::robust::median(&mut v) else {
        return f64::INFINITY;
    };
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    dev.sort_by(f64::total_cmp);
    dev[((dev.len() - 1) as f64 * 0.99) as usize]
}

/// Median absolute deviation from the median.
fn mad(mut v: Vec<f64>) -> f64 {
    crate::robust::median_mad(&mut v).map_or(0.0, |(_, m)| m)
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

    /// Four weeks of an hourly metric with a daily shape, noise from a fixed generator.
    fn hourly(weeks: usize) -> Vec<f64> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        (0..weeks * 168)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state % 1_000) as f64 / 1_000.0 - 0.5;
                let day = (i as f64 * std::f64::consts::TAU / 24.0).sin();
                100.0 + 40.0 * day + 6.0 * noise
            })
            .collect()
    }

    /// The settings the collector uses for five weeks of hours.
    fn hourly_config() -> AnomalyConfig {
        AnomalyConfig {
            season_after: 168,
            season_warmup: 168,
            ..AnomalyConfig::default().with_step(3_600.0)
        }
    }

    /// The first flag at or after `from`, with its kind.
    fn first_flag(values: &[f64], from: usize) -> Option<(usize, Kind)> {
        let mut d = Detector::new(hourly_config());
        let scored: Vec<(f64, Kind)> = values.iter().map(|v| d.score_with_kind(*v)).collect();
        scored
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, (s, _))| *s >= 0.5)
            .map(|(i, (_, k))| (i, *k))
    }

    #[test]
    fn every_incident_shape_is_flagged_soon_after_it_starts_and_named() {
        let at = 3 * 168 + 30;
        let quiet = hourly(5);
        let mut d = Detector::new(hourly_config());
        let flags: Vec<(usize, f64, Kind)> = quiet
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (s, k) = d.score_with_kind(*v);
                (i, s, k)
            })
            .filter(|x| x.1 >= 0.5)
            .collect();
        eprintln!("quiet: {flags:?} season {:?}", d.season);
        let mut d = Detector::new(hourly_config());
        let false_flags = quiet
            .iter()
            .enumerate()
            .filter(|(i, v)| d.score(**v) >= 0.5 && *i >= 200)
            .count();
        assert!(false_flags <= 1, "{false_flags} flags in five quiet weeks");
        let mut shift = quiet.clone();
        shift[at..].iter_mut().for_each(|v| *v += 60.0);
        let mut drift = quiet.clone();
        for (k, v) in drift[at..].iter_mut().enumerate() {
            *v += 1.5 * k as f64;
        }
        let mut noisy = quiet.clone();
        for (k, v) in noisy[at..].iter_mut().enumerate() {
            *v += if k % 2 == 0 { 25.0 } else { -25.0 };
        }
        let mut stuck = quiet.clone();
        let held = stuck[at];
        stuck[at..at + 40].iter_mut().for_each(|v| *v = held);
        let mut flat_day = quiet.clone();
        flat_day[at..at + 24].iter_mut().for_each(|v| *v = 100.0);
        let mut spike = quiet.clone();
        spike[at] += 90.0;
        use Kind::*;
        let cases: [(&str, Vec<f64>, usize, &[Kind]); 6] = [
            ("spike", spike, 0, &[Outlier]),
            ("level shift", shift, 4, &[Outlier, LevelShift]),
            ("drift", drift, 30, &[Outlier, LevelShift, SeasonalBreak]),
            (
                "variance change",
                noisy,
                8,
                &[Outlier, VarianceChange, SeasonalBreak],
            ),
            ("stuck", stuck, 35, &[Stuck]),
            ("broken day", flat_day, 12, &[SeasonalBreak]),
        ];
        for (name, values, within, kinds) in cases {
            let flag = first_flag(&values, 200);
            assert!(
                flag.is_some_and(|(i, k)| i >= at && i <= at + within && kinds.contains(&k)),
                "{name}: first flag {flag:?}, expected one of {kinds:?} within {within} of {at}"
            );
        }
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
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    }
}
