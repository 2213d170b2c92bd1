//! `import` (a rootfs tar or directory becomes a one-layer image, like `docker import`) and
//! `commit` (layers already in the store plus config changes on top of a base image).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::changes::apply_change;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::images::WrittenImage;
use crate::oci::{Descriptor, History, ImageConfig, MEDIA_TYPE_LAYER_GZIP, Platform, RootFs};
use crate::reference::Reference;
use crate::store::Store;

/// Options of [`Store::import_tar`] and [`Store::import_dir`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Tag for the new image (`None`: untagged).
    pub reference: Option<Reference>,
    /// Dockerfile-style config changes (`CMD ["sh"]`, `ENV A=1`, ...).
    pub changes: Vec<String>,
    /// Platform recorded in the config (default: the host's).
    pub platform: Option<Platform>,
    /// History comment.
    pub message: Option<String>,
}

/// A layer to add in [`Store::commit`]: the `layer-pack` result document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDoc {
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the blob (must be in the store).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the blob.
    pub size: u64,
}

/// The creation time to record: `SOURCE_DATE_EPOCH` when set, else now (RFC 3339, UTC).
pub fn created_now() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Wraps a reader in the decompressor its first bytes call for (gzip, zstd, or none).
pub(crate) fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(1 << 20, r);
    let head = br.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(br)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(br)?))
    } else {
        Ok(Box::new(br))
    }
}

/// Reads through to a hasher and a writer.
struct Tee<'w, R, W: Write> {
    inner: R,
    hasher: Sha256,
    out: &'w mut W,
    /// A failure of the output side (e.g. ENOSPC), kept apart from input errors.
    write_err: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        self.hasher.update(chunk);
        if let Err(e) = self.out.write_all(chunk) {
            let msg = e.to_string();
            self.write_err = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

fn check_entry_path(p: &Path) -> io::Result<()> {
    use std::path::Component;
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("entry {} escapes the root", p.display()),
        ));
    }
    Ok(())
}

/// A path inside the root: `/`, `.` and empty components dropped.
fn normal(p: &Path) -> PathBuf {
    use std::path::Component;
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// The symlinks an archive made so far, so that an entry through one (which would be written
/// outside the root when the layer is applied) is refused as layer-pack's unpack does.
#[derive(Default)]
struct SymlinkSet(std::collections::HashSet<PathBuf>);

impl SymlinkSet {
    fn check<R: Read>(&mut self, e: &tar::Entry<'_, R>) -> io::Result<()> {
        let path = e.path()?;
        check_entry_path(&path)?;
        let p = normal(&path);
        let refuse = |why: String| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry {} {why}", path.display()),
            ))
        };
        // layers hold relative names (layer-pack refuses to apply others)
        if path.has_root() {
            return refuse("has an absolute path".into());
        }
        if let Some(l) = p.ancestors().skip(1).find(|a| self.0.contains(*a)) {
            return refuse(format!("goes through the symlink {}", l.display()));
        }
        let kind = e.header().entry_type();
        if kind.is_hard_link() {
            let target = e.link_name()?.unwrap_or_default();
            if target.has_root() || check_entry_path(&target).is_err() {
                return refuse(format!("links to {} outside the root", target.display()));
            }
            let t = normal(&target);
            if let Some(l) = t.ancestors().skip(1).find(|a| self.0.contains(*a)) {
                return refuse(format!("links through the symlink {}", l.display()));
            }
        }
        if kind.is_symlink() {
            self.0.insert(p);
        } else {
            self.0.remove(&p);
        }
        Ok(())
    }
}

impl Store {
    /// Stores a tar stream (plain, gzip or zstd; a root filesystem) as a gzip layer, checking it
    /// is a well-formed tar without `..` entries. Returns the layer and its diff_id.
    pub fn ingest_tar_layer(&self, reader: impl Read) -> Result<LayerDoc> {
        let input = decompress(reader).map_err(|e| StoreError::io("read", "tar input", e))?;
        let mut w = self.blob_writer()?;
        let tmp = w.path().to_path_buf();
        let diff_id = {
            let mut enc = crate::gz::ParallelGz::new(&mut w, 6);
            let mut tee = Tee {
                inner: input,
                hasher: Sha256::new(),
                out: &mut enc,
                write_err: None,
            };
            let mut n = 0u64;
            let scanned = (|| {
                let mut ar = tar::Archive::new(&mut tee);
                let mut links = SymlinkSet::default();
                for e in ar.entries()? {
                    let e = e?;
                    links.check(&e)?;
                    n += 1;
                }
                Ok::<(), io::Error>(())
            })();
            if let Some(e) = tee.write_err.take() {
                return Err(StoreError::io("write", &tmp, e));
            }
            scanned.map_err(|e| tar_err(&e))?;
            if n == 0 {
                return Err(StoreError::Invalid {
                    what: "tar input".into(),
                    reason: "no entries (not a tar archive?)".into(),
                });
            }
            // the end-of-archive blocks and any padding belong to the layer too
            let drained = io::copy(&mut tee, &mut io::sink());
            if let Some(e) = tee.write_err.take() {
                return Err(StoreError::io("write", &tmp, e));
            }
            drained.map_err(|e| StoreError::io("read", "tar input", e))?;
            let d = Digest::from_hasher(tee.hasher);
            enc.finish().map_err(|e| StoreError::io("write", &tmp, e))?;
            d
        };
        let info = w.commit(None)?;
        Ok(LayerDoc {
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
            digest: info.digest,
            diff_id,
            size: info.size,
        })
    }

    /// Packs a directory (a root filesystem) into a gzip layer with `layer-pack`.
    pub fn ingest_dir_layer(&self, dir: &Path) -> Result<LayerDoc> {
        let mut w = self.blob_writer()?;
        let tmp = w.path().to_path_buf();
        let opts = layer_pack::PackOptions::default();
        let d = layer_pack::pack_dir(dir, &opts, &mut w).map_err(|e| match e {
            // writing into the store failed (a full disk): the store's error for its file
            layer_pack::PackError::Write { source, .. } => StoreError::io("write", &tmp, source),
            e => StoreError::Layer {
                what: dir.display().to_string(),
                message: e.to_string(),
            },
        })?;
        let info = w.commit(None)?;
        Ok(LayerDoc {
            media_type: d.media_type,
            digest: info.digest,
            diff_id: Digest::parse(&d.diff_id)?,
            size: info.size,
        })
    }

    /// `docker import` of a tar stream: a one-layer image with `opts.changes` applied.
    pub fn import_tar(&self, reader: impl Read, opts: &ImportOptions) -> Result<WrittenImage> {
        let layer = self.ingest_tar_layer(reader)?;
        self.import_layer(&layer, opts)
    }

    /// `docker import` of a directory.
    pub fn import_dir(&self, dir: &Path, opts: &ImportOptions) -> Result<WrittenImage> {
        let layer = self.ingest_dir_layer(dir)?;
        self.import_layer(&layer, opts)
    }

    fn import_layer(&self, layer: &LayerDoc, opts: &ImportOptions) -> Result<WrittenImage> {
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let created = created_now();
        let mut cfg = ImageConfig {
            created: Some(created.clone()),
            architecture: platform.architecture,
            os: platform.os,
            variant: platform.variant,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![layer.diff_id.clone()],
            },
            ..ImageConfig::default()
        };
        let mut cc = crate::oci::ContainerConfig::default();
        for ch in &opts.changes {
            apply_change(&mut cc, ch)?;
        }
        cfg.config = Some(cc);
        cfg.history.push(History {
            created: Some(created),
            created_by: Some("image-store import".into()),
            comment: opts.message.clone(),
            ..History::default()
        });
        let desc = Descriptor::new(&layer.media_type, layer.digest.clone(), layer.size);
        let img = self.write_image(&cfg, &[desc])?;
        if let Some(r) = &opts.reference {
            self.tag(r, &img.manifest)?;
        }
        Ok(img)
    }

    /// Adds `layers` (already in the store, e.g. written by `layer-pack --store`) and `changes` on
    /// top of `base` (`None` = scratch), with one history entry per layer (`created_by`), and tags
    /// the result as `reference` when given.
    pub fn commit(
        &self,
        base: Option<&Reference>,
        layers: &[LayerDoc],
        changes: &[String],
        created_by: &str,
        reference: Option<&Reference>,
    ) -> Result<WrittenImage> {
        let (mut cfg, mut descs) = if let Some(r) = base {
            let img = self.image(r)?;
            (img.config, img.manifest.layers)
        } else {
            let p = Platform::host();
            (
                ImageConfig {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant,
                    ..ImageConfig::default()
                },
                Vec::new(),
            )
        };
        let created = created_now();
        cfg.created = Some(created.clone());
        for l in layers {
            descs.push(Descriptor::new(&l.media_type, l.digest.clone(), l.size));
            cfg.rootfs.diff_ids.push(l.diff_id.clone());
            cfg.history.push(History {
                created: Some(created.clone()),
                created_by: Some(created_by.to_string()),
                ..History::default()
            });
        }
        if !changes.is_empty() {
            let mut cc = cfg.config.take().unwrap_or_default();
            for ch in changes {
                apply_change(&mut cc, ch)?;
            }
            cfg.config = Some(cc);
            if layers.is_empty() {
                cfg.history.push(History {
                    created: Some(created),
                    created_by: Some(format!("{created_by} {}", changes.join("; "))),
                    empty_layer: Some(true),
                    extra: BTreeMap::new(),
                    ..History::default()
                });
            }
        }
        let img = self.write_image(&cfg, &descs)?;
        if let Some(r) = reference {
            self.tag(r, &img.manifest)?;
        }
        Ok(img)
    }
}

fn tar_err(e: &io::Error) -> StoreError {
    StoreError::Invalid {
        what: "tar input".into(),
        reason: e.to_string(),
    }
}
