//! The collector API's answers, typed once for the collector that makes them and the `tda` CLI
//! (and any client) that reads them: statistics, behavioral analyses, series and event pages.
//! Field names are the JSON's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sections::FunnelMode;
use crate::timestamp::{Timestamp, DAY_MS};
use crate::wire::{Event, HostSample};
use crate::AggregationLevel;

// Statistics (`GET /api/v1/stats/{usage,performance}`).

/// The time range a statistic covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Range {
    /// Start, epoch ms (inclusive).
    pub from_ms: i64,
    /// End, epoch ms (exclusive).
    pub to_ms: i64,
    /// Start, RFC 3339.
    pub from: String,
    /// End, RFC 3339.
    pub to: String,
}

impl Range {
    /// The range `[from_ms, to_ms)`.
    pub fn new(from_ms: i64, to_ms: i64) -> Self {
        Range {
            from_ms,
            to_ms,
            from: Timestamp(from_ms).to_rfc3339(),
            to: Timestamp(to_ms).to_rfc3339(),
        }
    }
}

/// Latency percentiles, milliseconds, with the estimator's stated error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Requests that reported a latency.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Each percentile is within this fraction of the exact value at rank floor(q·(n−1)).
    pub relative_error: f64,
}

/// `GET /api/v1/stats/usage`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UsageStats {
    /// Always `usage`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The range covered.
    pub range: Range,
    /// The profile whose aggregation level the series uses, if any.
    pub profile: Option<String>,
    /// Bucket width of `series`.
    pub aggregation_level: AggregationLevel,
    /// Requests (events) in the range.
    pub total_requests: u64,
    /// Distinct users in the range.
    pub active_users: u64,
    /// Failed requests in the range.
    pub errors: u64,
    /// Usage per feature, most used first.
    pub features: Vec<FeatureUsage>,
    /// Requests per bucket, every bucket of the range, oldest first.
    pub series: Vec<Bucket>,
    /// Latency percentiles over all requests.
    pub latency_ms: Latency,
}

/// Usage of one feature.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureUsage {
    /// Feature name.
    pub feature: String,
    /// Requests to it.
    pub requests: u64,
    /// Distinct users of it.
    pub users: u64,
    /// Failed requests to it.
    pub errors: u64,
}

/// One interval of the series.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    /// Bucket start, RFC 3339.
    pub start: String,
    /// Bucket start, epoch ms.
    pub start_ms: i64,
    /// Requests in the bucket.
    pub requests: u64,
    /// Failed requests in the bucket.
    pub errors: u64,
}

/// `GET /api/v1/stats/performance`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PerformanceStats {
    /// Always `performance`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The range covered.
    pub range: Range,
    /// Requests in the range.
    pub requests: u64,
    /// Failed requests (an `error` or a 5xx status).
    pub errors: u64,
    /// errors / requests (0 when there were no requests).
    pub error_rate: f64,
    /// Latency percentiles over all requests.
    pub latency_ms: Latency,
    /// Latency percentiles per feature, by feature name.
    pub latency_by_feature: BTreeMap<String, Latency>,
    /// The most frequent error types, most frequent first.
    pub top_errors: Vec<ErrorCount>,
    /// Host and process figures per agent, by agent id.
    pub agents: Vec<AgentStats>,
    /// System health summary.
    pub health: Health,
}

/// How often one error type occurred.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorCount {
    /// Error type (the event's `error`, or `http_<status>`).
    pub error: String,
    /// Occurrences.
    pub count: u64,
}

/// Resource figures of one agent's host and watched process.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentStats {
    /// Agent id.
    pub agent_id: String,
    /// Samples in the range.
    pub samples: u64,
    /// Time of the latest sample, RFC 3339.
    pub last_seen: String,
    /// The latest host sample, as sent.
    pub latest: HostSample,
    /// Host averages over the range.
    pub average: HostFigures,
    /// Watched-process averages over the samples that had the process.
    pub process_average: Option<ProcessFigures>,
}

/// `ok`, `degraded`, `critical` or `no_data`, and why.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// What made it so, one line each.
    pub reasons: Vec<String>,
}

/// The host gauges and per-sample I/O counters of some samples, averaged or summed.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct HostFigures {
    /// CPU busy, percent.
    pub cpu_percent: f64,
    /// Memory used, bytes.
    pub mem_used_bytes: f64,
    /// Memory used, percent of total.
    pub mem_used_percent: f64,
    /// Swap used, bytes.
    pub swap_used_bytes: f64,
    /// One-minute load.
    pub load1: f64,
    /// Disk bytes read per sample interval.
    pub disk_read_bytes: f64,
    /// Disk bytes written per sample interval.
    pub disk_written_bytes: f64,
    /// Network bytes received per sample interval.
    pub net_rx_bytes: f64,
    /// Network bytes sent per sample interval.
    pub net_tx_bytes: f64,
}

/// The watched process's figures of some samples, averaged or summed.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ProcessFigures {
    /// CPU, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub rss_bytes: f64,
    /// Threads.
    pub threads: f64,
    /// Open file descriptors.
    pub open_fds: f64,
}

/// A system's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Nothing wrong.
    Ok,
    /// Something to look at (errors, latency or a host's resources past a mark).
    Degraded,
    /// Errors past the critical rate.
    Critical,
    /// No requests and no samples in the range.
    NoData,
}

// Behavioral analyses (`GET /api/v1/{sessions,funnels,retention}`).

/// A summary of the sessions of a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Sessions.
    pub sessions: u64,
    /// Users with at least one session.
    pub users: u64,
    /// Mean events per session.
    pub events_per_session: f64,
    /// Median session length, ms.
    pub median_duration_ms: Option<i64>,
    /// Mean session length, ms.
    pub mean_duration_ms: Option<f64>,
    /// Share of sessions with a single event.
    pub bounce_rate: f64,
    /// Mean sessions per user.
    pub sessions_per_user: f64,
}

/// One funnel step's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    /// The feature.
    pub step: String,
    /// Users who reached it.
    pub users: u64,
    /// Share of step 1's users.
    pub conversion: f64,
    /// Share of the previous step's users who did not reach it.
    pub drop_off: f64,
    /// Median time from step 1 to this step, ms.
    pub median_time_ms: Option<i64>,
}

/// A funnel's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    /// Steps.
    pub steps: Vec<FunnelStep>,
    /// Per value of the breakdown property (absent: `(none)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub breakdown: BTreeMap<String, Vec<FunnelStep>>,
}

/// A funnel as the API and the scheduler answer it: its settings beside its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelAnswer {
    /// The profile's name for it (scheduled funnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How steps must follow each other.
    pub mode: FunnelMode,
    /// Conversion window after the entry, ms.
    pub window_ms: i64,
    /// The figures.
    pub funnel: Funnel,
}

/// Period length for retention cohorts and lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// UTC days.
    Day,
    /// Weeks starting Monday 00:00 UTC.
    Week,
}

impl std::str::FromStr for Period {
    type Err = String;

    /// Parses `day` or `week`.
    fn from_str(text: &str) -> Result<Period, String> {
        match text {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            _ => Err(format!("`{text}` is not day or week")),
        }
    }
}

impl Period {
    /// The period index of a time (days since the epoch, or weeks since a Monday).
    pub fn index(self, t: i64) -> i64 {
        match self {
            Period::Day => t.div_euclid(DAY_MS),
            // 1970-01-05 was a Monday.
            Period::Week => (t - 4 * DAY_MS).div_euclid(7 * DAY_MS),
        }
    }

    /// Start of period `i`, epoch ms.
    pub fn start(self, i: i64) -> i64 {
        match self {
            Period::Day => i * DAY_MS,
            Period::Week => i * 7 * DAY_MS + 4 * DAY_MS,
        }
    }
}

/// A cohort's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// Start of the cohort's period, epoch ms.
    pub start_ms: i64,
    /// Users whose first event is in it.
    pub users: u64,
    /// Users active in the cohort's period + k, for k = 0, 1, ...
    pub active: Vec<u64>,
    /// `active` as shares of `users`.
    pub retention: Vec<f64>,
}

/// One period's lifecycle counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Start of the period, epoch ms.
    pub start_ms: i64,
    /// First seen in it.
    pub new: u64,
    /// Active in it and in the one before.
    pub returning: u64,
    /// Active in it, not in the one before, but seen earlier.
    pub resurrecting: u64,
    /// Active in the one before, not in it.
    pub dormant: u64,
}

/// Everything about retention over a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Period used.
    pub period: Period,
    /// Cohort table, oldest first.
    pub cohorts: Vec<Cohort>,
    /// Lifecycle per period, oldest first.
    pub lifecycle: Vec<Lifecycle>,
    /// Users by the number of days (1-7) they were active in a week, over all weeks.
    pub stickiness: BTreeMap<u8, u64>,
    /// Users active on the last day, in the last 7 and the last 30 days of the range.
    pub dau: u64,
    /// See `dau`.
    pub wau: u64,
    /// See `dau`.
    pub mau: u64,
}

// Series and events (`GET /api/v1/query`, `GET /api/v1/events`).

/// How the values in a step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Number of values.
    Count,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Sum per second of the step.
    Rate,
    /// A quantile (0-1), within the sketch's 1 % error.
    Quantile(u8),
    /// Number of distinct users (event series only).
    Distinct,
}

impl std::str::FromStr for Agg {
    type Err = String;

    /// Parses `count`, `sum`, `avg`, `min`, `max`, `rate`, `p50`, `p95`, `p99` (any `pNN`) or
    /// `distinct`.
    fn from_str(text: &str) -> Result<Agg, String> {
        Ok(match text {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "rate" => Agg::Rate,
            "distinct" => Agg::Distinct,
            p => {
                match p
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=99).contains(n))
                {
                    Some(n) => Agg::Quantile(n),
                    None => {
                        return Err(format!(
                            "`{text}` is not count, sum, avg, min, max, rate, p1-p99 or distinct"
                        ))
                    }
                }
            }
        })
    }
}

/// One point of a series.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// Step start, epoch ms.
    pub t: i64,
    /// The aggregated value; `null` for a step without data (0 for counts).
    pub v: Option<f64>,
}

/// `GET /api/v1/events`: a page of events, oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events.
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/query`: one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The series' name (`requests`, `host.cpu_percent` …).
    pub series: String,
    /// How each step's values were combined.
    pub agg: Agg,
    /// Step width, ms.
    pub step_ms: i64,
    /// Start, epoch ms (inclusive).
    pub from: i64,
    /// End, epoch ms (exclusive).
    pub to: i64,
    /// One point per step, oldest first.
    pub points: Vec<Point>,
}

// Journeys, segments and the behavioral summary (`GET /api/v1/{journeys,segments,interactions}`,
// `stats/behavioral`).

/// A path and the sessions that took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCount {
    /// The features, in order.
    pub path: Vec<String>,
    /// Sessions.
    pub sessions: u64,
}

/// A transition and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// From (a feature or `$start`).
    pub from: String,
    /// To (a feature or `$end`).
    pub to: String,
    /// Times.
    pub count: u64,
}

/// A cluster of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// 0-based, largest first.
    pub id: usize,
    /// Users in it.
    pub users: u64,
    /// Share of all users.
    pub share: f64,
    /// What sets it apart, in words.
    pub description: String,
    /// A few of its users.
    pub examples: Vec<String>,
}

/// The segmentation of a range's users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmentation {
    /// Clusters, largest first.
    pub clusters: Vec<Cluster>,
    /// Silhouette of the chosen k on the sample (-1 to 1; higher is better separated).
    pub silhouette: f64,
    /// Each user's cluster.
    #[serde(skip)]
    pub assignment: BTreeMap<String, usize>,
}

/// A rule-based segment's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSegment {
    /// Its name.
    pub name: String,
    /// Its rule.
    pub rule: String,
    /// Users meeting it.
    pub users: u64,
    /// A few of them.
    pub examples: Vec<String>,
}

/// `GET /api/v1/interactions`: how features are used together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// The matrix's features, most users first.
    pub features: Vec<String>,
    /// `co_usage[i][j]`: users who used both `features[i]` and `features[j]` (the diagonal:
    /// users of the feature).
    pub co_usage: Vec<Vec<u64>>,
    /// Per feature: (day start, users who had used it by the end of that day).
    pub adoption: BTreeMap<String, Vec<(i64, u64)>>,
    /// Median time between a user's consecutive events, ms.
    pub median_gap_ms: Option<i64>,
    /// Per feature: median time between a user's consecutive uses of it, ms.
    pub median_reuse_ms: BTreeMap<String, i64>,
}

/// A step after or before a feature, and how often.
pub type Neighbour = (String, u64);

/// `GET /api/v1/journeys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneysAnswer {
    /// The most taken paths.
    pub top_paths: Vec<PathCount>,
    /// The busiest transitions.
    pub transitions: Vec<Edge>,
    /// With `feature_of_interest`: the steps after it, most frequent first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Vec<Neighbour>>,
    /// With `feature_of_interest`: the steps before it, most frequent first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Vec<Neighbour>>,
}

/// `GET /api/v1/segments`: the profile's rule segments and the automatic segmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsAnswer {
    /// Users in the range.
    pub users: usize,
    /// The profile's `[[segment]]` rules and their members.
    pub rules: Vec<RuleSegment>,
    /// The clusters (none with too few users).
    pub segmentation: Option<Segmentation>,
    /// With `users=true`: each user's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<BTreeMap<String, usize>>,
}

/// Users active on the last day, in the last 7 and in the last 30 days of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveUsers {
    /// Last day.
    pub dau: u64,
    /// Last 7 days.
    pub wau: u64,
    /// Last 30 days.
    pub mau: u64,
}

/// `GET /api/v1/stats/behavioral`: the summary of a range; the scheduler's run of a behavioral
/// profile adds its funnels, weekly retention, segments, profile and range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehavioralStats {
    /// Always `behavioral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Sessions.
    pub sessions: SessionStats,
    /// The most taken paths.
    pub top_paths: Vec<PathCount>,
    /// The busiest transitions.
    pub transitions: Vec<Edge>,
    /// Users active at the end of the range.
    pub active_users: ActiveUsers,
    /// Lifecycle per day, oldest first.
    pub lifecycle: Vec<Lifecycle>,
    /// Users by days active in a week (1-7).
    pub stickiness: BTreeMap<u8, u64>,
    /// The profile's `[[funnel]]`s (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnels: Option<Vec<FunnelAnswer>>,
    /// Weekly retention (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_weekly: Option<Retention>,
    /// Segments (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<SegmentsAnswer>,
    /// The profile (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Start, epoch ms (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// End, epoch ms (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// When the scheduler computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_at: Option<i64>,
}

// Predictive models (`GET /api/v1/{trends,forecast,anomalies,patterns}`, `stats/predictive`).

/// The series a model ran over: the head of every model answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBasis {
    /// The metric (`requests`, `latency_p95_ms`, `host.cpu_percent` …).
    pub metric: String,
    /// Start, epoch ms.
    pub from: i64,
    /// End, epoch ms.
    pub to: i64,
    /// Step, ms.
    pub step_ms: i64,
    /// Closed steps the model read.
    pub points: usize,
}

/// A metric's trend as reported: over whole days' means, as a change per week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedTrend {
    /// `rising`, `falling` or `flat`; none with too little history.
    pub direction: Option<String>,
    /// Change per week, percent of the level.
    pub percent_per_week: Option<f64>,
    /// The trend test's p-value.
    pub p_value: Option<f64>,
    /// Whole days the trend was read over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<usize>,
    /// One sentence.
    pub summary: String,
}

/// `GET /api/v1/trends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendAnswer {
    /// The series.
    #[serde(flatten)]
    pub basis: ModelBasis,
    /// The trend.
    pub trend: ReportedTrend,
    /// The trend's change per week (as in `trend`).
    pub percent_per_week: Option<f64>,
    /// The trend's sentence (as in `trend`).
    pub summary: String,
}

/// One forecast step with its intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// Step start, epoch ms.
    pub t: i64,
    /// Point forecast.
    pub forecast: f64,
    /// 80 % interval, low.
    pub lower80: f64,
    /// 80 % interval, high.
    pub upper80: f64,
    /// 95 % interval, low.
    pub lower95: f64,
    /// 95 % interval, high.
    pub upper95: f64,
}

/// `GET /api/v1/forecast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastAnswer {
    /// The series.
    #[serde(flatten)]
    pub basis: ModelBasis,
    /// The method, or the methods combined.
    pub model: String,
    /// The seasonal period of the best method, steps (1 when none).
    pub period_steps: usize,
    /// Mean absolute error in the series' own backtest.
    pub backtest_mae: Option<f64>,
    /// The steps after the series.
    pub forecast: Vec<ForecastPoint>,
}

/// What the detector saw in a flagged stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
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

/// A flagged stretch of a series.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Anomaly {
    /// Start of the first flagged step, epoch ms.
    pub start_ms: i64,
    /// End of the last step still scoring >= 0.3 after it, epoch ms.
    pub end_ms: i64,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// Highest score in the stretch.
    pub score: f64,
    /// The value at the flag.
    pub value: f64,
    /// What the detector saw (absent in flags kept from before kinds were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AnomalyKind>,
}

impl Anomaly {
    /// An anomaly over `[start_ms, end_ms)`.
    pub fn at(start_ms: i64, end_ms: i64, score: f64, value: f64) -> Self {
        Anomaly {
            start_ms,
            end_ms,
            start: Timestamp(start_ms).to_rfc3339(),
            end: Timestamp(end_ms).to_rfc3339(),
            score,
            value,
            kind: None,
        }
    }
}

/// `GET /api/v1/anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomaliesAnswer {
    /// The series.
    #[serde(flatten)]
    pub basis: ModelBasis,
    /// The flagged stretches, oldest first.
    pub anomalies: Vec<Anomaly>,
}

/// A seasonal period found in a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalPeriod {
    /// Length, steps.
    pub steps: usize,
    /// Length, ms.
    pub ms: i64,
    /// How much of the variance it explains (0-1).
    pub strength: f64,
}

/// A change point found in a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// The first step after the change, epoch ms.
    pub t: i64,
    /// `level` or `trend`.
    pub kind: String,
    /// Mean before.
    pub before: f64,
    /// Mean after.
    pub after: f64,
}

/// `GET /api/v1/patterns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternsAnswer {
    /// The series.
    #[serde(flatten)]
    pub basis: ModelBasis,
    /// Seasonal periods, strongest first.
    pub seasonal_periods: Vec<SeasonalPeriod>,
    /// Change points, oldest first.
    pub change_points: Vec<ChangePoint>,
    /// Hours of the day (UTC) with the highest mean, highest first.
    pub peak_hours_utc: Vec<u8>,
    /// Days of the week with the highest mean, highest first.
    pub peak_weekdays: Vec<String>,
}

/// A forecast in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSummary {
    /// The method, or the methods combined.
    pub model: String,
    /// Steps forecast.
    pub horizon_steps: usize,
    /// Mean of the point forecasts over the horizon.
    pub mean: f64,
    /// The last point forecast.
    pub last: Option<f64>,
    /// The last step's 95 % upper bound.
    pub upper95_last: Option<f64>,
}

/// Anomalies in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalySummary {
    /// Stretches flagged.
    pub count: usize,
    /// The latest.
    pub latest: Option<Anomaly>,
}

/// One metric's models in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricModels {
    /// The metric.
    pub metric: String,
    /// Closed steps read.
    pub points: usize,
    /// Its trend.
    pub trend: ReportedTrend,
    /// Its forecast.
    pub forecast: ForecastSummary,
    /// Its anomalies.
    pub anomalies: AnomalySummary,
    /// Its seasonal periods, steps.
    pub seasonal_periods_steps: Vec<usize>,
}

/// `GET /api/v1/stats/predictive`: every metric of a predictive profile, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictiveStats {
    /// Always `predictive`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The profile, if one was used.
    pub profile: Option<String>,
    /// Start, epoch ms.
    pub from: i64,
    /// End, epoch ms.
    pub to: i64,
    /// Step, ms.
    pub step_ms: i64,
    /// Per metric.
    pub metrics: Vec<MetricModels>,
    /// When the scheduler computed it (its answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_at: Option<i64>,
}

// Alerts, silences and reports (`GET /api/v1/{alerts,silences,reports}`).

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertPhase {
    /// The condition does not hold.
    #[default]
    Inactive,
    /// The condition holds, not yet for `for`.
    Pending,
    /// Firing.
    Firing,
    /// Was firing and has cleared (kept until its resolution is notified).
    Resolved,
}

/// One rule's alert as `GET /api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    /// The profile of the rule.
    pub profile: String,
    /// The rule's name.
    pub rule: String,
    /// Where it is.
    pub state: AlertPhase,
    /// The value at the last evaluation.
    pub value: Option<f64>,
    /// Since when the condition has held, epoch ms.
    pub active_since: Option<i64>,
    /// When it fired, epoch ms.
    pub fired_at: Option<i64>,
    /// When it resolved, epoch ms.
    pub resolved_at: Option<i64>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary` …).
    pub annotations: BTreeMap<String, String>,
    /// The labels' fingerprint.
    pub fingerprint: String,
    /// The id of the silence muting it now.
    pub silenced_by: Option<String>,
    /// Whether a firing alert inhibits it now.
    pub inhibited: bool,
    /// Why the rule cannot be evaluated, if it cannot.
    pub error: Option<String>,
}

/// Notifications by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCounts {
    /// Delivered.
    pub sent: u64,
    /// Failed and retried.
    pub retried: u64,
    /// Refused, or undeliverable for a day.
    pub dropped: u64,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// Every rule's alert.
    pub alerts: Vec<AlertRow>,
    /// Notifications waiting in the outbox.
    pub outbox: usize,
    /// Evaluation passes since the collector started.
    pub passes: u64,
    /// Notifications since the collector started.
    pub notifications: NotificationCounts,
}

/// A silence: alerts whose labels match every matcher are not notified between start and end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id.
    pub id: String,
    /// Matchers as written (`severity=critical`).
    pub matchers: Vec<String>,
    /// Start, epoch ms.
    pub starts_at: i64,
    /// End, epoch ms.
    pub ends_at: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
}

/// A silence as `GET /api/v1/silences` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceRow {
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// Whether it mutes alerts now.
    pub active: bool,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilencesAnswer {
    /// Every silence.
    pub silences: Vec<SilenceRow>,
}

/// A report as `GET /api/v1/reports` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportListing {
    /// `profile/report/stamp`.
    pub id: String,
    /// The profile.
    pub profile: String,
    /// The report's name in the profile.
    pub report: String,
    /// The profile's type.
    pub family: Option<crate::ProfileType>,
    /// Start of the period, RFC 3339.
    pub from: String,
    /// End of the period, RFC 3339.
    pub to: String,
    /// When it was made, RFC 3339.
    pub generated_at: String,
    /// Its findings, one line each.
    pub summary: Vec<String>,
    /// Its files by format (`html`, `md`, `json`).
    pub links: BTreeMap<String, String>,
}

/// `GET /api/v1/reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportsAnswer {
    /// Every report, newest first.
    pub reports: Vec<ReportListing>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client reads back equals what the collector wrote, fields left out included.
    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(x: T) {
        let text = serde_json::to_string(&x).unwrap();
        assert_eq!(serde_json::from_str::<T>(&text).unwrap(), x, "{text}");
    }

    #[test]
    fn answers_read_back_as_written() {
        let step = FunnelStep {
            step: "login".into(),
            users: 3,
            conversion: 1.0,
            drop_off: 0.0,
            median_time_ms: Some(0),
        };
        round_trip(FunnelAnswer {
            name: None,
            mode: FunnelMode::Strict,
            window_ms: 3_600_000,
            funnel: Funnel {
                steps: vec![step],
                breakdown: BTreeMap::new(),
            },
        });
        round_trip(Series {
            series: "latency_ms".into(),
            agg: Agg::Quantile(95),
            step_ms: 60_000,
            from: 0,
            to: 60_000,
            points: vec![Point { t: 0, v: None }],
        });
        round_trip(Health {
            status: HealthStatus::NoData,
            reasons: Vec::new(),
        });
        assert_eq!(
            serde_json::to_string(&HealthStatus::NoData).unwrap(),
            "\"no_data\""
        );
        assert_eq!(
            serde_json::to_string(&Agg::Quantile(95)).unwrap(),
            "{\"quantile\":95}"
        );
    }
}
