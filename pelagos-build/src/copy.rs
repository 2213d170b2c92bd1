//! COPY/ADD source selection and destination rules, producing layer-pack entries without
//! staging copies.
//!
//! Sources are paths or wildcard patterns (`*`, `?`, `[...]`, `**`) relative to the source tree
//! root (the context, or a stage's root file system for `--from`); they never escape it. A named
//! source that is a symlink is followed inside the tree (BuildKit's FollowSymlinks, scoped);
//! symlinks found inside copied directories are copied as symlinks. A directory source copies its
//! contents. The destination is relative to WORKDIR; it is a directory when it ends with `/` (or
//! is `.`) or already is a directory in the target, and missing parents are created.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use layer_pack::{Entry, EntrySource};

use crate::ignore::{IgnoreMatcher, clean};
use crate::perms::Chmod;
use crate::tree::{Kind, Node, Tree, TreeError};

/// Errors selecting sources or placing them.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source is missing or excluded.
    #[error("{0}: not found in the build context (or excluded by the ignore file)")]
    NotFound(String),
    /// A wildcard matched nothing.
    #[error("{0}: no source files matched")]
    NoMatch(String),
    /// A directory source after a file source landed on the same destination.
    #[error("cannot copy a directory onto {0:?}: an earlier source made it a file")]
    DestNotDir(String),
    /// A destination's parent exists in the target but is not a directory.
    #[error("cannot copy to {0:?}: /{1} is not a directory")]
    ParentNotDir(String, String),
    /// A bad pattern.
    #[error("invalid source pattern {0:?}")]
    Pattern(String),
    /// Reading a tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// One COPY/ADD, values already expanded by the planner.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Source paths or patterns.
    pub sources: Vec<String>,
    /// The destination as written.
    pub dest: String,
    /// WORKDIR of the stage (absolute).
    pub workdir: String,
    /// `--chown`, resolved to ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Keep the sources' owners when there is no `--chown` (COPY --from); else root.
    pub keep_owner: bool,
    /// Time for created parent directories (SOURCE_DATE_EPOCH, else 0).
    pub created_time: i64,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `dest` made absolute against `workdir`, as a tree-relative path, and whether it names a
/// directory by its spelling.
pub fn dest_path(dest: &str, workdir: &str) -> (String, bool) {
    let dir_spelled = dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest.is_empty();
    let abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), dest)
    };
    let c = clean(&abs);
    (c.trim_start_matches('/').to_string(), dir_spelled)
}

/// Resolves a destination in the target through its symlinks, keeping missing components, as
/// BuildKit's `RootPath` does: a symlink is followed even when its target is missing (so
/// `COPY f /dangling` writes the file the link points to and keeps the link), and the components
/// after the first missing one are taken literally.
pub fn resolve_for_create(target: &Tree, rel: &str) -> Result<String, TreeError> {
    let mut pending: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .rev()
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    let mut missing = false;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        if missing {
            cur.push(c);
            continue;
        }
        match target.lstat(&join(&cur.join("/"), &c))? {
            Some(Node {
                kind: Kind::Symlink(t),
                ..
            }) if hops < 40 => {
                hops += 1;
                let t = t.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    cur.clear();
                }
                pending.extend(
                    t.split('/')
                        .filter(|p| !p.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
            None => {
                missing = true;
                cur.push(c);
            }
            Some(_) => cur.push(c),
        }
    }
    Ok(cur.join("/"))
}

fn glob(tree: &Tree, base: &str, comps: &[&str], out: &mut Vec<String>) -> Result<(), CopyError> {
    let Some((first, rest)) = comps.split_first() else {
        out.push(base.to_string());
        return Ok(());
    };
    let child = |name: &str| {
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        }
    };
    if *first == "**" {
        glob(tree, base, rest, out)?;
        for n in tree.read_dir(base)? {
            if n.is_dir() {
                glob(tree, &n.rel, comps, out)?;
            }
        }
        return Ok(());
    }
    if !has_wildcard(first) {
        let c = child(first);
        if rest.is_empty() {
            if tree.lstat(&c)?.is_some() {
                out.push(c);
            }
        } else if let Some(r) = tree.resolve(&c)?
            && tree.lstat(&r)?.is_some_and(|n| n.is_dir())
        {
            glob(tree, &c, rest, out)?;
        }
        return Ok(());
    }
    let re = crate::ignore::compile(first).map_err(|_| CopyError::Pattern((*first).to_string()))?;
    let Some(dir) = tree.resolve(base)? else {
        return Ok(());
    };
    for n in tree.read_dir(&dir)? {
        let name = n.rel.rsplit('/').next().unwrap_or(&n.rel).to_string();
        if re.is_match(&name) {
            let c = child(&name);
            if rest.is_empty() {
                out.push(c);
            } else if n.is_dir() || matches!(n.kind, Kind::Symlink(_)) {
                glob(tree, &c, rest, out)?;
            }
        }
    }
    Ok(())
}

/// Matches `pattern` (cleaned, relative) in `tree`: literal paths that exist, or every match of
/// a wildcard pattern, sorted and deduplicated.
pub fn select(tree: &Tree, pattern: &str) -> Result<Vec<String>, CopyError> {
    let p = clean(&format!("/{pattern}"));
    let p = p.trim_start_matches('/');
    if !has_wildcard(p) {
        return if p.is_empty() || tree.lstat(p)?.is_some() || tree.resolve(p)?.is_some() {
            Ok(vec![p.to_string()])
        } else {
            Err(CopyError::NotFound(pattern.to_string()))
        };
    }
    let comps: Vec<&str> = p.split('/').collect();
    let mut out = Vec::new();
    glob(tree, "", &comps, &mut out)?;
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(CopyError::NoMatch(pattern.to_string()));
    }
    Ok(out)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The planned content of one COPY layer.
#[derive(Debug, Default)]
pub struct CopyPlan {
    /// Entries by path in the layer (sorted).
    pub entries: BTreeMap<String, Entry>,
    /// Layer paths and host files of the named (non-directory) sources, in order: the
    /// candidates for ADD's archive extraction (several sources onto one path all listed).
    pub named_files: Vec<(String, std::path::PathBuf)>,
    /// Whether the destination is a directory.
    pub dest_is_dir: bool,
    /// The destination (resolved, tree-relative).
    pub dest: String,
}

struct Builder<'a> {
    req: &'a CopyRequest,
    plan: CopyPlan,
    links: HashMap<(u64, u64), String>,
}

impl Builder<'_> {
    fn entry(&mut self, n: &Node, dest: String) {
        let mut mode = n.mode;
        // a symlink keeps its 0777 under --chmod (checked with Docker 20.10)
        if let Some(c) = &self.req.chmod
            && !matches!(n.kind, Kind::Symlink(_))
        {
            mode = c.apply(mode, n.is_dir());
        }
        let (uid, gid) = match self.req.chown {
            Some(ids) => ids,
            None if self.req.keep_owner => (n.uid, n.gid),
            None => (0, 0),
        };
        let source = match &n.kind {
            Kind::File => {
                if let Some(id) = n.link_id {
                    if let Some(first) = self.links.get(&id) {
                        EntrySource::Hardlink(first.clone())
                    } else {
                        self.links.insert(id, dest.clone());
                        EntrySource::File(n.host.clone())
                    }
                } else {
                    EntrySource::File(n.host.clone())
                }
            }
            Kind::Dir => EntrySource::Dir,
            Kind::Symlink(t) => EntrySource::Symlink(t.clone()),
            Kind::CharDevice(major, minor) => EntrySource::CharDevice {
                major: *major,
                minor: *minor,
            },
            Kind::BlockDevice(major, minor) => EntrySource::BlockDevice {
                major: *major,
                minor: *minor,
            },
            // BuildKit's copy skips named pipes and sockets (from the context or a stage, named
            // or inside a directory; checked with Docker 20.10)
            Kind::Fifo | Kind::Socket => return,
        };
        // a file copied from a stage or image keeps its security.capability (BuildKit's copy
        // keeps xattrs; the context's never carry any there, checked with Docker 20.10)
        let mut xattrs = Vec::new();
        if self.req.keep_owner && matches!(n.kind, Kind::File) {
            let mut buf = [0u8; 256];
            if let Ok(len) = rustix::fs::lgetxattr(&n.host, "security.capability", &mut buf)
                && let Some(v) = buf.get(..len)
            {
                xattrs.push(("security.capability".to_string(), v.to_vec()));
            }
        }
        self.plan.entries.insert(
            dest.clone(),
            Entry {
                path_in_layer: dest,
                source,
                mode,
                uid,
                gid,
                mtime: n.mtime,
                xattrs,
            },
        );
    }
}

/// Plans a COPY of `req.sources` from `src` into the `target` file system.
pub fn plan_copy(src: &Tree, target: &Tree, req: &CopyRequest) -> Result<CopyPlan, CopyError> {
    let exclude = IgnoreMatcher::new(&req.exclude, "--exclude")
        .map_err(|e| CopyError::Pattern(e.to_string()))?;
    let (dest_rel, dir_spelled) = dest_path(&req.dest, &req.workdir);
    let dest_rel = resolve_for_create(target, &dest_rel)?;
    let dest_exists_dir = target.lstat(&dest_rel)?.is_some_and(|n| n.is_dir());
    let mut b = Builder {
        req,
        plan: CopyPlan::default(),
        links: HashMap::new(),
    };
    for pattern in &req.sources {
        // --parents keeps the path below the `/./` pivot (or the whole path)
        let (pivot, pat) = match (req.parents, pattern.split_once("/./")) {
            (true, Some((p, rest))) => (
                clean(&format!("/{p}")).trim_start_matches('/').to_string(),
                format!("{p}/{rest}"),
            ),
            _ => (String::new(), pattern.clone()),
        };
        // a wildcard that matches nothing is no error (BuildKit's AllowEmptyWildcard)
        let matches = match select(src, &pat) {
            Err(CopyError::NoMatch(_)) => Vec::new(),
            r => r?,
        };
        for m in matches {
            // several sources onto a destination without `/` are copied one after the other,
            // as BuildKit does (Docker 20.10 and newer): a file source replaces the file of the
            // previous one, and goes into the directory an earlier directory source made
            let dest_is_dir = dir_spelled
                || dest_exists_dir
                || req.parents
                || b.plan
                    .entries
                    .get(&dest_rel)
                    .is_some_and(|e| matches!(e.source, EntrySource::Dir));
            // --exclude patterns match a named source by its path or its name
            if !m.is_empty()
                && (exclude.is_excluded(&m)
                    || exclude.is_excluded(m.rsplit('/').next().unwrap_or(&m)))
            {
                continue;
            }
            // follow a named symlink inside the tree; a dangling one is copied as a link
            let node = match src.resolve(&m)? {
                Some(r) => src
                    .lstat(&r)?
                    .ok_or_else(|| CopyError::NotFound(m.clone()))?,
                None => src
                    .lstat(&m)?
                    .ok_or_else(|| CopyError::NotFound(m.clone()))?,
            };
            let kept = if req.parents {
                m.strip_prefix(&pivot)
                    .unwrap_or(&m)
                    .trim_start_matches('/')
                    .to_string()
            } else {
                String::new()
            };
            if node.is_dir() {
                let base = join(&dest_rel, &kept);
                if b.plan
                    .entries
                    .get(&base)
                    .is_some_and(|e| !matches!(e.source, EntrySource::Dir))
                {
                    // an earlier source made the destination a file
                    return Err(CopyError::DestNotDir(req.dest.clone()));
                }
                if !base.is_empty() && target.lstat(&base)?.is_none() {
                    // the directory receiving the contents is made new, as BuildKit does: 0755,
                    // the --chown owner (else root), never the source dir's metadata or --chmod
                    let (uid, gid) = req.chown.unwrap_or((0, 0));
                    b.plan.entries.insert(
                        base.clone(),
                        Entry {
                            path_in_layer: base.clone(),
                            source: EntrySource::Dir,
                            mode: 0o755,
                            uid,
                            gid,
                            mtime: req.created_time,
                            xattrs: Vec::new(),
                        },
                    );
                }
                let mut all = Vec::new();
                src.walk(&node.rel, &mut all)?;
                for n in &all {
                    // ... and the contents of a directory source relative to that directory
                    let sub = n
                        .rel
                        .strip_prefix(&node.rel)
                        .unwrap_or(&n.rel)
                        .trim_start_matches('/');
                    if exclude.is_excluded(sub) {
                        continue;
                    }
                    b.entry(n, join(&base, sub));
                }
            } else {
                let name = m.rsplit('/').next().unwrap_or(&m);
                let d = if req.parents {
                    join(&dest_rel, &kept)
                } else if dest_is_dir {
                    join(&dest_rel, name)
                } else {
                    dest_rel.clone()
                };
                if matches!(node.kind, Kind::File) {
                    b.plan.named_files.push((d.clone(), node.host.clone()));
                }
                b.entry(&node, d);
            }
        }
    }
    b.plan.dest_is_dir = dir_spelled
        || dest_exists_dir
        || req.parents
        || b.plan
            .entries
            .get(&dest_rel)
            .is_some_and(|e| matches!(e.source, EntrySource::Dir));
    b.plan.dest = dest_rel;
    add_parents(&mut b.plan, target, req)?;
    Ok(b.plan)
}

/// Adds a `Dir` entry for every missing ancestor: the target's own metadata when it exists there
/// (so the layer does not change it), else a new 0755 directory owned by the `--chown` user.
pub fn add_parents(plan: &mut CopyPlan, target: &Tree, req: &CopyRequest) -> Result<(), CopyError> {
    let mut missing = Vec::new();
    for p in plan.entries.keys() {
        let mut cur = p.as_str();
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if !plan.entries.contains_key(parent) {
                missing.push(parent.to_string());
            }
            cur = parent;
        }
    }
    missing.sort();
    missing.dedup();
    for p in missing {
        let e = match target.lstat(&p)? {
            Some(n) if n.is_dir() => Entry {
                path_in_layer: p.clone(),
                source: EntrySource::Dir,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                mtime: n.mtime,
                xattrs: Vec::new(),
            },
            // a file in the way fails the copy, as in BuildKit (`mkdir …: not a directory`)
            Some(n) if !matches!(n.kind, Kind::Symlink(_)) => {
                return Err(CopyError::ParentNotDir(req.dest.clone(), p));
            }
            _ => {
                let (uid, gid) = req.chown.unwrap_or((0, 0));
                Entry {
                    path_in_layer: p.clone(),
                    source: EntrySource::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: req.created_time,
                    xattrs: Vec::new(),
                }
            }
        };
        plan.entries.insert(p, e);
    }
    Ok(())
}

/// A path of a host file referenced by an entry, for hashing.
pub fn entry_file(e: &Entry) -> Option<&Path> {
    match &e.source {
        EntrySource::File(p) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn ctx() -> (tempfile::TempDir, Tree) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).unwrap();
        fs::write(r.join("src/a.txt"), "a").unwrap();
        fs::write(r.join("src/b.md"), "b").unwrap();
        fs::write(r.join("src/sub/c.txt"), "c").unwrap();
        fs::write(r.join("top.txt"), "t").unwrap();
        fs::write(r.join("ignored.txt"), "i").unwrap();
        symlink("src/a.txt", r.join("link")).unwrap();
        symlink("/etc/shadow", r.join("outlink")).unwrap();
        let t = Tree::Dir {
            root: r.to_path_buf(),
            ignore: IgnoreMatcher::new(&["ignored.txt"], "t").unwrap(),
        };
        (d, t)
    }

    fn req(sources: &[&str], dest: &str) -> CopyRequest {
        CopyRequest {
            sources: sources.iter().map(|s| (*s).to_string()).collect(),
            dest: dest.into(),
            workdir: "/w".into(),
            ..Default::default()
        }
    }

    fn paths(p: &CopyPlan) -> Vec<&str> {
        p.entries.keys().map(String::as_str).collect()
    }

    fn empty() -> Tree {
        Tree::Layers(vec![])
    }

    #[test]
    fn directory_copies_contents_relative_to_workdir() {
        let (dir, t) = ctx();
        let p = plan_copy(&t, &empty(), &req(&["src/"], "app/")).unwrap();
        assert_eq!(
            paths(&p),
            [
                "w",
                "w/app",
                "w/app/a.txt",
                "w/app/b.md",
                "w/app/sub",
                "w/app/sub/c.txt"
            ]
        );
        let p = plan_copy(&t, &empty(), &req(&["src"], "/abs")).unwrap();
        assert!(
            paths(&p).contains(&"abs/sub/c.txt"),
            "a dir source without slash still copies contents"
        );
        // the receiving dir is new: 0755, root or --chown, not the source dir's mode or --chmod
        fs::set_permissions(
            dir.path().join("src"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut r = req(&["src"], "/abs");
        r.chmod = Some(Chmod::parse("600").unwrap());
        r.chown = Some((7, 8));
        r.keep_owner = true;
        let p = plan_copy(&t, &empty(), &r).unwrap();
        let e = &p.entries["abs"];
        assert_eq!((e.mode, e.uid, e.gid, e.mtime), (0o755, 7, 8, 0));
        assert_eq!(
            p.entries["abs/sub"].mode, 0o600,
            "--chmod applies to the dirs inside"
        );
    }

    #[test]
    fn file_dest_rules() {
        let (_d, t) = ctx();
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &req(&["top.txt"], "/x/y")).unwrap()),
            ["x", "x/y"]
        );
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &req(&["top.txt"], "/x/y/")).unwrap()),
            ["x", "x/y", "x/y/top.txt"]
        );
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &req(&["top.txt"], ".")).unwrap()),
            ["w", "w/top.txt"]
        );
        // several sources onto a dest without `/`: one after the other, the last file wins
        // (BuildKit); a file after a directory source goes into it
        let p = plan_copy(&t, &empty(), &req(&["top.txt", "src/a.txt"], "/x")).unwrap();
        assert_eq!(paths(&p), ["x"]);
        assert!(matches!(&p.entries["x"].source, EntrySource::File(f) if f.ends_with("src/a.txt")));
        let p = plan_copy(&t, &empty(), &req(&["src/sub", "top.txt"], "/z")).unwrap();
        assert_eq!(paths(&p), ["z", "z/c.txt", "z/top.txt"]);
        assert!(p.dest_is_dir);
        let e = plan_copy(&t, &empty(), &req(&["top.txt", "src/sub"], "/z")).unwrap_err();
        assert!(matches!(e, CopyError::DestNotDir(_)), "{e}");
    }

    #[test]
    fn wildcards() {
        let (_d, t) = ctx();
        assert_eq!(select(&t, "src/*.txt").unwrap(), ["src/a.txt"]);
        assert_eq!(select(&t, "src/?.md").unwrap(), ["src/b.md"]);
        assert_eq!(select(&t, "src/[ab].*").unwrap(), ["src/a.txt", "src/b.md"]);
        assert_eq!(
            select(&t, "**/*.txt").unwrap(),
            ["src/a.txt", "src/sub/c.txt", "top.txt"]
        );
        assert!(matches!(select(&t, "*.none"), Err(CopyError::NoMatch(_))));
        assert!(
            matches!(select(&t, "ignored.txt"), Err(CopyError::NotFound(_))),
            "ignored files are not in the context"
        );
        assert!(matches!(select(&t, "*.txt"), Ok(v) if v == ["top.txt"]));
        assert_eq!(
            select(&t, "../../top.txt").unwrap(),
            ["top.txt"],
            "never escapes the root"
        );
        let p = plan_copy(&t, &empty(), &req(&["src/*.txt", "top.txt"], "/d/")).unwrap();
        assert_eq!(paths(&p), ["d", "d/a.txt", "d/top.txt"]);
    }

    #[test]
    fn symlinks() {
        let (_d, t) = ctx();
        let p = plan_copy(&t, &empty(), &req(&["link"], "/l")).unwrap();
        assert!(
            matches!(&p.entries["l"].source, EntrySource::File(h) if h.ends_with("src/a.txt")),
            "a named symlink is followed inside the context"
        );
        let p = plan_copy(&t, &empty(), &req(&["outlink"], "/o")).unwrap();
        assert!(
            matches!(&p.entries["o"].source, EntrySource::Symlink(t) if t == "/etc/shadow"),
            "never followed out: copied as a link"
        );
        let p = plan_copy(&t, &empty(), &req(&["."], "/all/")).unwrap();
        assert!(
            matches!(&p.entries["all/link"].source, EntrySource::Symlink(t) if t == "src/a.txt"),
            "links inside a directory stay links"
        );
        assert!(!p.entries.contains_key("all/ignored.txt"));
    }

    #[test]
    fn chown_chmod_and_owners() {
        let (_d, t) = ctx();
        let mut r = req(&["src/"], "/n/");
        r.chown = Some((7, 8));
        r.chmod = Some(Chmod::parse("0640").unwrap());
        let p = plan_copy(&t, &empty(), &r).unwrap();
        let a = &p.entries["n/a.txt"];
        assert_eq!((a.uid, a.gid, a.mode), (7, 8, 0o640));
        assert_eq!(
            (p.entries["n"].uid, p.entries["n"].mode),
            (7, 0o755),
            "the created dest dir is 0755 and owned by --chown, never --chmod (BuildKit)"
        );
        let p = plan_copy(&t, &empty(), &req(&["top.txt"], "/q/r/")).unwrap();
        assert_eq!(
            (
                p.entries["q"].uid,
                p.entries["q"].mode,
                p.entries["q"].mtime
            ),
            (0, 0o755, 0)
        );
        assert_eq!(
            p.entries["q/r/top.txt"].uid, 0,
            "context files become root-owned"
        );
        let mut r = req(&["."], "/all/");
        r.chmod = Some(Chmod::parse("0600").unwrap());
        let p = plan_copy(&t, &empty(), &r).unwrap();
        assert_eq!(p.entries["all/top.txt"].mode, 0o600);
        assert_eq!(
            p.entries["all/link"].mode, 0o777,
            "--chmod leaves symlinks alone"
        );
    }

    #[test]
    fn existing_target_dirs() {
        let (_d, t) = ctx();
        let tgt = tempfile::tempdir().unwrap();
        fs::create_dir_all(tgt.path().join("usr/bin")).unwrap();
        fs::create_dir_all(tgt.path().join("opt")).unwrap();
        fs::set_permissions(
            tgt.path().join("usr"),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        symlink("usr/bin", tgt.path().join("bin")).unwrap();
        let target = Tree::Layers(vec![tgt.path().to_path_buf()]);
        let p = plan_copy(&t, &target, &req(&["top.txt"], "/bin")).unwrap();
        assert_eq!(
            paths(&p),
            ["usr", "usr/bin", "usr/bin/top.txt"],
            "an existing dir dest (through a symlink) gets the file inside"
        );
        assert_eq!(
            p.entries["usr"].mode, 0o711,
            "existing parents keep their metadata"
        );
        let p = plan_copy(&t, &target, &req(&["src"], "/opt")).unwrap();
        assert!(
            !p.entries.contains_key("opt")
                || p.entries["opt"].mode
                    == fs::metadata(tgt.path().join("opt")).unwrap().mode() & 0o7777
        );
        // a file where the destination needs a directory fails, as in BuildKit
        fs::write(tgt.path().join("opt/file"), "x").unwrap();
        let e = plan_copy(&t, &target, &req(&["top.txt"], "/opt/file/")).unwrap_err();
        assert!(
            matches!(e, CopyError::ParentNotDir(_, ref p) if p == "opt/file"),
            "{e}"
        );
        let e = plan_copy(&t, &target, &req(&["top.txt"], "/opt/file/deeper/x")).unwrap_err();
        assert!(matches!(e, CopyError::ParentNotDir(..)), "{e}");
        // ... but a file destination replaces an existing file
        assert_eq!(
            paths(&plan_copy(&t, &target, &req(&["top.txt"], "/opt/file")).unwrap()),
            ["opt", "opt/file"]
        );
    }

    #[test]
    fn dangling_symlink_destinations_are_followed() {
        // BuildKit resolves the destination with RootPath: a dangling link is followed, the
        // file is written where it points and the link stays (checked with Docker 20.10)
        let (_d, t) = ctx();
        let tgt = tempfile::tempdir().unwrap();
        symlink("/nowhere", tgt.path().join("dangle")).unwrap();
        symlink("missing/deeper", tgt.path().join("reldangle")).unwrap();
        let target = Tree::Layers(vec![tgt.path().to_path_buf()]);
        let p = plan_copy(&t, &target, &req(&["top.txt"], "/dangle")).unwrap();
        assert_eq!(paths(&p), ["nowhere"]);
        let p = plan_copy(&t, &target, &req(&["top.txt"], "/reldangle/x/")).unwrap();
        assert_eq!(
            paths(&p),
            [
                "missing",
                "missing/deeper",
                "missing/deeper/x",
                "missing/deeper/x/top.txt"
            ]
        );
        assert_eq!(
            resolve_for_create(&target, "dangle/a/../b").unwrap(),
            "nowhere/b"
        );
    }

    #[test]
    fn named_pipes_are_not_copied() {
        let (d, t) = ctx();
        for p in ["src/pipe", "pipe"] {
            let st = std::process::Command::new("mkfifo")
                .arg(d.path().join(p))
                .status()
                .unwrap();
            assert!(st.success());
        }
        let p = plan_copy(&t, &empty(), &req(&["src"], "/s/")).unwrap();
        assert!(paths(&p).contains(&"s/a.txt"));
        assert!(!paths(&p).contains(&"s/pipe"), "{:?}", paths(&p));
        let p = plan_copy(&t, &empty(), &req(&["pipe"], "/named")).unwrap();
        assert!(p.entries.is_empty(), "{:?}", paths(&p));
    }

    #[test]
    fn wildcards_matching_nothing_copy_nothing() {
        // BuildKit copies with AllowEmptyWildcard: no error, the other sources still copied
        let (_d, t) = ctx();
        let p = plan_copy(&t, &empty(), &req(&["*.none"], "/x/")).unwrap();
        assert!(p.entries.is_empty());
        let p = plan_copy(&t, &empty(), &req(&["*.none", "top.txt"], "/x/")).unwrap();
        assert_eq!(paths(&p), ["x", "x/top.txt"]);
        assert!(matches!(
            plan_copy(&t, &empty(), &req(&["none.txt"], "/x/")),
            Err(CopyError::NotFound(_))
        ));
    }

    #[test]
    fn parents_and_exclude() {
        let (_d, t) = ctx();
        let mut r = req(&["src/sub/c.txt", "src/a.txt"], "/p/");
        r.parents = true;
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &r).unwrap()),
            ["p", "p/src", "p/src/a.txt", "p/src/sub", "p/src/sub/c.txt"]
        );
        let mut r = req(&["./src/./sub/c.txt"], "/p/");
        r.parents = true;
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &r).unwrap()),
            ["p", "p/sub", "p/sub/c.txt"]
        );
        let mut r = req(&["src/"], "/e/");
        r.exclude = vec!["*.md".into(), "**/sub".into()];
        assert_eq!(
            paths(&plan_copy(&t, &empty(), &r).unwrap()),
            ["e", "e/a.txt"]
        );
    }

    #[test]
    fn hardlinks_become_links() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("one"), "x").unwrap();
        fs::hard_link(d.path().join("one"), d.path().join("two")).unwrap();
        let t = Tree::Dir {
            root: d.path().to_path_buf(),
            ignore: IgnoreMatcher::default(),
        };
        let p = plan_copy(&t, &empty(), &req(&["."], "/h/")).unwrap();
        assert!(matches!(&p.entries["h/two"].source, EntrySource::Hardlink(f) if f == "h/one"));
    }

    use std::os::unix::fs::MetadataExt;
}
