//! `remfile-plan [AST|-] [--build-arg K=V]... [--target STAGE] [--platform P] [--base-config REF=FILE]...`
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use remfile_plan::{PlanError, PlanOptions, Platform, options::load_base_config};

/// Reads the AST JSON of `remfile-parse` and prints the version-1 Plan JSON.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// AST document (`-` or absent: stdin).
    ast: Option<String>,
    /// A build arg `K=V`; `K` alone takes the value from the environment (skipped when unset).
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// The stage to build (default: the last one).
    #[arg(long)]
    target: Option<String>,
    /// The target platform `os/arch[/variant]` (default: the build platform).
    #[arg(long)]
    platform: Option<String>,
    /// The build platform (default: this machine).
    #[arg(long = "build-platform", hide = true)]
    build_platform: Option<String>,
    /// The config of a base image: `REF=FILE`, FILE an OCI image config JSON.
    #[arg(long = "base-config", value_name = "REF=FILE")]
    base_configs: Vec<String>,
    /// Indent the JSON.
    #[arg(long)]
    pretty: bool,
}

fn platform(p: Option<&String>) -> anyhow::Result<Option<Platform>> {
    Ok(
        p.map(|p| Platform::parse(p).map_err(PlanError::OptionPlatform))
            .transpose()?,
    )
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let text = match cli.ast.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the AST from stdin")?;
            s
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
    };
    let ast: remfile_parse::Remfile =
        serde_json::from_str(&text).context("the input is not a version-1 AST document")?;
    let mut opts = PlanOptions {
        target: cli.target.clone(),
        platform: platform(cli.platform.as_ref())?,
        build_platform: platform(cli.build_platform.as_ref())?,
        ..PlanOptions::default()
    };
    for a in &cli.build_args {
        opts.add_build_arg(a, |k| std::env::var(k).ok())?;
    }
    let mut bases = BTreeMap::new();
    for b in &cli.base_configs {
        load_base_config(b, &mut bases)?;
    }
    let plan = remfile_plan::plan(&ast, &opts, &bases)?;
    for w in &plan.warnings {
        match w.line {
            Some(l) => eprintln!("remfile-plan: warning: line {l}: {}", w.message),
            None => eprintln!("remfile-plan: warning: {}", w.message),
        }
    }
    let out = if cli.pretty {
        serde_json::to_string_pretty(&plan)
    } else {
        serde_json::to_string(&plan)
    }?;
    let mut stdout = std::io::stdout().lock();
    // a closed pipe is not an error of ours
    let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
    Ok(())
}

fn main() -> ExitCode {
    // every failure here is about the input or the flags: exit 2
    match run(&Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remfile-plan: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
