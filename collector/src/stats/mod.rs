//! Usage and performance statistics computed from stored events and samples over a time range.

pub mod performance;
pub mod usage;

use crate::sketch::quantile::{Sketch, RELATIVE_ERROR};

pub use tda_schema::answers::{Latency, Range};

/// The quantiles a [`Latency`] reports.
pub const QUANTILES: [f64; 3] = [0.50, 0.95, 0.99];

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The percentiles (at [`QUANTILES`]) a backend computed from the same sketch.
pub fn latency_of_summary(s: &crate::store::aggregate::Summary) -> Latency {
    let q = |i: usize| s.quantiles.get(i).copied().map(round3);
    Latency {
        count: s.count,
        p50: q(0),
        p95: q(1),
        p99: q(2),
        relative_error: RELATIVE_ERROR,
    }
}

/// The percentiles of a sketch.
pub fn latency_of_sketch(s: &Sketch) -> Latency {
    let round = |v: Option<f64>| v.map(round3);
    Latency {
        count: s.count(),
        p50: round(s.quantile(0.50)),
        p95: round(s.quantile(0.95)),
        p99: round(s.quantile(0.99)),
        relative_error: RELATIVE_ERROR,
    }
}
