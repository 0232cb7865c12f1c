//! Interaction analysis: which features are used by the same users (co-usage), how each
//! feature's users grew (adoption by day), and the time between a user's interactions (overall
//! and between two uses of the same feature).

pub use tda_schema::answers::Interactions;

use super::activity::Activity;
use tda_schema::timestamp::DAY_MS;

/// Features in the co-usage matrix (the most used ones).
const TOP: usize = 15;

/// Interactions over every user's events (oldest first).
pub fn interactions(users: &Activity) -> Interactions {
    let nf = users.feature_count();
    let mut users_of = vec![0u64; nf];
    let mut first_use: Vec<Vec<i64>> = vec![Vec::new(); nf];
    let mut reuse: Vec<Vec<i64>> = vec![Vec::new(); nf];
    let mut gaps = Vec::with_capacity(users.events());
    // Per user: the features used, with the time of the last use (reset between users).
    let mut last_of: Vec<Option<i64>> = vec![None; nf];
    let mut used: Vec<Vec<u32>> = Vec::with_capacity(users.len());
    for user in users.users() {
        let mut mine = Vec::new();
        for (i, (t, f)) in user.ts.iter().zip(user.feature).enumerate() {
            if i > 0 {
                gaps.push(t - user.ts[i - 1]);
            }
            match last_of[*f as usize].replace(*t) {
                Some(prev) => reuse[*f as usize].push(t - prev),
                None => {
                    first_use[*f as usize].push(*t);
                    users_of[*f as usize] += 1;
                    mine.push(*f);
                }
            }
        }
        mine.iter().for_each(|f| last_of[*f as usize] = None);
        used.push(mine);
    }
    let mut ranked: Vec<u32> = (0..nf as u32)
        .filter(|f| users_of[*f as usize] > 0)
        .collect();
    ranked.sort_by(|a, b| {
        users_of[*b as usize]
            .cmp(&users_of[*a as usize])
            .then_with(|| users.feature_name(*a).cmp(users.feature_name(*b)))
    });
    ranked.truncate(TOP);
    let mut slot = vec![usize::MAX; nf];
    ranked
        .iter()
        .enumerate()
        .for_each(|(i, f)| slot[*f as usize] = i);
    let mut co_usage = vec![vec![0u64; ranked.len()]; ranked.len()];
    for mine in &used {
        let top: Vec<usize> = mine
            .iter()
            .map(|f| slot[*f as usize])
            .filter(|s| *s != usize::MAX)
            .collect();
        for a in &top {
            for b in &top {
                co_usage[*a][*b] += 1;
            }
        }
    }
    let name = |f: usize| users.feature_name(f as u32).to_string();
    let adoption = first_use
        .into_iter()
        .enumerate()
        .filter(|(_, firsts)| !firsts.is_empty())
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
            (name(f), days)
        })
        .collect();
    Interactions {
        features: ranked.iter().map(|f| name(*f as usize)).collect(),
        co_usage,
        adoption,
        median_gap_ms: super::median_ms(&mut gaps),
        median_reuse_ms: reuse
            .into_iter()
            .enumerate()
            .filter_map(|(f, mut v)| super::median_ms(&mut v).map(|m| (name(f), m)))
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
