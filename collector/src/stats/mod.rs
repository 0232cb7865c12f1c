//! Usage and performance statistics computed from stored events and samples over a time range.

pub mod performance;
pub mod usage;

use serde::Serialize;
use tda_schema::Timestamp;

use crate::sketch::quantile::{Sketch, RELATIVE_ERROR};

/// Latency percentiles, milliseconds, with the estimator's stated error.
#[derive(Debug, Clone, Serialize, PartialEq)]
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

/// The quantiles a [`Latency`] reports.
pub const QUANTILES: [f64; 3] = [0.50, 0.95, 0.99];

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Latency {
    /// Reads the percentiles (at [`QUANTILES`]) a backend computed from the same sketch.
    pub fn from_summary(s: &crate::store::aggregate::Summary) -> Self {
        let q = |i: usize| s.quantiles.get(i).copied().map(round3);
        Latency {
            count: s.count,
            p50: q(0),
            p95: q(1),
            p99: q(2),
            relative_error: RELATIVE_ERROR,
        }
    }

    /// Reads the percentiles out of a sketch.
    pub fn from_sketch(s: &Sketch) -> Self {
        let round = |v: Option<f64>| v.map(round3);
        Latency {
            count: s.count(),
            p50: round(s.quantile(0.50)),
            p95: round(s.quantile(0.95)),
            p99: round(s.quantile(0.99)),
            relative_error: RELATIVE_ERROR,
        }
    }
}

/// The time range a statistic covers.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
