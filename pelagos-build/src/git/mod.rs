//! ADD of git repositories, BuildKit's way: which sources are git URLs, their `#ref:subdir`
//! fragments (and `##key=value` / `?key=value` forms), resolving the ref to a commit with
//! `git ls-remote` (the commit is what the cache key holds, so a new commit on a branch re-runs
//! the step and the same commit stays cached), `--checksum` as a commit prefix, a shallow
//! checkout with submodules, and the entries of the layer (files 0644, or 0755 when executable;
//! directories 0755; mtimes at the commit time; no `.git` unless `--keep-git-dir`).
//!
//! Credentials in URLs (`https://user:token@host/x.git`) are handed to `git` only: every message,
//! progress line and history entry shows the URL through [`redact`].
//!
//! The module is split by concern: `url` (which sources are git and their parameters),
//! `redact` (credentials in messages), `remote` (the `git` environment and ref resolution with
//! `git ls-remote`), `checkout` (the shallow checkout) and `entries` (the layer entries).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use layer_pack::Entry;

mod checkout;
mod entries;
mod redact;
mod remote;
mod url;

pub use entries::{EntryOptions, entries};
pub use redact::{redact, redact_plan};
pub use remote::{
    DEFAULT_TIMEOUT, GitEnv, Resolved, TIMEOUT_VAR, parse_timeout, pick_ref, resolve,
};
pub use url::{GitRef, GitSource, is_git_source, parse};

/// A git source that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL or one of its parameters is malformed.
    #[error("invalid git source {url}: {reason}")]
    Url {
        /// The source (credentials redacted).
        url: String,
        /// Why.
        reason: String,
    },
    /// A git command failed (unreachable repository, unknown ref, ...).
    #[error("git source {url}: {message}")]
    Git {
        /// The source (credentials redacted).
        url: String,
        /// What git said (credentials redacted).
        message: String,
    },
    /// The resolved commit does not match `--checksum` (or the `checksum`/`commit` parameter).
    #[error(
        "git source {url}: checksum mismatch: expected a commit starting with {expected}, got {actual}"
    )]
    Checksum {
        /// The source (credentials redacted).
        url: String,
        /// The expected commit (prefix).
        expected: String,
        /// The commit the ref resolved to.
        actual: String,
    },
    /// Reading the checkout failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Parses and resolves the git sources of one ADD (`--checksum` applies to each).
pub fn resolve_all(
    sources: &[String],
    checksum: Option<&str>,
    keep_git_dir: bool,
    env: &GitEnv,
) -> Result<Vec<Resolved>, GitError> {
    sources
        .iter()
        .map(|s| resolve(&parse(s)?, checksum, keep_git_dir, env))
        .collect()
}

/// The cache-key part of resolved sources ("" when there are none).
pub fn cache_part(resolved: &[Resolved]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for r in resolved {
        let _ = write!(s, " {}", r.cache_part());
    }
    s
}

/// Checks out every resolved source under `work` and adds its entries below `opts.dest`
/// (`opts.mtime` is used for `?mtime=checkout`; otherwise the commit time).
pub fn add_entries(
    resolved: &[Resolved],
    work: &Path,
    opts: &EntryOptions<'_>,
    env: &GitEnv,
    into: &mut BTreeMap<String, Entry>,
) -> Result<(), GitError> {
    for (i, r) in resolved.iter().enumerate() {
        let dir = work.join(format!("g{i}"));
        let t = r.checkout(&dir, env)?;
        let o = EntryOptions {
            mtime: if r.source.mtime_checkout {
                opts.mtime
            } else {
                t
            },
            ..opts.clone()
        };
        into.extend(entries(&dir, &r.source, &o)?);
    }
    Ok(())
}
