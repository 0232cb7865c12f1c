//! Wire types, profile schema, daemon configuration and the API's answers shared by the TD
//! Analytics agent, collector and CLI.
//!
//! This crate holds data definitions and their validation only: no I/O beyond reading a config
//! file, no storage, no HTTP. Both daemons and the `tda` CLI agree on formats through it.

#![forbid(unsafe_code)]

pub mod alerting;
pub mod answers;
pub mod config;
pub mod duration;
pub mod json_schema;
pub mod profile;
pub mod sections;
pub mod segment_rule;
pub mod timestamp;
pub mod wire;

pub use profile::{AggregationLevel, Profile, ProfileType, Settings};
pub use timestamp::Timestamp;
pub use wire::{Batch, Event, FieldError, HostSample, ProcessSample};
