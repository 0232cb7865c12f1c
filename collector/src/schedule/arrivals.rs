//! When data arrives in bulk after a scheduled job ran: the rule that reruns it early.
//!
//! A job (a profile's models or analyses, a report) that ran before its data came (a fresh
//! collector before the agents' backlog, a backfill, the agents' spools after an outage) would
//! otherwise stand until `models.every` or the next report. The scheduler counts the events this
//! collector stored between its passes and reruns a job when, since the job last ran in this
//! process, the events stored at least doubled, or a burst of arrivals ended. A job this process
//! has not run yet is left to its schedule, so a restart or a fleet takeover redoes nothing.

use std::collections::HashMap;

/// Fewer new events than this never rerun a job early.
pub const MIN_EVENTS: u64 = 1_000;
/// A pass must bring at least this many events to count as a burst.
const BURST_EVENTS: u64 = 1_000;
/// A burst has ended when a pass brings less than its busiest pass divided by this.
const BURST_END: u64 = 10;

/// Events counted at each pass, and what each job has seen since it last ran.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Events stored by this process, at the last pass.
    total: u64,
    /// Events stored between the last two passes.
    last_pass: u64,
    /// Per job: the total when it last ran and its busiest pass since.
    jobs: HashMap<String, Since>,
}

#[derive(Debug, Clone, Copy)]
struct Since {
    at_run: u64,
    busiest: u64,
}

impl Arrivals {
    /// Takes a pass's reading of the events-stored counter.
    pub fn observe(&mut self, total: u64) {
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
            a.observe(total);
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
        a.observe(50_000);
        a.observe(50_001);
        assert!(!a.due("job"), "after a restart or a takeover");
    }
}
