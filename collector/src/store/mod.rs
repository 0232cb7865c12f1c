//! The storage interface every backend implements, and the sled backend (the embedded default).

pub mod aggregate;
pub mod clickhouse;
pub(crate) mod codec;
pub(crate) mod columns;
pub mod facts;
mod parallel;
pub mod rollup;
pub(crate) mod samples;
mod segments;
mod sled_store;

pub use clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use sled_store::SledStore;

pub mod compaction;
pub mod retention;

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

    /// The event aggregates of `q`, when the backend computes them itself (a database server);
    /// `None` (this default) makes the caller fold rollups and events instead.
    fn aggregate_events(
        &self,
        q: &aggregate::EventQuery,
    ) -> Result<Option<Vec<aggregate::EventAggregate>>, StoreError> {
        let _ = q;
        Ok(None)
    }

    /// Per agent, the sample averages of `[from, to)`, when the backend computes them itself.
    fn aggregate_agents(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<aggregate::AgentAggregate>>, StoreError> {
        let _ = (from, to);
        Ok(None)
    }

    /// The values of the sample series `series` (one of [`crate::query::SAMPLE_SERIES`]) in
    /// steps of `width` from `from`, of `agent` only when given, when the backend computes
    /// them itself; `quantiles` as in [`aggregate::EventQuery`].
    fn aggregate_samples(
        &self,
        series: &str,
        (from, to, width): (i64, i64, i64),
        agent: Option<&str>,
        quantiles: &[f64],
    ) -> Result<Option<Vec<aggregate::SampleStep>>, StoreError> {
        let _ = (series, from, to, width, agent, quantiles);
        Ok(None)
    }

    /// The funnel of `q`, when the backend computes it itself; `None` (this default, or a mode
    /// the backend cannot do) makes the caller compute it from the events' facts.
    fn funnel(
        &self,
        q: &aggregate::FunnelQuery,
    ) -> Result<Option<crate::behavior::funnels::Funnel>, StoreError> {
        let _ = q;
        Ok(None)
    }

    /// Retention over `[from, to)` of the events passing `filter`, when the backend computes
    /// it itself.
    fn retention(
        &self,
        (from, to): (i64, i64),
        filter: &crate::query::Filter,
        period: crate::behavior::retention::Period,
    ) -> Result<Option<crate::behavior::retention::Retention>, StoreError> {
        let _ = (from, to, filter, period);
        Ok(None)
    }

    /// The first `n` events of `[from, to)` passing `filter`, oldest first (ties always in one
    /// order), when the backend selects them itself; `None` makes the caller scan the range.
    fn first_events(
        &self,
        (from, to): (i64, i64),
        filter: &crate::query::Filter,
        n: usize,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        let _ = (from, to, filter, n);
        Ok(None)
    }

    /// Whether several collectors may share this store (then scheduled work is led by the
    /// holder of a lease, and its state is kept here too). The embedded store is one
    /// collector's own.
    fn shared(&self) -> bool {
        false
    }

    /// Tries to hold the lease `name` for `holder` until `now + ttl_ms` (renewing it when
    /// `holder` holds it); returns whether `holder` holds it. Where collectors claim it at
    /// once, all agree on one. A store that is not [`Storage::shared`] grants it always.
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let _ = (name, holder, now, ttl_ms);
        Ok(true)
    }

    /// Keeps a piece of the collectors' shared state (alerting, models, a report) under
    /// `scope`, replacing what it held; `None` deletes it. Only a shared store keeps it.
    fn put_state(&self, scope: &str, value: Option<&str>) -> Result<(), StoreError> {
        let _ = (scope, value);
        Ok(())
    }

    /// The shared state under `scope` and its version (which grows with every put).
    fn get_state(&self, scope: &str) -> Result<Option<(u64, String)>, StoreError> {
        let _ = scope;
        Ok(None)
    }

    /// The scopes of shared state starting with `prefix`, with their versions.
    fn state_scopes(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let _ = prefix;
        Ok(Vec::new())
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

/// Something that folds events and, for whole hours, their rollups.
pub trait Fold {
    /// Adds one event.
    fn event(&mut self, e: &Event);
    /// Adds a rollup (several may cover one hour).
    fn rollup(&mut self, r: &Rollup);
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
