//! Safe application of a layer onto a directory.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::UnpackError;
use crate::options::Compression;

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnpackFormat {
    /// Whiteouts delete: `.wh.x` removes `x`, `.wh..wh..opq` removes the directory's entries that
    /// came from lower layers. Used to flatten layers into a rootfs.
    #[default]
    Plain,
    /// Whiteouts become overlayfs whiteouts so the directory can serve as an overlay lower dir.
    Overlay {
        /// Use the `user.overlay.*` xattr forms (unprivileged overlay with `userxattr`).
        userxattr: bool,
    },
}

/// Unpack options; build with `UnpackOptions { ..Default::default() }` so added fields keep compiling.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Whiteout handling.
    pub format: UnpackFormat,
    /// Expected `sha256:<hex>` of the uncompressed tar.
    pub expect_diff_id: Option<String>,
    /// Expected `sha256:<hex>` of the blob as given.
    pub expect_digest: Option<String>,
    /// Create char/block device nodes (needs CAP_MKNOD); when false they are refused.
    pub allow_devices: bool,
    /// Apply the archive's uid/gid (needs CAP_CHOWN); when false files belong to the caller.
    pub preserve_owners: bool,
}

/// What an unpack did; `digest` and `diff_id` are always computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackReport {
    /// Document version, always 1.
    pub version: u32,
    /// Detected compression.
    pub compression: Compression,
    /// `sha256:<hex>` of the blob.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// Entries applied (whiteouts included).
    pub entries: u64,
    /// Whiteouts applied (`.wh.x` and opaque markers).
    pub whiteouts: u64,
}

/// Applies the layer read from `blob` onto `dir` (created when missing).
///
/// Compression is detected from the first bytes. Without expectations the layer is applied in
/// place, entry by entry (a failure leaves the entries applied so far). With `expect_diff_id`
/// or `expect_digest`, `dir` must be missing or empty: the layer is unpacked into a temporary
/// sibling directory, verified, then renamed onto `dir`, so a mismatch leaves `dir` as it was.
/// For verification onto a non-empty directory use [`unpack_path`].
pub fn unpack<R: Read>(
    blob: R,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let _ = (blob, dir, opts);
    Err(UnpackError::Malformed {
        entry: "<header>".into(),
        reason: "not implemented yet".into(),
    })
}

/// Like [`unpack`], reading the blob from a file; with expectations and a non-empty `dir` the file
/// is verified in a first pass before anything is applied.
pub fn unpack_path(
    blob: &Path,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let f = std::fs::File::open(blob).map_err(|source| UnpackError::Io {
        path: blob.to_path_buf(),
        source,
    })?;
    unpack(f, dir, opts)
}
