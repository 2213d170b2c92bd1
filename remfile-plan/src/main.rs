//! `remfile-plan [AST|-] [--build-arg K=V]... [--target STAGE] [--platform P] [--base-config REF=FILE]...`
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use remfile_plan::{ImageConfig, PlanOptions, Platform};

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

enum Failure {
    Usage(anyhow::Error),
}

fn run(cli: Cli) -> Result<(), Failure> {
    let usage = Failure::Usage;
    let text = match cli.ast.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the AST from stdin")
                .map_err(usage)?;
            s
        }
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {path}"))
            .map_err(usage)?,
    };
    let ast: remfile_parse::Remfile = serde_json::from_str(&text)
        .context("the input is not a version-1 AST document")
        .map_err(usage)?;
    let mut opts = PlanOptions::default();
    for a in &cli.build_args {
        if a.contains('=') {
            opts.build_args
                .push(PlanOptions::parse_build_arg(a).map_err(|e| usage(e.into()))?);
        } else if !remfile_plan::options::valid_arg_name(a) {
            return Err(usage(remfile_plan::PlanError::BuildArg(a.clone()).into()));
        } else if let Ok(v) = std::env::var(a) {
            opts.build_args.push((a.clone(), v));
        }
    }
    opts.target = cli.target;
    if let Some(p) = &cli.platform {
        opts.platform = Some(
            Platform::parse(p)
                .map_err(remfile_plan::PlanError::OptionPlatform)
                .map_err(|e| usage(e.into()))?,
        );
    }
    if let Some(p) = &cli.build_platform {
        opts.build_platform = Some(
            Platform::parse(p)
                .map_err(remfile_plan::PlanError::OptionPlatform)
                .map_err(|e| usage(e.into()))?,
        );
    }
    let mut bases: BTreeMap<String, ImageConfig> = BTreeMap::new();
    for b in &cli.base_configs {
        let (r, file) = b
            .split_once('=')
            .with_context(|| format!("--base-config {b:?}: expected REF=FILE"))
            .map_err(usage)?;
        let image = remfile_plan::reference::normalize(r)
            .with_context(|| format!("--base-config {b:?}"))
            .map_err(usage)?;
        let doc = std::fs::read_to_string(file)
            .with_context(|| format!("reading {file}"))
            .map_err(usage)?;
        let cfg = ImageConfig::from_oci_json(&doc)
            .with_context(|| format!("--base-config {file}"))
            .map_err(usage)?;
        bases.insert(image, cfg);
    }
    let plan = remfile_plan::plan(&ast, &opts, &bases).map_err(|e| usage(e.into()))?;
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
    }
    .context("serialising the plan")
    .map_err(usage)?;
    let mut stdout = std::io::stdout().lock();
    // a closed pipe is not an error of ours
    let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("remfile-plan: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
