//! Funnels: ordered steps that a user must take within a conversion window after the first.
//! `ordered` allows other events between steps; `strict` allows none; `unordered` counts the
//! steps in any order. Each user counts once, from their first entry into step 1 that gets
//! furthest. Per step: users, conversion from step 1, drop-off from the step before, median time
//! from step 1. Optionally broken down by an event property of the entry event.

pub use tda_schema::answers::{Funnel, FunnelAnswer as Answer, FunnelStep as Step};

use std::collections::BTreeMap;

use super::activity::{Activity, User};
use crate::store::aggregate::{FunnelCounts, FunnelMode, FunnelQuery};
use crate::store::{Storage, StoreError};

/// The answer to `q`, named `name`.
pub fn answer(name: Option<String>, q: &FunnelQuery, funnel: Funnel) -> Answer {
    Answer {
        name,
        mode: q.mode,
        window_ms: q.window_ms,
        funnel,
    }
}

/// The funnel of `q` counted by the backend, when it can count it.
pub fn pushed_down(store: &dyn Storage, q: &FunnelQuery) -> Result<Option<Funnel>, StoreError> {
    let Some(p) = store.pushdown() else {
        return Ok(None);
    };
    Ok(p.funnel(q)?.map(|c| from_counts(q.steps, &c)))
}

/// The funnel that counts make.
pub fn from_counts(steps: &[String], c: &FunnelCounts) -> Funnel {
    Funnel {
        steps: steps_of(steps, &c.steps),
        breakdown: c
            .breakdown
            .iter()
            .map(|(k, v)| (k.clone(), steps_of(steps, v)))
            .collect(),
    }
}

/// How far one entry at `start` gets: the times (ms after it) each step was reached.
fn progress(user: &User, start: usize, steps: &[u32], window: i64, mode: FunnelMode) -> Vec<i64> {
    let t0 = user.ts[start];
    let mut reached = vec![0];
    let after = (start + 1..user.len()).take_while(|i| user.ts[*i] - t0 <= window);
    match mode {
        FunnelMode::Ordered => {
            for i in after {
                if reached.len() == steps.len() {
                    break;
                }
                if user.feature[i] == steps[reached.len()] {
                    reached.push(user.ts[i] - t0);
                }
            }
        }
        FunnelMode::Strict => {
            for i in after {
                if reached.len() == steps.len() || user.feature[i] != steps[reached.len()] {
                    break;
                }
                reached.push(user.ts[i] - t0);
            }
        }
        FunnelMode::Unordered => {
            let mut seen = vec![false; steps.len()];
            seen[0] = true;
            for i in after {
                if let Some(k) = steps
                    .iter()
                    .position(|s| *s == user.feature[i])
                    .filter(|k| !seen[*k])
                {
                    seen[k] = true;
                    reached.push(user.ts[i] - t0);
                }
            }
        }
    }
    reached
}

/// The best entry of one user: (index of the entry event, times of the steps reached).
fn best_entry(
    user: &User,
    steps: &[u32],
    window: i64,
    mode: FunnelMode,
) -> Option<(usize, Vec<i64>)> {
    let is_entry = |f: u32| match mode {
        FunnelMode::Unordered => steps.contains(&f),
        _ => f == steps[0],
    };
    let mut best: Option<(usize, Vec<i64>)> = None;
    for i in (0..user.len()).filter(|i| is_entry(user.feature[*i])) {
        let p = progress_from(user, i, steps, window, mode);
        if best.as_ref().is_none_or(|(_, b)| p.len() > b.len()) {
            let done = p.len() == steps.len();
            best = Some((i, p));
            if done {
                break;
            }
        }
    }
    best
}

fn progress_from(user: &User, i: usize, steps: &[u32], window: i64, mode: FunnelMode) -> Vec<i64> {
    if mode == FunnelMode::Unordered {
        // The entry may be any step: put it first.
        let entry = user.feature[i];
        let mut order = vec![entry];
        order.extend(steps.iter().filter(|s| **s != entry));
        return progress(user, i, &order, window, mode);
    }
    progress(user, i, steps, window, mode)
}

fn figures(steps: &[String], reached: &[Vec<i64>]) -> Vec<Step> {
    let per_step: Vec<(u64, Option<i64>)> = (0..steps.len())
        .map(|k| {
            let mut times: Vec<i64> = reached
                .iter()
                .filter(|r| r.len() > k)
                .map(|r| r[k])
                .collect();
            (times.len() as u64, super::median_ms(&mut times))
        })
        .collect();
    steps_of(steps, &per_step)
}

/// The steps' figures from, per step, the users who reached it and their median time from
/// step 1 (ignored for step 1, whose time is 0).
fn steps_of(steps: &[String], per_step: &[(u64, Option<i64>)]) -> Vec<Step> {
    let entered = per_step.first().map_or(0, |s| s.0);
    let mut prev = entered;
    steps
        .iter()
        .zip(per_step)
        .enumerate()
        .map(|(k, (name, &(users, median)))| {
            let step = Step {
                step: name.clone(),
                users,
                conversion: if entered == 0 {
                    0.0
                } else {
                    users as f64 / entered as f64
                },
                drop_off: if prev == 0 {
                    0.0
                } else {
                    1.0 - users as f64 / prev as f64
                },
                median_time_ms: if k == 0 {
                    Some(0).filter(|_| users > 0)
                } else {
                    median
                },
            };
            prev = users;
            step
        })
        .collect()
}

/// The funnel over every user's events; broken down by the activity's breakdown property
/// (of the entry event) when it was loaded with one.
pub fn funnel(users: &Activity, steps: &[String], window_ms: i64, mode: FunnelMode) -> Funnel {
    let ids: Vec<u32> = steps.iter().map(|s| users.feature_id(s)).collect();
    let mut all = Vec::new();
    let mut groups: BTreeMap<String, Vec<Vec<i64>>> = BTreeMap::new();
    for user in users.users() {
        let Some((entry, reached)) = best_entry(&user, &ids, window_ms, mode) else {
            continue;
        };
        if let Some(v) = user.value.get(entry) {
            groups
                .entry(users.value_name(*v).to_string())
                .or_default()
                .push(reached.clone());
        }
        all.push(reached);
    }
    Funnel {
        steps: figures(steps, &all),
        breakdown: groups
            .into_iter()
            .map(|(k, r)| (k, figures(steps, &r)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::by_user;
    use super::super::tests::ev;
    use super::*;

    fn steps() -> Vec<String> {
        ["login", "search", "export"].map(String::from).to_vec()
    }

    fn users() -> Activity {
        by_user(vec![
            // a: all three, with something between: ordered yes, strict no.
            ev("a", "login", 0),
            ev("a", "help", 1),
            ev("a", "search", 2),
            ev("a", "export", 5),
            // b: all three back to back.
            ev("b", "login", 0),
            ev("b", "search", 1),
            ev("b", "export", 2),
            // c: login, then search too late (window 60 min).
            ev("c", "login", 0),
            ev("c", "search", 90),
            // d: reverse order.
            ev("d", "export", 0),
            ev("d", "search", 1),
            ev("d", "login", 2),
            // e: a failed first entry, then a complete one later.
            ev("e", "login", 0),
            ev("e", "login", 200),
            ev("e", "search", 201),
            ev("e", "export", 230),
        ])
    }

    fn users_per_step(mode: FunnelMode) -> Vec<u64> {
        funnel(&users(), &steps(), 60 * 60_000, mode)
            .steps
            .iter()
            .map(|s| s.users)
            .collect()
    }

    #[test]
    fn counts_each_mode_exactly() {
        // Step 1: everyone has a login. Ordered: a, b and e's second entry convert.
        assert_eq!(users_per_step(FunnelMode::Ordered), vec![5, 3, 3]);
        // Strict: a has `help` between, so only b and e's second entry.
        assert_eq!(users_per_step(FunnelMode::Strict), vec![5, 2, 2]);
        // Unordered: d's reverse order counts too; c's search is outside the window.
        assert_eq!(users_per_step(FunnelMode::Unordered), vec![5, 4, 4]);
    }

    #[test]
    fn breaks_down_by_the_entry_event_property() {
        let mut events = Vec::new();
        for (u, plan, convert) in [
            ("a", "pro", true),
            ("b", "free", true),
            ("c", "free", false),
        ] {
            let mut login = ev(u, "login", 0);
            login.properties.insert("plan".into(), plan.into());
            events.push(login);
            if convert {
                events.push(ev(u, "search", 1));
            }
        }
        events.push(ev("d", "login", 0));
        let users = Activity::of_events(&events, Some("plan"));
        let steps = ["login", "search"].map(String::from);
        let f = funnel(&users, &steps, 60 * 60_000, FunnelMode::Ordered);
        let per: Vec<(&str, Vec<u64>)> = f
            .breakdown
            .iter()
            .map(|(k, s)| (k.as_str(), s.iter().map(|s| s.users).collect()))
            .collect();
        assert_eq!(
            per,
            vec![
                ("(none)", vec![1, 0]),
                ("free", vec![2, 1]),
                ("pro", vec![1, 1])
            ]
        );
    }

    #[test]
    fn conversion_drop_off_and_time() {
        let f = funnel(&users(), &steps(), 60 * 60_000, FunnelMode::Ordered);
        assert_eq!(f.steps[2].conversion, 0.6);
        assert_eq!(f.steps[1].drop_off, 0.4);
        assert_eq!(
            f.steps[2].median_time_ms,
            Some(5 * 60_000),
            "a 5, b 2, e 30 minutes"
        );
    }
}
