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
    tda_daemon::init_logging();
    let cli = Cli::parse();
    tda_daemon::run_main("tda-collector", async move {
        tda_collector::server::run(&cli.config).await
    })
}
