//! Sessions, built on the server: a user's events split where they were inactive for longer than
//! the timeout, or where a session would last longer than its maximum.

pub use tda_schema::answers::SessionStats;

use std::ops::Range;

use super::activity::Activity;

/// How sessions are cut.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// Inactivity that ends a session, ms.
    pub timeout_ms: i64,
    /// Longest a session lasts, ms.
    pub max_ms: i64,
}

/// Cuts one user's event times (oldest first) into sessions: the index range of each.
pub fn sessions_of(ts: &[i64], rules: SessionRules) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    (1..=ts.len()).filter_map(move |i| {
        let cut = i == ts.len()
            || ts[i] - ts[i - 1] > rules.timeout_ms
            || ts[i] - ts[start] > rules.max_ms;
        cut.then(|| {
            let r = start..i;
            start = i;
            r
        })
    })
}

/// From a session's first event to its last, ms.
pub fn duration_ms(ts: &[i64], session: &Range<usize>) -> i64 {
    ts[session.end - 1] - ts[session.start]
}

/// Summarises every user's sessions.
pub fn stats(users: &Activity, rules: SessionRules) -> SessionStats {
    let (mut n, mut people, mut events, mut bounces) = (0u64, 0u64, 0u64, 0u64);
    let mut durations = Vec::new();
    for user in users.users() {
        people += 1;
        for session in sessions_of(user.ts, rules) {
            n += 1;
            events += session.len() as u64;
            bounces += u64::from(session.len() == 1);
            durations.push(duration_ms(user.ts, &session));
        }
    }
    let mean = (!durations.is_empty())
        .then(|| durations.iter().sum::<i64>() as f64 / durations.len() as f64);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    SessionStats {
        sessions: n,
        users: people,
        events_per_session: ratio(events, n),
        median_duration_ms: super::median_ms(&mut durations),
        mean_duration_ms: mean,
        bounce_rate: ratio(bounces, n),
        sessions_per_user: ratio(n, people),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    const RULES: SessionRules = SessionRules {
        timeout_ms: 30 * 60_000,
        max_ms: 24 * 3_600_000,
    };

    #[test]
    fn cuts_at_inactivity_and_at_the_maximum_length() {
        let minutes = |m: &[i64]| -> Vec<i64> { m.iter().map(|m| m * 60_000).collect() };
        let lens: Vec<usize> = sessions_of(&minutes(&[0, 10, 41, 70]), RULES)
            .map(|s| s.len())
            .collect();
        assert_eq!(lens, vec![2, 2], "31 minutes apart cuts; 29 does not");
        let busy = minutes(&(0..60).map(|i| i * 20).collect::<Vec<_>>()); // 20 h, every 20 min
        let short = SessionRules {
            max_ms: 8 * 3_600_000,
            ..RULES
        };
        let lens: Vec<usize> = sessions_of(&busy, short).map(|s| s.len()).collect();
        assert_eq!(lens, vec![25, 25, 10]);
    }

    #[test]
    fn summary() {
        let users = super::super::by_user(vec![
            ev("a", "x", 0),
            ev("a", "y", 10),
            ev("b", "x", 5),
            ev("a", "z", 100),
        ]);
        let s = stats(&users, RULES);
        assert_eq!((s.sessions, s.users), (3, 2));
        assert_eq!(s.median_duration_ms, Some(0));
        assert!((s.bounce_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.events_per_session - 4.0 / 3.0).abs() < 1e-12);
    }
}
