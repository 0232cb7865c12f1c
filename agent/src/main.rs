//! `tda-agent`: runs the agent, or the TD Generator traffic simulator.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tda_agent::simulate::{self, SimArgs};

/// The TD Analytics agent.
#[derive(Parser)]
#[command(name = "tda-agent", version, about)]
struct Cli {
    /// Agent configuration file.
    #[arg(long, short, default_value = "/etc/tda/agent.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    service: tda_daemon::service::DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check the config and the files it names; exit 1 listing every problem.
    Validate,
    /// Drive simulated TD Generator traffic into an agent's intake.
    Simulate(SimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Validate = command {
        return tda_daemon::report_validation(&cli.config, tda_agent::run::validate(&cli.config));
    }
    if let Command::Simulate(args) = command {
        tda_daemon::init_logging();
        return tda_daemon::run_main("tda-agent", simulate::run(args));
    }
    tda_daemon::service::run_service("tda-agent", &cli.service, async {
        tda_agent::run::run(&cli.config).await
    })
}
