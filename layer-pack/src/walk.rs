//! Walks a directory tree in deterministic order and writes it as tar entries, converting
//! overlayfs whiteouts when the tree is an upper dir.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::PackError;
use crate::options::PackOptions;
use crate::tarw::{Chunker, Kind, Meta, clamp_mtime, write_header, xattr_allowed};

/// One directory being walked: its layer path, host path and sorted remaining names.
struct Level {
    rel: Vec<u8>,
    abs: PathBuf,
    names: std::vec::IntoIter<OsString>,
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, PackError> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(read_err(dir))? {
        names.push(e.map_err(read_err(dir))?.file_name());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Reads the allowed xattrs of `path` (not following symlinks), sorted by name.
pub(crate) fn allowed_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, PackError> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(read_err(path)(e)),
    };
    for name in names {
        let Some(n) = name.to_str() else { continue };
        if !xattr_allowed(n) {
            continue;
        }
        if let Some(v) = xattr::get(path, &name).map_err(read_err(path))? {
            out.push((n.to_string(), v));
        }
    }
    out.sort();
    Ok(out)
}

fn xattr_is(path: &Path, name: &str, want: &[u8]) -> Result<bool, PackError> {
    match xattr::get(path, name) {
        Ok(v) => Ok(v.as_deref() == Some(want)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(read_err(path)(e)),
    }
}

fn xattr_present(path: &Path, name: &str) -> Result<bool, PackError> {
    match xattr::get(path, name) {
        Ok(v) => Ok(v.is_some()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(read_err(path)(e)),
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + name.len() + 1);
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn map_ids(opts: &PackOptions, rel: &[u8], uid: u32, gid: u32) -> Result<(u32, u32), PackError> {
    let Some(map) = &opts.id_map else {
        return Ok((uid, gid));
    };
    let path = || String::from_utf8_lossy(rel).into_owned();
    let u = map.map_uid(uid).ok_or_else(|| PackError::UnmappedId {
        path: path(),
        kind: "uid",
        id: uid,
    })?;
    let g = map.map_gid(gid).ok_or_else(|| PackError::UnmappedId {
        path: path(),
        kind: "gid",
        id: gid,
    })?;
    Ok((u, g))
}

/// Writes every entry under `root` (not `root` itself), depth first, each directory's names
/// sorted by bytes, a directory before its contents.
pub(crate) fn walk(root: &Path, opts: &PackOptions, out: &mut Chunker) -> Result<(), PackError> {
    let meta = fs::symlink_metadata(root).map_err(read_err(root))?;
    if !meta.is_dir() {
        return Err(read_err(root)(std::io::Error::from(
            std::io::ErrorKind::NotADirectory,
        )));
    }
    let ovl = if opts.userxattr {
        "user.overlay."
    } else {
        "trusted.overlay."
    };
    let opaque_key = format!("{ovl}opaque");
    let whiteout_key = format!("{ovl}whiteout");
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut stack = vec![Level {
        rel: Vec::new(),
        abs: root.to_path_buf(),
        names: sorted_names(root)?.into_iter(),
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.next() else {
            stack.pop();
            continue;
        };
        let abs = level.abs.join(&name);
        let rel = join(&level.rel, name.as_bytes());
        let relstr = || String::from_utf8_lossy(&rel).into_owned();
        if name.as_bytes().starts_with(b".wh.") {
            return Err(PackError::ReservedName { path: relstr() });
        }
        let md = fs::symlink_metadata(&abs).map_err(read_err(&abs))?;
        let ft = md.file_type();
        let (uid, gid) = map_ids(opts, &rel, md.uid(), md.gid())?;
        let mtime = clamp_mtime(md.mtime(), opts.source_date_epoch);
        let mut m = Meta {
            path: rel.clone(),
            kind: Kind::Dir,
            mode: md.mode() & 0o7777,
            uid,
            gid,
            mtime,
            xattrs: Vec::new(),
        };
        if opts.overlay_upper {
            let whiteout = (ft.is_char_device() && md.rdev() == 0)
                || (ft.is_file() && md.len() == 0 && xattr_present(&abs, &whiteout_key)?);
            if whiteout {
                m.path = join(&level.rel, &[b".wh.".as_slice(), name.as_bytes()].concat());
                m.kind = Kind::File(0);
                m.mode = 0o600;
                write_header(out, &m)?;
                continue;
            }
        }
        if ft.is_socket() {
            continue;
        }
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                m.kind = Kind::Hardlink(first.clone());
                write_header(out, &m)?;
                continue;
            }
            links.insert((md.dev(), md.ino()), rel.clone());
        }
        m.xattrs = allowed_xattrs(&abs)?;
        if ft.is_dir() {
            write_header(out, &m)?;
            if opts.overlay_upper && xattr_is(&abs, &opaque_key, b"y")? {
                let marker = Meta {
                    path: join(&rel, b".wh..wh..opq"),
                    kind: Kind::File(0),
                    mode: m.mode & 0o777,
                    xattrs: Vec::new(),
                    ..m.clone()
                };
                write_header(out, &marker)?;
            }
            let names = sorted_names(&abs)?;
            stack.push(Level {
                rel,
                abs,
                names: names.into_iter(),
            });
        } else if ft.is_file() {
            let mut f = File::open(&abs).map_err(read_err(&abs))?;
            m.kind = Kind::File(md.len());
            write_header(out, &m)?;
            out.copy_file(&mut f, md.len(), &abs)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(read_err(&abs))?;
            m.kind = Kind::Symlink(target.into_os_string().into_vec());
            write_header(out, &m)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let (ma, mi) = (libc::major(md.rdev()), libc::minor(md.rdev()));
            m.kind = if ft.is_char_device() {
                Kind::Char(ma, mi)
            } else {
                Kind::Block(ma, mi)
            };
            write_header(out, &m)?;
        } else if ft.is_fifo() {
            m.kind = Kind::Fifo;
            write_header(out, &m)?;
        }
    }
    Ok(())
}
