//! `tda`: the TD Analytics operator CLI.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tda_collector::cli::Cli::parse();
    match tda_collector::cli::run(cli) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tda: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
