//! `--image REF --store DIR`: the overlay lower dirs of an image in the `image-store` store.
use std::path::{Path, PathBuf};

use crate::RunError;

/// The lower dirs of `reference` in the store at `store` (`None`: image-store's default root,
/// `$PELAGOS_STORE`, `/var/lib/pelagos` or `~/.local/share/pelagos`), top layer first,
/// unpacking missing snapshots.
pub fn image_lowers(store: Option<&Path>, reference: &str) -> Result<Vec<PathBuf>, RunError> {
    let root = store.map_or_else(image_store::Store::default_root, Path::to_path_buf);
    let r = image_store::Reference::parse(reference)
        .map_err(|e| RunError::InvalidSpec(format!("image reference {reference:?}: {e}")))?;
    let s = image_store::Store::open(&root)
        .map_err(|e| RunError::Image(format!("open store {}: {e}", root.display())))?;
    s.lowers(&r).map_err(|e| {
        if e.is_input_error() {
            RunError::ImageInput(e.to_string())
        } else {
            RunError::Image(format!("{reference}: {e}"))
        }
    })
}

/// The default work root for a store root: `ROOT/runs` (not `ROOT/tmp`, whose entries
/// image-store's gc and fsck remove when no store lease owns them).
pub(crate) fn work_root_in(store_root: &Path) -> PathBuf {
    store_root.join("runs")
}
