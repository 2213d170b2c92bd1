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
