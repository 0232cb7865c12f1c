//! `tda-collector`: the central TD Analytics daemon.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The TD Analytics collector.
#[derive(Parser)]
#[command(name = "tda-collector", version, about)]
struct Cli {
    /// Collector configuration file.
    #[arg(long, short, default_value = "/etc/tda/collector.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    service: tda_daemon::service::DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (the default).
    Run,
    /// Check the config, its token files and every profile; exit 1 listing every problem.
    Validate,
    /// Write the JSON Schemas of the profile, collector and agent files into a directory.
    Schema {
        /// Output directory, for example config/schema.
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => tda_daemon::service::run_service("tda-collector", &cli.service, async {
            tda_collector::server::run(&cli.config).await
        }),
        Command::Validate => {
            tda_daemon::report_validation(&cli.config, tda_collector::server::validate(&cli.config))
        }
        Command::Schema { dir } => {
            for (name, text) in tda_schema::json_schema::all() {
                if let Err(e) = std::fs::write(dir.join(name), text) {
                    eprintln!("tda-collector: {}: {e}", dir.join(name).display());
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
    }
}
