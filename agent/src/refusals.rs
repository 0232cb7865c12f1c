//! Refused intake requests in the log: one line per kind of refusal a minute, with the reason and
//! how many more were refused since the last line (a misconfigured SDK must not flood the log).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of refusal is logged at most.
const EVERY: Duration = Duration::from_secs(60);

/// The last line logged per kind, and the refusals since.
#[derive(Debug, Default)]
pub struct RefusalLog {
    kinds: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RefusalLog {
    /// Notes a refusal of `kind` (`posthog`, `segment`, `events`, `route` …) with its HTTP status
    /// and reason; logs it unless that kind was logged less than a minute before `now`. Answers
    /// whether it logged.
    pub fn note(&self, kind: &str, status: u16, reason: &str, now: Instant) -> bool {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let due = match kinds.get_mut(kind) {
            Some((at, quiet)) if now.duration_since(*at) < EVERY => {
                *quiet += 1;
                return false;
            }
            Some((_, quiet)) => *quiet,
            None => 0,
        };
        kinds.insert(kind.to_string(), (now, 0));
        tracing::warn!(
            kind,
            status,
            reason,
            refused_since_last_line = due,
            "intake request refused"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_a_minute() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        assert!(log.note("posthog", 400, "body: expected value", t0));
        assert!(!log.note(
            "posthog",
            400,
            "body: expected value",
            t0 + Duration::from_secs(1)
        ));
        assert!(
            log.note("segment", 401, "write key", t0 + Duration::from_secs(2)),
            "another kind"
        );
        assert!(!log.note("posthog", 400, "again", t0 + Duration::from_secs(59)));
        assert!(log.note("posthog", 400, "again", t0 + Duration::from_secs(61)));
        let kinds = log.kinds.lock().unwrap();
        assert_eq!(kinds["posthog"].1, 0, "the count restarts after a line");
    }
}
