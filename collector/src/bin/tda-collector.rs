//! `tda-collector`: the central TD Analytics daemon.

use std::path::PathBuf;

use clap::Parser;

/// The TD Analytics collector.
#[derive(Parser)]
#[command(name = "tda-collector", version, about)]
struct Cli {
    /// Collector configuration file.
    #[arg(long, short, default_value = "/etc/tda/collector.toml")]
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(tda_collector::server::run(&cli.config)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tda-collector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
