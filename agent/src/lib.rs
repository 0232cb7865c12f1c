//! The TD Analytics agent: samples host and process metrics, takes usage events, ships batches.
//!
//! Data path: [`intake`] and [`sample`] feed records to [`batch`], which closes and compresses
//! batches into the on-disk [`spool`]; [`ship`] sends them to the collector and deletes them once
//! acknowledged. [`settings`] keeps the live config and the sampling interval the
//! collector serves. [`simulate`] is the
//! TD Generator traffic simulator used by the demo and the tests.

#![forbid(unsafe_code)]

pub mod batch;
pub mod counters;
pub mod intake;
pub mod metrics;
pub mod public;
pub mod refusals;
pub mod run;
pub mod sample;
pub mod sdk;
pub mod settings;
pub mod ship;
pub mod simulate;
pub mod spool;
pub mod tail;
pub mod wal;
