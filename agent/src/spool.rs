//! The on-disk spool: every closed batch is written to its own checksummed file (write, fsync,
//! rename) before it is shipped, and deleted only once the collector acknowledges it. The spool is
//! bounded in bytes: when full it drops the oldest batch (counted, logged once per episode) or,
//! if so configured, makes the intake refuse new events. At start it re-reads what a previous run
//! left, removing and counting torn or corrupt files and keeping every good one.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tda_schema::config::WhenFull;
use tokio::sync::Notify;

use crate::batch::Closed;
use crate::counters::{add, Counters};

const MAGIC: &[u8; 4] = b"TDAS";
/// Format version of a spool file.
pub const FORMAT_VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 8 + 2;

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Order of arrival (the file name).
    pub seq: u64,
    /// The batch id.
    pub batch_id: String,
    /// Events inside.
    pub events: u64,
    /// File size, bytes.
    pub bytes: u64,
}

/// The spool refuses a batch (policy `refuse_intake` and no room).
#[derive(Debug, thiserror::Error)]
#[error("spool full ({used} of {max} bytes)")]
pub struct Full {
    /// Bytes in use.
    pub used: u64,
    /// The limit.
    pub max: u64,
}

struct State {
    entries: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
    dropping: bool,
    /// A batch was refused for want of room and waits to be spooled.
    waiting: bool,
    /// Size of the last batch written: the room the next one is expected to need.
    last_bytes: u64,
}

/// A directory of spooled batches.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
    state: Mutex<State>,
    counters: Arc<Counters>,
    /// Woken when a batch is added.
    pub ready: Notify,
}

/// Encodes a batch as a spool file: magic, version, CRC-32 of the rest, event count, id, body.
pub fn encode(batch: &Closed) -> Vec<u8> {
    let id = batch.batch_id.as_bytes();
    let mut rest = Vec::with_capacity(10 + id.len() + batch.body.len());
    rest.extend_from_slice(&batch.events.to_le_bytes());
    rest.extend_from_slice(&(id.len() as u16).to_le_bytes());
    rest.extend_from_slice(id);
    rest.extend_from_slice(&batch.body);
    let mut out = Vec::with_capacity(9 + rest.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(&rest).to_le_bytes());
    out.extend(rest);
    out
}

/// Decodes a spool file, checking magic, version, length and checksum.
pub fn decode(data: &[u8]) -> Result<Closed, String> {
    if data.len() < HEADER {
        return Err(format!("{} bytes, shorter than a header", data.len()));
    }
    if &data[..4] != MAGIC {
        return Err("not a spool file".into());
    }
    if data[4] != FORMAT_VERSION {
        return Err(format!(
            "format version {}, this build reads {FORMAT_VERSION}",
            data[4]
        ));
    }
    let crc = u32::from_le_bytes(data[5..9].try_into().map_err(|_| "header")?);
    let rest = &data[9..];
    if crc32fast::hash(rest) != crc {
        return Err("checksum mismatch (torn or corrupt)".into());
    }
    let events = u64::from_le_bytes(rest[..8].try_into().map_err(|_| "header")?);
    let id_len = u16::from_le_bytes(rest[8..10].try_into().map_err(|_| "header")?) as usize;
    let id = rest.get(10..10 + id_len).ok_or("batch id past the end")?;
    let batch_id = String::from_utf8(id.to_vec()).map_err(|_| "batch id is not UTF-8")?;
    Ok(Closed {
        batch_id,
        events,
        body: Bytes::copy_from_slice(&rest[10 + id_len..]),
    })
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.batch")
}

impl Spool {
    /// Opens (creating) the spool directory and re-reads what it holds.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        counters: Arc<Counters>,
    ) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut state = State {
            entries: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            dropping: false,
            waiting: false,
            last_bytes: 0,
        };
        let mut names: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for path in names {
            match recover(&path) {
                Ok(Some(entry)) => {
                    state.next_seq = state.next_seq.max(entry.seq + 1);
                    state.bytes += entry.bytes;
                    state.entries.push_back(entry);
                }
                Ok(None) => {}
                Err(why) => {
                    add(&counters.spool_corrupt, 1);
                    tracing::error!(file = %path.display(), error = %why, "corrupt spool file removed; the good ones are kept");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        if !state.entries.is_empty() {
            tracing::info!(
                batches = state.entries.len(),
                bytes = state.bytes,
                "spool holds batches from before; resending"
            );
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            when_full,
            state: Mutex::new(state),
            counters,
            ready: Notify::new(),
        };
        spool.publish(&spool.lock());
        Ok(spool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, state: &State) {
        self.counters
            .spool_batches
            .store(state.entries.len() as u64, Ordering::Relaxed);
        self.counters
            .spool_bytes
            .store(state.bytes, Ordering::Relaxed);
    }

    /// Whether the intake should refuse events now (policy `refuse_intake`): a batch is waiting
    /// for room, or the next batch (expected as large as the last) would not fit. The same rule
    /// as [`Spool::push`]'s admission, so the intake refuses before events pile up in memory.
    pub fn refusing(&self) -> bool {
        if self.when_full != WhenFull::RefuseIntake {
            return false;
        }
        let state = self.lock();
        state.waiting || state.bytes + state.last_bytes.max(1) > self.max_bytes
    }

    /// Whether the spool is at its limit: dropping the oldest, or refusing.
    pub fn full(&self) -> bool {
        let state = self.lock();
        state.dropping || state.waiting || state.bytes + state.last_bytes > self.max_bytes
    }

    /// Writes a batch durably; makes room first by dropping the oldest, or refuses.
    pub fn push(&self, batch: &Closed) -> Result<(), Full> {
        let data = encode(batch);
        let mut state = self.lock();
        let room = self.make_room(&mut state, data.len() as u64);
        state.waiting = room.is_err();
        if !room? {
            tracing::error!(batch_id = %batch.batch_id, bytes = data.len(), "batch larger than the whole spool; dropped");
            add(&self.counters.batches_dropped, 1);
            add(&self.counters.events_dropped, batch.events);
            return Ok(());
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        if let Err(e) = write_durably(&self.dir, seq, &data) {
            // The disk refused: the batch cannot be kept; count it as dropped, never hide it.
            tracing::error!(batch_id = %batch.batch_id, error = %e, "cannot write to the spool; batch dropped");
            add(&self.counters.batches_dropped, 1);
            add(&self.counters.events_dropped, batch.events);
            return Ok(());
        }
        state.bytes += data.len() as u64;
        state.last_bytes = data.len() as u64;
        state.entries.push_back(Entry {
            seq,
            batch_id: batch.batch_id.clone(),
            events: batch.events,
            bytes: data.len() as u64,
        });
        add(&self.counters.batches_spooled, 1);
        add(&self.counters.events_spooled, batch.events);
        self.publish(&state);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Returns whether the batch should be written (false: larger than the whole spool, dropped).
    fn make_room(&self, state: &mut State, need: u64) -> Result<bool, Full> {
        if state.bytes + need <= self.max_bytes {
            // An episode ends once the spool has drained to half: one log line per episode.
            if state.dropping && state.bytes + need <= self.max_bytes / 2 {
                state.dropping = false;
                tracing::info!("spool has room again");
            }
            return Ok(true);
        }
        if self.when_full == WhenFull::RefuseIntake {
            // The intake refuses once the next batch is not expected to fit. A batch that closes
            // anyway (a little larger than the last, or handed over just before) is admitted
            // over the limit, by at most one batch, so a durable request does not wait for room
            // while the collector is away; past that, the batch waits.
            if state.bytes < self.max_bytes && need <= self.max_bytes {
                return Ok(true);
            }
            return Err(Full {
                used: state.bytes,
                max: self.max_bytes,
            });
        }
        if !state.dropping {
            state.dropping = true;
            tracing::warn!(
                max_bytes = self.max_bytes,
                "spool full: dropping the oldest batches until the collector catches up"
            );
        }
        while state.bytes + need > self.max_bytes {
            let Some(old) = state.entries.pop_front() else {
                return Ok(false); // larger than the whole spool: the caller counts it dropped
            };
            let _ = fs::remove_file(self.dir.join(file_name(old.seq)));
            state.bytes -= old.bytes;
            add(&self.counters.batches_dropped, 1);
            add(&self.counters.events_dropped, old.events);
        }
        Ok(true)
    }

    /// The oldest batch and its body, read from disk; unreadable files are removed and counted.
    pub fn front(&self) -> Option<(Entry, Closed)> {
        loop {
            let entry = self.lock().entries.front().cloned()?;
            match fs::read(self.dir.join(file_name(entry.seq)))
                .map_err(|e| e.to_string())
                .and_then(|d| decode(&d))
            {
                Ok(batch) => return Some((entry, batch)),
                Err(why) => {
                    tracing::error!(seq = entry.seq, error = %why, "spooled batch unreadable; removed");
                    add(&self.counters.spool_corrupt, 1);
                    self.remove(entry.seq);
                }
            }
        }
    }

    /// Deletes an acknowledged batch.
    pub fn remove(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(i) = state.entries.iter().position(|e| e.seq == seq) {
            if let Some(e) = state.entries.remove(i) {
                state.bytes -= e.bytes;
                let _ = fs::remove_file(self.dir.join(file_name(seq)));
            }
        }
        self.publish(&state);
    }

    /// Replaces the batch `seq` by `parts` (its halves), which go first in the queue: written
    /// durably before the batch is removed, so a crash in between keeps both (the collector
    /// recognises the parts by their ids). The room is the batch's own.
    pub fn split(&self, seq: u64, parts: &[Closed]) -> io::Result<()> {
        let mut state = self.lock();
        let mut written = Vec::new();
        for part in parts {
            let data = encode(part);
            let part_seq = state.next_seq;
            state.next_seq += 1;
            write_durably(&self.dir, part_seq, &data)?;
            written.push(Entry {
                seq: part_seq,
                batch_id: part.batch_id.clone(),
                events: part.events,
                bytes: data.len() as u64,
            });
        }
        if let Some(i) = state.entries.iter().position(|e| e.seq == seq) {
            if let Some(e) = state.entries.remove(i) {
                state.bytes -= e.bytes;
                let _ = fs::remove_file(self.dir.join(file_name(seq)));
            }
        }
        for e in written.into_iter().rev() {
            state.bytes += e.bytes;
            state.entries.push_front(e);
        }
        self.publish(&state);
        Ok(())
    }

    /// Moves a batch the collector refused into `quarantine/`, with its error beside it; its
    /// events are counted in `events_quarantined`.
    pub fn quarantine(&self, seq: u64, error: &str) {
        let dir = self.dir.join("quarantine");
        let from = self.dir.join(file_name(seq));
        let kept = fs::create_dir_all(&dir)
            .and_then(|_| fs::rename(&from, dir.join(file_name(seq))))
            .and_then(|_| fs::write(dir.join(format!("{seq:020}.error")), error));
        if let Err(e) = kept {
            tracing::error!(seq, error = %e, "cannot quarantine batch");
        }
        let mut state = self.lock();
        if let Some(i) = state.entries.iter().position(|e| e.seq == seq) {
            if let Some(e) = state.entries.remove(i) {
                state.bytes -= e.bytes;
                add(&self.counters.events_quarantined, e.events);
            }
        }
        add(&self.counters.batches_quarantined, 1);
        self.publish(&state);
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of spooled batches.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the spool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a file left by an earlier run: `Some` for a good batch, `None` for something that is
/// not a batch file (left alone), an error for a torn or corrupt one.
fn recover(path: &Path) -> Result<Option<Entry>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".tmp") {
        return Err("unfinished write (the agent stopped while spooling)".into());
    }
    let Some(seq) = name
        .strip_suffix(".batch")
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Ok(None);
    };
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let batch = decode(&data)?;
    Ok(Some(Entry {
        seq,
        batch_id: batch.batch_id,
        events: batch.events,
        bytes: data.len() as u64,
    }))
}

/// Writes `<seq>.tmp`, syncs it, renames it to `<seq>.batch` and syncs the directory.
fn write_durably(dir: &Path, seq: u64, data: &[u8]) -> io::Result<()> {
    tda_daemon::durable::write_atomic(&dir.join(file_name(seq)), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(i: u64, events: u64, size: usize) -> Closed {
        Closed {
            batch_id: format!("b{i}"),
            events,
            body: Bytes::from(vec![i as u8; size]),
        }
    }

    fn open(dir: &Path, max: u64, when_full: WhenFull) -> (Spool, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (
            Spool::open(dir, max, when_full, counters.clone()).unwrap(),
            counters,
        )
    }

    #[test]
    fn round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        for i in 0..3 {
            spool.push(&batch(i, 10, 100)).unwrap();
        }
        let (entry, first) = spool.front().unwrap();
        assert_eq!(
            (first.batch_id.as_str(), first.events, first.body.len()),
            ("b0", 10, 100)
        );
        spool.remove(entry.seq);
        drop(spool);
        let (spool, counters) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.front().unwrap().1.batch_id, "b1");
        assert_eq!(counters.snapshot().spool_batches, 2);
        spool.push(&batch(9, 1, 1)).unwrap();
        let seqs: Vec<u64> = spool.lock().entries.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            vec![2, 3, 4],
            "sequence numbers continue after a restart"
        );
    }

    #[test]
    fn full_spool_drops_the_oldest_and_counts_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&batch(0, 7, 1000)).len() as u64;
        let (spool, counters) = open(dir.path(), one * 3, WhenFull::DropOldest);
        for i in 0..5 {
            spool.push(&batch(i, 7, 1000)).unwrap();
        }
        let ids: Vec<String> = spool
            .lock()
            .entries
            .iter()
            .map(|e| e.batch_id.clone())
            .collect();
        assert_eq!(ids, vec!["b2", "b3", "b4"], "the newest are kept");
        let s = counters.snapshot();
        assert_eq!((s.batches_dropped, s.events_dropped), (2, 14));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn refuse_policy_refuses_instead_of_dropping() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&batch(0, 1, 100)).len() as u64;
        let (spool, _) = open(dir.path(), one, WhenFull::RefuseIntake);
        spool.push(&batch(0, 1, 100)).unwrap();
        assert!(spool.refusing());
        assert!(spool.push(&batch(1, 1, 100)).is_err());
        assert_eq!(spool.len(), 1);
    }

    #[test]
    fn the_intake_is_refused_as_soon_as_the_next_batch_would_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&batch(0, 1, 1_000)).len() as u64;
        // Room for two and a half batches: the third would not fit.
        let (spool, _) = open(dir.path(), 2 * one + one / 2, WhenFull::RefuseIntake);
        spool.push(&batch(0, 1, 1_000)).unwrap();
        assert!(!spool.refusing());
        spool.push(&batch(1, 1, 1_000)).unwrap();
        assert!(spool.refusing(), "half a batch of room left: refuse now");
        // A batch that closes anyway (handed over before the refusal) is admitted over the
        // limit, by one batch at most: its requests are not left waiting for room.
        spool.push(&batch(2, 1, 1_000)).unwrap();
        assert_eq!(spool.len(), 3);
        assert!(spool.push(&batch(3, 1, 1_000)).is_err(), "not a second one");
        assert!(spool.refusing(), "a batch waits");
        let (entry, _) = spool.front().unwrap();
        spool.remove(entry.seq);
        spool.push(&batch(3, 1, 1_000)).unwrap();
        assert!(spool.refusing(), "the waiting batch went in: full again");
        for _ in 0..2 {
            let (entry, _) = spool.front().unwrap();
            spool.remove(entry.seq);
        }
        assert!(!spool.refusing(), "room again once the excess is sent");
        let (dropping, _) = open(
            tempfile::tempdir().unwrap().path(),
            one,
            WhenFull::DropOldest,
        );
        dropping.push(&batch(0, 1, 1_000)).unwrap();
        assert!(!dropping.refusing(), "drop_oldest never refuses");
    }

    #[test]
    fn torn_and_corrupt_files_are_removed_and_counted_good_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        for i in 0..4 {
            spool.push(&batch(i, 5, 200)).unwrap();
        }
        drop(spool);
        let last = dir.path().join(file_name(4));
        let data = fs::read(&last).unwrap();
        fs::write(&last, &data[..data.len() - 17]).unwrap(); // a torn tail
        let third = dir.path().join(file_name(3));
        let mut data = fs::read(&third).unwrap();
        data[40] ^= 0xff; // a flipped bit
        fs::write(&third, data).unwrap();
        fs::write(dir.path().join(format!("{:020}.tmp", 5)), b"half").unwrap();
        let (spool, counters) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        assert_eq!(counters.snapshot().spool_corrupt, 3);
        let ids: Vec<String> = spool
            .lock()
            .entries
            .iter()
            .map(|e| e.batch_id.clone())
            .collect();
        assert_eq!(ids, vec!["b0", "b1"]);
    }

    #[test]
    fn quarantine_keeps_the_batch_and_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, counters) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        spool.push(&batch(0, 3, 10)).unwrap();
        spool.quarantine(1, "400: events[0].status: bad");
        assert!(spool.is_empty());
        assert_eq!(
            fs::read_to_string(
                dir.path()
                    .join("quarantine")
                    .join(format!("{:020}.error", 1))
            )
            .unwrap(),
            "400: events[0].status: bad"
        );
        assert_eq!(counters.snapshot().batches_quarantined, 1);
        let (reopened, _) = open(dir.path(), 1 << 20, WhenFull::DropOldest);
        assert!(reopened.is_empty(), "quarantined batches are not resent");
    }
}
