//! `export`: an OCI layout (tar or directory), a `docker load` archive, or the flattened root
//! filesystem as a tar. Every blob is verified while it is copied out.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::blobs::blob_read_error;
use crate::digest::{Digest, HashingWriter};
use crate::error::{IoContext, Result, StoreError};
use crate::images::ImageRecord;
use crate::oci::{ANNOTATION_REF_NAME, Descriptor, Index, canonical_json};
use crate::store::{OCI_LAYOUT, Store};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// An OCI image layout as a tar stream.
    Oci,
    /// An OCI image layout directory.
    OciDir,
    /// A `docker load` archive (docker-archive).
    Docker,
    /// The flattened root filesystem as a tar.
    Rootfs,
}

impl ExportFormat {
    /// Parses `oci`, `oci-dir`, `docker` or `rootfs`.
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "oci" => Some(ExportFormat::Oci),
            "oci-dir" => Some(ExportFormat::OciDir),
            "docker" => Some(ExportFormat::Docker),
            "rootfs" => Some(ExportFormat::Rootfs),
            _ => None,
        }
    }
}

fn tar_header(path: &str, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(if path.ends_with('/') {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h
}

fn tar_add<W: Write>(b: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar_header(path, bytes.len() as u64, 0o644);
    b.append_data(&mut h, path, bytes)
        .map_err(|e| StoreError::io("write", path, e))
}

fn tar_dir<W: Write>(b: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = tar_header(path, 0, 0o755);
    b.append_data(&mut h, path, io::empty())
        .map_err(|e| StoreError::io("write", path, e))
}

/// Copies a verified blob into a tar builder.
fn tar_blob<W: Write>(
    store: &Store,
    b: &mut tar::Builder<W>,
    d: &Digest,
    path: &str,
) -> Result<()> {
    let r = store.open_blob(d)?;
    let mut h = tar_header(path, r.size(), 0o644);
    b.append_data(&mut h, path, r).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            blob_read_error(d, e)
        } else {
            StoreError::io("write", path, e)
        }
    })
}

/// The `index.json` of an exported layout: one entry per image, named by full reference.
fn layout_index(images: &[ImageRecord]) -> Index {
    let mut idx = Index::empty();
    for img in images {
        let mut d = img.manifest_descriptor.clone();
        d.annotations.clear();
        if let Some(r) = &img.reference {
            d.annotations.insert(ANNOTATION_REF_NAME.into(), r.clone());
        }
        idx.manifests.push(d);
    }
    idx
}

/// All blobs of `images`, deduplicated, in a stable order.
fn all_blobs(images: &[ImageRecord]) -> BTreeMap<Digest, u64> {
    let mut m = BTreeMap::new();
    for img in images {
        m.insert(
            img.manifest_descriptor.digest.clone(),
            img.manifest_descriptor.size,
        );
        m.insert(img.manifest.config.digest.clone(), img.manifest.config.size);
        for l in &img.manifest.layers {
            m.insert(l.digest.clone(), l.size);
        }
    }
    m
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

impl Store {
    /// Writes images as an OCI layout tar stream.
    pub fn export_oci_tar(&self, images: &[ImageRecord], out: impl Write) -> Result<()> {
        let mut b = tar::Builder::new(out);
        tar_add(&mut b, "oci-layout", OCI_LAYOUT.as_bytes())?;
        tar_add(
            &mut b,
            "index.json",
            &canonical_json(&layout_index(images))?,
        )?;
        tar_dir(&mut b, "blobs/")?;
        tar_dir(&mut b, "blobs/sha256/")?;
        for d in all_blobs(images).keys() {
            tar_blob(self, &mut b, d, &format!("blobs/sha256/{}", d.hex()))?;
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| StoreError::io("write", "output", e))
    }

    /// Writes images as an OCI layout directory (created; must be missing or empty).
    pub fn export_oci_dir(&self, images: &[ImageRecord], dir: &Path) -> Result<()> {
        if dir.exists() && fs::read_dir(dir).ctx("read dir", dir)?.next().is_some() {
            return Err(StoreError::Invalid {
                what: dir.display().to_string(),
                reason: "output directory is not empty".into(),
            });
        }
        let bdir = dir.join("blobs/sha256");
        fs::create_dir_all(&bdir).ctx("create directory", &bdir)?;
        for d in all_blobs(images).keys() {
            let dest = bdir.join(d.hex());
            let mut r = self.open_blob(d)?;
            let mut f = fs::File::create(&dest).ctx("create", &dest)?;
            io::copy(&mut r, &mut f).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    blob_read_error(d, e)
                } else {
                    StoreError::io("write", &dest, e)
                }
            })?;
            f.sync_all().ctx("fsync", &dest)?;
        }
        let p = dir.join("index.json");
        fs::write(&p, canonical_json(&layout_index(images))?).ctx("write", &p)?;
        let p = dir.join("oci-layout");
        fs::write(&p, OCI_LAYOUT).ctx("write", &p)?;
        Ok(())
    }

    /// Writes images as a `docker load` archive: `manifest.json`, `<config hex>.json` and one
    /// uncompressed `<diff_id hex>/layer.tar` per layer (each checked against its diff_id).
    pub fn export_docker(&self, images: &[ImageRecord], out: impl Write) -> Result<()> {
        let mut b = tar::Builder::new(out);
        let mut entries = Vec::new();
        let mut written = std::collections::HashSet::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for img in images {
            let cfg_name = format!("{}.json", img.config_digest.hex());
            if written.insert(cfg_name.clone()) {
                tar_blob(self, &mut b, &img.config_digest, &cfg_name)?;
            }
            let mut layers = Vec::new();
            for (layer, diff_id) in img.layers()? {
                let name = format!("{}/layer.tar", diff_id.hex());
                if written.insert(name.clone()) {
                    tar_dir(&mut b, &format!("{}/", diff_id.hex()))?;
                    self.tar_uncompressed_layer(&mut b, &layer, &diff_id, &name)?;
                }
                layers.push(name);
            }
            let mut repo_tags = Vec::new();
            if let Some(r) = img
                .reference
                .as_deref()
                .and_then(|r| crate::Reference::parse(r).ok())
                && let Some(t) = r.tag()
            {
                let fam = r.familiar();
                repo_tags.push(fam.clone());
                let repo = fam
                    .rsplit_once(':')
                    .map_or(fam.as_str(), |(n, _)| n)
                    .to_string();
                if let Some(top) = img.config.rootfs.diff_ids.last() {
                    repositories
                        .entry(repo)
                        .or_default()
                        .insert(t.to_string(), top.hex().to_string());
                }
            }
            entries.push(DockerManifestEntry {
                config: cfg_name,
                repo_tags,
                layers,
            });
        }
        let manifest = serde_json::to_vec(&entries).map_err(|source| StoreError::Json {
            path: "manifest.json".into(),
            source,
        })?;
        tar_add(&mut b, "manifest.json", &manifest)?;
        if !repositories.is_empty() {
            tar_add(&mut b, "repositories", &canonical_json(&repositories)?)?;
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| StoreError::io("write", "output", e))
    }

    /// Decompresses a layer to a temp file (verifying its digest and diff_id), then appends it.
    fn tar_uncompressed_layer<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        layer: &Descriptor,
        diff_id: &Digest,
        name: &str,
    ) -> Result<()> {
        let tmp = self.temp_path("layer.tar")?;
        let res = (|| {
            let blob = self.open_blob(&layer.digest)?;
            let mut input =
                crate::import::decompress(blob).map_err(|e| blob_read_error(&layer.digest, e))?;
            let f = fs::File::create(&tmp).ctx("create", &tmp)?;
            let mut hw = HashingWriter::new(io::BufWriter::new(f));
            io::copy(&mut input, &mut hw).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    blob_read_error(&layer.digest, e)
                } else {
                    StoreError::io("write", &tmp, e)
                }
            })?;
            let (actual, size, bw) = hw.finish();
            drop(
                bw.into_inner()
                    .map_err(|e| StoreError::io("write", &tmp, e.into_error()))?,
            );
            if actual != *diff_id {
                return Err(StoreError::DigestMismatch {
                    name: format!("layer {} (uncompressed)", layer.digest),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            let f = fs::File::open(&tmp).ctx("open", &tmp)?;
            let mut h = tar_header(name, size, 0o644);
            b.append_data(&mut h, name, f.take(size))
                .map_err(|e| StoreError::io("write", name, e))
        })();
        let _ = fs::remove_file(&tmp);
        res
    }

    /// Flattens an image's layers into `dir` (created; must be missing or empty), applying
    /// whiteouts. Owners and device nodes are kept only when running as root.
    pub fn export_rootfs_dir(&self, img: &ImageRecord, dir: &Path) -> Result<()> {
        if dir.exists() && fs::read_dir(dir).ctx("read dir", dir)?.next().is_some() {
            return Err(StoreError::Invalid {
                what: dir.display().to_string(),
                reason: "output directory is not empty".into(),
            });
        }
        let root = rustix::process::geteuid().is_root();
        for (layer, diff_id) in img.layers()? {
            let blob = self.open_blob(&layer.digest)?;
            let opts = layer_pack::UnpackOptions {
                format: layer_pack::UnpackFormat::Plain,
                expect_diff_id: None,
                expect_digest: None,
                allow_devices: root,
                preserve_owners: root,
            };
            let report = layer_pack::unpack(blob, dir, &opts).map_err(|e| StoreError::Layer {
                what: format!("layer {}", layer.digest),
                message: e.to_string(),
            })?;
            if report.diff_id != diff_id.as_str() {
                return Err(StoreError::DigestMismatch {
                    name: format!("layer {} (uncompressed)", layer.digest),
                    expected: diff_id,
                    actual: Digest::parse(&report.diff_id)?,
                });
            }
        }
        Ok(())
    }

    /// The flattened root filesystem as an uncompressed tar stream.
    pub fn export_rootfs_tar(&self, img: &ImageRecord, out: impl Write) -> Result<()> {
        let tmp = self.temp_path("rootfs")?;
        let res = (|| {
            self.export_rootfs_dir(img, &tmp)?;
            let opts = layer_pack::PackOptions {
                compression: layer_pack::Compression::None,
                ..layer_pack::PackOptions::default()
            };
            layer_pack::pack_dir(&tmp, &opts, out).map_err(|e| StoreError::Layer {
                what: tmp.display().to_string(),
                message: e.to_string(),
            })?;
            Ok(())
        })();
        let _ = fs::remove_dir_all(&tmp);
        res
    }

    /// Exports images in `format`: to `dest` (a directory for `oci-dir`, else a file), or to
    /// stdout-like `out` for the tar formats when `dest` is `None`.
    pub fn export(
        &self,
        images: &[ImageRecord],
        format: ExportFormat,
        dest: Option<&Path>,
        out: &mut dyn Write,
    ) -> Result<()> {
        if images.is_empty() {
            return Err(StoreError::Invalid {
                what: "export".into(),
                reason: "no image given".into(),
            });
        }
        if format == ExportFormat::OciDir {
            let Some(dir) = dest else {
                return Err(StoreError::Invalid {
                    what: "export".into(),
                    reason: "oci-dir needs an output directory".into(),
                });
            };
            return self.export_oci_dir(images, dir);
        }
        if format == ExportFormat::Rootfs && images.len() != 1 {
            return Err(StoreError::Invalid {
                what: "export".into(),
                reason: "rootfs export takes exactly one image".into(),
            });
        }
        let tmp;
        let mut file;
        // a device or FIFO (`/dev/null`, a pipe) is written in place, never replaced
        let special = dest
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| !m.is_file());
        let dest = if special {
            if let Some(p) = dest {
                let mut f = fs::OpenOptions::new().write(true).open(p).ctx("open", p)?;
                return self.export(images, format, None, &mut f);
            }
            None
        } else {
            dest
        };
        let w: &mut dyn Write = if let Some(p) = dest {
            let mut name = p.file_name().unwrap_or_default().to_os_string();
            name.push(".partial");
            tmp = p.with_file_name(name);
            file = io::BufWriter::new(fs::File::create(&tmp).ctx("create", &tmp)?);
            &mut file
        } else {
            tmp = std::path::PathBuf::new();
            out
        };
        let res = match format {
            ExportFormat::Oci => self.export_oci_tar(images, &mut *w),
            ExportFormat::Docker => self.export_docker(images, &mut *w),
            ExportFormat::Rootfs => match images.first() {
                Some(img) => self.export_rootfs_tar(img, &mut *w),
                None => Ok(()),
            },
            ExportFormat::OciDir => Ok(()),
        };
        let res = res.and_then(|()| w.flush().map_err(|e| StoreError::io("write", "output", e)));
        if let Some(p) = dest {
            match res {
                Ok(()) => fs::rename(&tmp, p).ctx("rename", p)?,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        res
    }
}
