//! The TD Analytics collector: authenticates and stores agents' batches, serves statistics,
//! profiles and the dashboard. (The `tda` CLI that talks to it is the `tda-cli` crate.)
//!
//! Layers, top to bottom (ARCHITECTURE.md; `tests/layers.rs` checks them): the edge ([`api`]
//! routes, [`server`] starts it all); the runtime ([`app`] holds the state and reloads it,
//! [`jobs`] runs the periodic work, [`reload`] decides when to reload); the subsystems ([`alert`],
//! [`fleet`], [`report`], [`schedule`], [`dashboard`], [`ingest`], [`auth`] …, each on a narrow
//! context); the analyses ([`query`], [`stats`], [`behavior`], [`predictive`]); storage
//! ([`store`], [`profiles`]); the codecs ([`sketch`], [`codec`]).

#![forbid(unsafe_code)]

pub mod alert;
pub mod api;
pub mod app;
pub mod arrivals;
pub mod auth;
pub mod behavior;
pub mod cardinality;
pub mod dashboard;
pub mod export;
pub mod fleet;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod model_state;
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
