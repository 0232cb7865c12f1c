//! The sled backend: each batch becomes one compressed block per hour it covers (events in
//! columns, samples as JSON), keyed by hour so range scans read only the hours asked for; a
//! batch-id tree makes appends idempotent.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};
use tda_schema::{Batch, Event, HostSample, Timestamp};

use super::{columns, Appended, Deleted, Storage, StoreError};

/// Format version written as the first byte of every block and batch marker.
pub const BLOCK_VERSION: u8 = 1;
const HOUR_MS: i64 = 3_600_000;
const ZSTD_LEVEL: i32 = 3;

/// One database: events under `analytics/data/`, samples under `analytics/metrics/`.
struct Part {
    db: Db,
    blocks: Tree,
    batches: Tree,
}

impl Part {
    fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        Ok(Part {
            blocks: db.open_tree("blocks")?,
            batches: db.open_tree("batches")?,
            db,
        })
    }

    /// Writes the blocks and the batch marker in one transaction, then flushes to disk.
    fn append(&self, batch_id: &str, blocks: Vec<(i64, Vec<u8>)>) -> Result<Appended, StoreError> {
        if self.batches.contains_key(batch_id)? {
            return Ok(Appended::Duplicate);
        }
        let keyed: Vec<(Vec<u8>, Vec<u8>)> = blocks
            .into_iter()
            .map(|(hour, value)| Ok((block_key(hour, self.db.generate_id()?), value)))
            .collect::<Result<_, sled::Error>>()?;
        let mut marker = vec![BLOCK_VERSION];
        marker.extend_from_slice(&Timestamp::now().0.to_be_bytes());
        let result = (&self.blocks, &self.batches).transaction(|(blocks, batches)| {
            if batches.get(batch_id)?.is_some() {
                return Ok(Appended::Duplicate);
            }
            for (k, v) in &keyed {
                blocks.insert(k.as_slice(), v.as_slice())?;
            }
            batches.insert(batch_id, marker.as_slice())?;
            Ok::<_, ConflictableTransactionError<()>>(Appended::Stored)
        });
        let appended = match result {
            Ok(a) => a,
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => return Ok(Appended::Duplicate),
        };
        self.db.flush()?;
        Ok(appended)
    }

    /// Removes blocks of hours wholly before `cutoff` and batch ids received before it.
    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        let mut deleted = Deleted::default();
        let end = block_key(cutoff.div_euclid(HOUR_MS), 0);
        for item in self.blocks.range(..end) {
            let (key, _) = item?;
            self.blocks.remove(key)?;
            deleted.blocks += 1;
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
        Ok(deleted)
    }

    /// Visits the decoded blocks of the hours overlapping `[from, to)`.
    fn scan<T>(
        &self,
        from: i64,
        to: i64,
        decode: fn(&[u8], &[u8]) -> Result<T, StoreError>,
        visit: &mut dyn FnMut(T),
    ) -> Result<(), StoreError> {
        if to <= from {
            return Ok(());
        }
        let start = block_key(from.div_euclid(HOUR_MS), 0);
        let end = block_key((to - 1).div_euclid(HOUR_MS) + 1, 0);
        for item in self.blocks.range(start..end) {
            let (key, value) = item?;
            visit(decode(&key, &value)?);
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

fn encode_block<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut out = vec![BLOCK_VERSION];
    out.extend(zstd::bulk::compress(&json, ZSTD_LEVEL).unwrap_or_default());
    out
}

/// Event blocks: columnar (version 2), or JSON (version 1, written before columns).
fn decode_events(key: &[u8], value: &[u8]) -> Result<Vec<Event>, StoreError> {
    if value.first() == Some(&columns::VERSION) {
        let key = key.iter().map(|b| format!("{b:02x}")).collect();
        return columns::decode(value).map_err(|message| StoreError::Corrupt { key, message });
    }
    decode_block(key, value)
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
fn by_hour<T: Clone>(items: &[T], ts: impl Fn(&T) -> i64) -> BTreeMap<i64, Vec<T>> {
    let mut hours: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    for item in items {
        hours
            .entry(ts(item).div_euclid(HOUR_MS))
            .or_default()
            .push(item.clone());
    }
    hours
}

#[derive(Serialize, Deserialize)]
struct SampleBlock {
    agent_id: String,
    samples: Vec<HostSample>,
}

/// Embedded storage in two sled databases under `<data_dir>/analytics/`.
pub struct SledStore {
    events: Part,
    samples: Part,
}

impl SledStore {
    /// Opens (creating) `analytics/data/events` and `analytics/metrics/samples`.
    pub fn open(analytics_dir: &Path) -> Result<Self, StoreError> {
        Ok(SledStore {
            events: Part::open(&analytics_dir.join("data").join("events"))?,
            samples: Part::open(&analytics_dir.join("metrics").join("samples"))?,
        })
    }
}

impl Storage for SledStore {
    fn append(&self, batch: &Batch) -> Result<Appended, StoreError> {
        let sample_blocks = by_hour(&batch.samples, |s| s.timestamp.0)
            .into_iter()
            .map(|(h, samples)| {
                (
                    h,
                    encode_block(&SampleBlock {
                        agent_id: batch.agent_id.clone(),
                        samples,
                    }),
                )
            })
            .collect();
        let event_blocks = by_hour(&batch.events, |e| e.timestamp.0)
            .into_iter()
            .map(|(h, events)| (h, columns::encode(&events)))
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
        self.events
            .scan(from, to, decode_events, &mut |block: Vec<Event>| {
                for e in block.iter().filter(|e| (from..to).contains(&e.timestamp.0)) {
                    visit(e);
                }
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
        visit: &mut dyn FnMut(&str, &HostSample),
    ) -> Result<(), StoreError> {
        self.samples
            .scan(from, to, decode_block, &mut |block: SampleBlock| {
                for s in block
                    .samples
                    .iter()
                    .filter(|s| (from..to).contains(&s.timestamp.0))
                {
                    visit(&block.agent_id, s);
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_860_000_000; // 10:00 UTC

    // What every backend must do is in collector/tests/storage_conformance.rs; this is sled's own.
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
}
