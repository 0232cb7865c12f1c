//! Automatic segmentation: each user described by behavioral features (activity, session
//! length, recency, error exposure, feature mix), standardised, clustered by k-means (k-means++
//! starts, fixed seed) with the number of clusters chosen by the silhouette of a sample; each
//! cluster described in words by the features that set it apart.

use std::collections::BTreeMap;

use serde::Serialize;
use tda_schema::Event;

use super::sessions::{sessions_of, SessionRules};

/// Users used to choose k (the silhouette costs the square of this).
const SAMPLE: usize = 1_500;
/// Most clusters tried.
const MAX_K: usize = 8;
/// Features of the mix (the most used ones).
const MIX: usize = 20;

/// One behavioral column.
struct Column {
    name: String,
    /// How to say it: a feature's share, or a measure with a unit.
    share_of: Option<String>,
}

/// A cluster of users.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// 0-based, largest first.
    pub id: usize,
    /// Users in it.
    pub users: u64,
    /// Share of all users.
    pub share: f64,
    /// What sets it apart, in words.
    pub description: String,
    /// A few of its users.
    pub examples: Vec<String>,
}

/// The segmentation of a range's users.
#[derive(Debug, Clone, Serialize)]
pub struct Segmentation {
    /// Clusters, largest first.
    pub clusters: Vec<Cluster>,
    /// Silhouette of the chosen k on the sample (-1 to 1; higher is better separated).
    pub silhouette: f64,
    /// Each user's cluster.
    #[serde(skip)]
    pub assignment: BTreeMap<String, usize>,
}

fn features(
    users: &BTreeMap<String, Vec<Event>>,
    rules: SessionRules,
    end: i64,
) -> (Vec<Column>, Vec<Vec<f64>>) {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for e in users.values().flatten() {
        *totals.entry(&e.feature).or_default() += 1;
    }
    let mut mix: Vec<(&str, u64)> = totals.into_iter().collect();
    mix.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    mix.truncate(MIX);
    let mut columns: Vec<Column> = [
        "events per active day",
        "session length (minutes)",
        "days since last seen",
        "error share",
    ]
    .iter()
    .map(|n| Column {
        name: n.to_string(),
        share_of: None,
    })
    .collect();
    columns.extend(mix.iter().map(|(f, _)| Column {
        name: f.to_string(),
        share_of: Some(f.to_string()),
    }));
    let rows = users
        .iter()
        .map(|(u, events)| {
            let days: std::collections::BTreeSet<i64> = events
                .iter()
                .map(|e| e.timestamp.0.div_euclid(86_400_000))
                .collect();
            let sessions = sessions_of(u, events, rules);
            let mean_len = sessions.iter().map(|s| s.duration_ms()).sum::<i64>() as f64
                / sessions.len().max(1) as f64
                / 60_000.0;
            let last = events.last().map_or(end, |e| e.timestamp.0);
            let n = events.len() as f64;
            let mut row = vec![
                (n / days.len().max(1) as f64).ln_1p(),
                mean_len.ln_1p(),
                ((end - last) as f64 / 86_400_000.0).ln_1p(),
                events.iter().filter(|e| e.is_error()).count() as f64 / n,
            ];
            row.extend(
                mix.iter()
                    .map(|(f, _)| events.iter().filter(|e| e.feature == *f).count() as f64 / n),
            );
            row
        })
        .collect();
    (columns, rows)
}

fn standardise(rows: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let d = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-9)
        })
        .collect();
    let z = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, v)| (v - mean[j]) / sd[j])
                .collect()
        })
        .collect();
    (z, mean, sd)
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// A deterministic xorshift stream in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// k-means with k-means++ starts; returns each point's cluster.
fn kmeans(points: &[Vec<f64>], k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut centres: Vec<Vec<f64>> =
        vec![points[(rng.next() * points.len() as f64) as usize].clone()];
    while centres.len() < k {
        let d: Vec<f64> = points
            .iter()
            .map(|p| centres.iter().map(|c| dist2(p, c)).fold(f64::MAX, f64::min))
            .collect();
        let total: f64 = d.iter().sum();
        let mut pick = rng.next() * total;
        let idx = d
            .iter()
            .position(|x| {
                pick -= x;
                pick <= 0.0
            })
            .unwrap_or(points.len() - 1);
        centres.push(points[idx].clone());
    }
    let mut assign = vec![0; points.len()];
    for _ in 0..50 {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let best = (0..k)
                .min_by(|a, b| dist2(p, &centres[*a]).total_cmp(&dist2(p, &centres[*b])))
                .unwrap_or(0);
            changed |= assign[i] != best;
            assign[i] = best;
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> = points
                .iter()
                .zip(&assign)
                .filter(|(_, a)| **a == c)
                .map(|(p, _)| p)
                .collect();
            if !members.is_empty() {
                for (j, v) in centre.iter_mut().enumerate() {
                    *v = members.iter().map(|m| m[j]).sum::<f64>() / members.len() as f64;
                }
            }
        }
        if !changed {
            break;
        }
    }
    assign
}

/// Mean silhouette of a clustering.
fn silhouette(points: &[Vec<f64>], assign: &[usize], k: usize) -> f64 {
    let mut total = 0.0;
    for (i, p) in points.iter().enumerate() {
        let mut sums = vec![(0.0, 0u32); k];
        for (j, q) in points.iter().enumerate() {
            if i != j {
                sums[assign[j]].0 += dist2(p, q).sqrt();
                sums[assign[j]].1 += 1;
            }
        }
        let mean = |c: usize| {
            if sums[c].1 == 0 {
                0.0
            } else {
                sums[c].0 / f64::from(sums[c].1)
            }
        };
        let a = mean(assign[i]);
        let b = (0..k)
            .filter(|c| *c != assign[i] && sums[*c].1 > 0)
            .map(mean)
            .fold(f64::MAX, f64::min);
        if sums[assign[i]].1 > 0 && b < f64::MAX {
            total += (b - a) / a.max(b);
        }
    }
    total / points.len().max(1) as f64
}

fn describe(columns: &[Column], mean_z: &[f64], raw_mean: &[f64], overall: &[f64]) -> String {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by(|a, b| mean_z[*b].abs().total_cmp(&mean_z[*a].abs()));
    let words: Vec<String> = order
        .iter()
        .take(3)
        .filter(|j| mean_z[**j].abs() >= 0.5)
        .map(|&j| {
            let more = if mean_z[j] > 0.0 { "more" } else { "less" };
            match &columns[j].share_of {
                Some(f) => format!(
                    "uses {f} {more} ({:.0} % of their events vs {:.0} % overall)",
                    raw_mean[j] * 100.0,
                    overall[j] * 100.0
                ),
                None => format!(
                    "{} {} than average",
                    columns[j].name,
                    if mean_z[j] > 0.0 { "higher" } else { "lower" }
                ),
            }
        })
        .collect();
    if words.is_empty() {
        "close to the average user".into()
    } else {
        words.join("; ")
    }
}

/// Clusters the users of a range; `None` with fewer than 10 users.
pub fn segment(
    users: &BTreeMap<String, Vec<Event>>,
    rules: SessionRules,
    end: i64,
) -> Option<Segmentation> {
    if users.len() < 10 {
        return None;
    }
    let (columns, rows) = features(users, rules, end);
    let (z, _, _) = standardise(&rows);
    let stride = z.len().div_ceil(SAMPLE);
    let sample: Vec<Vec<f64>> = z.iter().step_by(stride).cloned().collect();
    let mut best: Option<(f64, usize)> = None;
    for k in 2..=MAX_K.min(sample.len() - 1) {
        let a = kmeans(&sample, k, &mut Rng(0x9E37_79B9_7F4A_7C15 ^ k as u64));
        let s = silhouette(&sample, &a, k);
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, k));
        }
    }
    let (score, k) = best?;
    let assign = kmeans(&z, k, &mut Rng(0x2545_F491_4F6C_DD1D));
    let names: Vec<&String> = users.keys().collect();
    let overall: Vec<f64> = (0..columns.len())
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64)
        .collect();
    let mut clusters: Vec<(Vec<usize>, Vec<f64>, Vec<f64>)> = (0..k)
        .map(|c| {
            let members: Vec<usize> = (0..z.len()).filter(|i| assign[*i] == c).collect();
            let m = members.len().max(1) as f64;
            let mean_z = (0..columns.len())
                .map(|j| members.iter().map(|i| z[*i][j]).sum::<f64>() / m)
                .collect();
            let raw = (0..columns.len())
                .map(|j| members.iter().map(|i| rows[*i][j]).sum::<f64>() / m)
                .collect();
            (members, mean_z, raw)
        })
        .filter(|(m, _, _)| !m.is_empty())
        .collect();
    clusters.sort_by_key(|c| std::cmp::Reverse(c.0.len()));
    let mut assignment = BTreeMap::new();
    let out = clusters
        .iter()
        .enumerate()
        .map(|(id, (members, mean_z, raw))| {
            for i in members {
                assignment.insert(names[*i].clone(), id);
            }
            Cluster {
                id,
                users: members.len() as u64,
                share: members.len() as f64 / z.len() as f64,
                description: describe(&columns, mean_z, raw, &overall),
                examples: members.iter().take(5).map(|i| names[*i].clone()).collect(),
            }
        })
        .collect();
    Some(Segmentation {
        clusters: out,
        silhouette: score,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use super::super::by_user;
    use super::super::tests::ev;
    use super::*;

    #[test]
    fn separates_two_kinds_of_users_and_says_how() {
        let mut events = Vec::new();
        for u in 0..40 {
            let (user, features) = if u % 2 == 0 {
                (format!("e{u}"), ["export", "query"])
            } else {
                (format!("g{u}"), ["generate", "preview"])
            };
            for i in 0..12 {
                events.push(ev(&user, features[i % 2], i as i64 * 3 + u));
            }
        }
        let users = by_user(events);
        let rules = SessionRules {
            timeout_ms: 1_800_000,
            max_ms: 86_400_000,
        };
        let s = segment(&users, rules, 1_795_392_000_000 + 86_400_000).unwrap();
        assert_eq!(s.clusters.len(), 2, "{s:?}");
        assert_eq!(s.clusters[0].users, 20);
        let same = |a: &str, b: &str| s.assignment[a] == s.assignment[b];
        assert!(same("e0", "e2") && same("g1", "g3") && !same("e0", "g1"));
        assert!(
            s.clusters
                .iter()
                .any(|c| c.description.contains("uses export more")),
            "{s:?}"
        );
    }
}

/// A rule-based segment's members.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSegment {
    /// Its name.
    pub name: String,
    /// Its rule.
    pub rule: String,
    /// Users meeting it.
    pub users: u64,
    /// A few of them.
    pub examples: Vec<String>,
}

/// A user's measures for segment rules (see `tda_schema::segment_rule::MEASURES`).
fn measures(
    user: &str,
    events: &[Event],
    rules: SessionRules,
    end: i64,
) -> BTreeMap<&'static str, f64> {
    let week_ago = end - 7 * 86_400_000;
    let sessions = sessions_of(user, events, rules);
    let n = events.len() as f64;
    let errors = events.iter().filter(|e| e.is_error()).count() as f64;
    let days: std::collections::BTreeSet<i64> = events
        .iter()
        .map(|e| e.timestamp.0.div_euclid(86_400_000))
        .collect();
    let last = events.last().map_or(end, |e| e.timestamp.0);
    let minutes = sessions.iter().map(|s| s.duration_ms()).sum::<i64>() as f64
        / sessions.len().max(1) as f64
        / 60_000.0;
    BTreeMap::from([
        ("sessions", sessions.len() as f64),
        (
            "sessions_7d",
            sessions
                .iter()
                .filter(|s| s.events[0].timestamp.0 >= week_ago)
                .count() as f64,
        ),
        ("events", n),
        (
            "events_7d",
            events.iter().filter(|e| e.timestamp.0 >= week_ago).count() as f64,
        ),
        ("active_days", days.len() as f64),
        ("errors", errors),
        ("error_share", if n > 0.0 { errors / n } else { 0.0 }),
        ("days_since_seen", (end - last) as f64 / 86_400_000.0),
        ("session_minutes", minutes),
    ])
}

fn holds(
    rule: &tda_schema::segment_rule::Rule,
    m: &BTreeMap<&'static str, f64>,
    events: &[Event],
) -> bool {
    use tda_schema::segment_rule::Rule;
    match rule {
        Rule::And(a, b) => holds(a, m, events) && holds(b, m, events),
        Rule::Or(a, b) => holds(a, m, events) || holds(b, m, events),
        Rule::Not(a) => !holds(a, m, events),
        Rule::Uses(f) => events.iter().any(|e| e.feature == *f),
        Rule::Compare(name, op, v) => m.get(name.as_str()).is_some_and(|x| op.holds(*x, *v)),
    }
}

/// The members of each rule-based segment (rules were checked when the profile loaded; one
/// that does not parse matches nobody).
pub fn rule_segments(
    users: &BTreeMap<String, Vec<Event>>,
    segments: &[tda_schema::segment_rule::Segment],
    rules: SessionRules,
    end: i64,
) -> Vec<RuleSegment> {
    let parsed: Vec<Option<tda_schema::segment_rule::Rule>> = segments
        .iter()
        .map(|s| tda_schema::segment_rule::parse(&s.rule).ok())
        .collect();
    let mut members: Vec<Vec<&String>> = vec![Vec::new(); segments.len()];
    for (u, events) in users {
        let m = measures(u, events, rules, end);
        for (i, rule) in parsed.iter().enumerate() {
            if rule.as_ref().is_some_and(|r| holds(r, &m, events)) {
                members[i].push(u);
            }
        }
    }
    segments
        .iter()
        .zip(members)
        .map(|(s, m)| RuleSegment {
            name: s.name.clone(),
            rule: s.rule.clone(),
            users: m.len() as u64,
            examples: m.iter().take(5).map(|u| u.to_string()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod rule_tests {
    use super::super::by_user;
    use super::super::tests::ev;
    use super::*;
    use tda_schema::segment_rule::Segment;

    #[test]
    fn members_meet_the_rule() {
        let users = by_user(vec![
            ev("a", "export", 0),
            ev("a", "search", 60),
            ev("a", "export", 120),
            ev("b", "search", 0),
            ev("c", "export", 0),
        ]);
        let rules = SessionRules {
            timeout_ms: 1_800_000,
            max_ms: 86_400_000,
        };
        let seg = |rule: &str| Segment {
            name: rule.into(),
            rule: rule.into(),
        };
        let found = rule_segments(
            &users,
            &[
                seg("uses(export) and sessions >= 2"),
                seg("not uses(export)"),
                seg("events == 1 or sessions > 5"),
            ],
            rules,
            1_795_392_000_000 + 86_400_000,
        );
        let counts: Vec<(u64, Vec<String>)> = found
            .iter()
            .map(|s| (s.users, s.examples.clone()))
            .collect();
        assert_eq!(
            counts,
            vec![
                (1, vec!["a".into()]),
                (1, vec!["b".into()]),
                (2, vec!["b".into(), "c".into()])
            ]
        );
    }
}
