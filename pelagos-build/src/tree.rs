//! Read-only views of a file tree for COPY/ADD: the build context (a directory filtered by the
//! ignore file) and a stage or image root file system seen through its overlay lower dirs
//! (top first, with overlayfs whiteouts and opaque directories honoured), without mounting.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ignore::IgnoreMatcher;

/// The type of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link and its raw target.
    Symlink(OsString),
    /// A character device.
    CharDevice(u32, u32),
    /// A block device.
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
    /// A socket (never copied).
    Socket,
}

/// One file of a tree with the metadata COPY needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Path relative to the tree root, `/`-separated, no leading `/` (`""` is the root).
    pub rel: String,
    /// Where the bytes are on the host.
    pub host: PathBuf,
    /// Type.
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, whole seconds.
    pub mtime: i64,
    /// `(dev, ino)` for hard-link detection, when the link count is above 1.
    pub link_id: Option<(u64, u64)>,
}

impl Node {
    fn from_meta(rel: String, host: PathBuf, m: &std::fs::Metadata) -> std::io::Result<Node> {
        let ft = m.file_type();
        let rdev = m.rdev();
        let (maj, min) = (libc::major(rdev), libc::minor(rdev));
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(std::fs::read_link(&host)?.into_os_string())
        } else if ft.is_char_device() {
            Kind::CharDevice(maj, min)
        } else if ft.is_block_device() {
            Kind::BlockDevice(maj, min)
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else {
            Kind::File
        };
        Ok(Node {
            rel,
            host,
            link_id: (!ft.is_dir() && m.nlink() > 1).then(|| (m.dev(), m.ino())),
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime: m.mtime(),
        })
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// Errors reading a tree.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct TreeError {
    /// The host path.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

fn terr(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError {
        path: path.to_path_buf(),
        source,
    }
}

/// The walk of one subdirectory by a helper thread (`None`: not walked).
type Subtree = Mutex<Option<Result<Vec<Node>, TreeError>>>;

/// A read-only tree: a context directory or a layered root file system.
#[derive(Debug, Clone)]
pub enum Tree {
    /// A plain directory, minus the ignored paths.
    Dir {
        /// The root.
        root: PathBuf,
        /// Ignored paths.
        ignore: IgnoreMatcher,
    },
    /// Overlay lower dirs, top first (`[]`: an empty tree, `FROM scratch`).
    Layers(Vec<PathBuf>),
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(Some(v)) = xattr::get(dir, name)
            && v == b"y"
        {
            return true;
        }
    }
    false
}

impl Tree {
    /// The node at `rel` without following a final symlink (intermediate components are taken
    /// literally: they must be directories). `None` when absent or ignored.
    pub fn lstat(&self, rel: &str) -> Result<Option<Node>, TreeError> {
        match self {
            Tree::Dir { root, ignore } => {
                if !rel.is_empty() && ignore.is_excluded(rel) {
                    return Ok(None);
                }
                let host = if rel.is_empty() {
                    root.clone()
                } else {
                    root.join(rel)
                };
                match std::fs::symlink_metadata(&host) {
                    Ok(m) => Ok(Some(
                        Node::from_meta(rel.to_string(), host.clone(), &m).map_err(terr(&host))?,
                    )),
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                        Ok(None)
                    }
                    Err(e) => Err(TreeError {
                        path: host,
                        source: e,
                    }),
                }
            }
            Tree::Layers(lowers) => {
                let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
                'layer: for lower in lowers {
                    // an opaque or whited-out ancestor in this layer hides everything below
                    let mut p = lower.clone();
                    for (i, c) in comps.iter().enumerate() {
                        p.push(c);
                        match std::fs::symlink_metadata(&p) {
                            Ok(m) if is_whiteout(&m) => return Ok(None),
                            Ok(m) if i + 1 < comps.len() => {
                                if !m.is_dir() {
                                    return Ok(None);
                                }
                            }
                            Ok(m) => {
                                return Ok(Some(
                                    Node::from_meta(rel.to_string(), p.clone(), &m)
                                        .map_err(terr(&p))?,
                                ));
                            }
                            Err(_) => {
                                // absent here: an opaque parent in this layer hides lower layers
                                let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
                                if i > 0 && is_opaque(&parent) {
                                    return Ok(None);
                                }
                                continue 'layer;
                            }
                        }
                    }
                    // rel is the root
                    let m = std::fs::symlink_metadata(lower).map_err(terr(lower))?;
                    return Ok(Some(
                        Node::from_meta(String::new(), lower.clone(), &m).map_err(terr(lower))?,
                    ));
                }
                if comps.is_empty() {
                    return Ok(Some(Node {
                        rel: String::new(),
                        host: PathBuf::new(),
                        kind: Kind::Dir,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        size: 0,
                        mtime: 0,
                        link_id: None,
                    }));
                }
                Ok(None)
            }
        }
    }

    /// Resolves `rel` following symlinks in every component, scoped to the tree root (an
    /// absolute or `..`-escaping target stays inside, as BuildKit's `RootPath`). Returns the
    /// resolved relative path, or `None` when a component is missing.
    pub fn resolve(&self, rel: &str) -> Result<Option<String>, TreeError> {
        let mut pending: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .rev()
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = join(&cur.join("/"), &c);
            match self.lstat(&candidate)? {
                None => return Ok(None),
                Some(Node {
                    kind: Kind::Symlink(target),
                    ..
                }) => {
                    hops += 1;
                    if hops > 40 {
                        return Ok(None);
                    }
                    let t = target.as_bytes();
                    if t.first() == Some(&b'/') {
                        cur.clear();
                    }
                    let t = String::from_utf8_lossy(t).into_owned();
                    for part in t.split('/').filter(|p| !p.is_empty()).rev() {
                        pending.push(part.to_string());
                    }
                }
                Some(_) => cur.push(c),
            }
        }
        Ok(Some(cur.join("/")))
    }

    /// The children of the directory `rel` (already resolved), sorted by name, ignored paths and
    /// whiteouts left out.
    pub fn read_dir(&self, rel: &str) -> Result<Vec<Node>, TreeError> {
        match self {
            Tree::Dir { root, ignore } => {
                let host = if rel.is_empty() {
                    root.clone()
                } else {
                    root.join(rel)
                };
                let mut out = Vec::new();
                let mut stamps = Vec::new();
                for e in std::fs::read_dir(&host).map_err(terr(&host))? {
                    let e = e.map_err(terr(&host))?;
                    let name = e.file_name();
                    let Some(name) = name.to_str() else {
                        return Err(TreeError {
                            path: e.path(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "file name is not UTF-8",
                            ),
                        });
                    };
                    let r = join(rel, name);
                    if ignore.is_excluded(&r) {
                        if e.file_type().is_ok_and(|t| t.is_dir()) && !ignore.can_skip_dir(&r) {
                            // an exception may re-include something below: keep the dir
                        } else {
                            continue;
                        }
                    }
                    let p = e.path();
                    // statx relative to the directory fd (no path walk), without following links
                    let m = e.metadata().map_err(terr(&p))?;
                    if m.is_file() {
                        stamps.push((
                            Box::<[u8]>::from(p.as_os_str().as_bytes()),
                            crate::checksum::Stamp::of(&m),
                        ));
                    }
                    out.push(Node::from_meta(r, p, &m).map_err(|e| TreeError {
                        path: host.join(name),
                        source: e,
                    })?);
                }
                crate::checksum::note_walked(stamps);
                out.sort_by(|a, b| a.rel.cmp(&b.rel));
                Ok(out)
            }
            Tree::Layers(lowers) => {
                let mut seen: BTreeMap<String, Option<Node>> = BTreeMap::new();
                for lower in lowers {
                    let d = if rel.is_empty() {
                        lower.clone()
                    } else {
                        lower.join(rel)
                    };
                    let Ok(m) = std::fs::symlink_metadata(&d) else {
                        continue;
                    };
                    if is_whiteout(&m) || !m.is_dir() {
                        break;
                    }
                    for e in std::fs::read_dir(&d).map_err(terr(&d))? {
                        let e = e.map_err(terr(&d))?;
                        let name = e.file_name().to_string_lossy().into_owned();
                        if seen.contains_key(&name) {
                            continue;
                        }
                        let p = e.path();
                        let m = e.metadata().map_err(terr(&p))?;
                        let node = if is_whiteout(&m) {
                            None
                        } else {
                            Some(
                                Node::from_meta(join(rel, &name), p.clone(), &m)
                                    .map_err(terr(&p))?,
                            )
                        };
                        seen.insert(name, node);
                    }
                    if is_opaque(&d) {
                        break;
                    }
                }
                let mut out: Vec<Node> = seen.into_values().flatten().collect();
                // a directory shadowed by a non-directory in an upper layer stays shadowed; a
                // directory merged from several layers reads its children through read_dir again
                out.sort_by(|a, b| a.rel.cmp(&b.rel));
                Ok(out)
            }
        }
    }

    /// Reads a small file (e.g. `/etc/passwd`) following symlinks; `None` when absent.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, TreeError> {
        let Some(r) = self.resolve(rel)? else {
            return Ok(None);
        };
        let Some(n) = self.lstat(&r)? else {
            return Ok(None);
        };
        if n.kind != Kind::File {
            return Ok(None);
        }
        std::fs::read(&n.host).map(Some).map_err(terr(&n.host))
    }

    /// Every node below `rel` (a resolved directory), depth first, parents before children.
    /// The subdirectories of the first level with several of them are walked on two threads.
    pub fn walk(&self, rel: &str, out: &mut Vec<Node>) -> Result<(), TreeError> {
        let children = self.read_dir(rel)?;
        let dirs: Vec<&str> = children
            .iter()
            .filter(|n| n.is_dir())
            .map(|n| n.rel.as_str())
            .collect();
        if dirs.len() < 2 {
            for n in children {
                let sub = n.is_dir().then(|| n.rel.clone());
                out.push(n);
                if let Some(r) = sub {
                    self.walk(&r, out)?;
                }
            }
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let subtrees: Vec<Subtree> = dirs.iter().map(|_| Mutex::new(None)).collect();
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(d), Some(slot)) = (dirs.get(i), subtrees.get(i)) else {
                    break;
                };
                let mut v = Vec::new();
                let r = self.walk_seq(d, &mut v).map(|()| v);
                let failed = r.is_err();
                if let Ok(mut s) = slot.lock() {
                    *s = Some(r);
                }
                if failed {
                    // stop the other thread early too
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    break;
                }
            }
        };
        std::thread::scope(|s| {
            s.spawn(work);
            work();
        });
        let mut subtrees = subtrees.into_iter();
        for n in children {
            let is_dir = n.is_dir();
            let rel = n.rel.clone();
            out.push(n);
            if is_dir {
                let sub = subtrees.next().and_then(|m| m.into_inner().ok().flatten());
                match sub {
                    Some(Ok(mut v)) => out.append(&mut v),
                    Some(Err(e)) => return Err(e),
                    // not walked because the other thread failed first: walk it here
                    None => self.walk_seq(&rel, out)?,
                }
            }
        }
        Ok(())
    }

    fn walk_seq(&self, rel: &str, out: &mut Vec<Node>) -> Result<(), TreeError> {
        for n in self.read_dir(rel)? {
            let sub = n.is_dir().then(|| n.rel.clone());
            out.push(n);
            if let Some(r) = sub {
                self.walk_seq(&r, out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn context_dir_respects_ignore() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        fs::write(d.path().join("a/b/x.txt"), "x").unwrap();
        fs::write(d.path().join("a/b/keep.txt"), "k").unwrap();
        fs::write(d.path().join("top.tmp"), "t").unwrap();
        let ignore = IgnoreMatcher::new(&["a", "!a/b/keep.txt", "*.tmp"], "t").unwrap();
        let t = Tree::Dir {
            root: d.path().to_path_buf(),
            ignore,
        };
        let mut all = Vec::new();
        t.walk("", &mut all).unwrap();
        let rels: Vec<&str> = all.iter().map(|n| n.rel.as_str()).collect();
        assert!(rels.contains(&"a/b/keep.txt"));
        assert!(!rels.contains(&"a/b/x.txt"));
        assert!(!rels.contains(&"top.tmp"));
        assert!(t.lstat("top.tmp").unwrap().is_none());
    }

    #[test]
    fn scoped_symlink_resolution() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("real")).unwrap();
        fs::write(d.path().join("real/f"), "f").unwrap();
        std::os::unix::fs::symlink("/real", d.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../real/f", d.path().join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("out")).unwrap();
        std::os::unix::fs::symlink("loop", d.path().join("loop")).unwrap();
        let t = Tree::Dir {
            root: d.path().to_path_buf(),
            ignore: IgnoreMatcher::default(),
        };
        assert_eq!(t.resolve("abs/f").unwrap().as_deref(), Some("real/f"));
        assert_eq!(t.resolve("up").unwrap().as_deref(), Some("real/f"));
        assert_eq!(
            t.resolve("out").unwrap(),
            None,
            "never followed out of the root"
        );
        assert_eq!(t.resolve("loop").unwrap(), None);
    }

    #[test]
    fn layers_whiteouts_and_opaque_dirs() {
        // needs mknod for the 0:0 whiteout; use the opaque xattr form `user.` which needs no root
        let d = tempfile::tempdir().unwrap();
        let (lo, up) = (d.path().join("lo"), d.path().join("up"));
        fs::create_dir_all(lo.join("d")).unwrap();
        fs::write(lo.join("d/old"), "o").unwrap();
        fs::write(lo.join("keep"), "k").unwrap();
        fs::write(lo.join("shadow"), "lower").unwrap();
        fs::create_dir_all(up.join("d")).unwrap();
        fs::write(up.join("d/new"), "n").unwrap();
        fs::write(up.join("shadow"), "upper").unwrap();
        let t = Tree::Layers(vec![up.clone(), lo.clone()]);
        let names = |t: &Tree, r: &str| -> Vec<String> {
            t.read_dir(r).unwrap().into_iter().map(|n| n.rel).collect()
        };
        assert_eq!(names(&t, "d"), ["d/new", "d/old"]);
        assert_eq!(t.read_file("shadow").unwrap().unwrap(), b"upper");
        assert_eq!(t.read_file("keep").unwrap().unwrap(), b"k");
        if xattr::set(up.join("d"), "user.overlay.opaque", b"y").is_ok() {
            assert_eq!(names(&t, "d"), ["d/new"]);
            assert!(t.lstat("d/old").unwrap().is_none());
        }
        assert_eq!(Tree::Layers(vec![]).read_dir("").unwrap(), vec![]);
        assert!(Tree::Layers(vec![]).lstat("").unwrap().unwrap().is_dir());
    }

    #[test]
    #[ignore = "needs root: mknod of overlay whiteouts"]
    fn layers_char_device_whiteout() {
        let d = tempfile::tempdir().unwrap();
        let (lo, up) = (d.path().join("lo"), d.path().join("up"));
        fs::create_dir_all(&lo).unwrap();
        fs::create_dir_all(&up).unwrap();
        fs::write(lo.join("gone"), "g").unwrap();
        let c = std::ffi::CString::new(up.join("gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mknod has no other preconditions
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) },
            0
        );
        let t = Tree::Layers(vec![up, lo]);
        assert!(t.lstat("gone").unwrap().is_none());
        assert!(t.read_dir("").unwrap().is_empty());
    }
}
