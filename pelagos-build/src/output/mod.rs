//! `--output`: an OCI image layout (tar, or directory with `tar=false`), a `docker load`
//! archive, the flattened root file system into a directory (`local`) or as a tar (`tar`), all
//! written by image-store's exporter; the image named in the store (`image`, `docker` without
//! `dest`: buildx's load, where the image already is) and pushed (`registry`, `image` with
//! `push=true`, `--push`). The image is named in an archive by `name=` or the first `-t` tag
//! (full reference), as the store itself names it. As in BuildKit, the tar kinds go to stdout
//! with `dest=-` (or no dest), and `local` writes into a directory that may already hold files
//! (see [`crate::localdir`]). `compression=`, `compression-level=` and `oci-mediatypes=` make
//! a converted copy of the image for that output ([`convert`]).

use std::path::{Path, PathBuf};

use image_store::registry::RegistryOptions;
use image_store::{Descriptor, ExportFormat, ImageRecord, Reference, Store};

use crate::cli::UsageError;
use crate::error::BuildError;
use crate::registry::Pushed;

pub mod convert;
mod spec;

pub use spec::{OutputKind, OutputSpec, csv_fields};

/// What an output did, for the result document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputReport {
    /// `oci`, `docker`, `local`, `tar`, `image` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file or directory written (`-`: stdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// The store holding the image (`image`, and `docker` without `dest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// The names the image has there (normalised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// The manifest digest of what was written, when converted (`compression=`,
    /// `oci-mediatypes=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
}

/// What [`write_outputs`] did.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// One report per `--output`, in order.
    pub reports: Vec<OutputReport>,
    /// Every push (`--push`, `registry`, `image,push=true`), each destination once.
    pub pushed: Vec<Pushed>,
}

/// Checks the outputs against the tags before anything is built: at most one to stdout,
/// names that parse, a name to push to, and destinations of the right kind.
pub fn check_outputs(outputs: &[OutputSpec], tags: &[String]) -> Result<(), UsageError> {
    if let Some(second) = outputs.iter().filter(|o| o.is_stdout()).nth(1) {
        return Err(UsageError::Output {
            spec: second.dest.display().to_string(),
            reason: "multiple outputs configured to write to stdout".into(),
        });
    }
    for o in outputs {
        for n in o.names() {
            Reference::parse(&n).map_err(|e| UsageError::Tag(format!("{n}: {e}")))?;
        }
        if o.push && o.names().is_empty() && tags.is_empty() {
            return Err(UsageError::NoPushName(if o.kind == OutputKind::Registry {
                "--output type=registry"
            } else {
                "--output type=image,push=true"
            }));
        }
        o.check_dest()?;
    }
    Ok(())
}

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

/// Names the built image in the store (unchanged tags are not rewritten).
fn tag_all(
    store: &Store,
    manifest: &Descriptor,
    names: &[String],
) -> Result<Vec<String>, BuildError> {
    let current = store.list_tags()?;
    let mut out = Vec::new();
    for n in names {
        let r = Reference::parse(n)
            .map_err(|e| BuildError::Usage(UsageError::Tag(format!("{n}: {e}"))))?;
        let full = r.to_string();
        if !current
            .iter()
            .any(|t| t.reference == full && t.manifest.digest == manifest.digest)
        {
            store.tag(&r, manifest)?;
        }
        if !out.contains(&full) {
            out.push(full);
        }
    }
    Ok(out)
}

/// Writes every requested output of the built image (`manifest`, tagged `tags`), then pushes
/// it to `push_tags` (`--push`) and to the names of pushing outputs.
pub fn write_outputs(
    store: &Store,
    outputs: &[OutputSpec],
    manifest: &Descriptor,
    tags: &[String],
    push_tags: &[String],
    ropts: &RegistryOptions,
) -> Result<Written, BuildError> {
    let mut written = Written::default();
    // (destination, form, insecure)
    let mut pushes: Vec<(String, convert::Form, bool)> = push_tags
        .iter()
        .map(|t| {
            let form = convert::Form {
                compression: None,
                level: None,
                oci_types: true,
            };
            (t.clone(), form, false)
        })
        .collect();
    for o in outputs {
        let form = convert::Form {
            compression: o.compression,
            level: o.compression_level,
            oci_types: o.oci_types(),
        };
        let mut report = OutputReport {
            kind: o.kind.as_str().to_string(),
            dest: o.is_file().then(|| o.dest.display().to_string()),
            store: None,
            references: Vec::new(),
            manifest_digest: None,
        };
        if !o.is_file() {
            // the store: `image`, `registry`, `docker` without dest
            let names = o.names();
            if o.store && o.kind != OutputKind::Registry {
                report.store = Some(store.root().to_path_buf());
                let mut all = tags.to_vec();
                all.extend(names.iter().cloned());
                report.references = tag_all(store, manifest, &all)?;
            }
            if o.push {
                let dests = if names.is_empty() {
                    tags.to_vec()
                } else {
                    names
                };
                pushes.extend(dests.into_iter().map(|d| (d, form, o.insecure)));
            }
            written.reports.push(report);
            continue;
        }
        // named by every `name=` (BuildKit's comma-separated list), else the first tag
        let mut names = o.names();
        if names.is_empty() {
            names.extend(tags.first().cloned());
        }
        let built = record(store, manifest, names.first().map(String::as_str))?;
        // exported as stored unless an attribute asks for another form
        let asked =
            o.compression.is_some() || o.compression_level.is_some() || o.oci_mediatypes.is_some();
        let img = if asked {
            convert::convert(store, &built, form)?
        } else {
            built
        };
        if img.manifest_descriptor.digest != manifest.digest {
            report.manifest_digest = Some(img.manifest_descriptor.digest.to_string());
        }
        let mut imgs = vec![img];
        for n in names.iter().skip(1) {
            let r = Reference::parse(n)
                .map_err(|e| BuildError::Usage(UsageError::Tag(format!("{n}: {e}"))))?;
            let mut other = imgs[0].clone();
            other.reference = Some(r.to_string());
            imgs.push(other);
        }
        write_file(store, o, &imgs)?;
        written.reports.push(report);
    }
    let mut done: Vec<(String, convert::Form)> = Vec::new();
    for (dest, form, insecure) in pushes {
        if done.iter().any(|(d, f)| *d == dest && *f == form) {
            continue;
        }
        done.push((dest.clone(), form));
        written
            .pushed
            .push(push(store, manifest, &dest, form, insecure, ropts)?);
    }
    Ok(written)
}

fn push(
    store: &Store,
    manifest: &Descriptor,
    dest: &str,
    form: convert::Form,
    insecure: bool,
    ropts: &RegistryOptions,
) -> Result<Pushed, BuildError> {
    let registry_err = |source| BuildError::Registry {
        what: dest.to_string(),
        source,
    };
    let r = Reference::parse(dest).map_err(|e| registry_err(e.into()))?;
    let img = convert::convert(store, &record(store, manifest, None)?, form)?;
    let mut opts = ropts.clone();
    if insecure {
        opts.insecure_registries.push(r.domain().to_string());
    }
    let popts = image_store::registry::PushOptions {
        format: if form.oci_types {
            image_store::registry::PushFormat::Oci
        } else {
            image_store::registry::PushFormat::Docker
        },
        compression: None,
    };
    let report =
        image_store::registry::push(store, &img, &r, &popts, &opts).map_err(registry_err)?;
    Ok(Pushed {
        reference: report.reference,
        digest: report.digest.to_string(),
    })
}

/// A file or directory output of `imgs` (the same image under each name; the root file system
/// kinds use the first).
fn write_file(store: &Store, o: &OutputSpec, imgs: &[ImageRecord]) -> Result<(), BuildError> {
    let Some(img) = imgs.first() else {
        return Ok(());
    };
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
            return into_dir(store, &o.dest, |d| store.export_oci_dir(imgs, d));
        }
        (OutputKind::Docker, _) => ExportFormat::Docker,
        (OutputKind::Tar, _) => ExportFormat::Rootfs,
        (OutputKind::Local, _) => {
            return into_dir(store, &o.dest, |d| store.export_rootfs_dir(img, d));
        }
        (OutputKind::Image | OutputKind::Registry, _) => return Ok(()),
    };
    let list = if format == ExportFormat::Rootfs {
        std::slice::from_ref(img)
    } else {
        imgs
    };
    if to_stdout {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        store
            .export(list, format, None, &mut out)
            .map_err(|e| err(&e))?;
        out.flush().map_err(|e| err(&e))?;
    } else {
        store
            .export(list, format, Some(&o.dest), &mut std::io::sink())
            .map_err(|e| err(&e))?;
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
