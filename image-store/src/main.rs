use clap::Parser;

/// `image-store` (not yet implemented)
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("image-store: error: not implemented yet");
    std::process::ExitCode::from(2)
}
