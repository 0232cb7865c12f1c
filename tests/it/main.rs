//! The end-to-end tests, one module per area, in one test binary (one link instead of one per
//! file): each starts the real binaries (`tda-collector`, `tda-agent`, `tda`) with temp configs
//! through the harness in `tests/src/`. Run one area with `cargo test -p tda-tests --test it
//! alerts::`.

mod alerts;
mod behavioral;
mod browser_sdk;
mod cli;
mod clickhouse;
mod configs;
mod dashboard;
mod export;
mod faults;
mod fleet;
mod fuzz_corpus;
mod metrics;
mod openapi;
mod predictive;
mod public_intake;
mod query;
mod rejects;
mod reload;
mod reports;
mod request_log;
mod retention;
mod schema;
mod sdk;
mod secrets;
mod spine;
mod storage;
mod tls;
