//! When data arrives in bulk after a scheduled job ran: the rule that reruns it early.
//!
//! A job (a profile's models or analyses, a report) that ran before its data came (a fresh
//! collector before the agents' backlog, a backfill, the agents' spools after an outage) would
//! otherwise stand until `models.every` or the next report. The scheduler counts the events this
//! collector stored between its passes and reruns a job when, since the job last ran in this
//! process, the events stored at least doubled, or a burst of arrivals ended. A job this process
//! has not run yet is left to its schedule, so a restart or a fleet takeover redoes nothing.
//!
//! It also tells how far data has arrived, so the streaming detectors do not score (as zeros,
//! or as the last value carried on) steps whose events are still on their way.

use std::collections::HashMap;

/// Fewer new events than this never rerun a job early.
pub const MIN_EVENTS: u64 = 1_000;
/// A pass must bring at least this many events to count as a burst.
const BURST_EVENTS: u64 = 1_000;
/// A burst has ended when a pass brings less than its busiest pass divided by this.
const BURST_END: u64 = 10;
/// How long the newest event time may stand still before the present counts as arrived (the
/// service is quiet, or this collector gets no events).
const STALL_MS: i64 = 15_000;

/// Events counted at each pass, and what each job has seen since it last ran.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Events stored by this process, at the last pass.
    total: u64,
    /// Events stored between the last two passes.
    last_pass: u64,
    /// Per job: the total when it last ran and its busiest pass since.
    jobs: HashMap<String, Since>,
    /// The newest event time stored, epoch ms (0: none yet).
    newest_ms: i64,
    /// When `newest_ms` last moved, or the first pass (epoch ms).
    moved_at: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Since {
    at_run: u64,
    busiest: u64,
}

impl Arrivals {
    /// Takes a pass's reading of the events-stored counter and the newest event time at `now`.
    pub fn observe(&mut self, total: u64, newest_ms: i64, now: i64) {
        if newest_ms > self.newest_ms || self.moved_at.is_none() {
            self.newest_ms = self.newest_ms.max(newest_ms);
            self.moved_at = Some(now);
        }
        self.last_pass = total.saturating_sub(self.total);
        self.total = total;
        for s in self.jobs.values_mut() {
            s.busiest = s.busiest.max(self.last_pass);
        }
    }

    /// Whether `job` should rerun for the data that arrived since it last ran here.
    pub fn due(&self, job: &str) -> bool {
        let Some(s) = self.jobs.get(job) else {
            return false;
        };
        let grown = self.total.saturating_sub(s.at_run);
        let doubled = grown >= s.at_run;
        let burst_over = s.busiest >= BURST_EVENTS && self.last_pass < s.busiest / BURST_END;
        grown >= MIN_EVENTS && (doubled || burst_over)
    }

    /// The time through which data has arrived: the newest event stored while that keeps moving
    /// (a backlog arrives oldest first), or the present once it has stood still for a while.
    pub fn arrived_through(&self, now: i64) -> i64 {
        match self.moved_at {
            Some(at) if now - at < STALL_MS => self.newest_ms,
            _ => now,
        }
    }

    /// Records that `job` ran now.
    pub fn ran(&mut self, job: &str) {
        let since = Since {
            at_run: self.total,
            busiest: 0,
        };
        self.jobs.insert(job.to_string(), since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds passes bringing these many events each; answers the passes after which `job` reran.
    fn reruns(passes: &[u64]) -> Vec<usize> {
        let mut a = Arrivals::default();
        a.ran("job");
        let mut total = 0;
        let mut at = Vec::new();
        for (i, n) in passes.iter().enumerate() {
            total += n;
            a.observe(total, 0, 0);
            if a.due("job") {
                a.ran("job");
                at.push(i);
            }
        }
        at
    }

    #[test]
    fn a_backfill_reruns_while_it_doubles_and_once_after_it_ends() {
        // A job ran on an empty store; 4,000 events a pass for six passes, then a trickle.
        let passes = [4_000, 4_000, 4_000, 4_000, 4_000, 4_000, 2, 1, 3, 0];
        assert_eq!(reruns(&passes), vec![0, 1, 3, 6]);
    }

    #[test]
    fn steady_traffic_reruns_only_when_the_data_doubles() {
        let passes = vec![5_000; 100];
        assert_eq!(reruns(&passes), vec![0, 1, 3, 7, 15, 31, 63]);
    }

    #[test]
    fn a_trickle_with_pauses_is_no_burst() {
        let mut passes: Vec<u64> = (0..1_000).map(|i| [3, 0, 5, 0][i % 4]).collect();
        passes[0] = 1_000;
        assert_eq!(reruns(&passes), vec![0, 500]);
    }

    #[test]
    fn a_job_not_run_by_this_process_is_left_to_its_schedule() {
        let mut a = Arrivals::default();
        a.observe(50_000, 0, 0);
        a.observe(50_001, 0, 0);
        assert!(!a.due("job"), "after a restart or a takeover");
    }

    #[test]
    fn data_has_arrived_through_the_newest_event_until_arrivals_stand_still() {
        let mut a = Arrivals::default();
        let day = 86_400_000;
        let now = 10 * day;
        a.observe(0, 0, now);
        assert_eq!(a.arrived_through(now + 5_000), 0, "nothing yet");
        // A week's backfill, oldest first, one pass every 5 s.
        for i in 1..=7 {
            a.observe(i * 1_000, 3 * day + i as i64 * day, now + i as i64 * 5_000);
            assert_eq!(
                a.arrived_through(now + i as i64 * 5_000),
                3 * day + i as i64 * day
            );
        }
        a.observe(7_001, 10 * day + 1_000, now + 40_000);
        assert_eq!(a.arrived_through(now + 50_000), 10 * day + 1_000);
        assert_eq!(
            a.arrived_through(now + 40_000 + STALL_MS),
            now + 40_000 + STALL_MS,
            "a quiet service's present has arrived"
        );
    }
}
