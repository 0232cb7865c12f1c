//! Journeys: each session as its sequence of features (repeats of the same feature in a row
//! collapsed), the most common paths of N steps (from the session start, or from a feature), the
//! transitions between features with counts (the edges of a Sankey diagram, with `$start` and
//! `$end`), and the next and previous steps of a feature.

pub use tda_schema::answers::{Edge, PathCount};

use std::collections::HashMap;

use super::activity::{Activity, NO_FEATURE};
use super::sessions::{sessions_of, SessionRules};

/// The start and end of a session in transitions.
pub const START: &str = "$start";
/// See [`START`].
pub const END: &str = "$end";
/// Feature ids standing for [`START`] and [`END`].
const START_ID: u32 = u32::MAX - 1;
const END_ID: u32 = u32::MAX - 2;

type Counts<K> = HashMap<K, u64, foldhash::fast::RandomState>;

/// Every session's feature ids, consecutive repeats collapsed, stored end to end.
#[derive(Debug, Default)]
pub struct Paths {
    steps: Vec<u32>,
    ends: Vec<usize>,
}

impl Paths {
    /// The sessions of every user, cut by `rules`.
    pub fn of(users: &Activity, rules: SessionRules) -> Paths {
        let mut p = Paths {
            steps: Vec::with_capacity(users.events()),
            ends: Vec::new(),
        };
        for user in users.users() {
            for s in sessions_of(user.ts, rules) {
                let first = p.steps.len();
                for f in &user.feature[s] {
                    if p.steps.len() == first || p.steps.last() != Some(f) {
                        p.steps.push(*f);
                    }
                }
                p.ends.push(p.steps.len());
            }
        }
        p
    }

    /// Each session's steps.
    pub fn iter(&self) -> impl Iterator<Item = &[u32]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, b)| &self.steps[a..*b])
    }
}

/// The name of a step id.
fn name(users: &Activity, id: u32) -> String {
    match id {
        START_ID => START.into(),
        END_ID => END.into(),
        f => users.feature_name(f).into(),
    }
}

/// The `top` largest counts, most first, ties by `label` (names, so answers are stable).
fn ranked<K, L: Ord>(counts: Counts<K>, top: usize, label: impl Fn(&K) -> L) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    if v.len() > top && top > 0 {
        v.select_nth_unstable_by(top - 1, |a, b| b.1.cmp(&a.1));
        let floor = v[top - 1].1;
        v.retain(|x| x.1 >= floor);
    }
    let mut v: Vec<(L, K, u64)> = v.into_iter().map(|(k, c)| (label(&k), k, c)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v.into_iter().map(|(_, k, c)| (k, c)).collect()
}

/// The `top` most common paths of up to `length` steps: from each session's start, or from
/// its first visit of `from` when given (sessions without it are left out).
pub fn top_paths(
    users: &Activity,
    paths: &Paths,
    from: Option<&str>,
    length: usize,
    top: usize,
) -> Vec<PathCount> {
    let from = from.map(|f| users.feature_id(f));
    if from == Some(NO_FEATURE) {
        return Vec::new();
    }
    let mut counts: Counts<&[u32]> = Counts::default();
    for s in paths.iter() {
        let begin = match from {
            Some(f) => match s.iter().position(|x| *x == f) {
                Some(i) => i,
                None => continue,
            },
            None => 0,
        };
        let path = &s[begin..s.len().min(begin + length)];
        if !path.is_empty() {
            *counts.entry(path).or_default() += 1;
        }
    }
    let names = |p: &&[u32]| -> Vec<String> { p.iter().map(|f| name(users, *f)).collect() };
    ranked(counts, top, names)
        .into_iter()
        .map(|(p, sessions)| PathCount {
            path: names(&p),
            sessions,
        })
        .collect()
}

/// Every transition between consecutive steps, `$start` to the first and the last to `$end`.
fn edge_counts(paths: &Paths) -> Counts<(u32, u32)> {
    let mut counts: Counts<(u32, u32)> = Counts::default();
    for s in paths.iter().filter(|s| !s.is_empty()) {
        *counts.entry((START_ID, s[0])).or_default() += 1;
        for w in s.windows(2) {
            *counts.entry((w[0], w[1])).or_default() += 1;
        }
        *counts.entry((s[s.len() - 1], END_ID)).or_default() += 1;
    }
    counts
}

/// The `top` most frequent transitions.
pub fn transitions(users: &Activity, paths: &Paths, top: usize) -> Vec<Edge> {
    edges(users, edge_counts(paths), top)
}

fn edges(users: &Activity, counts: Counts<(u32, u32)>, top: usize) -> Vec<Edge> {
    let label = |k: &(u32, u32)| (name(users, k.0), name(users, k.1));
    ranked(counts, top, label)
        .into_iter()
        .map(|((from, to), count)| Edge {
            from: name(users, from),
            to: name(users, to),
            count,
        })
        .collect()
}

/// A neighbouring step and how often it was taken.
pub type Neighbour = (String, u64);

/// The steps after and before `feature` (with `$end` / `$start`), most frequent first.
pub fn neighbours(
    users: &Activity,
    paths: &Paths,
    feature: &str,
) -> (Vec<Neighbour>, Vec<Neighbour>) {
    let id = users.feature_id(feature);
    let mut counts = edge_counts(paths);
    counts.retain(|(a, b), _| *a == id || *b == id);
    let all = edges(users, counts, usize::MAX);
    let pick = |outgoing: bool| -> Vec<Neighbour> {
        all.iter()
            .filter(|e| {
                if outgoing {
                    e.from == feature
                } else {
                    e.to == feature
                }
            })
            .map(|e| (if outgoing { &e.to } else { &e.from }.clone(), e.count))
            .collect()
    };
    (pick(true), pick(false))
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    const RULES: SessionRules = SessionRules {
        timeout_ms: 1_800_000,
        max_ms: 86_400_000,
    };

    /// One session per user: login-search-export twice, login-generate, search-export.
    fn users() -> Activity {
        let sessions: [&[&str]; 4] = [
            &["login", "search", "export"],
            &["login", "search", "export"],
            &["login", "generate"],
            &["search", "export"],
        ];
        let events: Vec<_> = sessions
            .iter()
            .enumerate()
            .flat_map(|(u, s)| {
                s.iter()
                    .enumerate()
                    .map(move |(i, f)| ev(&format!("u{u}"), f, i as i64))
            })
            .collect();
        Activity::of_events(&events, None)
    }

    #[test]
    fn paths_transitions_and_neighbours() {
        let users = users();
        let paths = Paths::of(&users, RULES);
        let top = top_paths(&users, &paths, None, 2, 10);
        assert_eq!(
            top[0],
            PathCount {
                path: vec!["login".into(), "search".into()],
                sessions: 2
            }
        );
        let from_search = top_paths(&users, &paths, Some("search"), 3, 10);
        assert_eq!(
            from_search,
            vec![PathCount {
                path: vec!["search".into(), "export".into()],
                sessions: 3
            }]
        );
        assert!(top_paths(&users, &paths, Some("nowhere"), 3, 10).is_empty());
        let edges = transitions(&users, &paths, 3);
        assert_eq!(
            edges[0],
            Edge {
                from: START.into(),
                to: "login".into(),
                count: 3
            }
        );
        assert_eq!(
            edges[1],
            Edge {
                from: "export".into(),
                to: END.into(),
                count: 3
            }
        );
        let (next, prev) = neighbours(&users, &paths, "search");
        assert_eq!(next, vec![("export".to_string(), 3)]);
        assert_eq!(prev, vec![("login".to_string(), 2), (START.to_string(), 1)]);
    }

    #[test]
    fn repeats_collapse_and_ties_rank_by_name() {
        let users = Activity::of_events(
            &[
                ev("u", "a", 0),
                ev("u", "a", 1),
                ev("u", "b", 2),
                ev("u", "a", 3),
            ],
            None,
        );
        let paths = Paths::of(&users, RULES);
        let steps: Vec<Vec<&str>> = paths
            .iter()
            .map(|s| s.iter().map(|f| users.feature_name(*f)).collect())
            .collect();
        assert_eq!(steps, vec![vec!["a", "b", "a"]]);
        let top: Vec<u64> = transitions(&users, &paths, 2)
            .iter()
            .map(|e| e.count)
            .collect();
        assert_eq!(top, vec![1, 1]);
        let first = &transitions(&users, &paths, 1)[0];
        assert_eq!((first.from.as_str(), first.to.as_str()), ("$start", "a"));
    }
}
