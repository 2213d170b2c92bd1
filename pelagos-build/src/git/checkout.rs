//! The shallow checkout of a resolved commit (submodules included, `.git` removed unless kept).

use std::path::Path;

use super::GitError;
use super::redact::redact;
use super::remote::{GitEnv, Resolved};

impl Resolved {
    /// Checks the commit out into the new directory `dir` (shallow, submodules recursive); the
    /// `.git` entries are removed unless kept (a kept `.git/config` names the URL without its
    /// credentials). Returns the committer time (Unix seconds).
    pub fn checkout(&self, dir: &Path, env: &GitEnv) -> Result<i64, GitError> {
        let src = &self.source;
        let io = |source| GitError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let d = Some(dir);
        env.run(src, &["init", "-q"], d)?;
        env.run(src, &["remote", "add", "origin", &src.remote], d)?;
        let by_commit = env.run(
            src,
            &[
                "fetch",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "origin",
                &self.commit,
            ],
            d,
        );
        if by_commit.is_err() {
            // servers that do not serve a commit by hash: fetch every branch and tag
            env.run(
                src,
                &[
                    "fetch",
                    "-q",
                    "origin",
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                d,
            )?;
        }
        env.run(
            src,
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                &self.commit,
            ],
            d,
        )?;
        if src.submodules && dir.join(".gitmodules").exists() {
            let shallow = env.run(
                src,
                &[
                    "submodule",
                    "update",
                    "-q",
                    "--init",
                    "--recursive",
                    "--depth",
                    "1",
                ],
                d,
            );
            if shallow.is_err() {
                env.run(
                    src,
                    &["submodule", "update", "-q", "--init", "--recursive"],
                    d,
                )?;
            }
        }
        let t = env.run(src, &["log", "-1", "--format=%ct", &self.commit], d)?;
        let time = t.trim().parse::<i64>().unwrap_or(0);
        if self.keep_git_dir {
            env.run(
                src,
                &["remote", "set-url", "origin", &redact(&src.remote)],
                d,
            )?;
            // FETCH_HEAD names the URL as fetched
            let _ = std::fs::remove_file(dir.join(".git").join("FETCH_HEAD"));
            if let Some(b) = self.refname.strip_prefix("refs/heads/") {
                env.run(src, &["checkout", "-q", "-B", b, &self.commit], d)?;
            }
        } else {
            remove_git_entries(dir)?;
        }
        Ok(time)
    }
}

fn remove_git_entries(dir: &Path) -> Result<(), GitError> {
    let mut gits = Vec::new();
    let mut it = walkdir::WalkDir::new(dir).min_depth(1).into_iter();
    while let Some(e) = it.next() {
        let e = e.map_err(|e| GitError::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if e.file_name() == ".git" {
            if e.file_type().is_dir() {
                it.skip_current_dir();
            }
            gits.push(e.path().to_path_buf());
        }
    }
    for g in gits {
        let r = if g.is_dir() && !g.is_symlink() {
            std::fs::remove_dir_all(&g)
        } else {
            std::fs::remove_file(&g)
        };
        r.map_err(|source| GitError::Io { path: g, source })?;
    }
    Ok(())
}
