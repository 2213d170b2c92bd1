//! `--output type=local` into a directory that already has files, as BuildKit's local exporter
//! does it: the image's flattened file system is written into the directory, same-named entries
//! are replaced, every other entry is left alone.
//!
//! Writing never follows a symlink found in the destination: each directory is opened relative
//! to its parent with `O_NOFOLLOW` (a symlink where the image has a directory is replaced by a
//! real directory), and files, symlinks and special files are put in place with `renameat`,
//! which replaces a link itself instead of writing through it. An existing directory where the
//! image has a non-directory is removed (again through directory fds, never following links).
//! Entries are moved out of the flattened tree when it is on the same file system (hard links
//! stay hard links), else copied through a temp name in the destination directory.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Timespec, Timestamps};

/// A failure writing into the destination (or reading the flattened tree).
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct MergeError {
    /// The path (in the destination, or of the flattened tree).
    pub path: PathBuf,
    /// What was being done.
    pub op: &'static str,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// How [`merge_into`] writes.
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Move entries out of the source tree (`rename`) when it is on the destination's file
    /// system; else (or `false`) copy them.
    pub move_files: bool,
    /// Give entries the source's owners (needs root).
    pub owners: bool,
}

struct Merger {
    opts: MergeOptions,
    dest: PathBuf,
    /// Copies made of multiply-linked files: (dev, ino) to (dir, name), for `linkat`.
    links: HashMap<(u64, u64), (Rc<OwnedFd>, OsString)>,
    serial: u64,
}

fn rx(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// Writes the tree at `src` into the directory `dest` (created when missing): entries of `src`
/// replace same-named entries of `dest` (a directory is merged into an existing directory),
/// other entries of `dest` stay. No symlink inside `dest` is followed. With `move_files`, `src`
/// is consumed.
pub fn merge_into(src: &Path, dest: &Path, opts: MergeOptions) -> Result<(), MergeError> {
    let err = |op, source| MergeError {
        path: dest.to_path_buf(),
        op,
        source,
    };
    fs::create_dir_all(dest).map_err(|e| err("create directory", e))?;
    let root = rustix::fs::openat(
        CWD,
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open directory", rx(e)))?;
    let mut m = Merger {
        opts,
        dest: dest.to_path_buf(),
        links: HashMap::new(),
        serial: 0,
    };
    m.dir(src, &Rc::new(root), Path::new(""))
}

impl Merger {
    fn err(&self, rel: &Path, op: &'static str, source: io::Error) -> MergeError {
        MergeError {
            path: self.dest.join(rel),
            op,
            source,
        }
    }

    fn tmp_name(&mut self) -> OsString {
        self.serial += 1;
        OsString::from(format!(
            ".pelagos-output-{}-{}",
            std::process::id(),
            self.serial
        ))
    }

    fn dir(&mut self, src: &Path, dst: &Rc<OwnedFd>, rel: &Path) -> Result<(), MergeError> {
        let mut names: Vec<OsString> = fs::read_dir(src)
            .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| MergeError {
                path: src.to_path_buf(),
                op: "read directory",
                source: e,
            })?;
        names.sort();
        for name in names {
            let sp = src.join(&name);
            let rel_c = rel.join(&name);
            let md = fs::symlink_metadata(&sp).map_err(|e| MergeError {
                path: sp.clone(),
                op: "stat",
                source: e,
            })?;
            let existing = rustix::fs::statat(&**dst, &name, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|s| FileType::from_raw_mode(s.st_mode));
            if md.is_dir() {
                match existing {
                    Some(FileType::Directory) => {}
                    other => {
                        if other.is_some() {
                            rustix::fs::unlinkat(&**dst, &name, AtFlags::empty())
                                .map_err(|e| self.err(&rel_c, "remove", rx(e)))?;
                        }
                        rustix::fs::mkdirat(&**dst, &name, Mode::from_raw_mode(0o700))
                            .map_err(|e| self.err(&rel_c, "create directory", rx(e)))?;
                    }
                }
                let child = rustix::fs::openat(
                    &**dst,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err(&rel_c, "open directory", rx(e)))?;
                let child = Rc::new(child);
                self.dir(&sp, &child, &rel_c)?;
                self.set_meta(&child, &md)
                    .map_err(|e| self.err(&rel_c, "set metadata", e))?;
            } else {
                if existing == Some(FileType::Directory) {
                    remove_tree_at(&**dst, &name).map_err(|e| self.err(&rel_c, "remove", e))?;
                }
                self.place(&sp, &md, dst, &name)
                    .map_err(|e| self.err(&rel_c, "write", e))?;
            }
        }
        Ok(())
    }

    fn set_meta(&self, fd: &OwnedFd, md: &fs::Metadata) -> io::Result<()> {
        if self.opts.owners {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(md.uid())),
                Some(rustix::fs::Gid::from_raw(md.gid())),
            )
            .map_err(rx)?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(md.mode() & 0o7777)).map_err(rx)?;
        rustix::fs::futimens(fd, &times(md)).map_err(rx)
    }

    /// Puts a non-directory at `dst/name`, replacing what is there (never through it).
    fn place(
        &mut self,
        sp: &Path,
        md: &fs::Metadata,
        dst: &Rc<OwnedFd>,
        name: &OsStr,
    ) -> io::Result<()> {
        if self.opts.move_files {
            match rustix::fs::renameat(CWD, sp, &**dst, name) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::XDEV) => self.opts.move_files = false,
                Err(e) => return Err(rx(e)),
            }
        }
        let ft = md.file_type();
        let key = (md.dev(), md.ino());
        let tmp = self.tmp_name();
        if ft.is_file()
            && md.nlink() > 1
            && let Some((d, n)) = self.links.get(&key)
        {
            rustix::fs::linkat(&**d, n, &**dst, &tmp, AtFlags::empty()).map_err(rx)?;
            return rustix::fs::renameat(&**dst, &tmp, &**dst, name).map_err(rx);
        }
        let made = (|| -> io::Result<()> {
            if ft.is_file() {
                let out = rustix::fs::openat(
                    &**dst,
                    &tmp,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(rx)?;
                let mut out = fs::File::from(out);
                io::copy(&mut fs::File::open(sp)?, &mut out)?;
                let fd = OwnedFd::from(out);
                self.set_meta(&fd, md)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(sp)?;
                rustix::fs::symlinkat(&target, &**dst, &tmp).map_err(rx)?;
                self.set_link_meta(dst, &tmp, md)?;
            } else {
                let kind = if ft.is_fifo() {
                    FileType::Fifo
                } else if ft.is_char_device() {
                    FileType::CharacterDevice
                } else if ft.is_block_device() {
                    FileType::BlockDevice
                } else {
                    // sockets are not files of an image
                    return Ok(());
                };
                rustix::fs::mknodat(
                    &**dst,
                    &tmp,
                    kind,
                    Mode::from_raw_mode(md.mode() & 0o7777),
                    md.rdev(),
                )
                .map_err(rx)?;
                self.set_link_meta(dst, &tmp, md)?;
                rustix::fs::chmodat(
                    &**dst,
                    &tmp,
                    Mode::from_raw_mode(md.mode() & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(rx)?;
            }
            Ok(())
        })();
        let placed = made.and_then(|()| {
            match rustix::fs::statat(&**dst, &tmp, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => rustix::fs::renameat(&**dst, &tmp, &**dst, name).map_err(rx),
                // a socket: nothing was made
                Err(_) => Ok(()),
            }
        });
        if placed.is_err() {
            let _ = rustix::fs::unlinkat(&**dst, &tmp, AtFlags::empty());
        } else if ft.is_file() && md.nlink() > 1 {
            self.links.insert(key, (dst.clone(), name.to_os_string()));
        }
        placed
    }

    /// Owner and times of an entry by name, not following it.
    fn set_link_meta(&self, dst: &OwnedFd, name: &OsStr, md: &fs::Metadata) -> io::Result<()> {
        if self.opts.owners {
            rustix::fs::chownat(
                dst,
                name,
                Some(rustix::fs::Uid::from_raw(md.uid())),
                Some(rustix::fs::Gid::from_raw(md.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(rx)?;
        }
        rustix::fs::utimensat(dst, name, &times(md), AtFlags::SYMLINK_NOFOLLOW).map_err(rx)
    }
}

fn times(md: &fs::Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    }
}

/// Removes the directory `dir/name` and everything in it, through directory fds (no symlink
/// is followed).
fn remove_tree_at(dir: &impl AsFd, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rx)?;
    let mut children = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd).map_err(rx)? {
        let e = e.map_err(rx)?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push(OsString::from(
            <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n),
        ));
    }
    for c in children {
        let is_dir = rustix::fs::statat(&fd, &c, AtFlags::SYMLINK_NOFOLLOW)
            .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
            .map_err(rx)?;
        if is_dir {
            remove_tree_at(&fd, &c)?;
        } else {
            rustix::fs::unlinkat(&fd, &c, AtFlags::empty()).map_err(rx)?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// An image-like tree and a destination with symlinks pointing out of it.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let dest = t.path().join("dest");
        let outside = t.path().join("outside");
        for d in [&src, &dest, &outside] {
            fs::create_dir_all(d).unwrap();
        }
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/passwd"), "image\n").unwrap();
        fs::write(src.join("same.txt"), "from image\n").unwrap();
        fs::set_permissions(src.join("same.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(src.join("escape"), "from image\n").unwrap();
        symlink("target", src.join("link")).unwrap();
        fs::write(src.join("was-dir"), "now a file\n").unwrap();
        fs::create_dir_all(src.join("was-file")).unwrap();
        fs::write(src.join("was-file/x"), "x").unwrap();
        fs::write(src.join("h1"), "hard").unwrap();
        fs::hard_link(src.join("h1"), src.join("h2")).unwrap();
        // the destination: files of its own, and symlinks out of it
        fs::write(dest.join("keep.txt"), "mine\n").unwrap();
        fs::write(dest.join("same.txt"), "old\n").unwrap();
        symlink(&outside, dest.join("etc")).unwrap();
        fs::write(outside.join("victim"), "untouched\n").unwrap();
        symlink(outside.join("victim"), dest.join("escape")).unwrap();
        fs::create_dir_all(dest.join("was-dir/sub")).unwrap();
        symlink(&outside, dest.join("was-dir/sub/out")).unwrap();
        fs::write(dest.join("was-file"), "old file\n").unwrap();
        (t, src, dest, outside)
    }

    fn check(dest: &Path, outside: &Path) {
        assert_eq!(fs::read_to_string(dest.join("keep.txt")).unwrap(), "mine\n");
        assert_eq!(
            fs::read_to_string(dest.join("same.txt")).unwrap(),
            "from image\n"
        );
        let md = fs::metadata(dest.join("same.txt")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o640);
        // the symlink dir was replaced by a real directory, nothing written outside
        assert!(fs::symlink_metadata(dest.join("etc")).unwrap().is_dir());
        assert_eq!(
            fs::read_to_string(dest.join("etc/passwd")).unwrap(),
            "image\n"
        );
        assert!(!outside.join("passwd").exists());
        // a symlink to a file outside was replaced, not written through
        assert!(fs::symlink_metadata(dest.join("escape")).unwrap().is_file());
        assert_eq!(
            fs::read_to_string(outside.join("victim")).unwrap(),
            "untouched\n"
        );
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("target")
        );
        assert_eq!(
            fs::read_to_string(dest.join("was-dir")).unwrap(),
            "now a file\n"
        );
        assert!(outside.exists(), "removing a directory followed a link out");
        assert_eq!(fs::read_to_string(dest.join("was-file/x")).unwrap(), "x");
        let (a, b) = (
            fs::metadata(dest.join("h1")).unwrap(),
            fs::metadata(dest.join("h2")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "hard links kept");
        // no temp names left
        for e in fs::read_dir(dest).unwrap() {
            let n = e.unwrap().file_name();
            assert!(!n.to_string_lossy().starts_with(".pelagos-output"), "{n:?}");
        }
    }

    #[test]
    fn merges_by_moving_without_following_links() {
        let (_t, src, dest, outside) = setup();
        let owners = rustix::process::geteuid().is_root();
        merge_into(
            &src,
            &dest,
            MergeOptions {
                move_files: true,
                owners,
            },
        )
        .unwrap();
        check(&dest, &outside);
    }

    #[test]
    fn merges_by_copying_without_following_links() {
        let (_t, src, dest, outside) = setup();
        let owners = rustix::process::geteuid().is_root();
        merge_into(
            &src,
            &dest,
            MergeOptions {
                move_files: false,
                owners,
            },
        )
        .unwrap();
        check(&dest, &outside);
        // copying leaves the source
        assert!(src.join("same.txt").is_file());
    }

    #[test]
    fn a_file_as_destination_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        let e = merge_into(
            t.path(),
            &f,
            MergeOptions {
                move_files: false,
                owners: false,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(&*f.to_string_lossy()), "{e}");
    }
}
