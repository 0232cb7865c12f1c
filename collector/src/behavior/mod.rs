//! Behavioral analytics over the events of a range, per user: sessions, journeys (paths and
//! transitions), funnels, retention with lifecycle and active-user counts, segments and
//! interactions. Each reads the range's [`Activity`]: every user's events in time order.

pub mod activity;
pub mod funnels;
pub mod interactions;
pub mod journeys;
pub mod retention;
pub mod scheduled;
pub mod segments;
pub mod sessions;

use tda_schema::answers::{ActiveUsers, BehavioralStats};

pub use activity::Activity;

/// Session rules from a profile's `[models]` (or the defaults: 30 minutes, 24 hours).
pub fn rules(models: &tda_schema::sections::ModelSettings) -> sessions::SessionRules {
    sessions::SessionRules {
        timeout_ms: models.session_timeout.0.as_millis() as i64,
        max_ms: models.session_max.0.as_millis() as i64,
    }
}

/// `GET /api/v1/stats/behavioral`: sessions, top paths, the busiest transitions, and daily
/// retention with active-user counts.
pub fn summary(users: &Activity, rules: sessions::SessionRules, to: i64) -> BehavioralStats {
    let paths = journeys::Paths::of(users, rules);
    let r = retention::retention(users, retention::Period::Day, to);
    BehavioralStats {
        kind: "behavioral".into(),
        sessions: sessions::stats(users, rules),
        top_paths: journeys::top_paths(users, &paths, None, 4, 10),
        transitions: journeys::transitions(users, &paths, 20),
        active_users: ActiveUsers {
            dau: r.dau,
            wau: r.wau,
            mau: r.mau,
        },
        lifecycle: r.lifecycle,
        stickiness: r.stickiness,
        funnels: None,
        retention_weekly: None,
        segments: None,
        profile: None,
        from: None,
        to: None,
        computed_at: None,
    }
}

/// The activity of some events (for tests).
#[cfg(test)]
pub fn by_user(events: Vec<tda_schema::Event>) -> Activity {
    Activity::of_events(&events, None)
}

/// The median of `values` (reordered), `None` when empty.
pub fn median_ms(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let (mid, odd) = (values.len() / 2, values.len() % 2 == 1);
    let (below, m, _) = values.select_nth_unstable(mid);
    let m = *m;
    Some(if odd {
        m
    } else {
        (below.iter().copied().max().unwrap_or(m) + m) / 2
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

    fn users() -> Activity {
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
        let s = sessions::stats(&users, rules);
        assert_eq!((s.sessions, s.users, s.bounce_rate), (8, 4, 0.75));
        let steps: Vec<String> = ["login", "search", "export"].map(String::from).to_vec();
        let count = |mode| {
            let f = funnels::funnel(&users, &steps, 3_600_000, mode);
            f.steps.iter().map(|s| s.users).collect::<Vec<_>>()
        };
        assert_eq!(
            count(crate::store::aggregate::FunnelMode::Ordered),
            vec![3, 2, 2]
        );
        assert_eq!(
            count(crate::store::aggregate::FunnelMode::Strict),
            vec![3, 1, 1]
        );
        let f = funnels::funnel(
            &users,
            &steps,
            3_600_000,
            crate::store::aggregate::FunnelMode::Ordered,
        );
        assert_eq!(f.steps[2].median_time_ms, Some(210_000));
        let end = 1_795_392_000_000i64 + 4 * D * 60_000;
        let r = retention::retention(&users, retention::Period::Day, end);
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
