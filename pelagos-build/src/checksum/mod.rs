//! Content checksums of COPY/ADD sources for cache keys, with a stat cache so unchanged files are
//! not hashed again, and parallel hashing of the rest.
//!
//! The checksum of a COPY covers, for every entry of the planned layer: its path, type, mode,
//! owner, size, link target and content digest — never its mtime, so touching a file without
//! changing it keeps the step cached.
//!
//! The stat cache maps a file's path to its stamp (device, inode, size, mtime and ctime in
//! nanoseconds) and sha256. A file whose stamp is unchanged is not read again. Any write to a
//! file changes its ctime (which cannot be set from user space), so rewriting a file with the
//! same size and a restored mtime is still seen; a file whose ctime is so recent that a later
//! write could fall into the same timestamp tick is hashed but never recorded ("racy" entries, as
//! git does). The walk of the build context ([`crate::tree::Tree::read_dir`]) hands the stamps it
//! already has to `note_walked`, so a cached file costs one `statx` in all. The cache file is
//! binary with a trailing sha256: a truncated or corrupt file is a miss, never a wrong digest.
//!
//! The module is split by concern: `stamp` (file stamps and the stamps noted by the walk),
//! `file` (the stat cache file format), `cache` ([`StatCache`]: lookups and parallel hashing)
//! and `entries` (the digest of planned layer entries).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod cache;
mod entries;
mod file;
mod stamp;

pub use cache::StatCache;
pub use entries::{entries_digest, entry_files};
pub(crate) use stamp::{Stamp, note_walked};

use stamp::PathMap;

/// A hashing failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash {path}: {source}")]
pub struct HashError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// The content digests (and sizes) of the files of a COPY, by host path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileHashes(PathMap<(u64, [u8; 32])>);

impl FileHashes {
    /// The sha256 of `path`'s content, if it was hashed.
    pub fn get(&self, path: &Path) -> Option<&[u8; 32]> {
        self.size_and_digest(path).map(|(_, d)| d)
    }

    /// The size of `path` (from the stamp taken before hashing) and its content's sha256.
    pub fn size_and_digest(&self, path: &Path) -> Option<(u64, &[u8; 32])> {
        self.0
            .get(path.as_os_str().as_bytes())
            .map(|(s, d)| (*s, d))
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], HashError> {
    let err = |source| HashError {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(h.finalize().into())
}
