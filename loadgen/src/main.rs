//! The `sluice-loadgen` command. Exit codes: 0 success, 1 the run failed
//! (unreachable target, every request failed), 2 bad arguments.

use std::process::ExitCode;

use clap::Parser;
use sluice_loadgen::cli::{self, BackendCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap already formats usage errors clearly; help and version
            // go to stdout with exit 0, everything else exits 2.
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let outcome = match cli.command {
        Command::Pg(arguments) => match cli::PgPlan::from_args(arguments, &cli::process_env) {
            Ok(plan) => sluice_loadgen::pg_client::run(plan),
            Err(e) => return usage_error(&e),
        },
        Command::Http(arguments) => match cli::HttpPlan::from_args(arguments) {
            Ok(plan) => sluice_loadgen::http_client::run(plan),
            Err(e) => return usage_error(&e),
        },
        Command::Backend { kind } => match kind {
            BackendCommand::Pg(arguments) => match arguments.validate() {
                Ok(settings) => sluice_loadgen::backend_pg::serve(settings),
                Err(e) => return usage_error(&e),
            },
            BackendCommand::Http(arguments) => match arguments.validate() {
                Ok(settings) => sluice_loadgen::backend_http::serve(settings),
                Err(e) => return usage_error(&e),
            },
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &cli::ArgumentError) -> ExitCode {
    eprintln!("sluice-loadgen: error: {e}");
    eprintln!("Run `sluice-loadgen --help` for usage.");
    ExitCode::from(2)
}
