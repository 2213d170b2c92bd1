//! Error types of packing and unpacking.

use std::io;
use std::path::PathBuf;

/// A packing failure; each variant names the path or entry that failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading the source tree failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The source path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output (a path, or `<output>` for a writer).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A source name starts with `.wh.`, which OCI reserves for whiteouts.
    #[error("{path}: name starts with the reserved whiteout prefix .wh.")]
    ReservedName {
        /// The offending path in the layer.
        path: String,
    },
    /// An entry path is empty, absolute after normalisation, or has `.`/`..` components.
    #[error("{path}: invalid path in layer")]
    InvalidPath {
        /// The offending path.
        path: String,
    },
    /// Two entries share a path.
    #[error("{path}: duplicate entry")]
    Duplicate {
        /// The duplicated path.
        path: String,
    },
    /// A hard link points to a path that was not emitted before it.
    #[error("{path}: hard link target {target} is not an earlier entry")]
    BadHardlink {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// A uid or gid is outside the id map.
    #[error("{path}: {kind} {id} is not in the id map")]
    UnmappedId {
        /// The file.
        path: String,
        /// `uid` or `gid`.
        kind: &'static str,
        /// The host id.
        id: u32,
    },
    /// A file changed size while it was being packed.
    #[error("{path}: file changed while packing")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Invalid options (level out of range, ...).
    #[error("invalid options: {0}")]
    Options(String),
}

/// An unpacking failure; each variant names the entry or path that failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading or decompressing the blob failed.
    #[error("cannot read layer: {0}")]
    Read(io::Error),
    /// A filesystem operation on the target failed.
    #[error("{path}: {source}")]
    Io {
        /// The target path (or entry path).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The archive is malformed (bad header, truncated).
    #[error("malformed layer at {entry}: {reason}")]
    Malformed {
        /// The entry (or `<header>`).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A hostile or unsafe entry was refused.
    #[error("refused entry {entry}: {reason}")]
    Refused {
        /// The entry's path as found in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The uncompressed tar's digest differs from the expected diff_id.
    #[error("diff_id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// Expected.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The blob's digest differs from the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Expected.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// Verification was requested while applying onto a non-empty directory from a stream.
    #[error("{0}: verification onto a non-empty directory needs a seekable blob (use unpack_path)")]
    NeedsEmptyDir(PathBuf),
}
