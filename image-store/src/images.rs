//! Tags in `index.json`, writing images (config + manifest) and resolving references.

use std::collections::BTreeMap;
use std::fs;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, ImageConfig, Index,
    MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, Manifest, canonical_json, from_json,
    is_manifest_media_type,
};
use crate::reference::Reference;
use crate::store::Store;

/// An image found in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRecord {
    /// The reference it was found under (`None` when resolved by digest only).
    pub reference: Option<String>,
    /// The manifest's descriptor.
    pub manifest_descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config digest: the image ID.
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
}

impl ImageRecord {
    /// The manifest digest.
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_descriptor.digest
    }

    /// The image ID (`sha256:<config digest>`).
    pub fn image_id(&self) -> &Digest {
        &self.config_digest
    }

    /// Layers paired with their diff_ids, base first.
    pub fn layers(&self) -> Result<Vec<(Descriptor, Digest)>> {
        let diff_ids = &self.config.rootfs.diff_ids;
        if diff_ids.len() != self.manifest.layers.len() {
            return Err(StoreError::Invalid {
                what: format!("image {}", self.manifest_descriptor.digest),
                reason: format!(
                    "{} layers but {} diff_ids",
                    self.manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(self
            .manifest
            .layers
            .iter()
            .cloned()
            .zip(diff_ids.iter().cloned())
            .collect())
    }

    /// Total size: manifest + config + layers (compressed).
    pub fn size(&self) -> u64 {
        self.manifest_descriptor.size
            + self.manifest.config.size
            + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// A tag in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagEntry {
    /// The full normalised reference.
    pub reference: String,
    /// The manifest descriptor.
    pub manifest: Descriptor,
}

/// The result of [`Store::write_image`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenImage {
    /// The config descriptor (its digest is the image ID).
    pub config: Descriptor,
    /// The manifest descriptor.
    pub manifest: Descriptor,
}

/// Whether an index entry's `org.opencontainers.image.ref.name` is the normalised reference
/// `name`, written in full (the store's own entries) or short (`foo:2` by another tool).
fn names(d: &Descriptor, name: &str) -> bool {
    d.annotations.get(ANNOTATION_REF_NAME).is_some_and(|n| {
        n == name
            || Reference::parse(n).is_ok_and(|r| r.digest().is_none() && r.to_string() == name)
    })
}

impl Store {
    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<Index> {
        let p = self.index_path();
        let bytes = fs::read(&p).ctx("read", &p)?;
        from_json(&bytes, &p.display().to_string())
    }

    /// All tags, sorted by reference.
    pub fn list_tags(&self) -> Result<Vec<TagEntry>> {
        let idx = self.read_index()?;
        let mut out: Vec<TagEntry> = idx
            .manifests
            .into_iter()
            .filter_map(|d| {
                let r = d.annotations.get(ANNOTATION_REF_NAME)?.clone();
                Some(TagEntry {
                    reference: r,
                    manifest: d,
                })
            })
            .collect();
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Read-modify-write of `index.json` under the index lock.
    pub(crate) fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _g = self.lock_index()?;
        let mut idx = self.read_index()?;
        let out = f(&mut idx)?;
        idx.manifests.sort_by(|a, b| {
            a.annotations
                .get(ANNOTATION_REF_NAME)
                .cmp(&b.annotations.get(ANNOTATION_REF_NAME))
                .then_with(|| a.digest.cmp(&b.digest))
        });
        self.write_atomic(&self.index_path(), &canonical_json(&idx)?)?;
        Ok(out)
    }

    /// Points `reference` (a tag; a digest part is refused) at a manifest already in the store.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        if reference.digest().is_some() {
            return Err(StoreError::Invalid {
                what: reference.to_string(),
                reason: "cannot tag with a digest reference".into(),
            });
        }
        self.name_manifest(reference, manifest)
    }

    /// Records the digest reference `name@sha256:…` that an image was pulled by (as containerd
    /// names such images), pointing at `manifest` (that digest's manifest, or the platform's
    /// manifest of that digest's index): the image stays listed, resolvable by that reference
    /// and kept by `gc` until `rm name@sha256:…`.
    pub fn pin(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        if reference.digest().is_none() {
            return Err(StoreError::Invalid {
                what: reference.to_string(),
                reason: "not a digest reference".into(),
            });
        }
        self.name_manifest(reference, manifest)
    }

    fn name_manifest(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        if !is_manifest_media_type(&manifest.media_type) {
            return Err(StoreError::Invalid {
                what: manifest.digest.to_string(),
                reason: format!("not an image manifest: {}", manifest.media_type),
            });
        }
        let name = reference.to_string();
        let mut desc =
            Descriptor::new(&manifest.media_type, manifest.digest.clone(), manifest.size);
        desc.platform.clone_from(&manifest.platform);
        desc.annotations
            .insert(ANNOTATION_REF_NAME.into(), name.clone());
        desc.annotations
            .insert(ANNOTATION_CONTAINERD_NAME.into(), name.clone());
        self.protected(&[&manifest.digest], || {
            if !self.has_blob(&manifest.digest) {
                return Err(StoreError::BlobNotFound {
                    digest: manifest.digest.clone(),
                });
            }
            self.update_index(|idx| {
                idx.manifests.retain(|d| !names(d, &name));
                idx.manifests.push(desc);
                Ok(())
            })
        })
    }

    /// Removes a tag; returns whether it existed. Content is freed later by `gc`.
    pub fn untag(&self, reference: &Reference) -> Result<bool> {
        let name = reference.to_string();
        self.update_index(|idx| {
            let before = idx.manifests.len();
            idx.manifests.retain(|d| !names(d, &name));
            Ok(idx.manifests.len() != before)
        })
    }

    /// Writes a config and a manifest for `layers` (base first; each blob must be present) and
    /// returns their descriptors. The config is serialised canonically; its digest is the image ID.
    /// The image is not tagged: call [`Store::tag`].
    pub fn write_image(&self, config: &ImageConfig, layers: &[Descriptor]) -> Result<WrittenImage> {
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(StoreError::Invalid {
                what: "image config".into(),
                reason: format!(
                    "{} layers but {} diff_ids",
                    layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let digests: Vec<&Digest> = layers.iter().map(|l| &l.digest).collect();
        self.protected(&digests, || {
            for l in layers {
                match fs::metadata(self.blob_path(&l.digest)) {
                    Ok(m) if m.len() == l.size => {}
                    Ok(m) => {
                        return Err(StoreError::SizeMismatch {
                            name: l.digest.to_string(),
                            expected: l.size,
                            actual: m.len(),
                        });
                    }
                    Err(_) => {
                        return Err(StoreError::BlobNotFound {
                            digest: l.digest.clone(),
                        });
                    }
                }
            }
            Ok(())
        })?;
        let config_bytes = canonical_json(config)?;
        let c = self.put_blob_bytes(&config_bytes)?;
        let config_desc = Descriptor::new(MEDIA_TYPE_CONFIG, c.digest, c.size);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            config: config_desc.clone(),
            layers: layers.to_vec(),
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        };
        let m = self.put_blob_bytes(&canonical_json(&manifest)?)?;
        let mut manifest_desc = Descriptor::new(MEDIA_TYPE_MANIFEST, m.digest, m.size);
        manifest_desc.platform = Some(crate::oci::Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            extra: BTreeMap::new(),
        });
        Ok(WrittenImage {
            config: config_desc,
            manifest: manifest_desc,
        })
    }

    /// Reads the manifest and config behind a manifest descriptor (verified) and protects all its
    /// blobs in this handle's lease. The caller holds the gc lock shared.
    pub(crate) fn load_image_locked(
        &self,
        reference: Option<String>,
        desc: &Descriptor,
    ) -> Result<ImageRecord> {
        self.protect_locked(&[&desc.digest])?;
        let bytes = self.read_blob(&desc.digest)?;
        let manifest: Manifest = from_json(&bytes, &format!("manifest {}", desc.digest))?;
        let mut digests: Vec<&Digest> = vec![&manifest.config.digest];
        digests.extend(manifest.layers.iter().map(|l| &l.digest));
        self.protect_locked(&digests)?;
        let cbytes = self.read_blob(&manifest.config.digest)?;
        let config: ImageConfig =
            from_json(&cbytes, &format!("config {}", manifest.config.digest))?;
        self.protect_locked(&config.rootfs.diff_ids.iter().collect::<Vec<_>>())?;
        let mut manifest_descriptor = desc.clone();
        manifest_descriptor.annotations.clear();
        if manifest_descriptor.media_type.is_empty() {
            // an index entry without a media type: the manifest's own, else OCI
            manifest_descriptor.media_type = manifest
                .media_type
                .clone()
                .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string());
        }
        Ok(ImageRecord {
            reference,
            manifest_descriptor,
            config_digest: manifest.config.digest.clone(),
            manifest,
            config,
        })
    }

    /// Finds an image by reference: by tag, or by manifest digest when the reference has one.
    /// Everything it returns stays protected from gc while this handle lives.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<ImageRecord>> {
        let _g = self.gc_shared()?;
        if let Some(d) = reference.digest() {
            // pinned by a pull (an index's digest names the platform's manifest)
            let name = reference.to_string();
            let idx = self.read_index()?;
            if let Some(desc) = idx
                .manifests
                .iter()
                .find(|m| m.annotations.get(ANNOTATION_REF_NAME) == Some(&name))
            {
                return self.load_image_locked(Some(name), desc).map(Some);
            }
            if !self.has_blob(d) {
                return Ok(None);
            }
            let desc = self.describe_manifest_locked(d)?;
            return self
                .load_image_locked(Some(reference.to_string()), &desc)
                .map(Some);
        }
        let name = reference.to_string();
        let idx = self.read_index()?;
        // the store's own entries carry the normalised name; another tool writing into the
        // layout (`skopeo copy … oci:ROOT:foo:2`) may have written a short one
        let Some(desc) = idx
            .manifests
            .iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME) == Some(&name))
            .or_else(|| idx.manifests.iter().find(|d| names(d, &name)))
        else {
            return Ok(None);
        };
        self.load_image_locked(Some(name), desc).map(Some)
    }

    fn describe_manifest_locked(&self, d: &Digest) -> Result<Descriptor> {
        self.protect_locked(&[d])?;
        let bytes = self.read_blob(d)?;
        let v: serde_json::Value = from_json(&bytes, &format!("manifest {d}"))?;
        let mt = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(MEDIA_TYPE_MANIFEST);
        // an image config also has a "config" member (the container config): a manifest's
        // names a digest, and a manifest has a layers array
        let is_manifest = v
            .get("config")
            .and_then(|c| c.get("digest"))
            .is_some_and(serde_json::Value::is_string)
            && v.get("layers").is_some_and(serde_json::Value::is_array);
        if !is_manifest_media_type(mt) || !is_manifest {
            return Err(StoreError::Invalid {
                what: d.to_string(),
                reason: "not an image manifest".into(),
            });
        }
        Ok(Descriptor::new(mt, d.clone(), bytes.len() as u64))
    }

    /// Finds an untagged image whose image ID (config digest) or manifest digest starts with
    /// `hex`, among the manifest blobs (small JSON blobs; layers are skipped by their first
    /// byte). Several manifests of the same config are one image (the smallest manifest digest
    /// wins); different configs make the prefix ambiguous. The caller holds the gc lock shared.
    fn find_untagged_locked(&self, spec: &str, hex: &str) -> Result<Option<ImageRecord>> {
        use std::io::Read;
        let bdir = self.blobs_dir().join("sha256");
        let mut names: Vec<String> = fs::read_dir(&bdir)
            .ctx("read dir", &bdir)?
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut found: Option<ImageRecord> = None;
        for name in names {
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            let p = self.blob_path(&d);
            let small = fs::metadata(&p)
                .is_ok_and(|m| m.is_file() && m.len() <= crate::blobs::MAX_DOCUMENT_SIZE);
            let mut first = [0u8; 1];
            let json = small
                && fs::File::open(&p)
                    .and_then(|mut f| f.read_exact(&mut first))
                    .is_ok()
                && first[0] == b'{';
            if !json {
                continue;
            }
            let Ok(desc) = self.describe_manifest_locked(&d) else {
                continue;
            };
            let Ok(rec) = self.load_image_locked(None, &desc) else {
                continue;
            };
            if !(rec.config_digest.hex().starts_with(hex) || d.hex().starts_with(hex)) {
                continue;
            }
            match &found {
                Some(f) if f.config_digest != rec.config_digest => {
                    return Err(StoreError::Invalid {
                        what: spec.to_string(),
                        reason: "ambiguous image id prefix".into(),
                    });
                }
                Some(_) => {}
                None => found = Some(rec),
            }
        }
        Ok(found)
    }

    /// The config of an image (`None` when the reference is unknown).
    pub fn image_config(&self, reference: &Reference) -> Result<Option<ImageConfig>> {
        Ok(self.resolve(reference)?.map(|r| r.config))
    }

    /// Like [`Store::resolve`], but a missing image is an error.
    pub fn image(&self, reference: &Reference) -> Result<ImageRecord> {
        self.resolve(reference)?
            .ok_or_else(|| StoreError::ImageNotFound {
                reference: reference.to_string(),
            })
    }

    /// Finds an image by a user string: a reference, an image ID (`sha256:<config digest>` or a
    /// unique hex prefix of at least 12 digits), or a manifest digest.
    pub fn find_image(&self, spec: &str) -> Result<ImageRecord> {
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        let looks_like_id = hex.len() >= 12
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if looks_like_id {
            let _g = self.gc_shared()?;
            let idx = self.read_index()?;
            let mut found: Option<ImageRecord> = None;
            for d in &idx.manifests {
                let name = d.annotations.get(ANNOTATION_REF_NAME).cloned();
                let Ok(rec) = self.load_image_locked(name, d) else {
                    continue;
                };
                if rec.config_digest.hex().starts_with(hex)
                    || rec.manifest_descriptor.digest.hex().starts_with(hex)
                {
                    if let Some(f) = &found
                        && f.manifest_descriptor.digest != rec.manifest_descriptor.digest
                    {
                        return Err(StoreError::Invalid {
                            what: spec.to_string(),
                            reason: "ambiguous image id prefix".into(),
                        });
                    }
                    found.get_or_insert(rec);
                }
            }
            if let Some(f) = found {
                return Ok(f);
            }
            // untagged images (a build without -t): the manifests among the blobs
            if let Some(f) = self.find_untagged_locked(spec, hex)? {
                return Ok(f);
            }
            if hex.len() == 64 && spec.starts_with("sha256:") {
                return Err(StoreError::ImageNotFound {
                    reference: spec.to_string(),
                });
            }
        }
        self.image(&Reference::parse(spec)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gc::tests::image as untagged;

    #[test]
    fn find_image_finds_an_untagged_image_by_id_prefix_and_manifest_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let w = untagged(&s, b"built, not tagged");
        let id = w.config.digest.to_string();
        // the full image ID used to be read as a manifest: "missing field `mediaType`"
        let by_id = s.find_image(&id).unwrap();
        assert_eq!(by_id.image_id(), &w.config.digest);
        assert_eq!(by_id.manifest_digest(), &w.manifest.digest);
        assert_eq!(by_id.reference, None);
        let prefix = &w.config.digest.hex()[..12];
        assert_eq!(s.find_image(prefix).unwrap().image_id(), &w.config.digest);
        let sprefix = format!("sha256:{}", &w.config.digest.hex()[..20]);
        assert_eq!(s.find_image(&sprefix).unwrap().image_id(), &w.config.digest);
        let by_manifest = s.find_image(&w.manifest.digest.to_string()).unwrap();
        assert_eq!(by_manifest.image_id(), &w.config.digest);
        // a layer digest is not an image
        let layer = &by_id.manifest.layers[0].digest;
        assert!(matches!(
            s.find_image(&layer.to_string()),
            Err(StoreError::ImageNotFound { .. })
        ));
        assert!(matches!(
            s.find_image("0123456789abcdef"),
            Err(StoreError::ImageNotFound { .. })
        ));
        // tagged: found through the index, with its name
        let r = Reference::parse("built:1").unwrap();
        s.tag(&r, &w.manifest).unwrap();
        let tagged = s.find_image(prefix).unwrap();
        assert_eq!(
            tagged.reference.as_deref(),
            Some("docker.io/library/built:1")
        );
    }

    #[test]
    fn find_image_prefix_of_two_untagged_images_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = untagged(&s, b"a");
        let b = untagged(&s, b"b");
        let common = a
            .config
            .digest
            .hex()
            .chars()
            .zip(b.config.digest.hex().chars())
            .take_while(|(x, y)| x == y)
            .count();
        // a full ID is never ambiguous
        assert_eq!(
            s.find_image(&a.config.digest.to_string())
                .unwrap()
                .image_id(),
            &a.config.digest
        );
        if common >= 12 {
            assert!(s.find_image(&a.config.digest.hex()[..common]).is_err());
        }
    }

    #[test]
    fn a_manifest_whose_descriptors_lack_media_types_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let w = untagged(&s, b"foreign");
        let orig: Manifest = from_json(&s.read_blob(&w.manifest.digest).unwrap(), "m").unwrap();
        let mut v = serde_json::to_value(&orig).unwrap();
        v["config"].as_object_mut().unwrap().remove("mediaType");
        v["layers"][0].as_object_mut().unwrap().remove("mediaType");
        let bytes = serde_json::to_vec(&v).unwrap();
        let md = s.put_blob_bytes(&bytes).unwrap();
        // by its manifest digest and, untagged, by its image ID
        let rec = s.find_image(&md.digest.to_string()).unwrap();
        assert_eq!(rec.image_id(), &w.config.digest);
        assert_eq!(rec.manifest.config.media_type, "");
        // the descriptor round-trips without an invented media type
        assert_eq!(
            canonical_json(&rec.manifest).unwrap(),
            canonical_json(&v).unwrap()
        );
        // tagged through index.json without a media type in the index entry either
        let foreign = Reference::parse("foreign").unwrap();
        s.tag(
            &foreign,
            &Descriptor::new(MEDIA_TYPE_MANIFEST, md.digest.clone(), md.size),
        )
        .unwrap();
        s.update_index(|idx| {
            for d in &mut idx.manifests {
                d.media_type.clear();
            }
            Ok(())
        })
        .unwrap();
        let rec = s.find_image("foreign").unwrap();
        assert_eq!(rec.manifest_digest(), &md.digest);
        assert_eq!(rec.manifest_descriptor.media_type, MEDIA_TYPE_MANIFEST);
        // so it can be tagged again
        s.tag(
            &Reference::parse("again").unwrap(),
            &rec.manifest_descriptor,
        )
        .unwrap();
        let prefix = &w.config.digest.hex()[..12];
        assert!(s.find_image(prefix).is_ok());
    }
}
