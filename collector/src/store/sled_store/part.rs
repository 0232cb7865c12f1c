//! One sled database of the sled backend (events, or samples): its trees index the blocks, whose
//! payloads and rollups are segment files beside it; appends, the index swap of compaction,
//! retention, and block-by-block reads under the index lock.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::{RwLock, RwLockReadGuard};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};

use super::commit::{Commits, Pending};
use super::BLOCK_VERSION;
use crate::store::segments::Segments;
use crate::store::{Appended, Deleted, StoreError};
use tda_schema::timestamp::HOUR_MS;
use tda_schema::Timestamp;

/// One database: events under `analytics/data/`, samples under `analytics/metrics/`. Its sled
/// trees index the blocks, whose payloads (with their rollups) are segment files beside it.
pub(super) struct Part {
    pub(super) db: Db,
    /// Block key -> [`IN_SEGMENT`] ‖ tag (the payload is the key's segment file), or the
    /// payload itself for blocks written before segment files.
    pub(super) blocks: Tree,
    pub(super) batches: Tree,
    /// Rollups of blocks written before segment files, under the same key.
    pub(super) rollups: Tree,
    pub(super) segments: Segments,
    /// Read by every scan for as long as it runs, written while compaction or retention changes
    /// the index and deletes files: a scan sees one index (never a block and its merged copy)
    /// and every file it names. Recursive reads, so a scan inside a scan cannot wait on a writer.
    pub(super) index: RwLock<()>,
    /// Appends waiting to be committed together.
    commits: Commits,
}

/// A block's key and index value.
pub(super) type IndexEntry = (Vec<u8>, Vec<u8>);

/// Called with a block's key and index value.
pub(super) type BlockVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// Index value of a block whose payload is in its segment file (no block version uses it).
pub(super) const IN_SEGMENT: u8 = 0xB0;
/// Index value of a block in its segment file whose events' time span is known:
/// this byte ‖ first ms (i64 BE) ‖ last ms (i64 BE) ‖ tag. Event scans skip blocks whose span
/// misses their range without reading them.
pub(super) const IN_SEGMENT_SPAN: u8 = 0xB2;

/// Whether an index value's payload is in the key's segment file.
fn in_segment(value: &[u8]) -> bool {
    matches!(value.first(), Some(&IN_SEGMENT) | Some(&IN_SEGMENT_SPAN))
}

/// The first and last event time of a block, when its index value holds them.
pub(super) fn span_of(value: &[u8]) -> Option<(i64, i64)> {
    let word = |r: std::ops::Range<usize>| value.get(r)?.try_into().ok().map(i64::from_be_bytes);
    (value.first() == Some(&IN_SEGMENT_SPAN)).then(|| Some((word(1..9)?, word(9..17)?)))?
}

/// The tag of a block's index value (the agent of a sample block), when it has one: blocks
/// written before segment files have none.
pub(super) fn tag_of(value: &[u8]) -> Option<&[u8]> {
    match value.first() {
        Some(&IN_SEGMENT) => Some(&value[1..]),
        Some(&IN_SEGMENT_SPAN) => value.get(17..),
        _ => None,
    }
}

/// One block to store: its hour, its bytes, and (for events) its rollup record.
pub(super) struct Stored {
    pub(super) hour: i64,
    pub(super) block: Vec<u8>,
    pub(super) rollup: Option<Vec<u8>>,
    /// Appended to the index entry: the agent of a sample block, so scans for one agent skip
    /// the others without reading them.
    pub(super) tag: Vec<u8>,
    /// The first and last event time of an event block, kept in its index entry so event
    /// scans skip it unread when it misses their range.
    pub(super) span: Option<(i64, i64)>,
}

/// The hour and sequence of a block key.
pub(super) fn key_parts(key: &[u8]) -> (i64, u64) {
    let word = |r: std::ops::Range<usize>| {
        key.get(r)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    (word(0..8) as i64, word(8..16))
}

pub(super) fn corrupt(key: &[u8], message: String) -> StoreError {
    StoreError::Corrupt {
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        message,
    }
}

impl Part {
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        let part = Part {
            blocks: db.open_tree("blocks")?,
            batches: db.open_tree("batches")?,
            rollups: db.open_tree("rollups")?,
            segments: Segments::open(&dir.join("segments"))
                .map_err(|e| corrupt(b"segments", e.to_string()))?,
            index: RwLock::new(()),
            commits: Commits::default(),
            db,
        };
        part.remove_orphans()?;
        Ok(part)
    }

    /// Deletes segment files the index does not name (a crash between writing them and
    /// committing the index, or between an index change and their deletion).
    pub(super) fn remove_orphans(&self) -> Result<(), StoreError> {
        for (path, id) in self.segments.list() {
            let named = match id {
                Some((hour, seq)) => self.blocks.contains_key(block_key(hour, seq))?,
                None => false,
            };
            if !named {
                tracing::warn!(file = %path.display(), "removing a segment file no index entry names");
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }

    /// Writes each block's segment file; returns the index entries (key, value) to commit.
    pub(super) fn write_segments(
        &self,
        blocks: Vec<Stored>,
        key: fn(i64, u64) -> Vec<u8>,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        blocks
            .into_iter()
            .map(|b| {
                let k = key(b.hour, self.db.generate_id()?);
                let (hour, seq) = key_parts(&k);
                let rollup = b.rollup.as_deref().unwrap_or_default();
                self.segments
                    .write(hour, seq, rollup, &b.block)
                    .map_err(|e| corrupt(&k, format!("writing segment: {e}")))?;
                let mut value = match b.span {
                    Some((first, last)) => {
                        let mut v = vec![IN_SEGMENT_SPAN];
                        v.extend_from_slice(&first.to_be_bytes());
                        v.extend_from_slice(&last.to_be_bytes());
                        v
                    }
                    None => vec![IN_SEGMENT],
                };
                value.extend_from_slice(&b.tag);
                Ok((k, value))
            })
            .collect()
    }

    /// Writes the blocks' files (each batch on its own thread: concurrent fsyncs share the file
    /// system's journal commits), then commits their index entries and the batch marker with
    /// the batches that arrive alongside, in one transaction and one flush (see [`Commits`]).
    pub(super) fn append(
        &self,
        batch_id: &str,
        blocks: Vec<Stored>,
    ) -> Result<Appended, StoreError> {
        if self.batches.contains_key(batch_id)? {
            return Ok(Appended::Duplicate);
        }
        let written = self.write_segments(blocks, block_key)?;
        let mut marker = vec![BLOCK_VERSION];
        marker.extend_from_slice(&Timestamp::now().0.to_be_bytes());
        let pending = Pending {
            batch_id: batch_id.to_string(),
            marker,
            entries: written.clone(),
        };
        let appended = self.commits.commit(self, pending)?;
        if appended == Appended::Duplicate {
            let files = written.iter().map(|(k, _)| key_parts(k));
            files.for_each(|(h, s)| self.segments.remove(h, s));
        }
        Ok(appended)
    }

    /// Held by a scan while it reads: the index does not change under it.
    pub(super) fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.index.read_recursive()
    }

    /// The payload of a block, from its segment file or (older blocks) the index itself.
    pub(super) fn payload(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if in_segment(value) {
            let (hour, seq) = key_parts(key);
            return self.segments.block(hour, seq).map_err(|e| corrupt(key, e));
        }
        Ok(value.to_vec())
    }

    /// The rollup record of a block, if it has one.
    pub(super) fn rollup(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if in_segment(value) {
            let (hour, seq) = key_parts(key);
            let r = self
                .segments
                .rollup(hour, seq)
                .map_err(|e| corrupt(key, e))?;
            return Ok((!r.is_empty()).then_some(r));
        }
        Ok(self.rollups.get(key)?.map(|v| v.to_vec()))
    }

    /// The keys of blocks of hours before `before_hour`, grouped by hour, for hours with more
    /// than one block of which one at least was not written by compaction.
    pub(super) fn crowded_hours(
        &self,
        before_hour: i64,
    ) -> Result<Vec<(i64, Vec<sled::IVec>)>, StoreError> {
        let mut hours: BTreeMap<i64, Vec<sled::IVec>> = BTreeMap::new();
        for key in self.blocks.range(..block_key(before_hour, 0)).keys() {
            let key = key?;
            hours.entry(key_parts(&key).0).or_default().push(key);
        }
        let crowded = |keys: &Vec<sled::IVec>| {
            keys.len() > 1 && keys.iter().any(|k| k.get(8).is_some_and(|b| b & 0x80 == 0))
        };
        Ok(hours
            .into_iter()
            .filter(|(_, keys)| crowded(keys))
            .collect())
    }

    /// Replaces the blocks at `old` keys by `new` ones: new files, then one index transaction,
    /// then the old files go.
    pub(super) fn swap(&self, old: &[sled::IVec], new: Vec<Stored>) -> Result<(), StoreError> {
        let entries = self.write_segments(new, compacted_key)?;
        let _no_scans = self.index.write();
        let result = (&self.blocks, &self.rollups).transaction(|(blocks, rollups)| {
            for k in old {
                blocks.remove(k)?;
                rollups.remove(k)?;
            }
            for (k, v) in &entries {
                blocks.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) | Err(TransactionError::Abort(())) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush()?;
        old.iter()
            .map(|k| key_parts(k))
            .for_each(|(h, s)| self.segments.remove(h, s));
        Ok(())
    }

    /// Removes blocks of hours wholly before `cutoff` and batch ids received before it.
    pub(super) fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        let _no_scans = self.index.write();
        let mut deleted = Deleted::default();
        let end = block_key(cutoff.div_euclid(HOUR_MS), 0);
        let mut files = Vec::new();
        for item in self.blocks.range(..end.clone()) {
            let (key, value) = item?;
            self.blocks.remove(&key)?;
            if in_segment(&value) {
                files.push(key_parts(&key));
            }
            deleted.blocks += 1;
        }
        for item in self.rollups.range(..end) {
            self.rollups.remove(item?.0)?;
        }
        for item in self.batches.iter() {
            let (id, marker) = item?;
            let received = marker
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes);
            if received.is_some_and(|r| r < cutoff) {
                self.batches.remove(id)?;
                deleted.batch_ids += 1;
            }
        }
        if deleted != Deleted::default() {
            self.db.flush()?;
        }
        files
            .into_iter()
            .for_each(|(h, s)| self.segments.remove(h, s));
        Ok(deleted)
    }

    /// Bytes on disk: the index and the segment files.
    pub(super) fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.segments.bytes())
    }

    /// [`Part::each_block`], leaving out blocks whose index entry says their events all fall
    /// outside `[from, to)`.
    pub(super) fn each_block_within(
        &self,
        from: i64,
        to: i64,
        visit: &mut BlockVisit,
    ) -> Result<(), StoreError> {
        self.each_block(from, to, &mut |key, value| match span_of(value) {
            Some((first, last)) if last < from || first >= to => Ok(()),
            _ => visit(key, value),
        })
    }

    /// Visits each block (key, index value) of the hours overlapping `[from, to)`.
    pub(super) fn each_block(
        &self,
        from: i64,
        to: i64,
        visit: &mut BlockVisit,
    ) -> Result<(), StoreError> {
        if to <= from {
            return Ok(());
        }
        let start = block_key(from.div_euclid(HOUR_MS), 0);
        let end = block_key((to - 1).div_euclid(HOUR_MS) + 1, 0);
        for item in self.blocks.range(start..end) {
            let (key, value) = item?;
            visit(&key, &value)?;
        }
        Ok(())
    }
}

pub(super) fn block_key(hour: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&(hour as u64).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The key of a block written by compaction: the sequence's top bit set.
pub(super) fn compacted_key(hour: i64, seq: u64) -> Vec<u8> {
    block_key(hour, seq | 1 << 63)
}
