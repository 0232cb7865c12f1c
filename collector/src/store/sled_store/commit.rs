//! Group commit of appends: the batches that arrive while one commit is flushing are committed
//! together by the next, in one index transaction and one flush, so a batch's acknowledgement
//! waits for at most two flushes however many agents are sending.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::part::{IndexEntry, Part};
use crate::store::{Appended, StoreError};

/// One batch's index entries, waiting to be committed.
pub(super) struct Pending {
    /// The batch id (its marker is written with the entries).
    pub(super) batch_id: String,
    /// The batch marker's value.
    pub(super) marker: Vec<u8>,
    /// Block keys and index values.
    pub(super) entries: Vec<IndexEntry>,
}

/// The queue of batches waiting for a commit, and their outcomes.
#[derive(Default)]
pub(super) struct Commits {
    queue: Mutex<Queue>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, Pending)>,
    outcomes: HashMap<u64, Result<Appended, String>>,
    /// Whether a thread is committing (it takes whatever waits when it is done).
    leading: bool,
    next_ticket: u64,
}

impl Commits {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits `pending` durably, with whatever other batches wait alongside it: a caller that
    /// finds no commit running commits everything waiting in one round; the others wait for
    /// their outcome or their turn to lead.
    pub(super) fn commit(&self, part: &Part, pending: Pending) -> Result<Appended, StoreError> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, pending));
        loop {
            if let Some(outcome) = queue.outcomes.remove(&ticket) {
                return outcome.map_err(StoreError::Commit);
            }
            if queue.leading {
                queue = self.done.wait(queue).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // No commit runs and this batch has no outcome: it waits in the queue, so this
            // thread commits what waits, one round, and hands on (a leader whose own batch is
            // done returns; another waiter takes the next round).
            queue.leading = true;
            let group = std::mem::take(&mut queue.waiting);
            drop(queue);
            let round = Round {
                commits: self,
                tickets: group.iter().map(|(t, _)| *t).collect(),
            };
            let outcomes = commit_group(part, &group);
            round.finish(outcomes);
            queue = self.lock();
        }
    }
}

/// One round of commits in progress: it records the outcomes and hands the lead on when it
/// ends, even by a panic (the group's batches then fail, and the next waiter leads), so no
/// append waits for a leader that is gone.
struct Round<'a> {
    commits: &'a Commits,
    tickets: Vec<u64>,
}

impl Round<'_> {
    fn finish(mut self, outcomes: Vec<(u64, Result<Appended, String>)>) {
        let mut queue = self.commits.lock();
        queue.outcomes.extend(outcomes);
        self.tickets.clear();
        drop(queue);
    }
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        let mut queue = self.commits.lock();
        for t in self.tickets.drain(..) {
            queue
                .outcomes
                .insert(t, Err("the commit stopped (panicked)".into()));
        }
        queue.leading = false;
        self.commits.done.notify_all();
    }
}

/// One transaction for the whole group (a batch already stored, or twice in the group, is a
/// duplicate), then one flush.
fn commit_group(part: &Part, group: &[(u64, Pending)]) -> Vec<(u64, Result<Appended, String>)> {
    let trees = (&part.blocks, &part.batches);
    let result = trees.transaction(|(blocks, batches)| {
        let mut outcomes = Vec::with_capacity(group.len());
        for (ticket, p) in group {
            if batches.get(p.batch_id.as_bytes())?.is_some() {
                outcomes.push((*ticket, Appended::Duplicate));
                continue;
            }
            for (key, value) in &p.entries {
                blocks.insert(key.as_slice(), value.as_slice())?;
            }
            batches.insert(p.batch_id.as_bytes(), p.marker.as_slice())?;
            outcomes.push((*ticket, Appended::Stored));
        }
        Ok::<_, ConflictableTransactionError<()>>(outcomes)
    });
    let failed = |e: String| group.iter().map(|(t, _)| (*t, Err(e.clone()))).collect();
    let outcomes = match result {
        Ok(o) => o,
        Err(TransactionError::Storage(e)) => return failed(e.to_string()),
        Err(TransactionError::Abort(())) => return failed("transaction aborted".into()),
    };
    if let Err(e) = part.db.flush() {
        return failed(format!("flush: {e}"));
    }
    outcomes.into_iter().map(|(t, a)| (t, Ok(a))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, key: u8) -> Pending {
        Pending {
            batch_id: id.into(),
            marker: vec![1],
            entries: vec![(vec![key; 16], vec![9])],
        }
    }

    #[test]
    fn a_group_stores_each_batch_once_with_its_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let part = Part::open(dir.path()).unwrap();
        let group = [
            (0, pending("a", 1)),
            (1, pending("b", 2)),
            (2, pending("a", 3)),
        ];
        let outcomes = commit_group(&part, &group);
        use Appended::*;
        assert_eq!(
            outcomes,
            vec![(0, Ok(Stored)), (1, Ok(Stored)), (2, Ok(Duplicate))]
        );
        assert_eq!(part.blocks.len(), 2, "the second `a` wrote nothing");
        assert_eq!(part.blocks.get([2u8; 16]).unwrap().unwrap().as_ref(), [9]);
        let again = commit_group(&part, &[(3, pending("b", 4))]);
        assert_eq!(again, vec![(3, Ok(Duplicate))]);
    }

    #[test]
    fn concurrent_appends_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let part = Part::open(dir.path()).unwrap();
        let commits = Commits::default();
        let outcomes: Vec<Appended> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8u8)
                .map(|i| {
                    let (part, commits) = (&part, &commits);
                    // Batch ids 0-3 twice each: one of each pair is a duplicate.
                    s.spawn(move || commits.commit(part, pending(&format!("{}", i % 4), i)))
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect()
        });
        let stored = outcomes.iter().filter(|o| **o == Appended::Stored).count();
        assert_eq!((stored, part.batches.len(), part.blocks.len()), (4, 4, 4));
    }
}
