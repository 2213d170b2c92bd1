//! `layer-pack` CLI: `pack` a directory into an OCI layer, `unpack` a layer onto a directory.
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use layer_pack::cli;

/// Deterministic OCI layers: pack a directory, unpack a layer safely
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pack DIR (or the `upper` of an ns-run result document on stdin) into a layer blob
    Pack(cli::PackArgs),
    /// Apply the layer BLOB (gzip, zstd or tar; `-` for stdin) onto DIR
    Unpack(cli::UnpackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Pack(a) => cli::pack(&a).map(|d| serde_json::to_string(&d)),
        Cmd::Unpack(a) => cli::unpack_cmd(&a).map(|r| serde_json::to_string(&r)),
    };
    match res {
        Ok(Ok(json)) => {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{json}").is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("layer-pack: error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("layer-pack: error: {}", cli::error_line(&e.error));
            ExitCode::from(e.code)
        }
    }
}
