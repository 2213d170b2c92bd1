//! `pelagos-build`: the orchestrator and front door of pelagos build.
//!
//! It turns a Remfile (or a Plan from `remfile-plan`) and a build context into an OCI image in
//! the local store, with Docker's command line and BuildKit's semantics. Modules:
//!
//! - [`cli`]: the flags and their validation into [`cli::BuildOptions`];
//! - [`ignore`]: `.dockerignore`-family files with Docker's pattern semantics;
//! - [`perms`]: `--chown` / `--chmod`.

pub mod cli;
pub mod ignore;
pub mod perms;
pub mod tree;
pub mod copy;
pub mod checksum;
pub mod archive;
