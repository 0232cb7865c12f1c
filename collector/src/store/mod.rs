//! The storage interface every backend implements, and the sled backend (the embedded default).

mod columns;
mod sled_store;

pub use sled_store::SledStore;

pub mod retention;

use tda_schema::{Batch, Event, HostSample};

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

    /// Calls `visit` with every stored sample (and its agent id) in `[from, to)`.
    fn scan_samples(
        &self,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(&str, &HostSample),
    ) -> Result<(), StoreError>;

    /// Deletes data older than `cutoff` (epoch ms) in whole storage units: a backend may keep
    /// data up to its unit (one hour for sled) older than the cutoff, never newer data. Also
    /// forgets batch ids received before `cutoff`.
    fn delete_before(&self, cutoff: i64) -> Result<Deleted, StoreError>;
}
