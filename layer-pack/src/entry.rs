//! Explicit layer entries, for packing without staging a directory (COPY/ADD).

use std::ffi::OsString;
use std::path::PathBuf;

/// What an [`Entry`] is and where its content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A regular file whose content is read from this host path when the entry is written
    /// (its size is taken at that moment; the file must not change while packing).
    File(PathBuf),
    /// A regular file with this content.
    Bytes(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link with this raw target (absolute targets allowed).
    Symlink(OsString),
    /// A hard link to an earlier entry's `path_in_layer`.
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// Deletes `path_in_layer` from lower layers (written as `.wh.NAME`).
    Whiteout,
    /// Hides all lower-layer children of the directory `path_in_layer`
    /// (written as `path_in_layer/.wh..wh..opq`; add a `Dir` entry for the directory itself).
    OpaqueWhiteout,
}

/// One entry of a layer for [`crate::pack_entries`].
///
/// `path_in_layer` is relative, `/`-separated, without `.` or `..` components and without a
/// leading or trailing `/` (a leading `/` or `./` is stripped). Entries may come in any order:
/// `pack_entries` sorts them (component-wise by path bytes, so a directory precedes its contents)
/// and refuses duplicates. Parent directories are not invented: give them as `Dir` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the layer.
    pub path_in_layer: String,
    /// Type and content.
    pub source: EntrySource,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask applied).
    pub mode: u32,
    /// Owner uid (written as is; the id map of the options does not apply to entries).
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time in seconds (clamped to SOURCE_DATE_EPOCH when set).
    pub mtime: i64,
    /// Extended attributes (name, value); the allow-list of the crate applies.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use crate::error::PackError;
use crate::options::PackOptions;
use crate::tarw::{Chunker, Kind, Meta, clamp_mtime, write_header, xattr_allowed};

/// Component-wise order of `/`-separated paths by bytes: `a` < `a/b` < `a.txt`.
pub(crate) fn path_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: &u8| if *c == b'/' { 0u16 } else { u16::from(*c) + 1 };
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Normalises `path_in_layer`: strips a leading `/` or `./`, refuses empty, `.`, `..` and
/// empty components and names with the `.wh.` prefix.
pub(crate) fn normalize(p: &str) -> Result<String, PackError> {
    let bad = || PackError::InvalidPath {
        path: p.to_string(),
    };
    let mut s = p.trim_start_matches('/');
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.trim_start_matches('/');
    }
    let s = s.trim_end_matches('/');
    if s.is_empty() || s.contains('\0') {
        return Err(bad());
    }
    for c in s.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad());
        }
        if c.starts_with(".wh.") {
            return Err(PackError::ReservedName {
                path: p.to_string(),
            });
        }
    }
    Ok(s.to_string())
}

fn with_name_prefix(path: &str, prefix: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{prefix}{name}"),
        None => format!("{prefix}{path}"),
    }
}

/// Validates, sorts and writes entries.
pub(crate) fn write_entries(
    entries: Vec<Entry>,
    opts: &PackOptions,
    out: &mut Chunker,
) -> Result<(), PackError> {
    let mut items = Vec::with_capacity(entries.len());
    for e in entries {
        let path = normalize(&e.path_in_layer)?;
        let emitted = match e.source {
            EntrySource::Whiteout => with_name_prefix(&path, ".wh."),
            EntrySource::OpaqueWhiteout => format!("{path}/.wh..wh..opq"),
            _ => path,
        };
        items.push((emitted, e));
    }
    items.sort_by(|a, b| path_order(a.0.as_bytes(), b.0.as_bytes()));
    let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
    for (path, e) in items {
        if !seen.insert(path.clone()) {
            return Err(PackError::Duplicate { path });
        }
        let mut xattrs: Vec<(String, Vec<u8>)> = e
            .xattrs
            .into_iter()
            .filter(|(k, _)| xattr_allowed(k))
            .collect();
        xattrs.sort();
        let mut m = Meta {
            path: path.clone().into_bytes(),
            kind: Kind::Dir,
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            mtime: clamp_mtime(e.mtime, opts.source_date_epoch),
            xattrs,
        };
        match e.source {
            EntrySource::File(host) => {
                let mut f = File::open(&host).map_err(|source| PackError::Read {
                    path: host.clone(),
                    source,
                })?;
                let md = f.metadata().map_err(|source| PackError::Read {
                    path: host.clone(),
                    source,
                })?;
                if !md.is_file() {
                    return Err(PackError::Read {
                        path: host,
                        source: std::io::Error::other("not a regular file"),
                    });
                }
                m.kind = Kind::File(md.len());
                write_header(out, &m)?;
                out.copy_file(&mut f, md.len(), &host)?;
            }
            EntrySource::Bytes(data) => {
                m.kind = Kind::File(data.len() as u64);
                write_header(out, &m)?;
                out.write_content(&data)?;
            }
            EntrySource::Dir => write_header(out, &m)?,
            EntrySource::Symlink(t) => {
                m.kind = Kind::Symlink(t.as_bytes().to_vec());
                write_header(out, &m)?;
            }
            EntrySource::Hardlink(target) => {
                let t = normalize(&target)?;
                if !seen.contains(&t) || t == path {
                    return Err(PackError::BadHardlink { path, target });
                }
                m.kind = Kind::Hardlink(t.into_bytes());
                write_header(out, &m)?;
            }
            EntrySource::CharDevice { major, minor } => {
                m.kind = Kind::Char(major, minor);
                write_header(out, &m)?;
            }
            EntrySource::BlockDevice { major, minor } => {
                m.kind = Kind::Block(major, minor);
                write_header(out, &m)?;
            }
            EntrySource::Fifo => {
                m.kind = Kind::Fifo;
                write_header(out, &m)?;
            }
            EntrySource::Whiteout | EntrySource::OpaqueWhiteout => {
                m.kind = Kind::File(0);
                m.xattrs.clear();
                write_header(out, &m)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_component_wise() {
        let mut v = vec!["a.txt", "a/b", "a", "b", "a/b/c", "a-"];
        v.sort_by(|x, y| path_order(x.as_bytes(), y.as_bytes()));
        assert_eq!(v, ["a", "a/b", "a/b/c", "a-", "a.txt", "b"]);
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize("./a").unwrap(), "a");
        assert!(normalize("a/../b").is_err());
        assert!(normalize("").is_err());
        assert!(normalize("/").is_err());
        assert!(normalize("a//b").is_err());
        assert!(matches!(
            normalize("d/.wh.x"),
            Err(PackError::ReservedName { .. })
        ));
    }
}
