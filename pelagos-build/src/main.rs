use clap::Parser;

/// `pelagos-build` (not yet implemented)
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("pelagos-build: error: not implemented yet");
    std::process::ExitCode::from(2)
}
