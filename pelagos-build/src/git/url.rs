//! Which ADD sources are git repositories, and their `#ref:subdir` fragments and
//! `##key=value` / `?key=value` parameters.

use super::GitError;
use super::redact::redact;

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

fn percent_decode(s: &str) -> Option<String> {
    String::from_utf8(crate::fetch::percent_decode_bytes(s, true)?).ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

pub(super) fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn is_full_hash(s: &str) -> bool {
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
        assert_eq!(p("https://h/r.git?subdir=a+b%2Bc").subdir, "a b+c");
        assert!(parse("https://h/r.git?subdir=%ff").is_err());
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
}
