//! `pelagos-build`: the orchestrator and front door of pelagos build.
//!
//! It turns a Remfile (or a Plan from `remfile-plan`) and a build context into an OCI image in
//! the local store, with Docker's command line and BuildKit's semantics. Modules:
//!
//! - [`cli`]: the flags and their validation into [`cli::BuildOptions`];
//! - [`ignore`]: `.dockerignore`-family files with Docker's pattern semantics;
//! - [`localdir`]: `--output type=local` merged into a directory that already has files, never
//!   through its symlinks;
//! - [`perms`]: `--chown` / `--chmod`;
//! - [`registry`]: base image pulls, `--push`, the registry build cache;
//! - [`secrets`]: `--secret` and `--ssh` for `RUN --mount=type=secret|ssh`;
//! - [`ssh`]: private agents for `--ssh ID=KEYFILE`;
//! - [`git`]: `ADD` of git repositories;
//! - [`extra`] and [`contexts`]: buildx flags (`--build-context`, `--add-host`, ...);
//! - [`remote`]: git repositories and URLs as the context or a named context;
//! - [`output`]: `--output` specs (buildx's CSV and BuildKit's attributes) and exporters.

pub mod archive;
pub mod build;
pub mod checksum;
pub mod cli;
pub mod contexts;
pub mod copy;
pub mod error;
pub mod exec;
pub mod extra;
pub mod fetch;
pub mod git;
pub mod gzmembers;
pub mod ignore;
pub mod localdir;
pub mod output;
pub mod perms;
pub mod progress;
pub mod registry;
pub mod remote;
pub mod secrets;
pub mod ssh;
pub mod steps;
pub mod stubs;
pub mod tree;
pub mod wasm;
pub mod xzstreams;

/// The whole command: validates the flags, builds, prints the result document (or the ID with
/// `-q`) on stdout.
pub fn run_cli(cli: cli::Cli) -> Result<(), error::BuildError> {
    use std::io::IsTerminal;
    use std::io::Write;
    let opts = cli.into_options(&|k| std::env::var(k).ok())?;
    // an archive on stdout (`--output -`, BuildKit's): never onto a terminal, and then stdout
    // carries nothing else
    let stdout_output = opts.outputs.iter().find(|o| o.is_stdout());
    if let Some(o) = stdout_output
        && std::io::stdout().is_terminal()
    {
        return Err(cli::UsageError::Output {
            spec: o.dest.display().to_string(),
            reason: "dest file is required, refusing to write to a terminal".into(),
        }
        .into());
    }
    let progress = progress::Progress::new(opts.progress, opts.quiet);
    let out = build::build(&opts, &progress)?;
    if stdout_output.is_some() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let text = if opts.quiet {
        out.result.image_id.clone()
    } else {
        serde_json::to_string(&out.result).unwrap_or_default()
    };
    // a closed stdout (`| head`) is not an error of the build
    let _ = writeln!(stdout, "{text}");
    Ok(())
}
