//! A mergeable quantile sketch with relative-error guarantees (the DDSketch scheme): values are
//! counted in logarithmic buckets, so any quantile is returned within `RELATIVE_ERROR` of the
//! true value at that rank.

use std::collections::BTreeMap;

use tda_blocks::codec::{put_signed, put_varint, Reader};

/// Guaranteed relative accuracy of every quantile: 1 %.
pub const RELATIVE_ERROR: f64 = 0.01;

/// Counts of positive values in log-spaced buckets, plus a count of zeros.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
}

/// Values below this count as zero.
pub const ZERO: f64 = 1e-9;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// The natural log of the bucket growth factor: a value `v` (at least [`ZERO`]) is counted in
/// bucket `ceil(ln(v) / log_gamma())`.
pub fn log_gamma() -> f64 {
    gamma().ln()
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value; negative and non-finite values are ignored (latencies are >= 0).
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        self.count += 1;
        if v < ZERO {
            self.zeros += 1;
            return;
        }
        let index = (v.ln() / log_gamma()).ceil() as i32;
        *self.buckets.entry(index).or_default() += 1;
    }

    /// The sketch of bucket counts made elsewhere (by a database server, with the same
    /// buckets); the bucket `zeros` holds the zeros.
    pub fn from_buckets(counts: impl IntoIterator<Item = (i32, u64)>, zeros: i32) -> Self {
        let mut s = Sketch::new();
        for (b, n) in counts {
            s.count += n;
            if b == zeros {
                s.zeros += n;
            } else {
                *s.buckets.entry(b).or_default() += n;
            }
        }
        s
    }

    /// Adds every value of another sketch.
    pub fn merge(&mut self, other: &Sketch) {
        self.count += other.count;
        self.zeros += other.zeros;
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1): within 1 % of the sorted values' element at rank
    /// `floor(q * (count - 1))`. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (&i, &n) in &self.buckets {
            seen += n;
            if seen > rank {
                let g = gamma();
                return Some(2.0 * g.powi(i) / (g + 1.0));
            }
        }
        None
    }
}

impl Sketch {
    /// Appends the sketch's bytes: count of zeros, buckets as (index delta, count) varints.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.zeros);
        put_varint(out, self.buckets.len() as u64);
        let mut prev = 0i32;
        for (&i, &n) in &self.buckets {
            put_signed(out, i64::from(i) - i64::from(prev));
            put_varint(out, n);
            prev = i;
        }
    }

    /// Reads what [`Sketch::encode`] wrote.
    pub fn decode(r: &mut Reader) -> Result<Self, String> {
        let zeros = r.varint()?;
        let n = r.count()?;
        let (mut buckets, mut count, mut index) = (BTreeMap::new(), zeros, 0i64);
        for _ in 0..n {
            index += r.signed()?;
            let i = i32::try_from(index).map_err(|_| "sketch bucket out of range")?;
            let c = r.varint()?;
            count = count.checked_add(c).ok_or("sketch count overflows")?;
            buckets.insert(i, c);
        }
        Ok(Sketch {
            buckets,
            zeros,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_are_within_the_stated_error() {
        let mut values: Vec<f64> = (1..=10_000)
            .map(|i| ((i * 7919) % 10_007) as f64 * 0.37 + 0.01)
            .collect();
        let mut s = Sketch::new();
        for v in &values {
            s.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let (got, want) = (s.quantile(q).unwrap(), exact(&values, q));
            assert!(
                (got - want).abs() <= RELATIVE_ERROR * want,
                "q{q}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn zeros_empty_and_merge() {
        assert_eq!(Sketch::new().quantile(0.5), None);
        let mut a = Sketch::new();
        a.add(0.0);
        a.add(0.0);
        a.add(f64::NAN);
        let mut b = Sketch::new();
        b.add(100.0);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.5), Some(0.0));
        let top = a.quantile(1.0).unwrap();
        assert!((top - 100.0).abs() <= 1.0, "{top}");
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        let back = Sketch::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!((back.count(), back.quantile(1.0)), (3, Some(top)));
    }
}
