//! The environment `git` runs in, and resolving a ref to a commit with `git ls-remote`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::GitError;
use super::redact::{password, redact};
use super::url::{GitRef, GitSource, is_full_hash, is_hex};

/// A source resolved to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The source.
    pub source: GitSource,
    /// The full commit hash.
    pub commit: String,
    /// The ref it came from (`refs/heads/main`, `HEAD`, or the commit itself).
    pub refname: String,
    /// Whether the `.git` directory is kept.
    pub keep_git_dir: bool,
}

/// The environment `git` runs in: no system or global config, no prompts, only the four
/// BuildKit protocols (also for submodules), and the `--ssh default` agent for ssh URLs.
#[derive(Debug, Clone, Default)]
pub struct GitEnv {
    /// The agent socket for ssh URLs (`--ssh default`).
    pub ssh_auth_sock: Option<PathBuf>,
}

impl GitEnv {
    fn command(&self) -> Command {
        let mut c = Command::new("git");
        c.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", "http:https:git:ssh")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            )
            .env("LC_ALL", "C")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null());
        match &self.ssh_auth_sock {
            Some(s) => c.env("SSH_AUTH_SOCK", s),
            None => c.env_remove("SSH_AUTH_SOCK"),
        };
        c
    }

    /// Runs git; returns stdout, or the error with stderr's last lines (redacted).
    pub(super) fn run(
        &self,
        src: &GitSource,
        args: &[&str],
        dir: Option<&Path>,
    ) -> Result<String, GitError> {
        let mut c = self.command();
        if let Some(d) = dir {
            c.current_dir(d);
        }
        c.args(args);
        let o = c.output().map_err(|e| GitError::Git {
            url: src.shown.clone(),
            message: format!("cannot run git: {e}"),
        })?;
        if o.status.success() {
            return Ok(String::from_utf8_lossy(&o.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join("; ");
        let mut message = redact(&tail);
        // git may print the URL as given or as it normalised it: strip any password left
        if let Some(pw) = password(&src.remote) {
            message = message.replace(pw, "xxxxx");
        }
        Err(GitError::Git {
            url: src.shown.clone(),
            message: format!("git {}: {message}", args.first().unwrap_or(&"")),
        })
    }
}

/// Picks the commit of `reference` from `git ls-remote` output, with git's precedence for a bare
/// name: `NAME`, `refs/NAME`, `refs/tags/NAME`, `refs/heads/NAME` (a peeled tag `^{}` wins over
/// the tag object).
pub fn pick_ref(listing: &str, reference: &GitRef) -> Option<(String, String)> {
    let mut refs: BTreeMap<&str, &str> = BTreeMap::new();
    for line in listing.lines() {
        if let Some((sha, name)) = line.split_once('\t') {
            refs.insert(name.trim(), sha.trim());
        }
    }
    let candidates: Vec<String> = match reference {
        GitRef::Head => vec!["HEAD".into()],
        GitRef::Branch(b) => vec![format!("refs/heads/{b}")],
        GitRef::Tag(t) => vec![format!("refs/tags/{t}")],
        GitRef::Name(n) => vec![
            n.clone(),
            format!("refs/{n}"),
            format!("refs/tags/{n}"),
            format!("refs/heads/{n}"),
        ],
    };
    candidates.into_iter().find_map(|c| {
        let peeled = format!("{c}^{{}}");
        refs.get(peeled.as_str())
            .or_else(|| refs.get(c.as_str()))
            .map(|sha| ((*sha).to_string(), c))
    })
}

/// Resolves `src` to a commit (`git ls-remote`; a full commit hash is taken as is) and checks
/// the checksum: `checksum` (`--checksum`) and the URL's own must both prefix the commit.
pub fn resolve(
    src: &GitSource,
    checksum: Option<&str>,
    keep_git_dir: bool,
    env: &GitEnv,
) -> Result<Resolved, GitError> {
    let flag = match checksum {
        Some(c) if is_hex(c) && c.len() <= 64 => Some(c.to_ascii_lowercase()),
        Some(c) => {
            return Err(GitError::Url {
                url: src.shown.clone(),
                reason: format!(
                    "--checksum {c:?}: for a git source, give the commit hash or a prefix of it"
                ),
            });
        }
        None => None,
    };
    let (commit, refname) = match &src.reference {
        GitRef::Name(n) if is_full_hash(n) => (n.to_ascii_lowercase(), n.to_ascii_lowercase()),
        r => {
            let pattern = match r {
                GitRef::Head => "HEAD".to_string(),
                GitRef::Branch(b) => format!("refs/heads/{b}"),
                GitRef::Tag(t) => format!("refs/tags/{t}"),
                GitRef::Name(n) => n.clone(),
            };
            // a tag's peeled commit is listed as NAME^{} (a pattern must name it too)
            let peeled = format!("{pattern}^{{}}");
            let out = env.run(
                src,
                &["ls-remote", "--", &src.remote, &pattern, &peeled],
                None,
            )?;
            pick_ref(&out, r).ok_or_else(|| GitError::Git {
                url: src.shown.clone(),
                message: match r {
                    GitRef::Name(n) if is_hex(n) => format!(
                        "ref {n:?} not found (a commit must be given as its full hash; a prefix works with --checksum)"
                    ),
                    _ => format!("ref {pattern:?} not found"),
                },
            })?
        }
    };
    for expected in [flag.as_deref(), src.checksum.as_deref()]
        .into_iter()
        .flatten()
    {
        if !commit.starts_with(expected) {
            return Err(GitError::Checksum {
                url: src.shown.clone(),
                expected: expected.to_string(),
                actual: commit,
            });
        }
    }
    Ok(Resolved {
        source: src.clone(),
        commit,
        refname,
        keep_git_dir: src.keep_git_dir.unwrap_or(keep_git_dir),
    })
}

impl Resolved {
    /// What the cache key holds for this source: the commit, the subdir and the flags (never
    /// the URL's credentials).
    pub fn cache_part(&self) -> String {
        format!(
            "git commit={} subdir={:?} keep-git-dir={} submodules={} mtime={}",
            self.commit,
            self.source.subdir,
            self.keep_git_dir,
            self.source.submodules,
            if self.source.mtime_checkout {
                "checkout"
            } else {
                "commit"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_precedence() {
        let listing = "c1\tHEAD\nc2\trefs/heads/v1\nt3\trefs/tags/v1\nc3\trefs/tags/v1^{}\nc4\trefs/heads/feature/v1\n";
        let pick = |r: GitRef| pick_ref(listing, &r).map(|(c, _)| c);
        assert_eq!(pick(GitRef::Head).as_deref(), Some("c1"));
        assert_eq!(pick(GitRef::Name("v1".into())).as_deref(), Some("c3"));
        assert_eq!(pick(GitRef::Branch("v1".into())).as_deref(), Some("c2"));
        assert_eq!(pick(GitRef::Tag("v1".into())).as_deref(), Some("c3"));
        assert_eq!(
            pick(GitRef::Name("refs/heads/feature/v1".into())).as_deref(),
            Some("c4")
        );
        assert_eq!(pick(GitRef::Name("feature".into())), None);
    }
}
