//! Journeys: each session as its sequence of features (repeats of the same feature in a row
//! collapsed), the most common paths of N steps (from the session start, or from a feature), the
//! transitions between features with counts (the edges of a Sankey diagram, with `$start` and
//! `$end`), and the next and previous steps of a feature.

use std::collections::HashMap;

use serde::Serialize;

use super::sessions::Session;

/// The start and end of a session in transitions.
pub const START: &str = "$start";
/// See [`START`].
pub const END: &str = "$end";

/// A session's features, consecutive repeats collapsed.
pub fn steps<'a>(session: &Session<'a>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for e in session.events {
        if out.last() != Some(&e.feature.as_str()) {
            out.push(&e.feature);
        }
    }
    out
}

/// A path and the sessions that took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathCount {
    /// The features, in order.
    pub path: Vec<String>,
    /// Sessions.
    pub sessions: u64,
}

/// A transition and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// From (a feature or `$start`).
    pub from: String,
    /// To (a feature or `$end`).
    pub to: String,
    /// Times.
    pub count: u64,
}

fn ranked<K: Ord + Clone>(counts: HashMap<K, u64>, top: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

/// The `top` most common paths of up to `length` steps: from each session's start, or from
/// its first visit of `from` when given (sessions without it are left out).
pub fn top_paths(
    sessions: &[Vec<&str>],
    from: Option<&str>,
    length: usize,
    top: usize,
) -> Vec<PathCount> {
    let mut counts: HashMap<Vec<&str>, u64> = HashMap::new();
    for s in sessions {
        let begin = match from {
            Some(f) => match s.iter().position(|x| *x == f) {
                Some(i) => i,
                None => continue,
            },
            None => 0,
        };
        let path: Vec<&str> = s[begin..].iter().take(length).copied().collect();
        if !path.is_empty() {
            *counts.entry(path).or_default() += 1;
        }
    }
    ranked(counts, top)
        .into_iter()
        .map(|(p, sessions)| PathCount {
            path: p.iter().map(|s| s.to_string()).collect(),
            sessions,
        })
        .collect()
}

/// Every transition between consecutive steps, with `$start` and `$end`, most frequent first.
pub fn transitions(sessions: &[Vec<&str>], top: usize) -> Vec<Edge> {
    let mut counts: HashMap<(&str, &str), u64> = HashMap::new();
    for s in sessions.iter().filter(|s| !s.is_empty()) {
        let with_ends: Vec<&str> = std::iter::once(START)
            .chain(s.iter().copied())
            .chain([END])
            .collect();
        for w in with_ends.windows(2) {
            *counts.entry((w[0], w[1])).or_default() += 1;
        }
    }
    ranked(counts, top)
        .into_iter()
        .map(|((from, to), count)| Edge {
            from: from.into(),
            to: to.into(),
            count,
        })
        .collect()
}

/// A neighbouring step and how often it is taken.
pub type Neighbour = (String, u64);

/// What comes right after (`next`) and right before (`previous`) `feature`, with counts.
pub fn neighbours(sessions: &[Vec<&str>], feature: &str) -> (Vec<Neighbour>, Vec<Neighbour>) {
    let edges = transitions(sessions, usize::MAX);
    let pick = |outgoing: bool| -> Vec<Neighbour> {
        edges
            .iter()
            .filter(|e| {
                if outgoing {
                    e.from == feature
                } else {
                    e.to == feature
                }
            })
            .map(|e| {
                (
                    if outgoing {
                        e.to.clone()
                    } else {
                        e.from.clone()
                    },
                    e.count,
                )
            })
            .collect()
    };
    (pick(true), pick(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Vec<Vec<&'static str>> {
        vec![
            vec!["login", "search", "export"],
            vec!["login", "search", "export"],
            vec!["login", "generate"],
            vec!["search", "export"],
        ]
    }

    #[test]
    fn paths_transitions_and_neighbours() {
        let top = top_paths(&sessions(), None, 2, 10);
        assert_eq!(
            top[0],
            PathCount {
                path: vec!["login".into(), "search".into()],
                sessions: 2
            }
        );
        let from_search = top_paths(&sessions(), Some("search"), 3, 10);
        assert_eq!(
            from_search,
            vec![PathCount {
                path: vec!["search".into(), "export".into()],
                sessions: 3
            }]
        );
        let edges = transitions(&sessions(), 3);
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
        let (next, prev) = neighbours(&sessions(), "search");
        assert_eq!(next, vec![("export".to_string(), 3)]);
        assert_eq!(prev, vec![("login".to_string(), 2), (START.to_string(), 1)]);
    }

    #[test]
    fn repeats_collapse() {
        let events = vec![
            super::super::tests::ev("u", "a", 0),
            super::super::tests::ev("u", "a", 1),
            super::super::tests::ev("u", "b", 2),
            super::super::tests::ev("u", "a", 3),
        ];
        let s = Session {
            user: "u",
            events: &events,
        };
        assert_eq!(steps(&s), vec!["a", "b", "a"]);
    }
}
