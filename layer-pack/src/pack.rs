//! The streaming pack pipeline.

use std::io::Write;
use std::path::Path;

use crate::entry::Entry;
use crate::error::PackError;
use crate::options::{LayerDescriptor, PackOptions};

/// Packs the tree at `dir` (its contents; `dir` itself is the layer root) into `out`.
pub fn pack_dir<W: Write>(
    dir: &Path,
    opts: &PackOptions,
    out: W,
) -> Result<LayerDescriptor, PackError> {
    let _ = (dir, opts, out);
    Err(PackError::Options("not implemented yet".into()))
}

/// Packs `dir` into `blobs_sha256_dir/<hex of digest>`: streams into a temporary file in that
/// directory, fsyncs it, and renames it (an existing blob with that name is kept).
pub fn pack_to_blob_dir(
    dir: &Path,
    opts: &PackOptions,
    blobs_sha256_dir: &Path,
) -> Result<LayerDescriptor, PackError> {
    let _ = (dir, opts, blobs_sha256_dir);
    Err(PackError::Options("not implemented yet".into()))
}

/// Packs explicit entries (any order; sorted here, see [`Entry`]) into `out`.
pub fn pack_entries<W: Write>(
    entries: impl IntoIterator<Item = Entry>,
    opts: &PackOptions,
    out: W,
) -> Result<LayerDescriptor, PackError> {
    let _ = (entries.into_iter(), opts, out);
    Err(PackError::Options("not implemented yet".into()))
}

/// [`pack_entries`] into `blobs_sha256_dir/<hex of digest>` like [`pack_to_blob_dir`].
pub fn pack_entries_to_blob_dir(
    entries: impl IntoIterator<Item = Entry>,
    opts: &PackOptions,
    blobs_sha256_dir: &Path,
) -> Result<LayerDescriptor, PackError> {
    let _ = (entries.into_iter(), opts, blobs_sha256_dir);
    Err(PackError::Options("not implemented yet".into()))
}
