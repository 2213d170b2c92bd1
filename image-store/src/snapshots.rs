//! Unpacked layer snapshots (overlay lower dirs) keyed by diff_id, complete-or-absent.
//!
//! `snapshots/<diff_id hex>/` holds `fs/` (the layer unpacked with overlay whiteouts) and
//! `meta.json`. A snapshot is unpacked into a temp dir, verified against its diff_id, synced,
//! and renamed into place in one step, so a snapshot directory either exists whole or not at all.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::oci::{Descriptor, canonical_json};
use crate::reference::Reference;
use crate::store::Store;

/// `meta.json` of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Always 1.
    pub version: u32,
    /// The layer's diff_id (also the directory name).
    pub diff_id: Digest,
    /// The blob it was unpacked from.
    pub layer: Digest,
    /// `trusted` (char-device whiteouts, `trusted.overlay.opaque`) or `user` (`user.overlay.*`).
    pub whiteouts: String,
    /// Entries applied.
    pub entries: u64,
}

impl Store {
    /// The directory of a snapshot (`snapshots/<hex>`); its `fs/` is the overlay lower dir.
    pub fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// Whether a snapshot is present.
    pub fn has_snapshot(&self, diff_id: &Digest) -> bool {
        self.snapshot_dir(diff_id).join("meta.json").is_file()
    }

    /// Returns the overlay lower dir (`snapshots/<hex>/fs`) of a layer, unpacking it first when
    /// missing (verified against `diff_id`). Root stores use `trusted.overlay.*` whiteouts,
    /// unprivileged ones `user.overlay.*` (mount with `userxattr`). Protected from gc while this
    /// handle lives.
    pub fn snapshot(&self, layer: &Descriptor, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.snapshot_dir(diff_id);
        let present =
            self.protected(&[diff_id, &layer.digest], || Ok(self.has_snapshot(diff_id)))?;
        if present {
            return Ok(dir.join("fs"));
        }
        let root = rustix::process::geteuid().is_root();
        let tmp = self.temp_path("snap")?;
        let res = (|| {
            fs::create_dir(&tmp).ctx("create directory", &tmp)?;
            let blob = self.open_blob(&layer.digest)?;
            let opts = layer_pack::UnpackOptions {
                format: layer_pack::UnpackFormat::Overlay { userxattr: !root },
                expect_diff_id: Some(diff_id.to_string()),
                expect_digest: Some(layer.digest.to_string()),
                allow_devices: root,
                preserve_owners: root,
            };
            let report = layer_pack::unpack(blob, &tmp.join("fs"), &opts).map_err(|e| {
                StoreError::Layer {
                    what: format!("layer {}", layer.digest),
                    message: e.to_string(),
                }
            })?;
            let meta = SnapshotMeta {
                version: 1,
                diff_id: diff_id.clone(),
                layer: layer.digest.clone(),
                whiteouts: if root { "trusted" } else { "user" }.into(),
                entries: report.entries,
            };
            let mp = tmp.join("meta.json");
            fs::write(&mp, canonical_json(&meta)?).ctx("write", &mp)?;
            // make the whole tree durable before it becomes visible
            let f = fs::File::open(&tmp).ctx("open", &tmp)?;
            rustix::fs::syncfs(&f).map_err(|e| StoreError::io("syncfs", &tmp, e.into()))?;
            match fs::rename(&tmp, &dir) {
                Ok(()) => crate::store::sync_parent(&dir),
                // another process made it first
                Err(_) if self.has_snapshot(diff_id) => {
                    let _ = fs::remove_dir_all(&tmp);
                    Ok(())
                }
                Err(e) => Err(StoreError::io("rename", &dir, e)),
            }
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res.map(|()| dir.join("fs"))
    }

    /// The snapshot lower dirs of an image, top layer first (the order of overlayfs `lowerdir=`),
    /// unpacking missing snapshots on demand.
    pub fn lowers(&self, reference: &Reference) -> Result<Vec<PathBuf>> {
        let img = self.image(reference)?;
        self.lowers_of(&img)
    }

    /// [`Store::lowers`] for an already resolved image.
    pub fn lowers_of(&self, img: &crate::images::ImageRecord) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for (layer, diff_id) in img.layers()? {
            out.push(self.snapshot(&layer, &diff_id)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Reads a snapshot's `meta.json`.
    pub fn snapshot_meta(&self, diff_id: &Digest) -> Result<SnapshotMeta> {
        let p = self.snapshot_dir(diff_id).join("meta.json");
        let b = fs::read(&p).ctx("read", &p)?;
        crate::oci::from_json(&b, &p.display().to_string())
    }
}
