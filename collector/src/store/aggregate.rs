//! Aggregations a backend may compute itself (pushed down to a database server) instead of
//! handing rows to the collector: event counts, distinct users and exact latency quantiles per
//! group (quantiles from sketch buckets counted by the backend), and host-sample figures per
//! agent or per step.

pub use tda_schema::answers::{HostFigures, Period, ProcessFigures};

use std::collections::BTreeMap;

pub use tda_schema::sections::FunnelMode;

use super::Filter;

/// How pushed-down event aggregates are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// One group for the whole range.
    All,
    /// Per feature.
    Feature,
    /// Per error kind ([`tda_schema::Event::error_kind`]); only failed events.
    ErrorKind,
    /// Per step of `width` ms counted from `origin`.
    Step {
        /// Start of the first step, epoch ms.
        origin: i64,
        /// Step width, ms.
        width: i64,
    },
}

/// An aggregation over the events of `[from, to)` that pass `filter`.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery<'a> {
    /// Start, epoch ms (inclusive).
    pub from: i64,
    /// End, epoch ms (exclusive).
    pub to: i64,
    /// Event filters (the agent filter does not apply to events).
    pub filter: &'a Filter,
    /// Grouping.
    pub group: Group,
    /// Latency quantiles wanted (0-1), in this order.
    pub quantiles: &'a [f64],
}

/// Count, sum, extremes and quantiles of some values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Values (latencies: finite and >= 0).
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest (meaningless when `count` is 0).
    pub min: f64,
    /// Largest (meaningless when `count` is 0).
    pub max: f64,
    /// The asked quantiles, from the quantile sketch of the values (within its 1 % of the
    /// element at rank `floor(q·(count−1))`); empty when `count` is 0.
    pub quantiles: Vec<f64>,
}

/// The figures of one group of events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventAggregate {
    /// The group: empty for [`Group::All`], the feature or error kind, or the step start
    /// (decimal epoch ms).
    pub key: String,
    /// Events.
    pub requests: u64,
    /// Failed events ([`tda_schema::Event::is_error`]).
    pub errors: u64,
    /// Distinct users (exact).
    pub users: u64,
    /// Latencies.
    pub latency: Summary,
}

impl EventAggregate {
    /// The step start of a [`Group::Step`] group.
    pub fn step(&self) -> i64 {
        self.key.parse().unwrap_or(i64::MIN)
    }
}

/// Sums of one agent's sample figures in a range (the fields of an average, summed), and its
/// latest sample.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentAggregate {
    /// Agent id.
    pub agent: String,
    /// Samples.
    pub samples: u64,
    /// The latest sample, as sent.
    pub latest: tda_schema::HostSample,
    /// Host figures, summed over the samples.
    pub host_sums: HostFigures,
    /// Samples that had the watched process.
    pub process_samples: u64,
    /// Watched-process figures, summed over those.
    pub process_sums: ProcessFigures,
}

/// One step of a host-sample series.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleStep {
    /// Step start, epoch ms.
    pub step: i64,
    /// The values in the step.
    pub values: Summary,
}

/// A funnel over the events of `[from, to)` that pass `filter`.
#[derive(Debug, Clone, Copy)]
pub struct FunnelQuery<'a> {
    /// Start, epoch ms (inclusive).
    pub from: i64,
    /// End, epoch ms (exclusive).
    pub to: i64,
    /// Event filters.
    pub filter: &'a Filter,
    /// The steps' features.
    pub steps: &'a [String],
    /// Conversion window after the entry, ms.
    pub window_ms: i64,
    /// How steps must follow each other.
    pub mode: FunnelMode,
    /// Property of the entry event to break the funnel down by.
    pub breakdown: Option<&'a str>,
}

/// Per funnel step, the users who reached it and their median time from step 1 (ms; ignored
/// for step 1).
pub type StepCounts = Vec<(u64, Option<i64>)>;

/// A funnel's counts, as a backend gathers them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunnelCounts {
    /// Over every user.
    pub steps: StepCounts,
    /// Per value of the breakdown property of the entry event.
    pub breakdown: BTreeMap<String, StepCounts>,
}

/// Counts of a retention table, however gathered: periods from `lo`; `cohort[c][k]` users
/// first seen in period `lo + c` and active in `lo + c + k`; per period the users returning
/// from the one before and the users gone dormant since it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionCounts {
    /// The first period.
    pub lo: i64,
    /// See the type.
    pub cohort: Vec<Vec<u64>>,
    /// See the type.
    pub returning: Vec<u64>,
    /// See the type.
    pub dormant: Vec<u64>,
    /// Users by days active in a week (1-7), over all weeks.
    pub stickiness: BTreeMap<u8, u64>,
    /// Users active on the last day, 7 days and 30 days of the range.
    pub active_users: (u64, u64, u64),
}
