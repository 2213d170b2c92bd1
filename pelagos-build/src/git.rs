//! ADD of git repositories, BuildKit's way: which sources are git URLs, their `#ref:subdir`
//! fragments (and `##key=value` / `?key=value` forms), resolving the ref to a commit with
//! `git ls-remote` (the commit is what the cache key holds, so a new commit on a branch re-runs
//! the step and the same commit stays cached), `--checksum` as a commit prefix, a shallow
//! checkout with submodules, and the entries of the layer (files 0644, or 0755 when executable;
//! directories 0755; mtimes at the commit time; no `.git` unless `--keep-git-dir`).
//!
//! Credentials in URLs (`https://user:token@host/x.git`) are handed to `git` only: every message,
//! progress line and history entry shows the URL through [`redact`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use layer_pack::{Entry, EntrySource};

use crate::perms::Chmod;

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

/// Which ref of the repository to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The remote's `HEAD` (its default branch).
    Head,
    /// A name resolved like git does (`refs/NAME`, tag, then branch), or a full commit hash.
    Name(String),
    /// `?branch=`: `refs/heads/NAME`.
    Branch(String),
    /// `?tag=`: `refs/tags/NAME`.
    Tag(String),
}

/// A parsed git source of `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What `git` is given: the URL without fragment and query (may hold credentials).
    pub remote: String,
    /// The source as written, credentials redacted (for messages).
    pub shown: String,
    /// The ref.
    pub reference: GitRef,
    /// A commit (prefix) the ref must resolve to (`##commit=`, `?checksum=`, `?commit=`).
    pub checksum: Option<String>,
    /// The directory of the repository to copy ("" for the root), cleaned and relative.
    pub subdir: String,
    /// Whether submodules are checked out (default: yes; `?submodules=false`).
    pub submodules: bool,
    /// `?keep-git-dir=`, if given (else the `--keep-git-dir` flag decides).
    pub keep_git_dir: Option<bool>,
    /// `?mtime=checkout`: files get the build's time instead of the commit time.
    pub mtime_checkout: bool,
}

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

fn is_scp_like(s: &str) -> bool {
    // BuildKit's implicit ssh transport: USER@HOST:PATH, no scheme
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let Some((host, _)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn scheme(s: &str) -> Option<String> {
    let (sch, _) = s.split_once("://")?;
    (!sch.is_empty() && sch.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| sch.to_ascii_lowercase())
}

/// Whether an ADD source is a git repository: `git://…`, `ssh://…`, `USER@HOST:PATH`, or an
/// `http(s)://` URL whose path ends in `.git` (fragment and query not counted).
pub fn is_git_source(s: &str) -> bool {
    match scheme(s).as_deref() {
        Some("git" | "ssh") => true,
        Some("http" | "https") => {
            let rest = s.split_once("://").map_or("", |(_, r)| r);
            let rest = rest.split(['#', '?']).next().unwrap_or("");
            rest.split_once('/')
                .is_some_and(|(_, path)| path.strip_suffix(".git").is_some())
        }
        Some(_) => false,
        None => is_scp_like(s),
    }
}

/// `s` with the credentials of every URL in it replaced by `xxxxx` (for ssh URLs only a
/// password; the user name of `ssh://git@host` is kept).
pub fn redact(s: &str) -> String {
    if !s.contains('@') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let sch_start = head[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_alphanumeric() && !matches!(c, '+' | '.' | '-'))
            .map_or(0, |(p, c)| p + c.len_utf8());
        let sch = head[sch_start..i].to_ascii_lowercase();
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if sch.ends_with("ssh") {
                match userinfo.split_once(':') {
                    Some((u, _)) => {
                        out.push_str(u);
                        out.push_str(":xxxxx");
                    }
                    None => out.push_str(userinfo),
                }
            } else {
                out.push_str("xxxxx");
            }
            out.push_str(&authority[at..]);
        } else {
            out.push_str(authority);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Redacts URL credentials in the progress text and history entry of every ADD step.
pub fn redact_plan(mut plan: remfile_plan::Plan) -> remfile_plan::Plan {
    for stage in &mut plan.stages {
        for step in &mut stage.steps {
            if matches!(step.op, remfile_plan::Op::Add(_)) {
                step.instruction = redact(&step.instruction);
                step.created_by = redact(&step.created_by);
            }
        }
    }
    plan
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(if c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_full_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_hex(s)
}

/// Parses a git source (see [`is_git_source`]): `URL[#REF[:SUBDIR]]`, `URL##ref=R,commit=C,
/// subdir=D`, or `URL?ref=|branch=|tag=|checksum=|commit=|subdir=|submodules=|keep-git-dir=|
/// mtime=commit|checkout` (a fragment and a query cannot be mixed).
pub fn parse(s: &str) -> Result<GitSource, GitError> {
    let shown = redact(s);
    let bad = |reason: &str| GitError::Url {
        url: shown.clone(),
        reason: reason.to_string(),
    };
    if !is_git_source(s) {
        return Err(bad("not a git URL"));
    }
    let (before, fragment) = match s.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (s, None),
    };
    let (remote, query) = match (scheme(before), before.split_once('?')) {
        (Some(_), Some((r, q))) => (r, Some(q)),
        _ => (before, None),
    };
    let mut src = GitSource {
        remote: remote.to_string(),
        shown: shown.clone(),
        reference: GitRef::Head,
        checksum: None,
        subdir: String::new(),
        submodules: true,
        keep_git_dir: None,
        mtime_checkout: false,
    };
    let mut subdir = String::new();
    match (fragment, query) {
        (Some(_), Some(_)) => return Err(bad("use a URL fragment or a query, not both")),
        (Some(f), None) => {
            if let Some(csv) = f.strip_prefix('#') {
                for field in csv.split(',').filter(|x| !x.is_empty()) {
                    let (k, v) = field.split_once('=').ok_or_else(|| {
                        bad(&format!("fragment field {field:?} is not KEY=VALUE"))
                    })?;
                    match k.to_ascii_lowercase().as_str() {
                        "ref" => src.reference = GitRef::Name(v.to_string()),
                        "commit" => src.checksum = Some(v.to_string()),
                        "subdir" => subdir = v.to_string(),
                        _ => {
                            return Err(bad(&format!(
                                "unknown fragment key {k:?} (ref, commit, subdir)"
                            )));
                        }
                    }
                }
            } else {
                let (r, d) = f.split_once(':').unwrap_or((f, ""));
                if !r.is_empty() {
                    src.reference = GitRef::Name(r.to_string());
                }
                subdir = d.to_string();
            }
        }
        (None, Some(q)) => {
            let mut refs = 0;
            for pair in q.split('&').filter(|x| !x.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_decode(v).ok_or_else(|| bad("bad percent-encoding"))?;
                match k {
                    "ref" => {
                        refs += 1;
                        src.reference = GitRef::Name(v);
                    }
                    "branch" => {
                        refs += 1;
                        src.reference = GitRef::Branch(v);
                    }
                    "tag" => {
                        refs += 1;
                        src.reference = GitRef::Tag(v);
                    }
                    "checksum" | "commit" => src.checksum = Some(v),
                    "subdir" => subdir = v,
                    "submodules" => {
                        src.submodules = parse_bool(&v)
                            .ok_or_else(|| bad("submodules must be true or false"))?;
                    }
                    "keep-git-dir" => {
                        src.keep_git_dir = Some(
                            parse_bool(&v)
                                .ok_or_else(|| bad("keep-git-dir must be true or false"))?,
                        );
                    }
                    "mtime" => {
                        src.mtime_checkout = match v.as_str() {
                            "commit" => false,
                            "checkout" => true,
                            _ => return Err(bad("mtime must be commit or checkout")),
                        }
                    }
                    _ => {
                        return Err(bad(&format!(
                            "unknown query key {k:?} (ref, branch, tag, checksum, commit, subdir, submodules, keep-git-dir, mtime)"
                        )));
                    }
                }
            }
            if refs > 1 {
                return Err(bad("give only one of ref, branch and tag"));
            }
        }
        (None, None) => {}
    }
    match &src.reference {
        GitRef::Name(r) | GitRef::Branch(r) | GitRef::Tag(r)
            if r.is_empty() || r.starts_with('-') || r.contains("..") =>
        {
            return Err(bad(&format!("invalid ref {r:?}")));
        }
        _ => {}
    }
    if let Some(c) = &src.checksum {
        if !is_hex(c) || c.len() > 64 {
            return Err(bad("checksum must be a commit hash or a prefix of one"));
        }
        src.checksum = Some(c.to_ascii_lowercase());
    }
    src.subdir = crate::ignore::clean(&format!("/{subdir}"))
        .trim_start_matches('/')
        .to_string();
    Ok(src)
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
    fn run(&self, src: &GitSource, args: &[&str], dir: Option<&Path>) -> Result<String, GitError> {
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

/// The userinfo of a scheme URL (what [`redact`] hides), if any.
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo.split_once(':').map_or(userinfo, |(_, p)| p)).filter(|p| !p.is_empty())
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

/// How the checked-out files become layer entries.
#[derive(Debug, Clone)]
pub struct EntryOptions<'a> {
    /// The destination directory in the layer ("" for the root), resolved.
    pub dest: &'a str,
    /// `--chown`, resolved.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<&'a Chmod>,
    /// The mtime of every entry.
    pub mtime: i64,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// The entries for the checkout at `root` (its `subdir`) placed under `opts.dest`: directories
/// 0755, files 0644 or 0755 (any execute bit), symlinks as links, all at `opts.mtime`.
pub fn entries(
    root: &Path,
    src: &GitSource,
    opts: &EntryOptions<'_>,
) -> Result<BTreeMap<String, Entry>, GitError> {
    // the subdir must be a directory of the checkout reached without symlinks (a repository's
    // link to /etc must not copy the builder's files)
    let mut base = root.to_path_buf();
    let mut inside = true;
    for comp in src.subdir.split('/').filter(|c| !c.is_empty()) {
        base.push(comp);
        inside &= std::fs::symlink_metadata(&base).is_ok_and(|m| m.is_dir());
    }
    if !inside {
        return Err(GitError::Git {
            url: src.shown.clone(),
            message: format!(
                "subdir {:?} is not a directory of the repository",
                src.subdir
            ),
        });
    }
    let (uid, gid) = opts.chown.unwrap_or((0, 0));
    let mut out = BTreeMap::new();
    let io = |path: &Path, source| GitError::Io {
        path: path.to_path_buf(),
        source,
    };
    for e in walkdir::WalkDir::new(&base)
        .min_depth(1)
        .sort_by_file_name()
    {
        let e = e.map_err(|e| io(&base, e.into()))?;
        let rel = e
            .path()
            .strip_prefix(&base)
            .map_err(|_| io(e.path(), std::io::ErrorKind::InvalidData.into()))?;
        let rel = rel.to_string_lossy().into_owned();
        let ft = e.file_type();
        let (source, mode) = if ft.is_dir() {
            (EntrySource::Dir, 0o755)
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).map_err(|x| io(e.path(), x))?;
            (EntrySource::Symlink(t.into_os_string()), 0o777)
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let m = e.metadata().map_err(|x| io(e.path(), x.into()))?;
            let exec = m.permissions().mode() & 0o111 != 0;
            (
                EntrySource::File(e.path().to_path_buf()),
                if exec { 0o755 } else { 0o644 },
            )
        } else {
            continue;
        };
        let mode = match (opts.chmod, &source) {
            (Some(c), s) if !matches!(s, EntrySource::Symlink(_)) => {
                c.apply(mode, matches!(s, EntrySource::Dir))
            }
            _ => mode,
        };
        let p = join(opts.dest, &rel);
        out.insert(
            p.clone(),
            Entry {
                path_in_layer: p,
                source,
                mode,
                uid,
                gid,
                mtime: opts.mtime,
                xattrs: Vec::new(),
            },
        );
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_sources_are_git() {
        for yes in [
            "git@github.com:moby/buildkit.git",
            "git@github.com:moby/buildkit.git#v0.14.1:docs",
            "ssh://git@host:2222/x/y",
            "git://127.0.0.1:9418/repo",
            "https://github.com/user/repo.git",
            "HTTPS://h/r.git#main",
            "http://127.0.0.1:8080/r.git?branch=dev&subdir=x",
        ] {
            assert!(is_git_source(yes), "{yes}");
        }
        for no in [
            "https://example.com/archive.tar.gz",
            "https://example.com/r.git/file",
            "ftp://h/r.git",
            "file.txt",
            "dir/a:b",
            "a:b",
            "-oProxyCommand=x@h:p",
            "github.com/moby/buildkit",
            "user@:path",
        ] {
            assert!(!is_git_source(no), "{no}");
        }
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn fragments_and_queries() {
        let p = |s: &str| parse(s).unwrap();
        let a = p("https://h/r.git#v1.0:docs/sub");
        assert_eq!(
            (a.remote.as_str(), &a.reference, a.subdir.as_str()),
            ("https://h/r.git", &GitRef::Name("v1.0".into()), "docs/sub")
        );
        let b = p("git@h:o/r.git#:docs");
        assert_eq!((b.reference, b.subdir.as_str()), (GitRef::Head, "docs"));
        assert_eq!(b.remote, "git@h:o/r.git");
        let c = p("https://h/r.git##ref=main,commit=ABC1,subdir=/x/../y");
        assert_eq!(c.reference, GitRef::Name("main".into()));
        assert_eq!(c.checksum.as_deref(), Some("abc1"));
        assert_eq!(c.subdir, "y");
        let d = p(
            "https://h/r.git?tag=v1&checksum=deadbeef&subdir=a%20b&submodules=false&keep-git-dir=true&mtime=checkout",
        );
        assert_eq!(d.remote, "https://h/r.git");
        assert_eq!(d.reference, GitRef::Tag("v1".into()));
        assert_eq!(d.checksum.as_deref(), Some("deadbeef"));
        assert_eq!(d.subdir, "a b");
        assert!(!d.submodules && d.keep_git_dir == Some(true) && d.mtime_checkout);
        assert_eq!(
            p("git://h/r?branch=dev").reference,
            GitRef::Branch("dev".into())
        );
        // subdirs never climb out of the repository
        assert_eq!(p("https://h/r.git#main:../../etc").subdir, "etc");
        for bad in [
            "https://h/r.git?foo=1",
            "https://h/r.git?branch=a&tag=b",
            "https://h/r.git?ref=x#y",
            "https://h/r.git##bogus=1",
            "https://h/r.git?checksum=xyz",
            "https://h/r.git#--upload-pack=x",
            "https://h/r.git?submodules=maybe",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("ADD https://user:s3cret@h/r.git#main /x"),
            "ADD https://xxxxx@h/r.git#main /x"
        );
        assert_eq!(redact("https://tok3n@h/r.git"), "https://xxxxx@h/r.git");
        assert_eq!(
            redact("ssh://git:pw@h/r ssh://git@h/r"),
            "ssh://git:xxxxx@h/r ssh://git@h/r"
        );
        assert_eq!(redact("git@h:o/r.git"), "git@h:o/r.git");
        assert_eq!(redact("https://h/a@b.git"), "https://h/a@b.git");
        let e = parse("https://u:s3cret@h/r.git?nope=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert_eq!(password("https://u:s3cret@h/r.git"), Some("s3cret"));
        assert_eq!(password("https://tok@h/r.git"), Some("tok"));
        assert_eq!(password("https://h/r.git"), None);
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
