//! Applies parsed tar entries onto a directory without ever leaving it.
//!
//! Every path is resolved from a directory fd of the root, one component at a time with
//! `O_NOFOLLOW`: a symlink (planted earlier in the archive or already present) on the way is
//! refused, as are absolute paths, `..` components, hard links whose target would leave the
//! root, device nodes when not allowed, and unknown entry types. Leaves are created with `*at`
//! calls relative to their parent's fd.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags, chmodat,
    chownat, fchmod, fchown, futimens, linkat, lsetxattr, makedev, mkdirat, mknodat, openat,
    statat, symlinkat, unlinkat, utimensat,
};

use crate::error::UnpackError;
use crate::tarread::{Header, TarReader, Ty};
use crate::tarw::xattr_allowed;
use crate::unpack::{UnpackFormat, UnpackOptions};

/// A directory whose mode and mtime are set at the end (children change the mtime, and a
/// read-only mode would stop an unprivileged caller from creating them).
struct PendingDir {
    comps: Vec<Vec<u8>>,
    mode: u32,
    mtime: i64,
}

pub(crate) struct Applier<'a> {
    root: OwnedFd,
    root_path: PathBuf,
    opts: &'a UnpackOptions,
    fresh: bool,
    /// The last resolved parent directory.
    cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    /// Paths created by this layer (opaque markers keep them).
    created: HashSet<Vec<u8>>,
    dirs: Vec<PendingDir>,
    root_meta: Option<(u32, i64)>,
    entries: u64,
    whiteouts: u64,
    /// Copy buffer for file contents.
    buf: Vec<u8>,
}

fn refused(entry: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

/// Splits an archive path into clean components, refusing absolute paths and `..`.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, UnpackError> {
    if raw.first() == Some(&b'/') {
        return Err(refused(raw, "absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(refused(raw, "path has a '..' component")),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn ts(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn is_enoent(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::NOENT
}

impl<'a> Applier<'a> {
    pub(crate) fn new(
        dir: &Path,
        opts: &'a UnpackOptions,
        fresh: bool,
    ) -> Result<Self, UnpackError> {
        let root = openat(
            rustix::fs::CWD,
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Applier {
            root,
            root_path: dir.to_path_buf(),
            opts,
            fresh,
            cache: None,
            created: HashSet::new(),
            dirs: Vec::new(),
            root_meta: None,
            entries: 0,
            whiteouts: 0,
            buf: vec![0u8; 256 * 1024],
        })
    }

    fn io(&self, comps: &[Vec<u8>], e: impl Into<io::Error>) -> UnpackError {
        let mut p = self.root_path.clone();
        for c in comps {
            p.push(os(c));
        }
        UnpackError::Io {
            path: p,
            source: e.into(),
        }
    }

    /// Opens the directory `comps` (no symlinks followed); missing ones are created when `create`.
    fn open_dir(
        &mut self,
        comps: &[Vec<u8>],
        entry: &[u8],
        create: bool,
    ) -> Result<OwnedFd, UnpackError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut cur = openat(&self.root, ".", flags, Mode::empty()).map_err(|e| self.io(&[], e))?;
        for (i, c) in comps.iter().enumerate() {
            match openat(&cur, os(c), flags, Mode::empty()) {
                Ok(fd) => cur = fd,
                Err(e) if is_enoent(e) && create => {
                    mkdirat(&cur, os(c), Mode::from_raw_mode(0o755))
                        .map_err(|e| self.io(comps.get(..=i).unwrap_or_default(), e))?;
                    self.created
                        .insert(comps.get(..=i).unwrap_or_default().join(&b'/'));
                    cur = openat(&cur, os(c), flags, Mode::empty())
                        .map_err(|e| self.io(comps.get(..=i).unwrap_or_default(), e))?;
                }
                Err(e) => {
                    let st = statat(&cur, os(c), AtFlags::SYMLINK_NOFOLLOW);
                    return Err(match st {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            refused(
                                entry,
                                format!(
                                    "path goes through the symlink {}",
                                    String::from_utf8_lossy(
                                        &comps.get(..=i).unwrap_or_default().join(&b'/')
                                    )
                                ),
                            )
                        }
                        Ok(_) => refused(
                            entry,
                            format!(
                                "{} is not a directory",
                                String::from_utf8_lossy(
                                    &comps.get(..=i).unwrap_or_default().join(&b'/')
                                )
                            ),
                        ),
                        Err(_) => self.io(comps.get(..=i).unwrap_or_default(), e),
                    });
                }
            }
        }
        Ok(cur)
    }

    /// The parent directory fd of `comps` (cached for consecutive entries of one directory).
    fn parent(&mut self, comps: &[Vec<u8>], entry: &[u8]) -> Result<OwnedFd, UnpackError> {
        let parent = comps
            .get(..comps.len().saturating_sub(1))
            .unwrap_or_default();
        if let Some((p, fd)) = &self.cache
            && p.as_slice() == parent
        {
            return fd.try_clone().map_err(|e| self.io(parent, e));
        }
        let fd = self.open_dir(parent, entry, true)?;
        let keep = fd.try_clone().map_err(|e| self.io(parent, e))?;
        self.cache = Some((parent.to_vec(), keep));
        Ok(fd)
    }

    /// Removes `name` in `dir` (recursively for directories, never following symlinks).
    fn remove(&self, dir: &OwnedFd, name: &[u8], comps: &[Vec<u8>]) -> Result<(), UnpackError> {
        let st = match statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) if is_enoent(e) => return Ok(()),
            Err(e) => return Err(self.io(comps, e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = openat(
                dir,
                os(name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.io(comps, e))?;
            for child in list(&sub).map_err(|e| self.io(comps, e))? {
                self.remove(&sub, &child, comps)?;
            }
            unlinkat(dir, os(name), AtFlags::REMOVEDIR).map_err(|e| self.io(comps, e))
        } else {
            unlinkat(dir, os(name), AtFlags::empty()).map_err(|e| self.io(comps, e))
        }
    }

    fn overlay_prefix(&self) -> Option<&'static str> {
        match self.opts.format {
            UnpackFormat::Plain => None,
            UnpackFormat::Overlay { userxattr: true } => Some("user.overlay."),
            UnpackFormat::Overlay { userxattr: false } => Some("trusted.overlay."),
        }
    }

    fn xattrs(
        &self,
        dir: &OwnedFd,
        name: Option<&[u8]>,
        h: &Header,
        comps: &[Vec<u8>],
    ) -> Result<(), UnpackError> {
        for (k, v) in &h.xattrs {
            if !xattr_allowed(k) {
                continue;
            }
            match set_xattr_at(dir, name, k, v) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
                // Unprivileged: security.capability is not ours to set. user.* is refused by the
                // kernel on devices and fifos.
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        && (!self.opts.preserve_owners
                            || matches!(h.ty, Ty::Char | Ty::Block | Ty::Fifo)) => {}
                Err(e) => return Err(self.io(comps, e)),
            }
        }
        Ok(())
    }

    fn ids(&self, h: &Header) -> Result<(Option<Uid>, Option<Gid>), UnpackError> {
        if !self.opts.preserve_owners {
            return Ok((None, None));
        }
        let u = u32::try_from(h.uid).map_err(|_| refused(&h.path, "uid out of range"))?;
        let g = u32::try_from(h.gid).map_err(|_| refused(&h.path, "gid out of range"))?;
        Ok((Some(Uid::from_raw(u)), Some(Gid::from_raw(g))))
    }

    /// Applies one entry; file content is read from `tr`.
    pub(crate) fn entry<R: Read>(
        &mut self,
        h: &Header,
        tr: &mut TarReader<R>,
    ) -> Result<(), UnpackError> {
        self.entries += 1;
        let comps = components(&h.path)?;
        let Some(leaf) = comps.last().cloned() else {
            // The root itself ("./"): its metadata applies to DIR at the end.
            if h.ty == Ty::Dir {
                self.root_meta = Some((h.mode, h.mtime));
            }
            return Ok(());
        };
        let path = comps.join(&b'/');
        if let Some(target) = leaf.strip_prefix(b".wh.") {
            return self.whiteout(h, &comps, target);
        }
        let dir = self.parent(&comps, &h.path)?;
        let (uid, gid) = self.ids(h)?;
        let name = os(&leaf);
        let existing = statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode));
        let keep_dir = h.ty == Ty::Dir && existing == Some(FileType::Directory);
        if existing.is_some() && !keep_dir && h.ty != Ty::Hardlink {
            self.remove(&dir, &leaf, &comps)?;
            if existing == Some(FileType::Directory) {
                // The cached parent may lie inside what was just removed.
                self.cache = None;
            }
        }
        self.created.insert(path.clone());
        match h.ty {
            Ty::File => {
                let fd = create_new(&dir, name).map_err(|e| self.io(&comps, e))?;
                let mut f = std::fs::File::from(fd);
                let mut buf = std::mem::take(&mut self.buf);
                let copied = loop {
                    let n = tr
                        .read_content(&mut buf)
                        .map_err(|e| UnpackError::Malformed {
                            entry: String::from_utf8_lossy(&h.path).into_owned(),
                            reason: format!("truncated content: {e}"),
                        });
                    let n = match n {
                        Ok(0) => break Ok(()),
                        Ok(n) => n,
                        Err(e) => break Err(e),
                    };
                    if let Err(e) = f.write_all(buf.get(..n).unwrap_or_default()) {
                        break Err(self.io(&comps, e));
                    }
                };
                self.buf = buf;
                copied?;
                if uid.is_some() {
                    fchown(&f, uid, gid).map_err(|e| self.io(&comps, e))?;
                }
                self.xattrs(&dir, Some(&leaf), h, &comps)?;
                fchmod(&f, Mode::from_raw_mode(h.mode)).map_err(|e| self.io(&comps, e))?;
                futimens(&f, &ts(h.mtime)).map_err(|e| self.io(&comps, e))?;
            }
            Ty::Dir => {
                if !keep_dir {
                    mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.io(&comps, e))?;
                }
                let fd = openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io(&comps, e))?;
                if uid.is_some() {
                    fchown(&fd, uid, gid).map_err(|e| self.io(&comps, e))?;
                }
                self.xattrs(&dir, Some(&leaf), h, &comps)?;
                // Owner rwx until the end, so children can be created by an unprivileged caller.
                fchmod(&fd, Mode::from_raw_mode(h.mode | 0o700)).map_err(|e| self.io(&comps, e))?;
                self.dirs.push(PendingDir {
                    comps: comps.clone(),
                    mode: h.mode,
                    mtime: h.mtime,
                });
            }
            Ty::Symlink => {
                symlinkat(os(&h.link), &dir, name).map_err(|e| self.io(&comps, e))?;
                if uid.is_some() {
                    chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.io(&comps, e))?;
                }
                utimensat(&dir, name, &ts(h.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io(&comps, e))?;
            }
            Ty::Hardlink => self.hardlink(h, &dir, &leaf, &comps, existing.is_some())?,
            Ty::Char | Ty::Block | Ty::Fifo => {
                let ft = match h.ty {
                    Ty::Char => FileType::CharacterDevice,
                    Ty::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.opts.allow_devices {
                    return Err(refused(
                        &h.path,
                        "device nodes are not allowed (unprivileged unpack)",
                    ));
                }
                mknodat(
                    &dir,
                    name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    makedev(h.major, h.minor),
                )
                .map_err(|e| self.io(&comps, e))?;
                if uid.is_some() {
                    chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.io(&comps, e))?;
                }
                self.xattrs(&dir, Some(&leaf), h, &comps)?;
                chmodat(&dir, name, Mode::from_raw_mode(h.mode), AtFlags::empty())
                    .map_err(|e| self.io(&comps, e))?;
                utimensat(&dir, name, &ts(h.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io(&comps, e))?;
            }
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        h: &Header,
        dir: &OwnedFd,
        leaf: &[u8],
        comps: &[Vec<u8>],
        exists: bool,
    ) -> Result<(), UnpackError> {
        let tcomps = components(&h.link)
            .map_err(|_| refused(&h.path, "hard link target leaves the root"))?;
        let Some(tleaf) = tcomps.last() else {
            return Err(refused(&h.path, "hard link to the root"));
        };
        if tcomps == comps {
            return Err(refused(&h.path, "hard link to itself"));
        }
        let tparent = tcomps.get(..tcomps.len() - 1).unwrap_or_default();
        let tdir = self
            .open_dir(tparent, &h.path, false)
            .map_err(|e| match e {
                UnpackError::Io { .. } => refused(&h.path, "hard link target does not exist"),
                other => other,
            })?;
        match statat(&tdir, os(tleaf), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(refused(&h.path, "hard link to a directory"));
            }
            Ok(_) => {}
            Err(_) => return Err(refused(&h.path, "hard link target does not exist")),
        }
        if exists {
            self.remove(dir, leaf, comps)?;
        }
        linkat(&tdir, os(tleaf), dir, os(leaf), AtFlags::empty()).map_err(|e| self.io(comps, e))
    }

    fn whiteout(
        &mut self,
        h: &Header,
        comps: &[Vec<u8>],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        self.whiteouts += 1;
        if target != b".wh..opq"
            && (target.is_empty() || target == b"." || target == b".." || target.contains(&b'/'))
        {
            return Err(refused(&h.path, "invalid whiteout name"));
        }
        let parent = comps.get(..comps.len() - 1).unwrap_or_default();
        if self.overlay_prefix().is_none() {
            // Flattening: a whiteout under a directory that does not exist deletes nothing.
            match self.open_dir(parent, &h.path, false) {
                Err(UnpackError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(());
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        let dir = self.parent(comps, &h.path)?;
        // Removals below may take away the directory of the cached parent.
        self.cache = None;
        if target == b".wh..opq" {
            match self.overlay_prefix() {
                None => {
                    // Remove what lower layers put in this directory; keep this layer's entries.
                    let rd = openat(
                        &dir,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.io(parent, e))?;
                    for child in list(&rd).map_err(|e| self.io(parent, e))? {
                        let mut p = parent.to_vec();
                        p.push(child.clone());
                        if !self.created.contains(&p.join(&b'/')) {
                            self.remove(&dir, &child, &p)?;
                        }
                    }
                }
                Some(prefix) => {
                    set_xattr_at(&dir, None, &format!("{prefix}opaque"), b"y")
                        .map_err(|e| self.io(parent, e))?;
                }
            }
            return Ok(());
        }
        let mut tcomps = parent.to_vec();
        tcomps.push(target.to_vec());
        self.remove(&dir, target, &tcomps)?;
        let Some(prefix) = self.overlay_prefix() else {
            return Ok(());
        };
        match mknodat(
            &dir,
            os(target),
            FileType::CharacterDevice,
            Mode::empty(),
            makedev(0, 0),
        ) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::PERM => {
                // xattr whiteout (Linux 6.7+): an empty file marked overlay.whiteout in a directory
                // marked overlay.opaque=x.
                let fd = create_new(&dir, os(target)).map_err(|e| self.io(&tcomps, e))?;
                drop(fd);
                set_xattr_at(&dir, Some(target), &format!("{prefix}whiteout"), b"")
                    .map_err(|e| self.io(&tcomps, e))?;
                let key = format!("{prefix}opaque");
                let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                p.push(".");
                if xattr::get(&p, &key).ok().flatten().as_deref() != Some(b"y") {
                    set_xattr_at(&dir, None, &key, b"x").map_err(|e| self.io(parent, e))?;
                }
                Ok(())
            }
            Err(e) => Err(self.io(&tcomps, e)),
        }
    }

    /// Sets the deferred directory modes and mtimes (deepest first); returns the counts.
    pub(crate) fn finish(mut self) -> Result<(u64, u64), UnpackError> {
        self.cache = None;
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            let entry = d.comps.join(&b'/');
            // Removed again by a later whiteout or replaced: nothing to do.
            let Ok(fd) = self.open_dir(&d.comps, &entry, false) else {
                continue;
            };
            let rd = openat(
                &fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.io(&d.comps, e))?;
            fchmod(&rd, Mode::from_raw_mode(d.mode)).map_err(|e| self.io(&d.comps, e))?;
            futimens(&rd, &ts(d.mtime)).map_err(|e| self.io(&d.comps, e))?;
        }
        let root = openat(
            &self.root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io(&[], e))?;
        match self.root_meta {
            Some((mode, mtime)) => {
                fchmod(&root, Mode::from_raw_mode(mode)).map_err(|e| self.io(&[], e))?;
                futimens(&root, &ts(mtime)).map_err(|e| self.io(&[], e))?;
            }
            None if self.fresh => {
                fchmod(&root, Mode::from_raw_mode(0o755)).map_err(|e| self.io(&[], e))?;
            }
            None => {}
        }
        Ok((self.entries, self.whiteouts))
    }
}

/// Creates a new regular file `name` in `dir` for writing (0600 until its metadata is applied;
/// never through a symlink, never over an existing entry).
fn create_new(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

fn set_xattr_at(dir: &OwnedFd, name: Option<&[u8]>, key: &str, value: &[u8]) -> io::Result<()> {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    // "N/." resolves the magic link; lsetxattr on "N" itself would address the proc link.
    p.push(name.map_or(OsStr::new("."), os));
    lsetxattr(&p, key, value, XattrFlags::empty()).map_err(io::Error::from)
}

/// Names in an open directory, without `.` and `..`.
fn list(fd: &impl AsFd) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut d = Dir::read_from(fd)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}
