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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tda-agent: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => tda_agent::run::run(&cli.config).await,
            Command::Simulate(args) => simulate::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tda-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
