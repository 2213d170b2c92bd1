//! Safe application of a layer onto a directory.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::decode::Decoder;
use crate::error::UnpackError;
use crate::hash::{HashReader, drain, fmt_digest};
use crate::options::Compression;
use crate::tarread::TarReader;

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
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Io { path, source }
    };
    if opts.expect_diff_id.is_none() && opts.expect_digest.is_none() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        return apply(blob, dir, opts, false);
    }
    let exists = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(io_err(dir)(std::io::Error::from(
                std::io::ErrorKind::NotADirectory,
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(dir)(e)),
    };
    if exists && fs::read_dir(dir).map_err(io_err(dir))?.next().is_some() {
        return Err(UnpackError::NeedsEmptyDir(dir.to_path_buf()));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".layer-pack-unpack-")
        .tempdir_in(parent)
        .map_err(io_err(parent))?;
    let report = apply(blob, tmp.path(), opts, true)?;
    check(&report, opts)?;
    if exists {
        fs::remove_dir(dir).map_err(io_err(dir))?;
    }
    let kept = tmp.keep();
    fs::rename(&kept, dir).map_err(|e| {
        let _ = fs::remove_dir_all(&kept);
        io_err(dir)(e)
    })?;
    Ok(report)
}

/// Like [`unpack`], reading the blob from a file; with expectations and a non-empty `dir` the file
/// is verified in a first pass before anything is applied.
pub fn unpack_path(
    blob: &Path,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let open = || {
        fs::File::open(blob).map_err(|source| UnpackError::Io {
            path: blob.to_path_buf(),
            source,
        })
    };
    let verify = opts.expect_diff_id.is_some() || opts.expect_digest.is_some();
    let nonempty = fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if !(verify && nonempty) {
        return unpack(open()?, dir, opts);
    }
    let raw = HashReader::new(open()?);
    let (dec, compression) = Decoder::new(raw).map_err(UnpackError::Read)?;
    let mut tarh = HashReader::new(dec);
    drain(&mut tarh).map_err(UnpackError::Read)?;
    let diff_id = fmt_digest(tarh.hasher);
    let mut raw = tarh.inner.into_raw();
    drain(&mut raw).map_err(UnpackError::Read)?;
    let first = UnpackReport {
        version: 1,
        compression,
        digest: fmt_digest(raw.hasher),
        diff_id,
        entries: 0,
        whiteouts: 0,
    };
    check(&first, opts)?;
    let plain = UnpackOptions {
        expect_diff_id: None,
        expect_digest: None,
        ..opts.clone()
    };
    let report = unpack(open()?, dir, &plain)?;
    check(&report, opts)?;
    Ok(report)
}

fn check(r: &UnpackReport, opts: &UnpackOptions) -> Result<(), UnpackError> {
    if let Some(want) = &opts.expect_digest
        && *want != r.digest
    {
        return Err(UnpackError::DigestMismatch {
            expected: want.clone(),
            actual: r.digest.clone(),
        });
    }
    if let Some(want) = &opts.expect_diff_id
        && *want != r.diff_id
    {
        return Err(UnpackError::DiffIdMismatch {
            expected: want.clone(),
            actual: r.diff_id.clone(),
        });
    }
    Ok(())
}

fn apply<R: Read>(
    blob: R,
    dir: &Path,
    opts: &UnpackOptions,
    fresh: bool,
) -> Result<UnpackReport, UnpackError> {
    let raw = HashReader::new(blob);
    let (dec, compression) = Decoder::new(raw).map_err(UnpackError::Read)?;
    let mut tr = TarReader::new(HashReader::new(dec));
    let mut ap = Applier::new(dir, opts, fresh)?;
    while let Some(h) = tr.next()? {
        ap.entry(&h, &mut tr)?;
    }
    let (entries, whiteouts) = ap.finish()?;
    let mut tarh = tr.into_inner();
    drain(&mut tarh).map_err(UnpackError::Read)?;
    let diff_id = fmt_digest(tarh.hasher);
    let mut raw = tarh.inner.into_raw();
    drain(&mut raw).map_err(UnpackError::Read)?;
    Ok(UnpackReport {
        version: 1,
        compression,
        digest: fmt_digest(raw.hasher),
        diff_id,
        entries,
        whiteouts,
    })
}
