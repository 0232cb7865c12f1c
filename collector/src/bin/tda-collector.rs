//! `tda-collector`: the central TD Analytics daemon.

#![forbid(unsafe_code)]

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
    /// Copy an embedded store into ClickHouse (resumable: run it again after a stop), then
    /// check every day's event and sample counts match.
    Migrate {
        /// The embedded store: `sled:DATA_DIR` (the collector's data_dir).
        #[arg(long)]
        from: String,
        /// The target: `clickhouse:URL/DATABASE`, e.g. `clickhouse:http://127.0.0.1:8123/tda`.
        #[arg(long)]
        to: String,
        /// File holding the ClickHouse password (one line), when the user has one.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
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
        Command::Migrate {
            from,
            to,
            password_file,
            quiet,
        } => migrate(&from, &to, password_file.as_deref(), quiet),
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

fn migrate(
    from: &str,
    to: &str,
    password_file: Option<&std::path::Path>,
    quiet: bool,
) -> std::process::ExitCode {
    use tda_collector::migrate;
    let done = (|| -> anyhow::Result<migrate::Migrated> {
        let password = match password_file {
            Some(f) => Some(tda_schema::config::read_secret(f)?),
            None => None,
        };
        let source = migrate::parse_from(from)?;
        let target = migrate::parse_to(to, password)?;
        Ok(migrate::run(&source, target, !quiet)?)
    })();
    match done {
        Ok(m) => {
            println!(
                "migrated {} hours: {} events and {} samples sent, {} batches were already there; {} days verified equal",
                m.hours, m.events, m.samples, m.already_copied, m.days_verified
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tda-collector migrate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
