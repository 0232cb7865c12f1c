//! What both daemons run on: the HTTP server loop and JSON responses, stop signals, logging.

// One measured exception, `memory::limit_arenas`, allows itself; nothing else may.
#![deny(unsafe_code)]

pub mod durable;
pub mod http;
pub mod memory;
pub mod metrics;
mod process;
pub mod retry;
pub mod service;
pub mod tls;

use std::path::PathBuf;

use serde::Serialize;

/// A daemon's config file and how its last reload went, for the API and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigStatus {
    /// The config file.
    pub file: PathBuf,
    /// Why the last edit was refused (the config in force stays).
    pub last_error: Option<String>,
    /// Settings edited since start that take effect only after a restart.
    pub restart_needed: Vec<String>,
    /// When the config in force was loaded, RFC 3339.
    pub loaded_at: String,
}

pub use http::{
    bearer, error, json, query, read_body, read_body_within, serve, stream, with_type, Body, Chunk,
    Listening, Peer, Refusal, Response,
};

/// Logs to stderr in one format for every binary (colour only on a terminal); `RUST_LOG`
/// filters (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// The filter for a `RUST_LOG` value. The file watcher (`notify`) is held at `info` unless the
/// value names it: its trace logs a line per file event, so a log file in a watched directory
/// (the config's) fed itself without end at `RUST_LOG=trace`, gigabytes a minute.
pub fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter = spec
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| "info".into());
    let held = spec.is_none_or(|s| !s.contains("notify"));
    match "notify=info".parse() {
        Ok(directive) if held => filter.add_directive(directive),
        _ => filter,
    }
}

/// Completes when SIGINT or SIGTERM arrives.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping");
}

/// The binaries' edge: runs `main` on a multi-threaded runtime, prints `NAME: error` with its
/// causes and exits non-zero on error.
pub fn run_main<F>(name: &str, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(main));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The end of a `validate` command: `FILE: OK` and success, or every problem on stderr and
/// failure.
pub fn report_validation(
    config: &std::path::Path,
    problems: Vec<String>,
) -> std::process::ExitCode {
    if problems.is_empty() {
        println!("{}: OK", config.display());
        return std::process::ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s)", problems.len());
    std::process::ExitCode::FAILURE
}
