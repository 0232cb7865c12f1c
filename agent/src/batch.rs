//! Batching: collects events and samples, closes a batch by count, size or age, compresses it and
//! hands it to the spool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tda_schema::config::BatchConfig;
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, HostSample, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::spool::Spool;

/// zstd level used for batches: fast, and about 8-10x on event JSON.
pub const ZSTD_LEVEL: i32 = 3;

/// What the intake and the sampler hand to the batcher.
#[derive(Debug)]
pub enum Record {
    /// Events from one intake request.
    Events(Vec<Event>),
    /// One host sample.
    Sample(Box<HostSample>),
}

/// A closed batch, compressed and ready to send.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The batch id, unique per agent.
    pub batch_id: String,
    /// Number of events inside.
    pub events: u64,
    /// zstd-compressed JSON of the [`Batch`].
    pub body: Bytes,
}

/// The open batch and the rules that close it.
pub struct Batcher {
    config: BatchConfig,
    agent_id: String,
    id_prefix: String,
    seq: u64,
    events: Vec<Event>,
    samples: Vec<HostSample>,
    bytes: usize,
    opened: Option<Instant>,
}

impl Batcher {
    /// A batcher for `agent_id`; batch ids are `<agent_id>-<start ms>-<seq>`.
    pub fn new(agent_id: String, config: BatchConfig) -> Self {
        let id_prefix = format!("{agent_id}-{}", Timestamp::now().0);
        Batcher {
            config,
            agent_id,
            id_prefix,
            seq: 0,
            events: Vec::new(),
            samples: Vec::new(),
            bytes: 0,
            opened: None,
        }
    }

    /// Adds a record; returns the batches it closed.
    pub fn add(&mut self, record: Record) -> Vec<Closed> {
        let mut closed = Vec::new();
        match record {
            Record::Events(events) => {
                for ev in events {
                    self.bytes += approx_size(&ev);
                    self.events.push(ev);
                    self.opened.get_or_insert_with(Instant::now);
                    if self.full() {
                        closed.extend(self.close());
                    }
                }
            }
            Record::Sample(s) => {
                self.bytes += 512 + 8 * s.cpu_per_core.len();
                self.samples.push(*s);
                self.opened.get_or_insert_with(Instant::now);
                if self.full() {
                    closed.extend(self.close());
                }
            }
        }
        closed
    }

    fn full(&self) -> bool {
        self.events.len() + self.samples.len() >= self.config.max_events
            || self.bytes >= self.config.max_bytes
    }

    /// When the open batch must close by age, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened
            .map(|t| t + Duration::from_millis(self.config.max_age_ms))
    }

    /// Closes the open batch, if it has anything in it.
    pub fn close(&mut self) -> Option<Closed> {
        self.opened = None;
        if self.events.is_empty() && self.samples.is_empty() {
            return None;
        }
        self.seq += 1;
        let batch = Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: self.agent_id.clone(),
            batch_id: format!("{}-{}", self.id_prefix, self.seq),
            created_at: Timestamp::now(),
            events: std::mem::take(&mut self.events),
            samples: std::mem::take(&mut self.samples),
        };
        self.bytes = 0;
        let json = serde_json::to_vec(&batch).unwrap_or_default();
        let body = zstd::bulk::compress(&json, ZSTD_LEVEL).unwrap_or_default();
        Some(Closed {
            batch_id: batch.batch_id,
            events: batch.events.len() as u64,
            body: Bytes::from(body),
        })
    }
}

/// A cheap estimate of an event's JSON size.
fn approx_size(ev: &Event) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 16);
    96 + ev.user_id.len()
        + ev.feature.len()
        + opt(&ev.session_id)
        + opt(&ev.route)
        + opt(&ev.error)
        + ev.properties.len() * 48
}

/// Runs the batcher until `stop` turns true (or every sender is gone), then takes what is
/// already in the channel and closes the last batch.
pub async fn run(
    mut batcher: Batcher,
    mut records: mpsc::Receiver<Record>,
    spool: Arc<Spool>,
    mut stop: watch::Receiver<bool>,
    mut config: watch::Receiver<BatchConfig>,
) {
    let mut closing = false;
    loop {
        let deadline = batcher.deadline();
        let record = tokio::select! {
            r = records.recv() => r,
            _ = sleep_until(deadline) => {
                spool_all(&spool, batcher.close()).await;
                continue;
            }
            Ok(()) = config.changed() => {
                batcher.config = config.borrow_and_update().clone();
                continue;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                records.close();
                continue;
            }
        };
        match record {
            Some(r) => spool_all(&spool, batcher.add(r)).await,
            None => break,
        }
    }
    spool_all(&spool, batcher.close()).await;
}

/// Spools closed batches. With `refuse_intake` and a full spool, waits for room: the intake is
/// refusing meanwhile, so what waits here is bounded by one batch and the channel.
async fn spool_all(spool: &Spool, closed: impl IntoIterator<Item = Closed>) {
    for c in closed {
        // The write syncs to disk: keep it off the other tasks' way.
        while let Err(full) = tokio::task::block_in_place(|| spool.push(&c)) {
            tracing::debug!(%full, "waiting for spool room");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        serde_json::from_value(serde_json::json!({
            "timestamp": 1_795_860_000_000i64 + i as i64, "user_id": format!("u{i}"), "feature": "f"
        }))
        .unwrap()
    }

    fn config(max_events: usize) -> BatchConfig {
        BatchConfig {
            max_events,
            ..BatchConfig::default()
        }
    }

    #[test]
    fn closes_by_count_with_unique_ids_and_decodable_bodies() {
        let mut b = Batcher::new("web-1".into(), config(3));
        let closed = b.add(Record::Events((0..7).map(event).collect()));
        assert_eq!(closed.len(), 2);
        assert_ne!(closed[0].batch_id, closed[1].batch_id);
        let last = b.close().unwrap();
        assert_eq!(last.events, 1);
        assert!(b.close().is_none(), "nothing left open");
        let json = zstd::decode_all(&closed[1].body[..]).unwrap();
        let batch = tda_schema::wire::decode_batch(&json).unwrap();
        assert_eq!(batch.events, (3..6).map(event).collect::<Vec<_>>());
        assert_eq!(batch.agent_id, "web-1");
    }
}
