//! `tda-agent`: runs the agent, or the TD Generator traffic simulator.

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Drive simulated TD Generator traffic into an agent's intake.
    Simulate(SimArgs),
}

fn main() -> std::process::ExitCode {
    tda_daemon::init_logging();
    let cli = Cli::parse();
    tda_daemon::run_main("tda-agent", async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => tda_agent::run::run(&cli.config).await,
            Command::Simulate(args) => simulate::run(args).await,
        }
    })
}
