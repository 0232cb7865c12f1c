//! The storage interface every backend implements, and the sled backend (the embedded default).

pub mod aggregate;
pub mod clickhouse;
pub(crate) mod columns;
pub mod facts;
mod parallel;
pub mod rollup;
pub use tda_blocks::samples;
mod segments;
pub mod select;
mod sled_store;

pub use clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use select::{Filter, SAMPLE_SERIES};
pub use sled_store::SledStore;

use tda_blocks::batch::ColumnarBatch;
use tda_schema::{Batch, Event, HostSample};

use rollup::Rollup;

/// Why storage failed; the batch was not acknowledged and the agent will retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed (I/O, corruption).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored block could not be decoded.
    #[error("corrupt block {key}: {message}")]
    Corrupt {
        /// Hex of the block key.
        key: String,
        /// What failed.
        message: String,
    },
    /// A storage server (ClickHouse) failed or refused a query.
    #[error("{0}")]
    Backend(String),
    /// A file beside the database (a report, shared state) could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// What was asked cannot be answered as asked (an unknown metric, say): the asker's
    /// mistake, not the store's.
    #[error("{0}")]
    Invalid(String),
    /// The group commit a batch was part of failed (the batch was not stored).
    #[error("commit: {0}")]
    Commit(String),
    /// A stored block has a format this build does not read.
    #[error("block {key} has format version {version}, this build reads {expected}")]
    Version {
        /// Hex of the block key.
        key: String,
        /// Version found.
        version: u8,
        /// Version expected.
        expected: u8,
    },
}

/// What [`Storage::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The batch is stored and durable.
    Stored,
    /// A batch with this id was stored before; nothing was written again.
    Duplicate,
}

/// What [`Storage::delete_before`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    /// Blocks of events and samples removed.
    pub blocks: u64,
    /// Batch-id records (the dedupe memory) removed.
    pub batch_ids: u64,
}

/// What [`Storage::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Hours whose blocks were merged.
    pub hours: u64,
    /// Blocks merged into fewer, larger ones.
    pub blocks_merged: u64,
}

/// Durable storage of batches and time-range scans over what they held.
pub trait Storage: Send + Sync {
    /// Stores a batch durably (returns only after it would survive a crash); a batch id seen
    /// before is not stored twice.
    fn append(&self, batch: &Batch) -> Result<Appended, StoreError>;

    /// Stores a binary batch (already validated) as [`Storage::append`] does. By default its
    /// events are built and appended; a backend that keeps columnar blocks stores the block as
    /// it came.
    fn append_columns(&self, batch: &ColumnarBatch) -> Result<Appended, StoreError> {
        self.append(&batch.to_batch().map_err(StoreError::Invalid)?)
    }

    /// Calls `visit` with every stored event whose timestamp is in `[from, to)`, in no set order.
    fn scan_events(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError>;

    /// Like [`Storage::scan_events`], but the events' `properties` may be left empty: for
    /// aggregations that do not read them, which a backend may then skip decoding.
    fn scan_event_facts(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Event),
    ) -> Result<(), StoreError> {
        self.scan_events(from, to, visit)
    }

    /// Calls `visit` with the facts of every stored event in `[from, to)` (properties only when
    /// asked for), a block at a time, in the store's order, each after `prepare` (which a
    /// backend may run on several threads at once, as it decodes). This default builds them
    /// from the events; a backend that stores columns overrides it.
    fn scan_facts(
        &self,
        from: i64,
        to: i64,
        properties: bool,
        prepare: &(dyn Fn(&mut facts::Facts) + Sync),
        visit: &mut dyn FnMut(&facts::Facts),
    ) -> Result<(), StoreError> {
        const CHUNK: usize = 65_536;
        let mut b = facts::FactsBuilder::new(properties);
        let mut add = |e: &Event| {
            b.push(e);
            if b.len() >= CHUNK {
                let mut f = b.take();
                prepare(&mut f);
                visit(&f);
            }
        };
        if properties {
            self.scan_events(from, to, &mut add)?;
        } else {
            self.scan_event_facts(from, to, &mut add)?;
        }
        if !b.is_empty() {
            let mut f = b.take();
            prepare(&mut f);
            visit(&f);
        }
        Ok(())
    }

    /// Calls `visit` with the time and value of the sample series `series` (one of
    /// [`SAMPLE_SERIES`]) of every stored sample in `[from, to)` that has it, of `agent` only
    /// when one is given. By default from [`Storage::scan_samples`]; a columnar backend reads
    /// that column alone.
    fn scan_sample_series(
        &self,
        (from, to): (i64, i64),
        agent: Option<&str>,
        series: &str,
        visit: &mut dyn FnMut(i64, f64),
    ) -> Result<(), StoreError> {
        self.scan_samples(from, to, agent, &mut |_, s| {
            if let Some(v) = select::sample_value(series, s) {
                visit(s.timestamp.0, v)
            }
        })
    }

    /// Calls `visit` with every stored sample (and its agent id) in `[from, to)`, of `agent`
    /// only when one is given.
    fn scan_samples(
        &self,
        from: i64,
        to: i64,
        agent: Option<&str>,
        visit: &mut dyn FnMut(&str, &HostSample),
    ) -> Result<(), StoreError>;

    /// Calls `visit` with rollups that together cover every event of the whole hours in
    /// `[from, to)` (both multiples of an hour); an hour may have several, to be merged. This
    /// default builds them from the events; a backend that keeps rollups overrides it.
    fn scan_rollups(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&Rollup),
    ) -> Result<(), StoreError> {
        let mut hours: std::collections::BTreeMap<i64, Rollup> = Default::default();
        self.scan_event_facts(from, to, &mut |e| {
            let hour = e.timestamp.0.div_euclid(rollup::HOUR_MS) * rollup::HOUR_MS;
            hours
                .entry(hour)
                .or_insert_with(|| Rollup::new(hour))
                .add(e)
        })?;
        hours.values().for_each(visit);
        Ok(())
    }

    /// Merges the many small blocks that batches left in each hour before `before` (epoch ms)
    /// into few large ones, which take less space and scan faster. Scans return the same data
    /// before and after. A backend that compacts by itself keeps this default, which does nothing.
    fn compact(&self, before: i64) -> Result<Compacted, StoreError> {
        let _ = before;
        Ok(Compacted::default())
    }

    /// The aggregations this backend computes itself (a database server), if any; without
    /// them the analyses fold rollups and events (see [`crate::store::fold_range`]).
    fn pushdown(&self) -> Option<&dyn Pushdown> {
        None
    }

    /// The leases and state several collectors share through this store, when it is shared
    /// (then scheduled work is led by the holder of a lease). The embedded store is one
    /// collector's own.
    fn shared(&self) -> Option<&dyn SharedState> {
        None
    }

    /// Bytes the store's files take on disk (0 when the backend does not know).
    fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Deletes data older than `cutoff` (epoch ms) in whole storage units: a backend may keep
    /// data up to its unit (one hour for sled) older than the cutoff, never newer data. Also
    /// forgets batch ids received before `cutoff`.
    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError>;
}

/// Aggregations a backend computes itself instead of handing rows to the collector: an optional
/// capability of a [`Storage`] (a new backend need not have it).
pub trait Pushdown: Send + Sync {
    /// The event aggregates of `q`.
    fn aggregate_events(
        &self,
        q: &aggregate::EventQuery,
    ) -> Result<Vec<aggregate::EventAggregate>, StoreError>;

    /// Per agent, the sample sums of `[from, to)`.
    fn aggregate_agents(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<aggregate::AgentAggregate>, StoreError>;

    /// The values of the sample series `series` (one of [`SAMPLE_SERIES`]) in steps of
    /// `width` from `from` to `to` (`range` is `(from, to, width)`), of `agent` only when given; `quantiles` as in
    /// [`aggregate::EventQuery`].
    fn aggregate_samples(
        &self,
        series: &str,
        range: (i64, i64, i64),
        agent: Option<&str>,
        quantiles: &[f64],
    ) -> Result<Vec<aggregate::SampleStep>, StoreError>;

    /// The funnel counts of `q`; `None` for a mode the backend cannot do (the caller then
    /// computes it from the events' facts).
    fn funnel(
        &self,
        q: &aggregate::FunnelQuery,
    ) -> Result<Option<aggregate::FunnelCounts>, StoreError>;

    /// Retention counts over `range` (`[from, to)`) of the events passing `filter`.
    fn retention(
        &self,
        range: (i64, i64),
        filter: &Filter,
        period: aggregate::Period,
    ) -> Result<aggregate::RetentionCounts, StoreError>;

    /// The first `n` events of `range` (`[from, to)`) passing `filter`, oldest first (ties always in one
    /// order).
    fn first_events(
        &self,
        range: (i64, i64),
        filter: &Filter,
        n: usize,
    ) -> Result<Vec<Event>, StoreError>;
}

/// Leases and state that several collectors share through one store: an optional capability
/// of a [`Storage`].
pub trait SharedState: Send + Sync {
    /// Tries to hold the lease `name` for `holder` until `now + ttl_ms` (renewing it when
    /// `holder` holds it); returns whether `holder` holds it. Where collectors claim it at
    /// once, all agree on one.
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Keeps a piece of the collectors' shared state (alerting, models, a report) under
    /// `scope`, replacing what it held; `None` deletes it.
    fn put_state(&self, scope: &str, value: Option<&str>) -> Result<(), StoreError>;

    /// The shared state under `scope` and its version (which grows with every put).
    fn get_state(&self, scope: &str) -> Result<Option<(u64, String)>, StoreError>;

    /// The scopes of shared state starting with `prefix`, with their versions.
    fn state_scopes(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError>;
}

/// The [`SharedState`] of a store that is one collector's own: its collector always holds
/// every lease, and there is no state to share.
pub struct NotShared;

impl SharedState for NotShared {
    fn hold_lease(&self, _: &str, _: &str, _: i64, _: i64) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn put_state(&self, _: &str, _: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }

    fn get_state(&self, _: &str) -> Result<Option<(u64, String)>, StoreError> {
        Ok(None)
    }

    fn state_scopes(&self, _: &str) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(Vec::new())
    }
}

/// Opens the backend `cfg` configures (`storage.backend`): sled under `analytics/`, or a
/// ClickHouse server (which may block on the server: call it where blocking is allowed).
pub fn open(
    cfg: &tda_schema::config::CollectorConfig,
) -> Result<std::sync::Arc<dyn Storage>, StoreError> {
    use tda_schema::config::Backend;
    Ok(match cfg.storage.backend {
        Backend::Sled => std::sync::Arc::new(SledStore::open(&cfg.analytics_dir())?),
        Backend::Clickhouse => {
            let ch = &cfg.storage.clickhouse;
            let password = match &ch.password_file {
                Some(f) => Some(
                    tda_schema::config::read_secret(f)
                        .map_err(|e| StoreError::Backend(e.to_string()))?,
                ),
                None => None,
            };
            let store = ClickHouseStore::open(ClickHouseConfig {
                url: ch.url.clone(),
                database: ch.database.clone(),
                user: ch.user.clone(),
                password,
                timeout: ch.timeout.0,
            })
            .map_err(|e| StoreError::Backend(format!("storage.clickhouse: {}: {e}", ch.url)))?;
            std::sync::Arc::new(store)
        }
    })
}

/// Something that folds events and, for whole hours, their rollups.
pub trait Fold {
    /// Adds one event.
    fn event(&mut self, e: &Event);
    /// Adds a rollup (several may cover one hour).
    fn rollup(&mut self, r: &Rollup);
}

/// Folds `[from, to)` for a fold that reads only rollups' minute cells: the cells of every whole
/// minute inside it (whole hours and partial ones alike) and the events of the partial minutes
/// at either end.
pub fn fold_range_by_minute(
    store: &dyn Storage,
    from: i64,
    to: i64,
    acc: &mut dyn Fold,
) -> Result<(), StoreError> {
    let (minute, hour) = (rollup::MINUTE_MS, rollup::HOUR_MS);
    let first = from.div_euclid(minute) * minute + if from % minute == 0 { 0 } else { minute };
    let last = to.div_euclid(minute) * minute;
    if first >= last {
        return store.scan_event_facts(from, to, &mut |e| acc.event(e));
    }
    store.scan_event_facts(from, first, &mut |e| acc.event(e))?;
    let hours = (
        first.div_euclid(hour) * hour,
        (last + hour - 1).div_euclid(hour) * hour,
    );
    store.scan_rollups(hours.0, hours.1, &mut |r| {
        acc.rollup(&r.minutes_within(first, last))
    })?;
    store.scan_event_facts(last, to, &mut |e| acc.event(e))
}

/// Folds `[from, to)` as cheaply as the store allows: the rollups of the whole hours inside it and
/// the events of the partial hours at either end.
pub fn fold_range(
    store: &dyn Storage,
    from: i64,
    to: i64,
    acc: &mut dyn Fold,
) -> Result<(), StoreError> {
    let first = from.div_euclid(rollup::HOUR_MS) * rollup::HOUR_MS
        + if from.rem_euclid(rollup::HOUR_MS) == 0 {
            0
        } else {
            rollup::HOUR_MS
        };
    let last = to.div_euclid(rollup::HOUR_MS) * rollup::HOUR_MS;
    if first >= last {
        return store.scan_event_facts(from, to, &mut |e| acc.event(e));
    }
    store.scan_event_facts(from, first, &mut |e| acc.event(e))?;
    store.scan_rollups(first, last, &mut |r| acc.rollup(r))?;
    store.scan_event_facts(last, to, &mut |e| acc.event(e))
}
