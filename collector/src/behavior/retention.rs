//! Retention and engagement: cohorts by the period (UTC day or ISO week) of a user's first event
//! in the data, and the share of each cohort active in each later period; each period's lifecycle
//! (new, returning, resurrecting, dormant users); stickiness (days active per week); and
//! DAU/WAU/MAU at the end of the range.

pub use tda_schema::answers::{Cohort, Lifecycle, Retention};

use std::collections::BTreeMap;

use super::activity::Activity;
pub use crate::store::aggregate::Period;
use crate::store::aggregate::RetentionCounts;
use crate::store::{Filter, Storage, StoreError};
use tda_schema::timestamp::DAY_MS;

/// The distinct values of a nondecreasing sequence, into `out` (cleared first).
fn distinct(values: impl Iterator<Item = i64>, out: &mut Vec<i64>) {
    out.clear();
    for v in values {
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
}

/// Per-period counts gathered user by user.
struct Tally {
    lo: i64,
    /// `cohort[c][k]`: users first seen in period `lo + c` and active in `lo + c + k`.
    cohort: Vec<Vec<u64>>,
    returning: Vec<u64>,
    dormant: Vec<u64>,
}

impl Tally {
    fn new(lo: i64, hi: i64) -> Self {
        let n = (hi - lo + 1).max(0) as usize;
        Tally {
            lo,
            cohort: (0..n).map(|c| vec![0; n - c]).collect(),
            returning: vec![0; n],
            dormant: vec![0; n],
        }
    }

    /// Adds one user's active periods (distinct, ascending).
    fn add(&mut self, periods: &[i64]) {
        let n = self.returning.len();
        let at = |p: i64| (p - self.lo) as usize;
        let first = at(periods[0]);
        for (k, p) in periods.iter().enumerate() {
            let i = at(*p);
            self.cohort[first][i - first] += 1;
            if k > 0 && periods[k - 1] == p - 1 {
                self.returning[i] += 1;
            }
            if i + 1 < n && periods.get(k + 1) != Some(&(p + 1)) {
                self.dormant[i + 1] += 1;
            }
        }
    }
}

/// The retention that counts make.
pub fn from_counts(c: RetentionCounts, period: Period) -> Retention {
    let n = c.returning.len();
    let mut active = vec![0u64; n];
    for (k0, counts) in c.cohort.iter().enumerate() {
        for (k, users) in counts.iter().enumerate() {
            active[k0 + k] += users;
        }
    }
    let new = |i: usize| c.cohort[i].first().copied().unwrap_or(0);
    let lifecycle = (0..n)
        .map(|i| Lifecycle {
            start_ms: period.start(c.lo + i as i64),
            new: new(i),
            returning: c.returning[i],
            resurrecting: active[i] - new(i) - c.returning[i],
            dormant: c.dormant[i],
        })
        .collect();
    let cohorts = c
        .cohort
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            let n = counts.first().copied().unwrap_or(0);
            Cohort {
                start_ms: period.start(c.lo + i as i64),
                users: n,
                retention: counts
                    .iter()
                    .map(|k| if n == 0 { 0.0 } else { *k as f64 / n as f64 })
                    .collect(),
                active: counts.clone(),
            }
        })
        .collect();
    let (dau, wau, mau) = c.active_users;
    Retention {
        period,
        cohorts,
        lifecycle,
        stickiness: c.stickiness,
        dau,
        wau,
        mau,
    }
}

/// Retention over the users' events, which lie in `[from, to)`.
pub fn retention(users: &Activity, period: Period, to: i64) -> Retention {
    let lo = users.users().map(|u| period.index(u.first())).min();
    let hi = users.users().map(|u| period.index(u.last())).max();
    let (lo, hi) = lo.zip(hi).unwrap_or((0, -1));
    let mut tally = Tally::new(lo, hi);
    let mut stickiness: BTreeMap<u8, u64> = BTreeMap::new();
    let (mut dau, mut wau, mut mau) = (0, 0, 0);
    let (mut periods, mut days) = (Vec::new(), Vec::new());
    let mut per_week = [0u64; 8];
    for user in users.users() {
        distinct(user.ts.iter().map(|t| period.index(*t)), &mut periods);
        tally.add(&periods);
        distinct(user.ts.iter().map(|t| Period::Day.index(*t)), &mut days);
        // Days active in each week: runs of the same week among the (sorted) days.
        let (mut week, mut n) = (i64::MIN, 0usize);
        for w in days
            .iter()
            .map(|d| Period::Week.index(d * DAY_MS))
            .chain([i64::MAX])
        {
            if w != week {
                per_week[n.min(7)] += u64::from(n > 0);
                (week, n) = (w, 0);
            }
            n += 1;
        }
        let last = user.last();
        dau += u64::from(last >= to - DAY_MS);
        wau += u64::from(last >= to - 7 * DAY_MS);
        mau += u64::from(last >= to - 30 * DAY_MS);
    }
    for (n, users) in per_week.iter().enumerate().filter(|(_, u)| **u > 0) {
        stickiness.insert(n as u8, *users);
    }
    let counts = RetentionCounts {
        lo: tally.lo,
        cohort: tally.cohort,
        returning: tally.returning,
        dormant: tally.dormant,
        stickiness,
        active_users: (dau, wau, mau),
    };
    from_counts(counts, period)
}

/// Retention over `[from, to)` of the events passing `filter` counted by the backend, when it
/// can count it.
pub fn pushed_down(
    store: &dyn Storage,
    range: (i64, i64),
    filter: &Filter,
    period: Period,
) -> Result<Option<Retention>, StoreError> {
    let Some(p) = store.pushdown() else {
        return Ok(None);
    };
    Ok(Some(from_counts(
        p.retention(range, filter, period)?,
        period,
    )))
}

/// Retention over `[from, to)` of the events passing `filter`: counted by the backend when it
/// can, else from the users' loaded activity.
pub fn compute(
    store: &dyn Storage,
    (from, to): (i64, i64),
    filter: &Filter,
    period: Period,
) -> Result<Retention, StoreError> {
    if let Some(r) = pushed_down(store, (from, to), filter, period)? {
        return Ok(r);
    }
    let users = Activity::load(store, from, to, filter, None)?;
    Ok(retention(&users, period, to))
}

#[cfg(test)]
mod tests {
    use super::super::by_user;
    use super::super::tests::ev;
    use super::*;

    const DAY: i64 = 24 * 60;

    #[test]
    fn cohorts_lifecycle_and_active_users_equal_a_brute_force_count() {
        // Monday-based days 0..4: a on 0,1,3; b on 0,3; c on 1,2; d on 3.
        let events = vec![
            ev("a", "x", 0),
            ev("a", "x", DAY + 5),
            ev("a", "x", 3 * DAY),
            ev("b", "x", 10),
            ev("b", "x", 3 * DAY + 1),
            ev("c", "x", DAY),
            ev("c", "x", 2 * DAY),
            ev("d", "x", 3 * DAY + 7),
        ];
        let users = by_user(events);
        let end = 1_795_392_000_000i64 + 4 * DAY * 60_000;
        let r = retention(&users, Period::Day, end);
        let rows: Vec<(u64, Vec<u64>)> = r
            .cohorts
            .iter()
            .map(|c| (c.users, c.active.clone()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (2, vec![2, 1, 0, 2]),
                (1, vec![1, 1, 0]),
                (0, vec![0, 0]),
                (1, vec![1])
            ]
        );
        let life: Vec<(u64, u64, u64, u64)> = r
            .lifecycle
            .iter()
            .map(|l| (l.new, l.returning, l.resurrecting, l.dormant))
            .collect();
        assert_eq!(
            life,
            vec![(2, 0, 0, 0), (1, 1, 0, 1), (0, 1, 0, 1), (1, 0, 2, 1)]
        );
        assert_eq!((r.dau, r.wau, r.mau), (3, 4, 4));
        assert_eq!(r.stickiness, BTreeMap::from([(1, 1), (2, 2), (3, 1)]));
    }
}
