//! Path resolution over overlay lower dirs (whiteouts, opaque dirs, symlinks confined to the
//! root), used to create missing mount targets in a private layer above the lowers, so that
//! mount points never appear in the upper dir.
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a path is in the merged view of the lowers.
#[derive(Debug)]
enum Found {
    Missing,
    Dir(fs::Metadata),
    Symlink(PathBuf),
    Other,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut b = [0u8; 4];
            rustix::fs::lgetxattr(p, *name, &mut b).is_ok_and(|n| n == 1 && b[0] == b'y')
        })
}

/// `lstat` and opaque-xattr answers for paths inside the lowers, kept for the mount targets of
/// one RUN: `/etc/hosts` and `/etc/resolv.conf` (and user mount targets) share their ancestors,
/// so each layer's `etc` is looked at once instead of once per target and per prefix (with a
/// hundred lowers that was hundreds of failing `statx` per RUN). The memo belongs to one list
/// of lowers and is dropped when another list comes: the lowers of a mounted overlay must not
/// change anyway (overlayfs leaves that undefined), and `ensure_target` runs in the per-RUN
/// init process.
#[derive(Default)]
struct Memo {
    lowers: Vec<PathBuf>,
    stat: HashMap<PathBuf, Option<fs::Metadata>>,
    opaque: HashMap<PathBuf, bool>,
    /// `lstat` calls made (for tests).
    #[cfg(test)]
    stats: usize,
}

impl Memo {
    fn lstat(&mut self, p: &Path) -> Option<fs::Metadata> {
        if let Some(m) = self.stat.get(p) {
            return m.clone();
        }
        #[cfg(test)]
        {
            self.stats += 1;
        }
        let m = fs::symlink_metadata(p).ok();
        self.stat.insert(p.to_path_buf(), m.clone());
        m
    }

    fn is_opaque(&mut self, p: &Path) -> bool {
        if let Some(o) = self.opaque.get(p) {
            return *o;
        }
        let o = is_opaque(p);
        self.opaque.insert(p.to_path_buf(), o);
        o
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// Runs `f` with the memo for `layers` (a fresh one when the lowers differ from the last call's).
fn with_memo<T>(layers: &[PathBuf], f: impl FnOnce(&mut Memo) -> T) -> T {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.lowers != layers {
            *m = Memo {
                lowers: layers.to_vec(),
                ..Memo::default()
            };
        }
        f(&mut m)
    })
}

/// Looks `comps` (symlink-free so far) up in the layers, top first.
fn lookup(memo: &mut Memo, layers: &[PathBuf], comps: &[String]) -> Found {
    'layers: for layer in layers {
        let mut p = layer.clone();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let Some(m) = memo.lstat(&p) else {
                // Not in this layer; deeper layers show through unless an ancestor is opaque.
                continue 'layers;
            };
            let last = i + 1 == comps.len();
            if is_whiteout(&m) {
                return Found::Missing;
            }
            if last {
                return if m.is_dir() {
                    Found::Dir(m)
                } else if m.file_type().is_symlink() {
                    fs::read_link(&p).map_or(Found::Other, Found::Symlink)
                } else {
                    Found::Other
                };
            }
            if !m.is_dir() {
                // A non-directory hides everything below it.
                return Found::Missing;
            }
            if memo.is_opaque(&p) {
                // Look for the rest only in this layer.
                let mut q = p.clone();
                for c in comps.iter().skip(i + 1) {
                    q.push(c);
                }
                return match memo.lstat(&q) {
                    Some(m) if is_whiteout(&m) => Found::Missing,
                    Some(m) if m.is_dir() => Found::Dir(m),
                    Some(m) if m.file_type().is_symlink() => {
                        fs::read_link(&q).map_or(Found::Other, Found::Symlink)
                    }
                    Some(_) => Found::Other,
                    None => Found::Missing,
                };
            }
        }
        // comps empty: the root.
        if let Some(m) = memo.lstat(&p) {
            return Found::Dir(m);
        }
    }
    Found::Missing
}

/// The kernel's default overflow uid/gid (`/proc/sys/kernel/overflowuid`).
const OVERFLOW_ID: u32 = 65534;

/// Kind of a mount target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// Resolves `target` (an absolute container path) through the lowers' symlinks (confined to
/// the root) and creates whatever is missing in `extra` (the private top layer): existing
/// ancestor directories are recreated there with their metadata so the merged view keeps it.
/// Returns the resolved, symlink-free relative path.
pub(crate) fn ensure_target(
    layers: &[PathBuf],
    extra: &Path,
    target: &str,
    kind: Kind,
    userns: bool,
) -> io::Result<PathBuf> {
    with_memo(layers, |memo| {
        ensure_target_in(memo, layers, extra, target, kind, userns)
    })
}

fn ensure_target_in(
    memo: &mut Memo,
    layers: &[PathBuf],
    extra: &Path,
    target: &str,
    kind: Kind,
    userns: bool,
) -> io::Result<PathBuf> {
    let mut todo: Vec<String> = split(target);
    todo.reverse();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    let mut found_last = None;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        match lookup(memo, layers, &cur) {
            Found::Symlink(to) => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                cur.pop();
                if to.is_absolute() {
                    cur.clear();
                }
                let mut more = split(&to.to_string_lossy());
                more.reverse();
                todo.extend(more);
            }
            Found::Dir(m) => {
                if todo.is_empty() {
                    found_last = Some(Found::Dir(m));
                }
            }
            Found::Other => {
                if !todo.is_empty() {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                found_last = Some(Found::Other);
            }
            Found::Missing => {
                // Everything from here on is created.
                while let Some(c) = todo.pop() {
                    if c == ".." {
                        cur.pop();
                    } else {
                        cur.push(c);
                    }
                }
                break;
            }
        }
    }
    match (&found_last, kind) {
        (Some(Found::Dir(_)), Kind::Dir) | (Some(Found::Other), Kind::File) => {
            return Ok(cur.iter().collect());
        }
        (Some(Found::Dir(_)), Kind::File) => {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        (Some(Found::Other), Kind::Dir) => {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        _ => {}
    }
    // Create the path in the extra layer, copying existing ancestors' metadata.
    let mut p = extra.to_path_buf();
    for i in 0..cur.len() {
        p.push(&cur[i]);
        let last = i + 1 == cur.len();
        if last && kind == Kind::File {
            if fs::symlink_metadata(&p).is_err() {
                fs::File::create(&p)?;
            }
            break;
        }
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        fs::create_dir(&p)?;
        match lookup(memo, layers, &cur[..=i]) {
            Found::Dir(m) => copy_meta(&p, &m, userns),
            _ => fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?,
        }
    }
    Ok(cur.iter().collect())
}

/// Copies owner, mode and times of a lower directory onto its stand-in (best effort: an owner
/// unmapped in a user namespace stays as is).
pub(crate) fn copy_meta(p: &Path, m: &fs::Metadata, userns: bool) {
    // In a user namespace, unmapped ids read as the overflow id: keep the stand-in's owner
    // rather than writing the overflow id to disk.
    let mapped = |id: u32| (!userns || id != OVERFLOW_ID).then_some(id);
    let _ = std::os::unix::fs::lchown(p, mapped(m.uid()), mapped(m.gid()));
    let _ = fs::set_permissions(p, fs::Permissions::from_mode(m.mode() & 0o7777));
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
}

/// The metadata of the merged root of the lowers, if any.
pub(crate) fn root_meta(layers: &[PathBuf]) -> Option<fs::Metadata> {
    layers.iter().find_map(|l| fs::metadata(l).ok())
}

fn split(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temp dir with an empty extra layer `x` in it; `path(name)` names a dir beside it.
    struct Fixture {
        dir: tempfile::TempDir,
        extra: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let extra = dir.path().join("x");
            fs::create_dir(&extra).unwrap();
            Fixture { dir, extra }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// `ensure_target` over `layers` into the extra layer, not in a user namespace.
        fn ensure(&self, layers: &[PathBuf], target: &str, kind: Kind) -> io::Result<PathBuf> {
            ensure_target(layers, &self.extra, target, kind, false)
        }
    }

    #[test]
    fn existing_paths_need_nothing() {
        let f = Fixture::new();
        let l = f.path("l");
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::write(l.join("etc/hosts"), "x").unwrap();
        let r = f.ensure(&[l], "/etc/hosts", Kind::File).unwrap();
        assert_eq!(r, PathBuf::from("etc/hosts"));
        assert!(fs::read_dir(&f.extra).unwrap().next().is_none());
    }

    #[test]
    fn missing_file_created_with_parent_meta_copied() {
        let f = Fixture::new();
        let l = f.path("l");
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::set_permissions(l.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        let r = f
            .ensure(std::slice::from_ref(&l), "/etc/hosts", Kind::File)
            .unwrap();
        assert_eq!(r, PathBuf::from("etc/hosts"));
        assert!(f.extra.join("etc/hosts").is_file());
        let m = fs::metadata(f.extra.join("etc")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750);
        assert_eq!(m.mtime(), fs::metadata(l.join("etc")).unwrap().mtime());
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let f = Fixture::new();
        let l = f.path("l");
        fs::create_dir_all(l.join("run")).unwrap();
        fs::create_dir_all(l.join("var")).unwrap();
        symlink("/run", l.join("var/run")).unwrap();
        symlink("../../../../../../tmp", l.join("escape")).unwrap();
        let layers = std::slice::from_ref(&l);
        let r = f.ensure(layers, "/var/run/s", Kind::Dir).unwrap();
        assert_eq!(r, PathBuf::from("run/s"));
        assert!(f.extra.join("run/s").is_dir());
        let r = f.ensure(layers, "/escape/y", Kind::Dir).unwrap();
        assert_eq!(r, PathBuf::from("tmp/y"));
    }

    #[test]
    fn whiteout_and_lower_layers() {
        let f = Fixture::new();
        let top = f.path("top");
        let low = f.path("low");
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(low.join("etc/hosts"), "x").unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        // hosts visible through the lower layer
        f.ensure(&[top.clone(), low.clone()], "/etc/hosts", Kind::File)
            .unwrap();
        assert!(!f.extra.join("etc").exists());
        // a file in the top layer hides the lower's dir
        fs::write(top.join("opt"), "").unwrap();
        fs::create_dir_all(low.join("opt/d")).unwrap();
        assert!(f.ensure(&[top, low], "/opt/d", Kind::Dir).is_err());
    }

    #[test]
    fn ancestors_are_looked_up_once_per_layer() {
        let f = Fixture::new();
        let mut lowers: Vec<PathBuf> = (0..30).map(|i| f.path(&format!("l{i}"))).collect();
        for l in &lowers {
            fs::create_dir_all(l).unwrap();
        }
        let base = f.path("base");
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::create_dir_all(base.join("proc")).unwrap();
        fs::write(base.join("etc/hosts"), "x").unwrap();
        lowers.push(base.clone());
        let stats = || MEMO.with(|m| m.borrow().stats);
        for (p, k) in [
            ("/proc", Kind::Dir),
            ("/etc/hosts", Kind::File),
            ("/etc/resolv.conf", Kind::File),
        ] {
            f.ensure(&lowers, p, k).unwrap();
        }
        // proc and etc once in each of the 31 layers, hosts and resolv.conf once in base
        assert_eq!(stats(), 31 + 31 + 2);
        assert!(f.extra.join("etc/resolv.conf").is_file());
        assert!(!f.extra.join("etc/hosts").exists());
        assert_eq!(
            fs::metadata(f.extra.join("etc")).unwrap().mtime(),
            fs::metadata(base.join("etc")).unwrap().mtime()
        );
        // other lowers: a fresh memo, which sees what the old one had cached as missing
        fs::create_dir_all(lowers[3].join("etc")).unwrap();
        fs::write(lowers[3].join("etc/resolv.conf"), "r").unwrap();
        let fewer = lowers[3..].to_vec();
        let extra2 = f.path("x2");
        fs::create_dir(&extra2).unwrap();
        ensure_target(&fewer, &extra2, "/etc/resolv.conf", Kind::File, false).unwrap();
        assert!(!extra2.join("etc").exists(), "found in the new top layer");
        assert_eq!(stats(), 2, "etc and etc/resolv.conf in the top layer");
    }

    #[test]
    fn kind_mismatch_fails() {
        let f = Fixture::new();
        let l = f.path("l");
        fs::create_dir_all(l.join("etc/hosts")).unwrap();
        let e = f.ensure(&[l], "/etc/hosts", Kind::File).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    }
}
