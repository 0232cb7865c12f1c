//! Sessions, built on the server: a user's events split where they were inactive for longer than
//! the timeout, or where a session would last longer than its maximum.

use serde::Serialize;
use tda_schema::Event;

/// How sessions are cut.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// Inactivity that ends a session, ms.
    pub timeout_ms: i64,
    /// Longest a session lasts, ms.
    pub max_ms: i64,
}

/// One session: a run of one user's events.
#[derive(Debug, Clone, PartialEq)]
pub struct Session<'a> {
    /// The user.
    pub user: &'a str,
    /// Its events, oldest first.
    pub events: &'a [Event],
}

impl Session<'_> {
    /// From the first event to the last, ms.
    pub fn duration_ms(&self) -> i64 {
        match (self.events.first(), self.events.last()) {
            (Some(a), Some(b)) => b.timestamp.0 - a.timestamp.0,
            _ => 0,
        }
    }
}

/// Cuts one user's events (oldest first) into sessions.
pub fn sessions_of<'a>(
    user: &'a str,
    events: &'a [Event],
    rules: SessionRules,
) -> Vec<Session<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        let cut = i == events.len()
            || events[i].timestamp.0 - events[i - 1].timestamp.0 > rules.timeout_ms
            || events[i].timestamp.0 - events[start].timestamp.0 > rules.max_ms;
        if cut {
            out.push(Session {
                user,
                events: &events[start..i],
            });
            start = i;
        }
    }
    out
}

/// A summary of the sessions of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStats {
    /// Sessions.
    pub sessions: u64,
    /// Users with at least one session.
    pub users: u64,
    /// Mean events per session.
    pub events_per_session: f64,
    /// Median session length, ms.
    pub median_duration_ms: Option<i64>,
    /// Mean session length, ms.
    pub mean_duration_ms: Option<f64>,
    /// Share of sessions with a single event.
    pub bounce_rate: f64,
    /// Mean sessions per user.
    pub sessions_per_user: f64,
}

/// Summarises every user's sessions.
pub fn stats<'a>(
    users: impl Iterator<Item = (&'a String, &'a Vec<Event>)>,
    rules: SessionRules,
) -> SessionStats {
    let (mut n, mut people, mut events, mut bounces) = (0u64, 0u64, 0u64, 0u64);
    let mut durations = Vec::new();
    for (user, list) in users {
        let s = sessions_of(user, list, rules);
        people += u64::from(!s.is_empty());
        for session in &s {
            n += 1;
            events += session.events.len() as u64;
            bounces += u64::from(session.events.len() == 1);
            durations.push(session.duration_ms());
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
        let events = vec![
            ev("u", "a", 0),
            ev("u", "b", 10),
            ev("u", "c", 41),
            ev("u", "d", 70),
        ];
        let lens: Vec<usize> = sessions_of("u", &events, RULES)
            .iter()
            .map(|s| s.events.len())
            .collect();
        assert_eq!(lens, vec![2, 2], "31 minutes apart cuts; 29 does not");
        let busy: Vec<_> = (0..60).map(|i| ev("u", "a", i * 20)).collect(); // 20 h, every 20 min
        let short = SessionRules {
            max_ms: 8 * 3_600_000,
            ..RULES
        };
        let lens: Vec<usize> = sessions_of("u", &busy, short)
            .iter()
            .map(|s| s.events.len())
            .collect();
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
        let s = stats(users.iter(), RULES);
        assert_eq!((s.sessions, s.users), (3, 2));
        assert_eq!(s.median_duration_ms, Some(0));
        assert!((s.bounce_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.events_per_session - 4.0 / 3.0).abs() < 1e-12);
    }
}
