//! The range of a feature over its last `span` values (sliding maximum and minimum, kept as
//! monotonic queues), and how far a new value lies outside it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Sliding maximum and minimum of a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    span: u64,
    /// Values pushed so far (the index of the next).
    count: u64,
    /// Candidates for the maximum: indices rising, values falling.
    highs: VecDeque<(u64, f64)>,
    /// Candidates for the minimum: indices rising, values rising.
    lows: VecDeque<(u64, f64)>,
}

impl Range {
    /// A range over the last `span` values.
    pub fn new(span: usize) -> Self {
        Range {
            span: span.max(1) as u64,
            count: 0,
            highs: VecDeque::new(),
            lows: VecDeque::new(),
        }
    }

    /// How far `v` lies outside the range, as a share of the range's width (at least
    /// `relative` times the size of the range's middle): 0 inside it (and while the range is
    /// empty or has no width).
    pub fn excess(&self, v: f64, relative: f64) -> f64 {
        let (Some(&(_, hi)), Some(&(_, lo))) = (self.highs.front(), self.lows.front()) else {
            return 0.0;
        };
        let width = (hi - lo).max(relative * (hi + lo).abs() / 2.0);
        if width.is_nan() || width <= 0.0 || !v.is_finite() {
            return 0.0;
        }
        ((v - hi).max(lo - v).max(0.0) / width).min(1e6)
    }

    /// Adds a finite value, forgetting the one `span` values back.
    pub fn push(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self.count;
        self.count += 1;
        let oldest = i.saturating_sub(self.span - 1);
        while self.highs.front().is_some_and(|(j, _)| *j < oldest) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|(j, _)| *j < oldest) {
            self.lows.pop_front();
        }
        while self.highs.back().is_some_and(|(_, x)| *x <= v) {
            self.highs.pop_back();
        }
        self.highs.push_back((i, v));
        while self.lows.back().is_some_and(|(_, x)| *x >= v) {
            self.lows.pop_back();
        }
        self.lows.push_back((i, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Range {
        fn excess_test(&self, v: f64) -> f64 {
            self.excess(v, 0.0)
        }
    }

    #[test]
    fn excess_is_measured_against_the_last_span_values() {
        let mut r = Range::new(3);
        assert_eq!(r.excess_test(5.0), 0.0);
        for v in [10.0, 0.0, 5.0] {
            r.push(v);
        }
        assert_eq!(r.excess_test(5.0), 0.0);
        assert_eq!(r.excess_test(15.0), 0.5);
        assert_eq!(r.excess_test(-20.0), 2.0);
        r.push(4.0); // 10 is forgotten: the range is now 0..5
        assert_eq!(r.excess_test(10.0), 1.0);
        r.push(f64::NAN);
        assert_eq!(r.excess_test(10.0), 1.0);
    }
}
