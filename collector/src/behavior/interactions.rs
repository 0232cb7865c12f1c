//! Interaction analysis: which features are used by the same users (co-usage), how each
//! feature's users grew (adoption by day), and the time between a user's interactions (overall
//! and between two uses of the same feature).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tda_schema::Event;

/// Features in the co-usage matrix (the most used ones).
const TOP: usize = 15;
const DAY_MS: i64 = 86_400_000;

/// What [`interactions`] finds.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Interactions over every user's events (oldest first).
pub fn interactions(users: &BTreeMap<String, Vec<Event>>) -> Interactions {
    let mut users_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut first_use: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut gaps = Vec::new();
    let mut reuse: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (u, events) in users {
        let mut last_of: BTreeMap<&str, i64> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                gaps.push(e.timestamp.0 - events[i - 1].timestamp.0);
            }
            match last_of.insert(&e.feature, e.timestamp.0) {
                Some(prev) => reuse
                    .entry(&e.feature)
                    .or_default()
                    .push(e.timestamp.0 - prev),
                None => first_use.entry(&e.feature).or_default().push(e.timestamp.0),
            }
            users_of.entry(&e.feature).or_default().insert(u);
        }
    }
    let mut ranked: Vec<(&str, usize)> = users_of.iter().map(|(f, s)| (*f, s.len())).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(TOP);
    let co_usage = ranked
        .iter()
        .map(|(a, _)| {
            ranked
                .iter()
                .map(|(b, _)| users_of[a].intersection(&users_of[b]).count() as u64)
                .collect()
        })
        .collect();
    let adoption = first_use
        .into_iter()
        .map(|(f, mut firsts)| {
            firsts.sort_unstable();
            let mut days: Vec<(i64, u64)> = Vec::new();
            for (n, t) in firsts.iter().enumerate() {
                let day = t.div_euclid(DAY_MS) * DAY_MS;
                match days.last_mut() {
                    Some(last) if last.0 == day => last.1 = n as u64 + 1,
                    _ => days.push((day, n as u64 + 1)),
                }
            }
            (f.to_string(), days)
        })
        .collect();
    Interactions {
        features: ranked.iter().map(|(f, _)| f.to_string()).collect(),
        co_usage,
        adoption,
        median_gap_ms: super::median_ms(&mut gaps),
        median_reuse_ms: reuse
            .into_iter()
            .filter_map(|(f, mut v)| super::median_ms(&mut v).map(|m| (f.to_string(), m)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::by_user;
    use super::super::tests::ev;
    use super::*;

    #[test]
    fn co_usage_adoption_and_gaps() {
        let users = by_user(vec![
            ev("a", "search", 0),
            ev("a", "export", 2),
            ev("a", "search", 10),
            ev("b", "search", 1),
            ev("b", "search", 5),
            ev("c", "export", 24 * 60 + 3),
        ]);
        let i = interactions(&users);
        assert_eq!(i.features, vec!["export", "search"]);
        assert_eq!(i.co_usage, vec![vec![2, 1], vec![1, 2]]);
        let monday = 1_795_392_000_000i64;
        assert_eq!(
            i.adoption["export"],
            vec![(monday, 1), (monday + DAY_MS, 2)]
        );
        assert_eq!(i.median_gap_ms, Some(4 * 60_000), "gaps 2, 8 and 4 minutes");
        assert_eq!(
            i.median_reuse_ms["search"],
            7 * 60_000,
            "reuses after 10 and 4 minutes"
        );
    }
}
