//! `ns-run`: run one build step in fresh namespaces over overlayfs.
//!
//! # IMPORTANT: call [`init_if_requested`] first thing in `main`
//!
//! [`run`] may be called from any thread of a multi-threaded program. It never runs Rust code
//! in a forked copy of that program: it `clone`s a child that only `execve`s a helper binary
//! (by default the current executable, `/proc/self/exe`) in a hidden init mode, and the
//! single-threaded helper then sets up the container. Every binary that links this crate and
//! calls [`run`] must therefore call [`init_if_requested`] before anything else in `main`:
//!
//! ```no_run
//! fn main() {
//!     ns_run::init_if_requested(); // never returns when this process is a container init
//!     // ... the program's own work, which may call ns_run::run from worker threads
//! }
//! ```
//!
//! Programs that cannot (test harnesses) point [`RunSpec::helper`] at a binary that does,
//! such as the `ns-run` binary itself.
//!
//! # What a run does
//!
//! Fresh mount, pid, uts, ipc and net namespaces (and a user namespace when not root), an
//! overlay of [`RunSpec::lowers`] (top first) with a fresh upper dir on disk, mounted
//! `volatile`, `pivot_root` into it, a fresh `/proc`, a tmpfs `/dev` with the usual nodes,
//! read-only `/sys`, `/etc/resolv.conf` and `/etc/hosts` bound from outside; capabilities
//! reduced to Docker's default set and a Docker-like seccomp profile; then the command runs as
//! the requested user, and [`run`] returns its exit status and the upper dir.
mod error;
mod spec;

use std::path::{Path, PathBuf};

pub use error::RunError;
pub use spec::{IdMapping, MountSpec, Network, Output, OverlayDriver, RunResult, RunSpec};

/// Runs `spec` and waits for the command. See the crate docs.
pub fn run(spec: &RunSpec) -> Result<RunResult, RunError> {
    let _ = spec;
    Err(RunError::Init("not implemented yet".into()))
}

/// If this process was started as a container init by [`run`], runs the container and exits
/// (never returns). Otherwise returns immediately. Call it first thing in `main`.
pub fn init_if_requested() {}

/// The default work root: `$PELAGOS_STORE/tmp`, else `/var/lib/pelagos/tmp` as root, else
/// `$XDG_DATA_HOME/pelagos/tmp` (or `~/.local/share/pelagos/tmp`).
pub fn default_work_root() -> PathBuf {
    PathBuf::from("/var/lib/pelagos/tmp")
}

/// Removes run dirs under `work_root` left behind by runs that were killed (their lock is not
/// held). Completed runs' upper dirs (no lock file) are the caller's and are kept. Returns the
/// number of run dirs removed.
pub fn sweep(work_root: &Path) -> Result<usize, RunError> {
    let _ = work_root;
    Ok(0)
}

/// Forwards signal `sig` to the init of every run in progress in this process (for a CLI's
/// SIGINT/SIGTERM handler; async-signal-safe).
pub fn forward_signal(sig: i32) {
    let _ = sig;
}

/// Removes a tree produced by a run (an upper dir or a whole `run-*` dir), also when rootless,
/// where the command's files are owned by sub-ids the caller cannot delete directly (the
/// removal then runs inside a user namespace with the same id map).
pub fn remove_tree(path: &Path) -> Result<(), RunError> {
    std::fs::remove_dir_all(path).map_err(|source| RunError::Io {
        op: "remove",
        path: path.to_path_buf(),
        source,
    })
}
