//! Behavioral analytics over the events of a range, per user: sessions, journeys (paths and
//! transitions), funnels, and retention with lifecycle and active-user counts. Each takes the
//! events grouped by user in time order ([`by_user`]).

pub mod funnels;
pub mod interactions;
pub mod journeys;
pub mod retention;
pub mod segments;
pub mod sessions;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tda_schema::Event;

use crate::query::Filter;
use crate::store::{Storage, StoreError};

/// The events of `[from, to)` passing `filter`, grouped by user; properties only when asked for.
pub fn load(
    store: &dyn Storage,
    from: i64,
    to: i64,
    filter: &Filter,
    properties: bool,
) -> Result<BTreeMap<String, Vec<Event>>, StoreError> {
    let mut events = Vec::new();
    let mut keep = |e: &Event| {
        if filter.matches(e) {
            events.push(e.clone());
        }
    };
    if properties || !filter.labels.is_empty() {
        store.scan_events(from, to, &mut keep)?;
    } else {
        store.scan_event_facts(from, to, &mut keep)?;
    }
    Ok(by_user(events))
}

/// Session rules from a profile's `[models]` (or the defaults: 30 minutes, 24 hours).
pub fn rules(models: &tda_schema::sections::ModelSettings) -> sessions::SessionRules {
    sessions::SessionRules {
        timeout_ms: models.session_timeout.0.as_millis() as i64,
        max_ms: models.session_max.0.as_millis() as i64,
    }
}

/// Every session's collapsed features.
pub fn session_steps(
    users: &BTreeMap<String, Vec<Event>>,
    rules: sessions::SessionRules,
) -> Vec<Vec<&str>> {
    users
        .iter()
        .flat_map(|(u, list)| sessions::sessions_of(u, list, rules))
        .map(|s| journeys::steps(&s))
        .collect()
}

/// `GET /api/v1/stats/behavioral`: sessions, top paths, the busiest transitions, and daily
/// retention with active-user counts.
pub fn summary(
    users: &BTreeMap<String, Vec<Event>>,
    rules: sessions::SessionRules,
    to: i64,
) -> Value {
    let steps = session_steps(users, rules);
    let r = retention::retention(users.values(), retention::Period::Day, to);
    json!({
        "type": "behavioral",
        "sessions": sessions::stats(users.iter(), rules),
        "top_paths": journeys::top_paths(&steps, None, 4, 10),
        "transitions": journeys::transitions(&steps, 20),
        "active_users": {"dau": r.dau, "wau": r.wau, "mau": r.mau},
        "lifecycle": r.lifecycle,
        "stickiness": r.stickiness,
    })
}

/// Each user's events, oldest first (ties keep their order).
pub fn by_user(events: Vec<Event>) -> BTreeMap<String, Vec<Event>> {
    let mut users: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        users.entry(e.user_id.clone()).or_default().push(e);
    }
    for list in users.values_mut() {
        list.sort_by_key(|e| e.timestamp);
    }
    users
}

/// The median of `values` (reordered), `None` when empty.
pub fn median_ms(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use tda_schema::Event;

    /// An event of `user` on `feature` at `minute` minutes after a fixed Monday 00:00 UTC.
    pub fn ev(user: &str, feature: &str, minute: i64) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": 1_795_392_000_000i64 + minute * 60_000, "user_id": user, "feature": feature
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod worked_example {
    //! The worked example of docs/analysis.md, exactly.
    use super::tests::ev;
    use super::*;

    const D: i64 = 24 * 60;

    fn users() -> BTreeMap<String, Vec<Event>> {
        by_user(vec![
            ev("a", "login", 0),
            ev("a", "help", 1),
            ev("a", "search", 2),
            ev("a", "export", 5),
            ev("a", "login", D + 5),
            ev("a", "export", 3 * D),
            ev("b", "login", 10),
            ev("b", "search", 11),
            ev("b", "export", 12),
            ev("b", "search", 3 * D + 1),
            ev("c", "login", D),
            ev("c", "search", 2 * D),
            ev("d", "export", 3 * D + 7),
        ])
    }

    #[test]
    fn the_documented_figures() {
        let users = users();
        let rules = sessions::SessionRules {
            timeout_ms: 30 * 60_000,
            max_ms: 86_400_000,
        };
        let s = sessions::stats(users.iter(), rules);
        assert_eq!((s.sessions, s.users, s.bounce_rate), (8, 4, 0.75));
        let steps: Vec<String> = ["login", "search", "export"].map(String::from).to_vec();
        let count = |mode| {
            let f = funnels::funnel(users.values(), &steps, 3_600_000, mode, None);
            f.steps.iter().map(|s| s.users).collect::<Vec<_>>()
        };
        assert_eq!(count(funnels::Mode::Ordered), vec![3, 2, 2]);
        assert_eq!(count(funnels::Mode::Strict), vec![3, 1, 1]);
        let f = funnels::funnel(
            users.values(),
            &steps,
            3_600_000,
            funnels::Mode::Ordered,
            None,
        );
        assert_eq!(f.steps[2].median_time_ms, Some(210_000));
        let end = 1_795_392_000_000i64 + 4 * D * 60_000;
        let r = retention::retention(users.values(), retention::Period::Day, end);
        let rows: Vec<Vec<u64>> = r
            .cohorts
            .iter()
            .filter(|c| c.users > 0)
            .map(|c| c.active.clone())
            .collect();
        assert_eq!(rows, vec![vec![2, 1, 0, 2], vec![1, 1, 0], vec![1]]);
        let life: Vec<(u64, u64, u64, u64)> = r
            .lifecycle
            .iter()
            .map(|l| (l.new, l.returning, l.resurrecting, l.dormant))
            .collect();
        assert_eq!(
            life,
            vec![(2, 0, 0, 0), (1, 1, 0, 1), (0, 1, 0, 1), (1, 0, 2, 1)]
        );
    }
}
