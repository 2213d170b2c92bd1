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
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
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
