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
//! ns_run::init_if_requested(); // never returns when this process is a container init
//! // ... the program's own work, which may call ns_run::run from worker threads
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
//! reduced to Docker's default set and a Docker-like seccomp profile, umask 0022, the
//! [`RunSpec::rlimits`]; then the command runs as the requested user, and [`run`] returns its
//! exit status and the upper dir. [`Security::Insecure`] is BuildKit's `security.insecure`
//! (every capability, no seccomp, no masked paths).
mod caps;
mod cgroup;
mod error;
mod exec;
mod image;
mod init;
mod layers;
mod net;
mod overlay;
mod parent;
mod rlimit;
mod rootfs;
mod seccomp;
mod spec;
mod user;
mod workdir;

use std::path::{Path, PathBuf};

pub use error::RunError;
pub use image::image_lowers;
pub use rlimit::{Rlimit, RlimitKind, UNLIMITED};
pub use spec::{
    IdMapping, MountSpec, Network, Output, OverlayDriver, RunResult, RunSpec, Security,
};
pub use user::{group_id, passwd_ids};

/// Runs `spec` and waits for the command. Safe to call from several threads at once.
/// The command exiting non-zero is not an error: see [`RunResult::exit_code`].
pub fn run(spec: &RunSpec) -> Result<RunResult, RunError> {
    parent::run(spec)
}

/// If this process was started as a container init by [`run`], runs the container and exits
/// (never returns). Otherwise returns immediately. Call it first thing in `main`.
pub fn init_if_requested() {
    if std::env::var_os(init::INIT_ENV).is_some() {
        init::main();
    }
}

/// The default work root: `runs/` in the default store root (`$PELAGOS_STORE/runs`, else
/// `/var/lib/pelagos/runs` as root, else `$XDG_DATA_HOME/pelagos/runs` or
/// `~/.local/share/pelagos/runs`).
pub fn default_work_root() -> PathBuf {
    image::work_root_in(&image_store::Store::default_root())
}

/// The work root for a given store root: `ROOT/runs` (never `ROOT/tmp`, whose unowned entries
/// image-store's gc and fsck remove).
pub fn work_root_for_store(store_root: &Path) -> PathBuf {
    image::work_root_in(store_root)
}

/// Removes run dirs under `work_root` left behind by runs that were killed (their lock file
/// is not locked). Completed runs' upper dirs (no lock file) are the caller's and are kept.
/// [`run`] calls it on its work root first. Returns the number of run dirs removed.
pub fn sweep(work_root: &Path) -> Result<usize, RunError> {
    workdir::sweep(work_root)
}

/// Forwards signal `sig` to the init of every run in progress in this process (for a CLI's
/// SIGINT/SIGTERM handler; async-signal-safe). The init forwards it to the command.
pub fn forward_signal(sig: i32) {
    parent::forward_signal(sig);
}

/// Removes a tree produced by a run (an upper dir or a whole `run-*` dir), making read-only
/// and mode-000 directories writable first.
pub fn remove_tree(path: &Path) -> Result<(), RunError> {
    workdir::remove_tree(path)
}
