//! The environment `git` runs in, and resolving a ref to a commit with `git ls-remote`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
/// BuildKit protocols (also for submodules), the `--ssh default` agent for ssh URLs, and a
/// time limit per git command.
#[derive(Debug, Clone)]
pub struct GitEnv {
    /// The agent socket for ssh URLs (`--ssh default`).
    pub ssh_auth_sock: Option<PathBuf>,
    /// How long one git command may take before it is killed (`None`: no limit).
    pub timeout: Option<Duration>,
}

/// The variable that sets [`GitEnv::timeout`] (seconds; `0`: no limit).
pub const TIMEOUT_VAR: &str = "PELAGOS_GIT_TIMEOUT";

/// The default time limit of one git command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for GitEnv {
    fn default() -> Self {
        GitEnv {
            ssh_auth_sock: None,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }
}

/// Parses a [`TIMEOUT_VAR`] value: whole seconds, `0` for no limit.
pub fn parse_timeout(v: &str) -> Result<Option<Duration>, GitError> {
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(Duration::from_secs(n))),
        Err(_) => Err(GitError::Url {
            url: format!("{TIMEOUT_VAR}={v:?}"),
            reason: "expected whole seconds (0: no limit)".into(),
        }),
    }
}

impl GitEnv {
    /// The environment for `ssh_auth_sock`, with the time limit of `$PELAGOS_GIT_TIMEOUT`
    /// (default [`DEFAULT_TIMEOUT`]).
    pub fn from_env(ssh_auth_sock: Option<PathBuf>) -> Result<GitEnv, GitError> {
        let timeout = match std::env::var(TIMEOUT_VAR) {
            Ok(v) if !v.trim().is_empty() => parse_timeout(&v)?,
            _ => Some(DEFAULT_TIMEOUT),
        };
        Ok(GitEnv {
            ssh_auth_sock,
            timeout,
        })
    }

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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // its own process group: a timeout kills git and its helpers (remote-http, ssh)
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        match &self.ssh_auth_sock {
            Some(s) => c.env("SSH_AUTH_SOCK", s),
            None => c.env_remove("SSH_AUTH_SOCK"),
        };
        c
    }

    /// Runs `c` to completion or until the time limit: (status, stdout, stderr), or `None`
    /// when it was killed for taking too long.
    fn output(&self, c: &mut Command) -> std::io::Result<Option<std::process::Output>> {
        let mut child = c.spawn()?;
        let pid = child.id();
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut v);
                }
                v
            })
        };
        let out = read(
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        let err = read(
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if self.timeout.is_some_and(|t| started.elapsed() >= t) {
                // the whole group: git's helpers hold the pipes open too
                if let Ok(pid) = i32::try_from(pid) {
                    // SAFETY: kill has no memory preconditions; the group is our child's
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Ok(status.map(|status| std::process::Output {
            status,
            stdout,
            stderr,
        }))
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
        let o = self
            .output(&mut c)
            .map_err(|e| GitError::Git {
                url: src.shown.clone(),
                message: format!("cannot run git: {e}"),
            })?
            .ok_or_else(|| GitError::Git {
                url: src.shown.clone(),
                message: format!(
                    "git {}: no result within {}s, killed (set {TIMEOUT_VAR} to change the limit)",
                    args.first().unwrap_or(&""),
                    self.timeout.map_or(0, |t| t.as_secs())
                ),
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
    fn timeouts() {
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout(" 5 ").unwrap(), Some(Duration::from_secs(5)));
        assert!(parse_timeout("5s").is_err());
        assert!(parse_timeout("-1").is_err());
        assert_eq!(GitEnv::default().timeout, Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_group() {
        let env = GitEnv {
            ssh_auth_sock: None,
            timeout: Some(Duration::from_millis(300)),
        };
        // a child that outlives the shell keeps the pipes open unless the group is killed
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30 & sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let t = Instant::now();
        assert!(env.output(&mut c).unwrap().is_none());
        assert!(t.elapsed() < Duration::from_secs(10));
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let o = env.output(&mut c).unwrap().unwrap();
        assert_eq!(o.stdout, b"out\n");
        assert_eq!(o.stderr, b"err\n");
    }

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
