//! Automatic segmentation: each user described by behavioral features (activity, session
//! length, recency, error exposure, feature mix), standardised, clustered by k-means (k-means++
//! starts, fixed seed) with the number of clusters chosen by the silhouette of a sample; each
//! cluster described in words by the features that set it apart.

pub use tda_schema::answers::{Cluster, RuleSegment, Segmentation};

use std::collections::BTreeMap;

use tda_schema::segment_rule::Rule;

use super::activity::{Activity, User};
use super::sessions::{duration_ms, sessions_of, SessionRules};

/// Users used to choose k (the silhouette costs the square of this).
const SAMPLE: usize = 1_500;
/// Most clusters tried.
const MAX_K: usize = 8;
/// Features of the mix (the most used ones).
const MIX: usize = 20;
/// Most users the centres are fitted on (every user is then assigned to the nearest).
const FIT: usize = 20_000;

/// One behavioral column.
struct Column {
    name: String,
    /// How to say it: a feature's share, or a measure with a unit.
    share_of: Option<String>,
}

/// The behavioral columns and each user's row (users in `order`).
fn features(
    users: &Activity,
    order: &[usize],
    rules: SessionRules,
    end: i64,
) -> (Vec<Column>, Vec<Vec<f64>>) {
    let mut totals = vec![0u64; users.feature_count()];
    for u in users.users() {
        u.feature.iter().for_each(|f| totals[*f as usize] += 1);
    }
    let mut mix: Vec<(&str, u32, u64)> = (0..totals.len())
        .map(|f| (users.feature_name(f as u32), f as u32, totals[f]))
        .collect();
    mix.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    mix.truncate(MIX);
    let mut slot = vec![usize::MAX; totals.len()];
    for (i, (_, f, _)) in mix.iter().enumerate() {
        slot[*f as usize] = i;
    }
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
    columns.extend(mix.iter().map(|(f, _, _)| Column {
        name: f.to_string(),
        share_of: Some(f.to_string()),
    }));
    let rows = order
        .iter()
        .map(|u| {
            let user = users.user(*u);
            let m = Measures::of(&user, rules, end);
            let mut row = vec![
                (m.events / m.active_days.max(1.0)).ln_1p(),
                m.session_minutes.ln_1p(),
                m.days_since_seen.ln_1p(),
                m.error_share,
            ];
            let mut mixed = vec![0.0; mix.len()];
            for f in user.feature {
                if let Some(x) = mixed.get_mut(slot[*f as usize]) {
                    *x += 1.0;
                }
            }
            row.extend(mixed.iter().map(|c| c / m.events));
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

/// The centre nearest to `p`.
fn nearest(p: &[f64], centres: &[Vec<f64>]) -> usize {
    (0..centres.len())
        .min_by(|a, b| dist2(p, &centres[*a]).total_cmp(&dist2(p, &centres[*b])))
        .unwrap_or(0)
}

/// k-means with k-means++ starts; returns each point's cluster and the centres.
fn kmeans(points: &[Vec<f64>], k: usize, rng: &mut Rng) -> (Vec<usize>, Vec<Vec<f64>>) {
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
            let best = nearest(p, &centres);
            changed |= assign[i] != best;
            assign[i] = best;
        }
        let d = points.first().map_or(0, Vec::len);
        let mut sums = vec![(vec![0.0; d], 0usize); k];
        for (p, a) in points.iter().zip(&assign) {
            sums[*a].0.iter_mut().zip(p).for_each(|(s, x)| *s += x);
            sums[*a].1 += 1;
        }
        for (centre, (sum, n)) in centres.iter_mut().zip(sums) {
            if n > 0 {
                *centre = sum.iter().map(|s| s / n as f64).collect();
            }
        }
        if !changed {
            break;
        }
    }
    (assign, centres)
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
pub fn segment(users: &Activity, rules: SessionRules, end: i64) -> Option<Segmentation> {
    if users.len() < 10 {
        return None;
    }
    let order = users.by_name();
    let (columns, rows) = features(users, &order, rules, end);
    let (z, _, _) = standardise(&rows);
    let stride = z.len().div_ceil(SAMPLE);
    let sample: Vec<Vec<f64>> = z.iter().step_by(stride).cloned().collect();
    let mut best: Option<(f64, usize)> = None;
    for k in 2..=MAX_K.min(sample.len() - 1) {
        let a = kmeans(&sample, k, &mut Rng(0x9E37_79B9_7F4A_7C15 ^ k as u64)).0;
        let s = silhouette(&sample, &a, k);
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, k));
        }
    }
    let (score, k) = best?;
    let fit_stride = z.len().div_ceil(FIT);
    let fit: Vec<Vec<f64>> = z.iter().step_by(fit_stride).cloned().collect();
    let centres = kmeans(&fit, k, &mut Rng(0x2545_F491_4F6C_DD1D)).1;
    let assign: Vec<usize> = z.iter().map(|p| nearest(p, &centres)).collect();
    let names: Vec<&str> = order.iter().map(|u| users.user(*u).name).collect();
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
                assignment.insert(names[*i].to_string(), id);
            }
            Cluster {
                id,
                users: members.len() as u64,
                share: members.len() as f64 / z.len() as f64,
                description: describe(&columns, mean_z, raw, &overall),
                examples: members
                    .iter()
                    .take(5)
                    .map(|i| names[*i].to_string())
                    .collect(),
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

/// A user's measures (see `tda_schema::segment_rule::MEASURES`).
struct Measures {
    sessions: f64,
    sessions_7d: f64,
    events: f64,
    events_7d: f64,
    active_days: f64,
    errors: f64,
    error_share: f64,
    days_since_seen: f64,
    session_minutes: f64,
}

impl Measures {
    fn of(user: &User, rules: SessionRules, end: i64) -> Measures {
        let week_ago = end - 7 * 86_400_000;
        let (mut sessions, mut sessions_7d, mut length) = (0.0, 0.0, 0i64);
        for s in sessions_of(user.ts, rules) {
            sessions += 1.0;
            sessions_7d += f64::from(u8::from(user.ts[s.start] >= week_ago));
            length += duration_ms(user.ts, &s);
        }
        let n = user.len() as f64;
        let errors = user.error.iter().filter(|e| **e).count() as f64;
        let mut days = user
            .ts
            .iter()
            .map(|t| t.div_euclid(86_400_000))
            .collect::<Vec<_>>();
        days.dedup();
        Measures {
            sessions,
            sessions_7d,
            events: n,
            events_7d: user.ts.iter().filter(|t| **t >= week_ago).count() as f64,
            active_days: days.len() as f64,
            errors,
            error_share: if n > 0.0 { errors / n } else { 0.0 },
            days_since_seen: (end - user.last()) as f64 / 86_400_000.0,
            session_minutes: length as f64 / sessions.max(1.0) / 60_000.0,
        }
    }

    fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "sessions" => self.sessions,
            "sessions_7d" => self.sessions_7d,
            "events" => self.events,
            "events_7d" => self.events_7d,
            "active_days" => self.active_days,
            "errors" => self.errors,
            "error_share" => self.error_share,
            "days_since_seen" => self.days_since_seen,
            "session_minutes" => self.session_minutes,
            _ => return None,
        })
    }
}

fn holds(rule: &Rule, m: &Measures, user: &User, uses: &dyn Fn(&str) -> u32) -> bool {
    match rule {
        Rule::And(a, b) => holds(a, m, user, uses) && holds(b, m, user, uses),
        Rule::Or(a, b) => holds(a, m, user, uses) || holds(b, m, user, uses),
        Rule::Not(a) => !holds(a, m, user, uses),
        Rule::Uses(f) => {
            let id = uses(f);
            user.feature.contains(&id)
        }
        Rule::Compare(name, op, v) => m.get(name).is_some_and(|x| op.holds(x, *v)),
    }
}

/// The members of each rule-based segment (rules were checked when the profile loaded; one
/// that does not parse matches nobody).
pub fn rule_segments(
    users: &Activity,
    segments: &[tda_schema::segment_rule::Segment],
    rules: SessionRules,
    end: i64,
) -> Vec<RuleSegment> {
    let parsed: Vec<Option<Rule>> = segments
        .iter()
        .map(|s| tda_schema::segment_rule::parse(&s.rule).ok())
        .collect();
    let uses = |f: &str| users.feature_id(f);
    let mut members: Vec<Vec<&str>> = vec![Vec::new(); segments.len()];
    if !segments.is_empty() {
        for u in users.by_name() {
            let user = users.user(u);
            let m = Measures::of(&user, rules, end);
            for (i, rule) in parsed.iter().enumerate() {
                if rule.as_ref().is_some_and(|r| holds(r, &m, &user, &uses)) {
                    members[i].push(user.name);
                }
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
