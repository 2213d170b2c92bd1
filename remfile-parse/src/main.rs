//! `remfile-parse [FILE|-] [--pretty]`: print a Remfile's version-1 AST as JSON.
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// Parse a Remfile (Dockerfile syntax) and print its version-1 AST as JSON on stdout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The Remfile to parse; `-` or nothing reads standard input.
    file: Option<String>,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let msg = e.kind().to_string();
            let detail = e.to_string();
            let first = detail.lines().next().unwrap_or(&msg);
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("remfile-parse: error: {first}");
            return ExitCode::from(2);
        }
    };
    let name = match cli.file.as_deref() {
        None | Some("-") => "-".to_owned(),
        Some(f) => f.to_owned(),
    };
    let text = match read_input(&name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("remfile-parse: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let ast = match remfile_parse::parse(&text) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("remfile-parse: error: {name}:{e}");
            return ExitCode::from(2);
        }
    };
    let mut json = remfile_parse::to_json(&ast, cli.pretty);
    json.push('\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(json.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // a closed pipe (`| head`) is not an error of ours
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remfile-parse: error: writing stdout: {e}");
            ExitCode::from(1)
        }
    }
}

fn read_input(name: &str) -> anyhow::Result<String> {
    let bytes = if name == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading standard input")?;
        b
    } else {
        std::fs::read(name).with_context(|| format!("reading {name}"))?
    };
    // as BuildKit: bytes that are not UTF-8 are no error (U+FFFD, see `parse_bytes`)
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
