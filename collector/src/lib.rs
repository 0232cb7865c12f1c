//! The TD Analytics collector: authenticates and stores agents' batches, serves statistics,
//! profiles and the dashboard; and the `tda` operator CLI that talks to it.
//!
//! Request path: [`api`] routes; [`ingest`] takes batches into [`store`]; [`stats`] and [`query`] fold stored
//! data into answers; [`profiles`] holds the profiles in force; [`alert`] evaluates alert rules and notifies. [`app`] holds the state and reloads it; [`reload`] decides when; [`server`] starts it all.

#![forbid(unsafe_code)]

pub mod alert;
pub mod api;
pub mod app;
pub mod arrivals;
pub mod auth;
pub mod behavior;
pub mod cardinality;
pub mod cli;
pub mod codec;
pub mod dashboard;
pub mod export;
pub mod export_cli;
pub mod fleet;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod model_state;
pub mod offline;
pub mod predictive;
pub mod profiles;
#[cfg(test)]
mod properties;
pub mod query;
pub mod reload;
pub mod report;
pub mod schedule;
pub mod server;
pub mod sketch;
mod snapshot;
pub mod stats;
pub mod store;
