//! Batching: collects events and samples, closes a batch by count, size or age, compresses it and
//! hands it to the spool. Records that ask for a durable acknowledgement are taken in groups:
//! the group's events are appended to the open batch's write-ahead log ([`crate::wal`]) with one
//! fsync, then every record of the group is acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tda_schema::config::BatchConfig;
use tda_schema::wire::BATCH_FORMAT_VERSION;
use tda_schema::{Batch, Event, HostSample, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use crate::spool::Spool;
use crate::wal::{Recovered, Wal};

/// zstd level used for batches: fast, and about 8-10x on event JSON.
pub const ZSTD_LEVEL: i32 = 3;

/// Told `true` once a record's events are on disk (in the write-ahead log or a spooled batch),
/// `false` if they could not be written.
pub type Ack = oneshot::Sender<bool>;

/// What the intake and the sampler hand to the batcher.
#[derive(Debug)]
pub enum Record {
    /// Events from one intake request, with the acknowledgement its sender waits for (when the
    /// intake answers only once they are durable).
    Events(Vec<Event>, Option<Ack>),
    /// One host sample.
    Sample(Box<HostSample>),
}

/// Records taken into one group commit at most.
const GROUP_MAX: usize = 256;

/// A closed batch, compressed and ready to send.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The batch id, unique per agent.
    pub batch_id: String,
    /// Number of events inside.
    pub events: u64,
    /// The [`Batch`] in the binary format (`tda_blocks::batch`); older spool files hold
    /// zstd-compressed JSON, which [`read_body`] reads alike.
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
    /// The open batch's id, given when it opens (the write-ahead log is kept under it).
    open_id: Option<String>,
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
            open_id: None,
        }
    }

    /// The open batch's id (giving it one if none is open yet).
    fn open_id(&mut self) -> String {
        if self.open_id.is_none() {
            self.seq += 1;
            self.open_id = Some(format!("{}-{}", self.id_prefix, self.seq));
        }
        self.open_id.clone().unwrap_or_default()
    }

    /// Adds a record's events or sample (its acknowledgement is the caller's); returns the
    /// batches it closed.
    pub fn add(&mut self, record: Record) -> Vec<Closed> {
        let mut closed = Vec::new();
        match record {
            Record::Events(events, _) => {
                for ev in events {
                    self.open_id();
                    self.bytes += ev.approx_bytes();
                    self.events.push(ev);
                    self.opened.get_or_insert_with(Instant::now);
                    if self.full() {
                        closed.extend(self.close());
                    }
                }
            }
            Record::Sample(s) => {
                self.open_id();
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
        let id = self.open_id.take();
        if self.events.is_empty() && self.samples.is_empty() {
            return None;
        }
        let batch = Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: self.agent_id.clone(),
            batch_id: id.unwrap_or_else(|| self.open_id()),
            created_at: Timestamp::now(),
            events: std::mem::take(&mut self.events),
            samples: std::mem::take(&mut self.samples),
        };
        self.open_id = None;
        self.bytes = 0;
        Some(compress(batch))
    }

    /// The batch a crashed run had open, under the id it had.
    pub fn reopen(&self, left: Recovered) -> Closed {
        compress(Batch {
            version: BATCH_FORMAT_VERSION,
            agent_id: self.agent_id.clone(),
            batch_id: left.batch_id,
            created_at: Timestamp::now(),
            events: left.events,
            samples: Vec::new(),
        })
    }
}

/// A batch as the spool keeps it and the collector takes it: the binary format.
pub fn compress(batch: Batch) -> Closed {
    let body = tda_blocks::batch::encode(&batch);
    Closed {
        batch_id: batch.batch_id,
        events: batch.events.len() as u64,
        body: Bytes::from(body),
    }
}

/// The batch a body holds, binary or zstd-compressed JSON (fields not checked).
pub fn read_body(body: &[u8]) -> Option<Batch> {
    if tda_blocks::batch::is_binary(body) {
        let parsed = tda_blocks::batch::parse(body, usize::MAX).ok()?;
        return parsed.to_batch().ok();
    }
    let json = zstd::decode_all(body).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The body as zstd-compressed JSON, for a collector that has not said it takes the binary
/// format (an older one reads every body as JSON). `None` if the body cannot be read.
pub fn as_json(body: &Bytes) -> Option<Bytes> {
    if !tda_blocks::batch::is_binary(body) {
        return Some(body.clone());
    }
    let json = serde_json::to_vec(&read_body(body)?).ok()?;
    zstd::bulk::compress(&json, ZSTD_LEVEL)
        .ok()
        .map(Bytes::from)
}

/// The two halves of a batch the collector refused, to find the events it refuses: events split
/// in the middle (samples go with the first half), ids `<id>.a` and `<id>.b` (the same halves
/// every time, so a half sent before a crash is recognised). `None` for a batch of one record,
/// or one that cannot be read.
pub fn halves(batch: &Closed) -> Option<(Closed, Closed)> {
    let whole = read_body(&batch.body)?;
    if whole.events.len() + whole.samples.len() < 2 {
        return None;
    }
    let mut first = whole.clone();
    let mut second = whole;
    let mid = first.events.len().div_ceil(2);
    second.events = first.events.split_off(mid);
    second.samples.clear();
    if second.events.is_empty() {
        // Samples only (or one event and samples): the samples make the second half.
        second.samples = first.samples.split_off(first.samples.len() / 2);
    }
    first.batch_id = format!("{}.a", batch.batch_id);
    second.batch_id = format!("{}.b", batch.batch_id);
    Some((compress(first), compress(second)))
}

/// Runs the batcher until `stop` turns true (or every sender is gone), then takes what is
/// already in the channel and closes the last batch. A batch left open by a crash (the
/// write-ahead log) is spooled first.
pub async fn run(
    mut batcher: Batcher,
    mut records: mpsc::Receiver<Record>,
    spool: Arc<Spool>,
    mut stop: watch::Receiver<bool>,
    mut config: watch::Receiver<BatchConfig>,
) {
    let mut log = Log::open(&spool);
    if let Some(left) = log.left.take() {
        tracing::info!(batch_id = %left.batch_id, events = left.events.len(), "spooling the batch a crash left open");
        spool_all(&spool, Some(batcher.reopen(left))).await;
        log.clear();
    }
    let mut closing = false;
    loop {
        let deadline = batcher.deadline();
        let record = tokio::select! {
            r = records.recv() => r,
            _ = sleep_until(deadline) => {
                log.spool(&spool, batcher.close()).await;
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
        let Some(first) = record else { break };
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match records.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        commit(&mut batcher, &mut log, &spool, group).await;
    }
    log.spool(&spool, batcher.close()).await;
}

/// The write-ahead log and how much of the open batch is in it.
struct Log {
    wal: Option<Wal>,
    left: Option<Recovered>,
    /// Events of the open batch already in the log.
    logged: usize,
}

impl Log {
    fn open(spool: &Spool) -> Log {
        match Wal::open(spool.dir()) {
            Ok((wal, left)) => Log {
                wal: Some(wal),
                left,
                logged: 0,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot open the write-ahead log; durable acknowledgements will fail");
                Log {
                    wal: None,
                    left: None,
                    logged: 0,
                }
            }
        }
    }

    /// Spools closed batches; the log's events are in them now.
    async fn spool(&mut self, spool: &Spool, closed: impl IntoIterator<Item = Closed>) {
        let mut any = false;
        for c in closed {
            spool_all(spool, Some(c)).await;
            any = true;
        }
        if any {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.logged = 0;
        if let Some(wal) = &mut self.wal {
            if let Err(e) = wal.clear() {
                tracing::error!(error = %e, "cannot clear the write-ahead log");
            }
        }
    }

    /// Appends the open batch's events not yet in the log; true once they are on disk.
    fn sync(&mut self, batcher: &mut Batcher) -> bool {
        let Some(wal) = &mut self.wal else {
            return false;
        };
        if self.logged >= batcher.events.len() {
            return true;
        }
        let id = batcher.open_id();
        match wal.append(&id, &batcher.events[self.logged..]) {
            Ok(()) => {
                self.logged = batcher.events.len();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the write-ahead log; durable requests answered 503");
                false
            }
        }
    }
}

/// Adds a group of records, spooling the batches they close; then, if any record waits for a
/// durable acknowledgement, logs the open batch's new events with one fsync and answers them all.
async fn commit(batcher: &mut Batcher, log: &mut Log, spool: &Spool, group: Vec<Record>) {
    let mut acks = Vec::new();
    for mut record in group {
        if let Record::Events(_, ack) = &mut record {
            acks.extend(ack.take());
        }
        let closed = batcher.add(record);
        log.spool(spool, closed).await;
    }
    if acks.is_empty() {
        return;
    }
    let durable = tokio::task::block_in_place(|| log.sync(batcher));
    for ack in acks {
        let _ = ack.send(durable);
    }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_records_are_answered_once_logged_and_a_crash_spools_them_under_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(crate::counters::Counters::default());
        let open_spool = || {
            Arc::new(
                Spool::open(dir.path(), 1 << 30, Default::default(), counters.clone()).unwrap(),
            )
        };
        let slow = BatchConfig {
            max_age_ms: 3_600_000,
            ..BatchConfig::default()
        };
        let start = |spool: Arc<Spool>| {
            let (tx, rx) = mpsc::channel(8);
            let (_stop_tx, stop) = watch::channel(false);
            let (_cfg_tx, cfg) = watch::channel(slow.clone());
            let task = tokio::spawn(run(
                Batcher::new("a".into(), slow.clone()),
                rx,
                spool,
                stop,
                cfg,
            ));
            (tx, task, _stop_tx, _cfg_tx)
        };
        let spool = open_spool();
        let (tx, task, _s, _c) = start(spool.clone());
        let (ack, written) = oneshot::channel();
        tx.send(Record::Events((0..3).map(event).collect(), Some(ack)))
            .await
            .unwrap();
        assert!(written.await.unwrap(), "acknowledged as durable");
        let (_, left) = crate::wal::Wal::open(dir.path()).unwrap();
        let left = left.expect("the open batch is in the log");
        assert_eq!(left.events, (0..3).map(event).collect::<Vec<_>>());
        assert!(spool.is_empty(), "the batch is still open");
        task.abort(); // killed: the open batch is only in the log
        let _ = task.await;
        drop(tx);
        let spool = open_spool();
        let (_tx, _task, _s, _c) = start(spool.clone());
        let mut tries = 0;
        while spool.is_empty() && tries < 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tries += 1;
        }
        let (_, batch) = spool.front().expect("the logged events are spooled");
        assert_eq!((batch.batch_id, batch.events), (left.batch_id, 3));
    }

    #[test]
    fn closes_by_count_with_unique_ids_and_decodable_bodies() {
        let mut b = Batcher::new("web-1".into(), config(3));
        let closed = b.add(Record::Events((0..7).map(event).collect(), None));
        assert_eq!(closed.len(), 2);
        assert_ne!(closed[0].batch_id, closed[1].batch_id);
        let last = b.close().unwrap();
        assert_eq!(last.events, 1);
        assert!(b.close().is_none(), "nothing left open");
        let body = &closed[1].body;
        let batch = tda_blocks::batch::decode(body, usize::MAX).unwrap();
        let batch = batch.to_batch().unwrap();
        assert_eq!(batch.events, (3..6).map(event).collect::<Vec<_>>());
        assert_eq!(batch.agent_id, "web-1");
        // The same batch as JSON, for a collector that does not take binary batches.
        let json = zstd::decode_all(&as_json(body).unwrap()[..]).unwrap();
        assert_eq!(tda_schema::wire::decode_batch(&json).unwrap(), batch);
    }
}
