//! `--output`: an OCI image layout (tar, or directory with `tar=false`), a `docker load`
//! archive, the flattened root file system into a directory (`local`) or as a tar (`tar`), all
//! written by image-store's exporter. The image is named in the archive by `name=` or the first
//! `-t` tag (full reference), as the store itself names it.

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
        if let Some(parent) = o.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
        }
        let mut sink = std::io::sink();
        match (o.kind, o.tar) {
            (OutputKind::Oci, true) => {
                store.export(&[img], ExportFormat::Oci, Some(&o.dest), &mut sink)
            }
            (OutputKind::Oci, false) => {
                store.export(&[img], ExportFormat::OciDir, Some(&o.dest), &mut sink)
            }
            (OutputKind::Docker, _) => {
                store.export(&[img], ExportFormat::Docker, Some(&o.dest), &mut sink)
            }
            (OutputKind::Tar, _) => {
                store.export(&[img], ExportFormat::Rootfs, Some(&o.dest), &mut sink)
            }
            (OutputKind::Local, _) => store.export_rootfs_dir(&img, &o.dest),
            // pushed by the build after every file output
            (OutputKind::Registry, _) => Ok(()),
        }
        .map_err(|e| err(&e))?;
    }
    Ok(())
}
