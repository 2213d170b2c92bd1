//! `--output`: an OCI image layout (tar, or directory with `tar=false`), a `docker load`
//! archive, the flattened root file system into a directory (`local`) or as a tar (`tar`), all
//! written by image-store's exporter. The image is named in the archive by `name=` or the first
//! `-t` tag (full reference), as the store itself names it. As in BuildKit, the tar kinds go to
//! stdout with `dest=-` (or no dest), and `local` writes into a directory that may already
//! hold files (see [`crate::localdir`]).

use std::path::Path;

use image_store::{Descriptor, ExportFormat, ImageRecord, Reference, Store};

use crate::cli::{OutputKind, OutputSpec};
use crate::error::BuildError;

fn record(
    store: &Store,
    manifest: &Descriptor,
    name: Option<&str>,
) -> Result<ImageRecord, BuildError> {
    // the built image's content, named as asked
    let r = match name {
        Some(n) => Some(
            Reference::parse(n)
                .map_err(|e| BuildError::Usage(crate::cli::UsageError::Tag(format!("{n}: {e}"))))?,
        ),
        None => None,
    };
    let digest_ref = Reference::parse(&format!("pelagos.invalid/built@{}", manifest.digest))
        .map_err(image_store::StoreError::from)?;
    let mut img = store
        .resolve(&digest_ref)?
        .ok_or_else(|| BuildError::ImageNotFound(manifest.digest.to_string()))?;
    img.reference = r.map(|r| r.to_string());
    Ok(img)
}

/// Writes every requested output of the built image (`manifest`), named `name=` or `tags[0]`.
pub fn write_outputs(
    store: &Store,
    outputs: &[OutputSpec],
    manifest: &Descriptor,
    tags: &[String],
) -> Result<(), BuildError> {
    for o in outputs.iter().filter(|o| o.kind != OutputKind::Registry) {
        let name = o.name.as_deref().or(tags.first().map(String::as_str));
        let img = record(store, manifest, name)?;
        let err = |e: &dyn std::fmt::Display| BuildError::Output {
            dest: o.dest.clone(),
            message: e.to_string(),
        };
        let to_stdout = o.is_stdout();
        if !to_stdout {
            if let Some(parent) = o.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
            }
            if o.tar && o.dest.is_dir() {
                return Err(err(&"destination file is a directory"));
            }
        }
        let format = match (o.kind, o.tar) {
            (OutputKind::Oci, true) => ExportFormat::Oci,
            (OutputKind::Oci, false) => {
                into_dir(store, &o.dest, |d| {
                    store.export_oci_dir(std::slice::from_ref(&img), d)
                })?;
                continue;
            }
            (OutputKind::Docker, _) => ExportFormat::Docker,
            (OutputKind::Tar, _) => ExportFormat::Rootfs,
            (OutputKind::Local, _) => {
                into_dir(store, &o.dest, |d| store.export_rootfs_dir(&img, d))?;
                continue;
            }
            // pushed by the build after every file output
            (OutputKind::Registry, _) => continue,
        };
        if to_stdout {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            store
                .export(&[img], format, None, &mut out)
                .map_err(|e| err(&e))?;
            out.flush().map_err(|e| err(&e))?;
        } else {
            store
                .export(&[img], format, Some(&o.dest), &mut std::io::sink())
                .map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

/// A directory output (`type=local`, `type=oci,tar=false`), as BuildKit's: `export` writes
/// straight into a missing or empty `dest`; into one that has files, into a temp dir of the
/// store first, merged in by [`crate::localdir::merge_into`] (same-named entries replaced,
/// others kept, no symlink of `dest` followed).
fn into_dir(
    store: &Store,
    dest: &Path,
    export: impl Fn(&Path) -> Result<(), image_store::StoreError>,
) -> Result<(), BuildError> {
    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let io = |e: std::io::Error| BuildError::Output {
        dest: dest.to_path_buf(),
        message: e.to_string(),
    };
    let empty = match std::fs::read_dir(dest) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(BuildError::Output {
                dest: dest.to_path_buf(),
                message: "destination directory is a file".into(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let out = |e: image_store::StoreError| BuildError::Output {
        dest: dest.to_path_buf(),
        message: e.to_string(),
    };
    if empty {
        return export(dest).map_err(out);
    }
    let tmp = Tmp(store.temp_path("local-output")?);
    export(&tmp.0).map_err(out)?;
    let opts = crate::localdir::MergeOptions {
        move_files: true,
        owners: rustix::process::geteuid().is_root(),
    };
    crate::localdir::merge_into(&tmp.0, dest, opts).map_err(|e| BuildError::Output {
        dest: dest.to_path_buf(),
        message: e.to_string(),
    })
}
