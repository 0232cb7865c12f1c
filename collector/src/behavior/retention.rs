//! Retention and engagement: cohorts by the period (UTC day or ISO week) of a user's first event
//! in the data, and the share of each cohort active in each later period; each period's lifecycle
//! (new, returning, resurrecting, dormant users); stickiness (days active per week); and
//! DAU/WAU/MAU at the end of the range.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tda_schema::Event;

const DAY_MS: i64 = 86_400_000;

/// Period length for cohorts and lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// UTC days.
    Day,
    /// Weeks starting Monday 00:00 UTC.
    Week,
}

impl Period {
    /// Parses `day` or `week`.
    pub fn parse(text: &str) -> Result<Period, String> {
        match text {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            _ => Err(format!("period: `{text}` is not day or week")),
        }
    }

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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Retention over the users' events, which lie in `[from, to)`.
pub fn retention<'a>(
    users: impl Iterator<Item = &'a Vec<Event>>,
    period: Period,
    to: i64,
) -> Retention {
    let mut active: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
    let mut first_of: Vec<i64> = Vec::new();
    let mut stickiness: BTreeMap<u8, u64> = BTreeMap::new();
    let (mut dau, mut wau, mut mau) = (0, 0, 0);
    for (u, events) in users.enumerate() {
        let Some(first) = events.first() else {
            continue;
        };
        first_of.push(period.index(first.timestamp.0));
        let days: BTreeSet<i64> = events
            .iter()
            .map(|e| Period::Day.index(e.timestamp.0))
            .collect();
        let mut per_week: BTreeMap<i64, u8> = BTreeMap::new();
        for d in &days {
            *per_week.entry(Period::Week.index(d * DAY_MS)).or_default() += 1;
        }
        for n in per_week.values() {
            *stickiness.entry(*n).or_default() += 1;
        }
        let last = events.last().map_or(0, |e| e.timestamp.0);
        dau += u64::from(last >= to - DAY_MS);
        wau += u64::from(last >= to - 7 * DAY_MS);
        mau += u64::from(last >= to - 30 * DAY_MS);
        for e in events {
            active
                .entry(period.index(e.timestamp.0))
                .or_default()
                .insert(u);
        }
    }
    let (lo, hi) = match (active.keys().next(), active.keys().last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => (0, -1),
    };
    let cohorts = (lo..=hi)
        .map(|c| {
            let members: BTreeSet<usize> =
                (0..first_of.len()).filter(|u| first_of[*u] == c).collect();
            let counts: Vec<u64> = (c..=hi)
                .map(|p| {
                    active
                        .get(&p)
                        .map_or(0, |a| a.intersection(&members).count() as u64)
                })
                .collect();
            let n = members.len() as u64;
            Cohort {
                start_ms: period.start(c),
                users: n,
                retention: counts
                    .iter()
                    .map(|k| if n == 0 { 0.0 } else { *k as f64 / n as f64 })
                    .collect(),
                active: counts,
            }
        })
        .collect();
    let empty = BTreeSet::new();
    let lifecycle = (lo..=hi)
        .map(|p| {
            let now = active.get(&p).unwrap_or(&empty);
            let before = active.get(&(p - 1)).unwrap_or(&empty);
            let new = now.iter().filter(|u| first_of[**u] == p).count() as u64;
            let returning = now.intersection(before).count() as u64;
            Lifecycle {
                start_ms: period.start(p),
                new,
                returning,
                resurrecting: now.len() as u64 - new - returning,
                dormant: before.difference(now).count() as u64,
            }
        })
        .collect();
    Retention {
        period,
        cohorts,
        lifecycle,
        stickiness,
        dau,
        wau,
        mau,
    }
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
        let r = retention(users.values(), Period::Day, end);
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
