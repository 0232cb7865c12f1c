//! `tda`: the TD Analytics operator CLI.

#![forbid(unsafe_code)]

use std::io::Write;

fn main() -> std::process::ExitCode {
    let cli = tda_cli::Cli::from_args();
    match tda_cli::run(cli) {
        Ok(out) => {
            // A reader that stops early (`| head`) closes the pipe: that is not an error.
            match std::io::stdout().lock().write_all(out.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("tda: cannot write the output: {e}");
                    std::process::ExitCode::FAILURE
                }
                _ => std::process::ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("tda: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
