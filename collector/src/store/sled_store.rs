//! The sled backend: each batch becomes one compressed columnar block per hour it covers (events
//! with their rollup record, samples per agent), keyed by hour so range scans read only the hours
//! asked for; a batch-id tree makes appends idempotent; compaction merges an hour's blocks.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::{RwLock, RwLockReadGuard};
use serde::Deserialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};
use tda_schema::{Batch, Event, HostSample, Timestamp};

use super::columns::Properties;
use super::facts::{Facts, FactsBuilder};
use super::rollup::Rollup;
use super::segments::Segments;
use super::{columns, parallel, samples, Appended, Compacted, Deleted, Storage, StoreError};
use tda_schema::timestamp::HOUR_MS;

/// Format version written as the first byte of every block and batch marker.
pub const BLOCK_VERSION: u8 = 1;

/// One database: events under `analytics/data/`, samples under `analytics/metrics/`. Its sled
/// trees index the blocks, whose payloads (with their rollups) are segment files beside it.
struct Part {
    db: Db,
    /// Block key -> [`IN_SEGMENT`] ‖ tag (the payload is the key's segment file), or the
    /// payload itself for blocks written before segment files.
    blocks: Tree,
    batches: Tree,
    /// Rollups of blocks written before segment files, under the same key.
    rollups: Tree,
    segments: Segments,
    /// Read by every scan for as long as it runs, written while compaction or retention changes
    /// the index and deletes files: a scan sees one index (never a block and its merged copy)
    /// and every file it names. Recursive reads, so a scan inside a scan cannot wait on a writer.
    index: RwLock<()>,
}

/// A block's key and index value.
type IndexEntry = (Vec<u8>, Vec<u8>);

/// Called with a block's key and index value.
type BlockVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// Index value of a block whose payload is in its segment file (no block version uses it).
const IN_SEGMENT: u8 = 0xB0;

/// One block to store: its hour, its bytes, and (for events) its rollup record.
struct Stored {
    hour: i64,
    block: Vec<u8>,
    rollup: Option<Vec<u8>>,
    /// Appended to the index entry: the agent of a sample block, so scans for one agent skip
    /// the others without reading them.
    tag: Vec<u8>,
}

/// The hour and sequence of a block key.
fn key_parts(key: &[u8]) -> (i64, u64) {
    let word = |r: std::ops::Range<usize>| {
        key.get(r)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    (word(0..8) as i64, word(8..16))
}

fn corrupt(key: &[u8], message: String) -> StoreError {
    StoreError::Corrupt {
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        message,
    }
}

impl Part {
    fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        let part = Part {
            blocks: db.open_tree("blocks")?,
            batches: db.open_tree("batches")?,
            rollups: db.open_tree("rollups")?,
            segments: Segments::open(&dir.join("segments"))
                .map_err(|e| corrupt(b"segments", e.to_string()))?,
            index: RwLock::new(()),
            db,
        };
        part.remove_orphans()?;
        Ok(part)
    }

    /// Deletes segment files the index does not name (a crash between writing them and
    /// committing the index, or between an index change and their deletion).
    fn remove_orphans(&self) -> Result<(), StoreError> {
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
    fn write_segments(
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
                let mut value = vec![IN_SEGMENT];
                value.extend_from_slice(&b.tag);
                Ok((k, value))
            })
            .collect()
    }

    /// Writes the blocks' files, then their index entries and the batch marker in one
    /// transaction, then flushes to disk.
    fn append(&self, batch_id: &str, blocks: Vec<Stored>) -> Result<Appended, StoreError> {
        if self.batches.contains_key(batch_id)? {
            return Ok(Appended::Duplicate);
        }
        let entries = self.write_segments(blocks, block_key)?;
        let mut marker = vec![BLOCK_VERSION];
        marker.extend_from_slice(&Timestamp::now().0.to_be_bytes());
        let result = (&self.blocks, &self.batches).transaction(|(blocks, batches)| {
            if batches.get(batch_id)?.is_some() {
                return Ok(Appended::Duplicate);
            }
            for (k, v) in &entries {
                blocks.insert(k.as_slice(), v.as_slice())?;
            }
            batches.insert(batch_id, marker.as_slice())?;
            Ok::<_, ConflictableTransactionError<()>>(Appended::Stored)
        });
        let appended = match result {
            Ok(a) => a,
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => Appended::Duplicate,
        };
        if appended == Appended::Duplicate {
            let written = entries.iter().map(|(k, _)| key_parts(k));
            written.for_each(|(h, s)| self.segments.remove(h, s));
            return Ok(appended);
        }
        self.db.flush()?;
        Ok(appended)
    }

    /// Held by a scan while it reads: the index does not change under it.
    fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.index.read_recursive()
    }

    /// The payload of a block, from its segment file or (older blocks) the index itself.
    fn payload(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if value.first() == Some(&IN_SEGMENT) {
            let (hour, seq) = key_parts(key);
            return self.segments.block(hour, seq).map_err(|e| corrupt(key, e));
        }
        Ok(value.to_vec())
    }

    /// The rollup record of a block, if it has one.
    fn rollup(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if value.first() == Some(&IN_SEGMENT) {
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
    fn crowded_hours(&self, before_hour: i64) -> Result<Vec<(i64, Vec<sled::IVec>)>, StoreError> {
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
    fn swap(&self, old: &[sled::IVec], new: Vec<Stored>) -> Result<(), StoreError> {
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
    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        let _no_scans = self.index.write();
        let mut deleted = Deleted::default();
        let end = block_key(cutoff.div_euclid(HOUR_MS), 0);
        let mut files = Vec::new();
        for item in self.blocks.range(..end.clone()) {
            let (key, value) = item?;
            self.blocks.remove(&key)?;
            if value.first() == Some(&IN_SEGMENT) {
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
    fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.segments.bytes())
    }

    /// Visits each block (key, index value) of the hours overlapping `[from, to)`.
    fn each_block(&self, from: i64, to: i64, visit: &mut BlockVisit) -> Result<(), StoreError> {
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

fn block_key(hour: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&(hour as u64).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The key of a block written by compaction: the sequence's top bit set.
fn compacted_key(hour: i64, seq: u64) -> Vec<u8> {
    block_key(hour, seq | 1 << 63)
}

/// Sample blocks: columnar (version 3), or JSON (version 1, written before columns).
fn decode_samples(key: &[u8], value: &[u8]) -> Result<SampleBlock, StoreError> {
    if value.first() == Some(&samples::VERSION) {
        let (agent_id, samples) =
            samples::decode(value).map_err(|message| StoreError::Corrupt {
                key: key.iter().map(|b| format!("{b:02x}")).collect(),
                message,
            })?;
        return Ok(SampleBlock { agent_id, samples });
    }
    decode_block(key, value)
}

/// Event blocks: columnar (version 2), or JSON (version 1, written before columns).
fn decode_events(key: &[u8], value: &[u8]) -> Result<Vec<Event>, StoreError> {
    decode_events_with(key, value, Properties::Read, i64::MIN..i64::MAX)
}

/// The events of a block within a range, with or without their properties; events of older
/// (JSON) blocks are filtered after decoding.
fn decode_events_with(
    key: &[u8],
    value: &[u8],
    p: Properties,
    within: std::ops::Range<i64>,
) -> Result<Vec<Event>, StoreError> {
    if value.first() == Some(&columns::VERSION) {
        return columns::decode(value, p, within).map_err(|message| corrupt(key, message));
    }
    let mut events: Vec<Event> = decode_block(key, value)?;
    events.retain(|e| within.contains(&e.timestamp.0));
    Ok(events)
}

fn decode_rollup(key: &[u8], value: &[u8]) -> Result<Rollup, StoreError> {
    Rollup::decode(value).map_err(|message| StoreError::Corrupt {
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        message,
    })
}

fn decode_block<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    match value.first() {
        Some(&BLOCK_VERSION) => {}
        Some(&v) => {
            return Err(StoreError::Version {
                key: hex,
                version: v,
                expected: BLOCK_VERSION,
            })
        }
        None => {
            return Err(StoreError::Corrupt {
                key: hex,
                message: "empty block".into(),
            })
        }
    }
    let json = zstd::decode_all(&value[1..]).map_err(|e| StoreError::Corrupt {
        key: hex.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt {
        key: hex,
        message: e.to_string(),
    })
}

/// Groups items by the hour of their timestamp.
fn by_hour<T>(items: &[T], ts: impl Fn(&T) -> i64) -> BTreeMap<i64, Vec<&T>> {
    let mut hours: BTreeMap<i64, Vec<&T>> = BTreeMap::new();
    for item in items {
        hours
            .entry(ts(item).div_euclid(HOUR_MS))
            .or_default()
            .push(item);
    }
    hours
}

#[derive(Deserialize)]
struct SampleBlock {
    agent_id: String,
    samples: Vec<HostSample>,
}

/// Embedded storage in two sled databases under `<data_dir>/analytics/`.
pub struct SledStore {
    events: Part,
    samples: Part,
    /// Held while compacting, so two compactions never merge the same blocks.
    compacting: std::sync::Mutex<()>,
}

impl SledStore {
    /// Opens (creating) `analytics/data/events` and `analytics/metrics/samples`.
    pub fn open(analytics_dir: &Path) -> Result<Self, StoreError> {
        Ok(SledStore {
            events: Part::open(&analytics_dir.join("data").join("events"))?,
            samples: Part::open(&analytics_dir.join("metrics").join("samples"))?,
            compacting: std::sync::Mutex::new(()),
        })
    }
}

impl SledStore {
    /// The start (epoch ms) of every hour holding events or samples, oldest first; read from
    /// the block index alone.
    pub fn hours(&self) -> Result<Vec<i64>, StoreError> {
        let mut hours = std::collections::BTreeSet::new();
        for part in [&self.events, &self.samples] {
            for key in part.blocks.iter().keys() {
                hours.insert(key_parts(&key?).0 * HOUR_MS);
            }
        }
        Ok(hours.into_iter().collect())
    }

    fn scan_events_with(
        &self,
        from: i64,
        to: i64,
        properties: Properties,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        let part = &self.events;
        let _reading = part.reading();
        part.each_block(from, to, &mut |key, value| {
            let payload = part.payload(key, value)?;
            decode_events_with(key, &payload, properties, from..to)?
                .iter()
                .for_each(&mut *visit);
            Ok(())
        })
    }
}

/// Most events one compacted block holds.
const COMPACT_EVENTS: usize = 100_000;

impl SledStore {
    /// Merges the event blocks of one hour into time-sorted blocks of up to [`COMPACT_EVENTS`].
    fn compact_event_hour(&self, hour: i64, keys: &[sled::IVec]) -> Result<u64, StoreError> {
        let mut events = Vec::new();
        let reading = self.events.reading();
        for key in keys {
            if let Some(value) = self.events.blocks.get(key)? {
                events.extend(decode_events(key, &self.events.payload(key, &value)?)?);
            }
        }
        drop(reading);
        events.sort_by_key(|e| e.timestamp);
        // One rollup for the whole hour, stored with its first block: queries merge one record
        // per hour however many blocks it has.
        let mut rollup = Some(Rollup::of(&events).encode());
        let merged: Vec<Stored> = events
            .chunks(COMPACT_EVENTS)
            .map(|chunk| Stored {
                hour,
                block: columns::encode(chunk),
                rollup: rollup.take(),
                tag: Vec::new(),
            })
            .collect();
        self.events.swap(keys, merged)?;
        Ok(keys.len() as u64)
    }

    /// Merges the sample blocks of one hour into one block per agent.
    fn compact_sample_hour(&self, hour: i64, keys: &[sled::IVec]) -> Result<u64, StoreError> {
        let mut agents: BTreeMap<String, Vec<HostSample>> = BTreeMap::new();
        let reading = self.samples.reading();
        for key in keys {
            if let Some(value) = self.samples.blocks.get(key)? {
                let block = decode_samples(key, &self.samples.payload(key, &value)?)?;
                agents
                    .entry(block.agent_id)
                    .or_default()
                    .extend(block.samples);
            }
        }
        drop(reading);
        let merged: Vec<Stored> = agents
            .into_iter()
            .map(|(agent_id, mut samples)| {
                samples.sort_by_key(|s| s.timestamp);
                Stored {
                    hour,
                    block: samples::encode(&agent_id, &samples),
                    rollup: None,
                    tag: agent_id.into_bytes(),
                }
            })
            .collect();
        self.samples.swap(keys, merged)?;
        Ok(keys.len() as u64)
    }
}

impl Storage for SledStore {
    fn compact(&self, before: i64) -> Result<Compacted, StoreError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|p| p.into_inner());
        let before_hour = before.div_euclid(HOUR_MS);
        let mut done = Compacted::default();
        for (hour, keys) in self.events.crowded_hours(before_hour)? {
            done.blocks_merged += self.compact_event_hour(hour, &keys)?;
            done.hours += 1;
        }
        for (hour, keys) in self.samples.crowded_hours(before_hour)? {
            done.blocks_merged += self.compact_sample_hour(hour, &keys)?;
            done.hours += 1;
        }
        if done.hours > 0 {
            self.events.db.flush()?;
            self.samples.db.flush()?;
        }
        Ok(done)
    }

    fn append(&self, batch: &Batch) -> Result<Appended, StoreError> {
        let sample_blocks = by_hour(&batch.samples, |s| s.timestamp.0)
            .into_iter()
            .map(|(hour, samples)| Stored {
                hour,
                block: samples::encode(&batch.agent_id, &samples),
                rollup: None,
                tag: batch.agent_id.as_bytes().to_vec(),
            })
            .collect();
        let event_blocks = by_hour(&batch.events, |e| e.timestamp.0)
            .into_iter()
            .map(|(hour, events)| Stored {
                hour,
                block: columns::encode(&events),
                rollup: Some(Rollup::of(&events).encode()),
                tag: Vec::new(),
            })
            .collect();
        // Samples first, events last: a retry after a crash between the two finds the samples
        // already marked and stores only the events.
        self.samples.append(&batch.batch_id, sample_blocks)?;
        self.events.append(&batch.batch_id, event_blocks)
    }

    fn scan_events(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        self.scan_events_with(from, to, Properties::Read, visit)
    }

    fn scan_event_facts(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        self.scan_events_with(from, to, Properties::Skip, visit)
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.events.disk_bytes()? + self.samples.disk_bytes()?)
    }

    /// Decodes the range's blocks on every core (columnar blocks straight to facts, older
    /// blocks through events) and visits them in key order on this thread.
    fn scan_facts(
        &self,
        from: i64,
        to: i64,
        properties: bool,
        prepare: &(dyn Fn(&mut Facts) + Sync),
        visit: &mut dyn FnMut(&Facts),
    ) -> Result<(), StoreError> {
        let part = &self.events;
        let _reading = part.reading();
        let mut blocks = Vec::new();
        part.each_block(from, to, &mut |key, value| {
            blocks.push((key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        let p = if properties {
            Properties::Read
        } else {
            Properties::Skip
        };
        let decode = |(key, value): &(Vec<u8>, Vec<u8>)| -> Result<Facts, StoreError> {
            let payload = part.payload(key, value)?;
            let mut facts = if payload.first() == Some(&columns::VERSION) {
                columns::decode_facts(&payload, p, from..to)
                    .map_err(|message| corrupt(key, message))?
            } else {
                let mut b = FactsBuilder::new(properties);
                decode_events_with(key, &payload, p, from..to)?
                    .iter()
                    .for_each(|e| b.push(e));
                b.take()
            };
            prepare(&mut facts);
            Ok(facts)
        };
        parallel::in_order(&blocks, decode, |f| visit(&f))
    }

    fn scan_rollups(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Rollup),
    ) -> Result<(), StoreError> {
        let part = &self.events;
        let _reading = part.reading();
        part.each_block(from, to, &mut |key, value| {
            if let Some(record) = part.rollup(key, value)? {
                visit(&decode_rollup(key, &record)?);
            }
            Ok(())
        })
    }

    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        let events = self.events.delete_before(cutoff)?;
        let samples = self.samples.delete_before(cutoff)?;
        Ok(Deleted {
            blocks: events.blocks + samples.blocks,
            batch_ids: events.batch_ids,
        })
    }

    fn scan_samples(
        &self,
        from: i64,
        to: i64,
        agent: Option<&str>,
        visit: &mut dyn FnMut(&str, &HostSample),
    ) -> Result<(), StoreError> {
        let part = &self.samples;
        let _reading = part.reading();
        part.each_block(from, to, &mut |key, value| {
            // A sample block's index entry names its agent: others are skipped unread.
            let tagged = value.first() == Some(&IN_SEGMENT);
            if tagged && agent.is_some_and(|a| a.as_bytes() != &value[1..]) {
                return Ok(());
            }
            let block = decode_samples(key, &part.payload(key, value)?)?;
            if agent.is_some_and(|a| a != block.agent_id) {
                return Ok(());
            }
            let in_range = |s: &&HostSample| (from..to).contains(&s.timestamp.0);
            for s in block.samples.iter().filter(in_range) {
                visit(&block.agent_id, s);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_860_000_000; // 10:00 UTC

    // What every backend must do is in collector/tests/storage_conformance.rs; this is sled's own.

    /// A batch of agent `a` holding one event per timestamp.
    fn batch(id: &str, times: impl IntoIterator<Item = i64>) -> Batch {
        let ev = |t: i64| -> Event {
            serde_json::from_value(
                serde_json::json!({"timestamp": t, "user_id": "u", "feature": "f"}),
            )
            .unwrap()
        };
        Batch {
            version: tda_schema::wire::BATCH_FORMAT_VERSION,
            agent_id: "a".into(),
            batch_id: id.into(),
            created_at: Timestamp(T0),
            events: times.into_iter().map(ev).collect(),
            samples: vec![],
        }
    }
    #[test]
    fn unknown_block_version_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .events
            .blocks
            .insert(block_key(T0 / HOUR_MS, 1), vec![9u8, 1, 2])
            .unwrap();
        let err = store.scan_events(T0, T0 + 1, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, StoreError::Version { version: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn compaction_and_retention_delete_segment_files_and_orphans_go_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for i in 0..3 {
            let batch = batch(&format!("b{i}"), [T0 + i, T0 + HOUR_MS + i]);
            store.append(&batch).unwrap();
        }
        let files = |s: &SledStore| s.events.segments.list().len();
        assert_eq!(files(&store), 6);
        store.compact(T0 + 2 * HOUR_MS).unwrap();
        assert_eq!(files(&store), 2, "one file per compacted hour");
        store.delete_before(T0 + HOUR_MS).unwrap();
        assert_eq!(files(&store), 1, "retention removes the hour's file");
        let orphan = store.events.segments.path(T0 / HOUR_MS + 1, 99);
        std::fs::write(&orphan, b"left by a crash").unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!orphan.exists());
        let mut n = 0;
        store.scan_events(0, i64::MAX / 2, &mut |_| n += 1).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn scans_during_compaction_see_every_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        const BATCHES: i64 = 30;
        const PER_BATCH: i64 = 50;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for b in 0..BATCHES {
                    let start = T0 + b * PER_BATCH;
                    let batch = batch(&format!("b{b}"), start..start + PER_BATCH);
                    store.append(&batch).unwrap();
                    store.compact(T0 + HOUR_MS).unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // Events are only ever added: each scan sees at least what the one before it saw,
            // never a block twice (as itself and inside its merged copy), never a missing file.
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let mut seen = std::collections::HashSet::new();
                let mut n = 0;
                store
                    .scan_events(T0, T0 + HOUR_MS, &mut |e| {
                        // Slow work per event (not synchronisation): it holds the scan open
                        // between blocks while compaction runs.
                        std::thread::sleep(std::time::Duration::from_micros(20));
                        n += 1;
                        seen.insert(e.timestamp.0);
                    })
                    .unwrap();
                assert_eq!(seen.len(), n, "an event seen twice in one scan");
                assert!(n >= last, "a scan saw {n} events after one saw {last}");
                last = n;
            }
        });
        let mut n = 0;
        store
            .scan_events(T0, T0 + HOUR_MS, &mut |_| n += 1)
            .unwrap();
        assert_eq!(n, (BATCHES * PER_BATCH) as usize);
    }
}
