//! The error type of the store library.

use std::path::PathBuf;

use crate::digest::Digest;

/// Everything that can go wrong in the store. Each variant names the path, digest or input that
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `rename`, ...).
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file system holding the store is full; nothing half-written became visible.
    #[error("no space left on device while writing {path}")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The input.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An image reference is malformed.
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    /// Content did not hash to the digest it claims.
    #[error("blob {name}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob (a digest, a file name in an archive, ...).
        name: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },
    /// Content does not have the size it claims.
    #[error("blob {name}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        name: String,
        /// The declared size.
        expected: u64,
        /// The size read.
        actual: u64,
    },
    /// A blob is not in the store.
    #[error("blob {digest} not found in the store")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },
    /// No image with that reference.
    #[error("image {reference} not found")]
    ImageNotFound {
        /// The normalised reference.
        reference: String,
    },
    /// A JSON document could not be read or written.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file or blob holding the document.
        path: String,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// An image, layout or archive is structurally wrong.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something the store does not support (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A layer could not be packed or unpacked.
    #[error("{what}: {message}")]
    Layer {
        /// The layer or directory involved.
        what: String,
        /// The layer-pack error.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Wraps an I/O error, turning ENOSPC/EDQUOT into [`StoreError::DiskFull`].
    /// An error that a store writer tagged with its file ([`AtPath`]) keeps that file's path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let (path, source) = match AtPath::unwrap(source) {
            Ok(at) => (at.path, at.source),
            Err(source) => (path.into(), source),
        };
        match source.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => StoreError::DiskFull { path },
            _ => StoreError::Io { op, path, source },
        }
    }

    /// Whether this error is an input error (exit code 2) rather than a failure of the work.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidDigest { .. }
                | StoreError::Reference(_)
                | StoreError::ImageNotFound { .. }
                | StoreError::Invalid { .. }
                | StoreError::Unsupported(_)
                | StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
        )
    }
}

/// Adds path context to `std::io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}

/// An I/O error of a store writer (a [`crate::BlobWriter`]) with the file it was writing, carried
/// inside an `io::Error` of the same kind: a caller that sees only the `io::Error` (a layer packer
/// writing into the store on a full disk) still says where, and [`StoreError::io`] turns it back
/// into the store's own error for that file (`DiskFull` for ENOSPC).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct AtPath {
    /// The file being written.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

fn is_at_path(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.is::<AtPath>()
}

impl AtPath {
    /// Wraps `e` (kept as is when it is `Interrupted` or already carries a path).
    pub(crate) fn wrap(path: &std::path::Path, e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::Interrupted || e.get_ref().is_some_and(is_at_path) {
            return e;
        }
        std::io::Error::new(
            e.kind(),
            AtPath {
                path: path.to_path_buf(),
                source: e,
            },
        )
    }

    /// The [`AtPath`] inside `e`, or `e` itself when it carries none.
    pub(crate) fn unwrap(e: std::io::Error) -> std::result::Result<AtPath, std::io::Error> {
        if !e.get_ref().is_some_and(is_at_path) {
            return Err(e);
        }
        let kind = e.kind();
        match e
            .into_inner()
            .map(<dyn std::error::Error + Send + Sync>::downcast::<AtPath>)
        {
            Some(Ok(at)) => Ok(*at),
            Some(Err(other)) => Err(std::io::Error::new(kind, other)),
            None => Err(std::io::Error::from(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_tagged_full_disk_error_names_the_file_and_stays_disk_full() {
        let file = std::path::Path::new("/store/tmp/l1-x-0.1.blob");
        let e = AtPath::wrap(file, std::io::Error::from_raw_os_error(libc::ENOSPC));
        // a caller that sees only the io::Error still reads the file and the kind
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert!(
            e.to_string().starts_with("/store/tmp/l1-x-0.1.blob: "),
            "{e}"
        );
        // wrapping twice keeps one path
        let e = AtPath::wrap(std::path::Path::new("/elsewhere"), e);
        match StoreError::io("write", "/store/tmp", e) {
            StoreError::DiskFull { path } => assert_eq!(path, file),
            other => panic!("{other:?}"),
        }
        // another error keeps its own op and the tagged file
        let e = AtPath::wrap(file, std::io::Error::from_raw_os_error(libc::EIO));
        let s = StoreError::io("write", "/store/tmp", e).to_string();
        assert!(s.starts_with("write /store/tmp/l1-x-0.1.blob: "), "{s}");
        // an untagged error keeps the caller's path
        let s = StoreError::io("read", "/x", std::io::Error::other("boom")).to_string();
        assert_eq!(s, "read /x: boom");
    }
}
