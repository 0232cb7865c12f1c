//! One alert rule's state machine: inactive → pending → firing → resolved, with a pending period
//! (`for`), hysteresis (a firing rule resolves only past `recovery`), `keep_firing_for`, and what
//! to do without data. Pure: the evaluator says where the value stands, this says what follows.

use serde::{Deserialize, Serialize};
use tda_schema::sections::{AlertRule, Condition, NoData};

pub use tda_schema::answers::AlertPhase as Phase;

/// Where the watched value stands against the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Beyond the threshold: the rule should fire.
    Breach,
    /// Past the recovery value but not the threshold: a firing rule keeps firing.
    Hold,
    /// Back past the recovery value.
    Clear,
}

impl Level {
    /// A value against a threshold and recovery value (the threshold when absent).
    pub fn of(value: f64, threshold: f64, recovery: Option<f64>, condition: Condition) -> Level {
        let recovery = recovery.unwrap_or(threshold);
        let beyond = |limit: f64| match condition {
            Condition::Above => value > limit,
            Condition::Below => value < limit,
        };
        if beyond(threshold) {
            Level::Breach
        } else if beyond(recovery) {
            Level::Hold
        } else {
            Level::Clear
        }
    }
}

/// The timing settings of a rule, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `for`.
    pub pending_ms: i64,
    /// `keep_firing_for`.
    pub keep_firing_ms: i64,
    /// `no_data`.
    pub no_data: NoData,
}

impl Timing {
    /// A rule's timing.
    pub fn of(rule: &AlertRule) -> Timing {
        Timing {
            pending_ms: rule.for_duration.0.as_millis() as i64,
            keep_firing_ms: rule.keep_firing_for.0.as_millis() as i64,
            no_data: rule.no_data,
        }
    }
}

/// What is kept of one alert between evaluations (persisted on every change of phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AlertState {
    /// Phase.
    pub phase: Phase,
    /// Since when the condition has held (pending, then firing), epoch ms.
    pub active_since: Option<i64>,
    /// When it last started firing, epoch ms (the notification's `startsAt`).
    pub fired_at: Option<i64>,
    /// When it last resolved, epoch ms (`endsAt`).
    pub resolved_at: Option<i64>,
    /// Since when the condition has been clear while still firing (`keep_firing_for`).
    pub cleared_since: Option<i64>,
    /// The last value seen.
    pub value: Option<f64>,
}

impl AlertState {
    /// Moves the state on by one evaluation at `now`; `None` is no data. Returns whether the
    /// phase changed.
    pub fn step(&mut self, level: Option<Level>, value: Option<f64>, t: Timing, now: i64) -> bool {
        let level = match (level, t.no_data) {
            (Some(l), _) => l,
            (None, NoData::Keep) => return false,
            (None, NoData::Ok) => Level::Clear,
            (None, NoData::Alerting) => Level::Breach,
        };
        if value.is_some() {
            self.value = value;
        }
        let before = self.phase;
        match (self.phase, level) {
            (Phase::Inactive | Phase::Resolved, Level::Breach) => {
                self.active_since = Some(now);
                self.phase = Phase::Pending;
                self.fire_if_due(t, now);
            }
            (Phase::Inactive | Phase::Resolved, _) => {}
            (Phase::Pending, Level::Breach) => self.fire_if_due(t, now),
            (Phase::Pending, _) => {
                self.phase = Phase::Inactive;
                self.active_since = None;
            }
            (Phase::Firing, Level::Breach | Level::Hold) => self.cleared_since = None,
            (Phase::Firing, Level::Clear) => {
                let since = *self.cleared_since.get_or_insert(now);
                if now - since >= t.keep_firing_ms {
                    self.phase = Phase::Resolved;
                    self.resolved_at = Some(now);
                    self.active_since = None;
                    self.cleared_since = None;
                }
            }
        }
        self.phase != before
    }

    fn fire_if_due(&mut self, t: Timing, now: i64) {
        if now - self.active_since.unwrap_or(now) >= t.pending_ms {
            self.phase = Phase::Firing;
            self.fired_at = Some(now);
            self.resolved_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;

    fn timing(pending_s: i64, keep_s: i64) -> Timing {
        Timing {
            pending_ms: pending_s * S,
            keep_firing_ms: keep_s * S,
            no_data: NoData::Keep,
        }
    }

    /// Runs values (one per second) through a rule `above 10, recovery 8`; returns the phases.
    fn run(values: &[f64], t: Timing) -> Vec<Phase> {
        let mut s = AlertState::default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let level = Level::of(*v, 10.0, Some(8.0), Condition::Above);
                s.step(Some(level), Some(*v), t, i as i64 * S);
                s.phase
            })
            .collect()
    }

    #[test]
    fn fires_only_after_for_and_resolves_past_recovery() {
        use Phase::*;
        let phases = run(&[11.0, 11.0, 11.0, 9.0, 9.0, 7.0, 7.0], timing(2, 0));
        assert_eq!(
            phases,
            vec![Pending, Pending, Firing, Firing, Firing, Resolved, Resolved]
        );
    }

    #[test]
    fn noise_around_the_threshold_does_not_flap() {
        // Alternating just above and just below the threshold: pending resets, never fires.
        let noisy: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 10.5 } else { 9.5 })
            .collect();
        assert!(!run(&noisy, timing(3, 0)).contains(&Phase::Firing));
        // Once firing, the same noise (never below the recovery value 8) keeps it firing.
        let mut values = vec![12.0; 5];
        values.extend(&noisy);
        let phases = run(&values, timing(3, 0));
        assert!(
            phases[3..].iter().all(|p| *p == Phase::Firing),
            "{phases:?}"
        );
    }

    #[test]
    fn keep_firing_for_and_no_data() {
        use Phase::*;
        let phases = run(&[11.0, 5.0, 5.0, 5.0, 11.0], timing(0, 2));
        assert_eq!(phases, vec![Firing, Firing, Firing, Resolved, Firing]);
        let mut s = AlertState::default();
        let t = Timing {
            no_data: NoData::Alerting,
            ..timing(1, 0)
        };
        assert!(s.step(None, None, t, 0), "no data alerting: pending");
        s.step(None, None, t, S);
        assert_eq!(s.phase, Firing);
        let keep = timing(0, 0);
        assert!(!s.step(None, None, keep, 2 * S), "keep: nothing changes");
        let ok = Timing {
            no_data: NoData::Ok,
            ..keep
        };
        s.step(None, None, ok, 3 * S);
        assert_eq!((s.phase, s.resolved_at), (Resolved, Some(3 * S)));
    }

    #[test]
    fn below_rules_mirror_above() {
        assert_eq!(
            Level::of(4.0, 5.0, Some(6.0), Condition::Below),
            Level::Breach
        );
        assert_eq!(
            Level::of(5.5, 5.0, Some(6.0), Condition::Below),
            Level::Hold
        );
        assert_eq!(
            Level::of(6.0, 5.0, Some(6.0), Condition::Below),
            Level::Clear
        );
        assert_eq!(Level::of(5.0, 5.0, None, Condition::Above), Level::Clear);
    }
}
