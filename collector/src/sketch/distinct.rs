//! A mergeable distinct-count sketch: exact (a set of 64-bit hashes) while small, then a
//! HyperLogLog of 4,096 registers (about 1.6 % standard error). Hashes are FNV-1a with a
//! SplitMix64 finaliser, fixed forever because sketches are persisted.

use std::collections::BTreeSet;

use tda_blocks::codec::{put_varint, Reader};

const P: u32 = 12;
const REGISTERS: usize = 1 << P;
/// Exact hashes kept before switching to registers (the set then outweighs them).
const EXACT_LIMIT: usize = REGISTERS / 8;

/// A distinct-count sketch.
#[derive(Debug, Clone, PartialEq)]
pub enum Distinct {
    /// Every hash seen (exact count, barring 64-bit collisions).
    Exact(BTreeSet<u64>),
    /// HyperLogLog registers.
    Registers(Vec<u8>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(BTreeSet::new())
    }
}

/// The persisted hash of a value.
pub fn hash(value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn set_register(regs: &mut [u8], h: u64) {
    let index = (h >> (64 - P)) as usize;
    let rank = ((h << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
    if regs[index] < rank {
        regs[index] = rank;
    }
}

impl Distinct {
    /// Adds a value.
    pub fn add(&mut self, value: &str) {
        self.add_hash(hash(value));
    }

    /// Adds a value by its [`hash`].
    pub fn add_hash(&mut self, h: u64) {
        match self {
            Distinct::Exact(set) => {
                set.insert(h);
                if set.len() > EXACT_LIMIT {
                    self.densify();
                }
            }
            Distinct::Registers(regs) => set_register(regs, h),
        }
    }

    fn densify(&mut self) {
        if let Distinct::Exact(set) = self {
            let mut regs = vec![0u8; REGISTERS];
            for h in set.iter() {
                set_register(&mut regs, *h);
            }
            *self = Distinct::Registers(regs);
        }
    }

    /// Adds everything `other` counted (the union).
    pub fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Exact(set) => set.iter().for_each(|h| self.add_hash(*h)),
            Distinct::Registers(theirs) => {
                self.densify();
                if let Distinct::Registers(mine) = self {
                    for (m, t) in mine.iter_mut().zip(theirs) {
                        *m = (*m).max(*t);
                    }
                }
            }
        }
    }

    /// The estimated number of distinct values (exact while small).
    pub fn count(&self) -> u64 {
        match self {
            Distinct::Exact(set) => set.len() as u64,
            Distinct::Registers(regs) => {
                let m = REGISTERS as f64;
                let sum: f64 = regs.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
                let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
                let zeros = regs.iter().filter(|r| **r == 0).count();
                let estimate = if raw <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                estimate.round() as u64
            }
        }
    }

    /// Appends the sketch's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Distinct::Exact(set) => {
                out.push(0);
                put_varint(out, set.len() as u64);
                for h in set {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            Distinct::Registers(regs) => {
                out.push(1);
                out.extend_from_slice(regs);
            }
        }
    }

    /// Reads what [`Distinct::encode`] wrote.
    pub fn decode(r: &mut Reader) -> Result<Self, String> {
        match r.byte()? {
            0 => {
                let n = r.count()?;
                let mut set = BTreeSet::new();
                for _ in 0..n {
                    let b: [u8; 8] = r.bytes(8)?.try_into().map_err(|_| "hash")?;
                    set.insert(u64::from_le_bytes(b));
                }
                Ok(Distinct::Exact(set))
            }
            1 => Ok(Distinct::Registers(r.bytes(REGISTERS)?.to_vec())),
            k => Err(format!("unknown distinct sketch kind {k}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(range: std::ops::Range<u32>) -> Distinct {
        let mut d = Distinct::default();
        range.for_each(|i| d.add(&format!("user-{i}")));
        d
    }

    #[test]
    fn exact_while_small_and_within_five_percent_when_large() {
        assert_eq!(of(0..0).count(), 0);
        assert_eq!(of(0..500).count(), 500);
        for n in [1_000u32, 10_000, 200_000] {
            let got = of(0..n).count() as f64;
            assert!(
                (got - f64::from(n)).abs() <= 0.05 * f64::from(n),
                "{n}: {got}"
            );
        }
    }

    #[test]
    fn merge_is_a_union_and_encoding_round_trips() {
        let mut a = of(0..300);
        a.merge(&of(200..400));
        assert_eq!(a.count(), 400);
        let mut big = of(0..20_000);
        big.merge(&of(10_000..30_000));
        let got = big.count() as f64;
        assert!((got - 30_000.0).abs() <= 1_500.0, "{got}");
        for d in [a, big] {
            let mut bytes = Vec::new();
            d.encode(&mut bytes);
            assert_eq!(Distinct::decode(&mut Reader::new(&bytes)).unwrap(), d);
        }
        assert!(Distinct::decode(&mut Reader::new(&[1, 0, 0])).is_err());
    }
}
