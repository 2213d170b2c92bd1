//! `pelagos-build`: build an OCI image from a Remfile (Dockerfile) and a context.
use std::process::ExitCode;

use clap::Parser;
use pelagos_build::cli::Cli;

fn main() -> ExitCode {
    // RUN steps re-execute this binary as the container init: this never returns there
    ns_run::init_if_requested();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let msg = e
                .kind()
                .as_str()
                .map_or_else(|| e.to_string(), str::to_string);
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or(&msg)
                .trim_start_matches("error: ")
                .to_string();
            eprintln!("pelagos-build: error: {first}");
            return ExitCode::from(2);
        }
    };
    match pelagos_build::run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pelagos-build: error: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}
