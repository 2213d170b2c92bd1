//! Unpacked layer snapshots (overlay lower dirs) keyed by diff_id, complete-or-absent.
//!
//! `snapshots/<diff_id hex>/` holds `fs/` (the layer unpacked with overlay whiteouts) and
//! `meta.json`. A snapshot is unpacked (or adopted) into a temp dir, `meta.json` is written last,
//! and the dir is renamed into place in one step, so other processes see a snapshot directory
//! whole or not at all.
//!
//! **Durability rule.** A snapshot is derived data: the layer blob (which *is* made durable)
//! rebuilds it. So nothing under `snapshots/` is fsynced (no `syncfs`, which flushes the whole
//! filesystem and cost ~170 ms per layer). After a power loss or kernel crash a snapshot can be
//! absent (the next [`Store::snapshot`] unpacks it again) or renamed but incomplete (files
//! whose data never reached the disk, a truncated `meta.json`). [`Store::fsck`] detects the
//! latter by comparing every snapshot with its layer (each entry present with its type, each
//! regular file with its size) and `fsck --repair` removes it; run it after an unclean
//! shutdown.

use std::fs;
use std::path::{Path, PathBuf};

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
            // a truncated meta.json is what a crash leaves of an unsynced snapshot: refuse it
            // rather than hand out a lower dir that may be missing files
            return match self.snapshot_meta(diff_id) {
                Ok(m) if m.diff_id == *diff_id => Ok(dir.join("fs")),
                _ => Err(StoreError::Invalid {
                    what: dir.display().to_string(),
                    reason: "incomplete snapshot (left by a crash?): run image-store fsck --repair"
                        .into(),
                }),
            };
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
            self.install_snapshot(&tmp, &meta)
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res.map(|()| dir.join("fs"))
    }

    /// Writes `meta.json` into a temp snapshot dir that holds a complete `fs/` and renames it
    /// into place (not fsynced: see the module's durability rule). When another process made
    /// the snapshot first, the temp dir is removed and theirs is kept.
    fn install_snapshot(&self, tmp: &Path, meta: &SnapshotMeta) -> Result<()> {
        let dir = self.snapshot_dir(&meta.diff_id);
        let mp = tmp.join("meta.json");
        fs::write(&mp, canonical_json(meta)?).ctx("write", &mp)?;
        match fs::rename(tmp, &dir) {
            Ok(()) => Ok(()),
            // another process made it first
            Err(_) if self.has_snapshot(&meta.diff_id) => {
                let _ = fs::remove_dir_all(tmp);
                Ok(())
            }
            Err(e) => Err(StoreError::io("rename", &dir, e)),
        }
    }

    /// Makes `dir`, an already unpacked tree in this store's overlay format (for example the
    /// upper dir of a RUN whose layer was just packed as `layer`), the snapshot of `diff_id`,
    /// and returns its lower dir `snapshots/<hex>/fs`. `dir` is moved by `rename(2)`, so it must
    /// be on the store's filesystem (an error otherwise, and `dir` is left where it was). The
    /// layout is the one [`Store::snapshot`] writes: `fs/` plus `meta.json` (`whiteouts` is
    /// `trusted` for root, else `user`; `entries` counts the tree's entries), renamed into
    /// place complete-or-absent and not fsynced (derived data; see the module's durability
    /// rule). If a snapshot of `diff_id` already exists, `dir` is removed and the existing one
    /// returned. The caller vouches that the tree is the layer's content; `fsck` compares them.
    /// Protected from gc while this handle lives.
    pub fn adopt_snapshot(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
        dir: &Path,
    ) -> Result<PathBuf> {
        let target = self.snapshot_dir(diff_id);
        let md = fs::symlink_metadata(dir).ctx("stat", dir)?;
        if !md.is_dir() {
            return Err(StoreError::Invalid {
                what: dir.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let present =
            self.protected(&[diff_id, &layer.digest], || Ok(self.has_snapshot(diff_id)))?;
        if present {
            fs::remove_dir_all(dir).ctx("remove", dir)?;
            return Ok(target.join("fs"));
        }
        let tmp = self.temp_path("snap")?;
        fs::create_dir(&tmp).ctx("create directory", &tmp)?;
        let fs_dir = tmp.join("fs");
        if let Err(e) = fs::rename(dir, &fs_dir) {
            let _ = fs::remove_dir_all(&tmp);
            if e.raw_os_error() == Some(libc::EXDEV) {
                return Err(StoreError::Invalid {
                    what: dir.display().to_string(),
                    reason: format!(
                        "not on the store's filesystem ({}): cannot be moved into a snapshot",
                        self.snapshots_dir().display()
                    ),
                });
            }
            return Err(StoreError::io("rename", dir, e));
        }
        let entries = walkdir::WalkDir::new(&fs_dir)
            .min_depth(1)
            .into_iter()
            .count() as u64;
        let meta = SnapshotMeta {
            version: 1,
            diff_id: diff_id.clone(),
            layer: layer.digest.clone(),
            whiteouts: if rustix::process::geteuid().is_root() {
                "trusted"
            } else {
                "user"
            }
            .into(),
            entries,
        };
        if let Err(e) = self.install_snapshot(&tmp, &meta) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(target.join("fs"))
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

    /// Compares a snapshot's `fs/` with its layer blob (present and verified by the caller):
    /// every entry of the layer must be there with its type, every regular file with its size,
    /// every whiteout as a marker, every opaque dir as a directory. Returns the first
    /// difference (a crash after an unsynced snapshot was renamed into place leaves empty or
    /// missing files), or the reason the layer could not be read.
    pub(crate) fn snapshot_mismatch(&self, meta: &SnapshotMeta) -> Option<String> {
        use std::collections::BTreeMap;
        use std::path::Component;
        use tar::EntryType as T;
        let fs_dir = self.snapshot_dir(&meta.diff_id).join("fs");
        let blob = self.blob_path(&meta.layer);
        let read = || -> std::io::Result<BTreeMap<PathBuf, (T, u64)>> {
            let r = crate::import::decompress(fs::File::open(&blob)?)?;
            let mut want = BTreeMap::new();
            for e in tar::Archive::new(r).entries()? {
                let e = e?;
                let path = e.path()?;
                if path.components().any(|c| c == Component::ParentDir) {
                    continue;
                }
                let rel: PathBuf = path
                    .components()
                    .filter(|c| matches!(c, Component::Normal(_)))
                    .collect();
                if !rel.as_os_str().is_empty() {
                    want.insert(rel, (e.header().entry_type(), e.size()));
                }
            }
            Ok(want)
        };
        let want = match read() {
            Ok(w) => w,
            Err(e) => return Some(format!("cannot read layer {}: {e}", meta.layer)),
        };
        for (rel, (ty, size)) in want {
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = rel
                .parent()
                .map_or_else(|| fs_dir.clone(), |p| fs_dir.join(p));
            let shown = rel.display();
            if name == ".wh..wh..opq" {
                if !parent.is_dir() {
                    return Some(format!("opaque directory of {shown} missing"));
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                if fs::symlink_metadata(parent.join(hidden)).is_err() {
                    return Some(format!("whiteout {shown} missing"));
                }
                continue;
            }
            let md = fs::symlink_metadata(fs_dir.join(&rel));
            let msg = match (ty, md) {
                (_, Err(_))
                    if matches!(
                        ty,
                        T::Regular
                            | T::Continuous
                            | T::Directory
                            | T::Symlink
                            | T::Link
                            | T::Char
                            | T::Block
                            | T::Fifo
                    ) =>
                {
                    Some(format!("{shown} missing"))
                }
                (T::Regular | T::Continuous, Ok(m)) if !m.is_file() || m.len() != size => {
                    Some(format!("{shown} has {} bytes, the layer {size}", m.len()))
                }
                (T::Directory, Ok(m)) if !m.is_dir() => Some(format!("{shown} is not a directory")),
                (T::Symlink, Ok(m)) if !m.is_symlink() => Some(format!("{shown} is not a symlink")),
                _ => None,
            };
            if msg.is_some() {
                return msg;
            }
        }
        None
    }

    /// Reads a snapshot's `meta.json`.
    pub fn snapshot_meta(&self, diff_id: &Digest) -> Result<SnapshotMeta> {
        let p = self.snapshot_dir(diff_id).join("meta.json");
        let b = fs::read(&p).ctx("read", &p)?;
        crate::oci::from_json(&b, &p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_LAYER_TAR;

    /// A plain tar layer: `d/`, `d/f` ("hello"), `d/h` (hard link to `d/f`), `l` -> `d/f`.
    fn layer(s: &Store) -> (Descriptor, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "d/", &[][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, "d/f", &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "d/h", "d/f").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l", "d/f").unwrap();
        let bytes = b.into_inner().unwrap();
        let info = s.put_blob_bytes(&bytes).unwrap();
        // uncompressed: the diff_id is the digest
        let diff_id = info.digest.clone();
        (
            Descriptor::new(MEDIA_TYPE_LAYER_TAR, info.digest, info.size),
            diff_id,
        )
    }

    /// The same tree, made by hand in `dir` (as a RUN's upper dir would hold it).
    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/f"), b"hello").unwrap();
        fs::hard_link(dir.join("d/f"), dir.join("d/h")).unwrap();
        std::os::unix::fs::symlink("d/f", dir.join("l")).unwrap();
    }

    fn problems(s: &Store) -> Vec<String> {
        s.fsck(false)
            .unwrap()
            .problems
            .iter()
            .map(|p| format!("{} {}", p.kind, p.message))
            .collect()
    }

    #[test]
    fn fsck_finds_a_snapshot_left_incomplete_and_repair_lets_it_be_unpacked_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (desc, diff_id) = layer(&s);
        let fs_dir = s.snapshot(&desc, &diff_id).unwrap();
        assert_eq!(fs::read(fs_dir.join("d/h")).unwrap(), b"hello");
        assert!(problems(&s).is_empty(), "{:?}", problems(&s));
        // what a crash can leave of an unsynced snapshot: a file without its data
        fs::remove_file(fs_dir.join("d/h")).unwrap();
        fs::write(fs_dir.join("d/f"), b"").unwrap();
        assert_eq!(
            problems(&s),
            ["snapshot incomplete: d/f has 0 bytes, the layer 5"]
        );
        fs::remove_file(fs_dir.join("d/f")).unwrap();
        assert_eq!(problems(&s), ["snapshot incomplete: d/f missing"]);
        fs::remove_file(fs_dir.join("l")).unwrap();
        fs::create_dir(fs_dir.join("l")).unwrap();
        fs::write(fs_dir.join("d/f"), b"hello").unwrap();
        fs::hard_link(fs_dir.join("d/f"), fs_dir.join("d/h")).unwrap();
        assert_eq!(problems(&s), ["snapshot incomplete: l is not a symlink"]);
        let r = s.fsck(true).unwrap();
        assert!(r.ok, "{r:?}");
        assert!(!s.has_snapshot(&diff_id));
        let again = s.snapshot(&desc, &diff_id).unwrap();
        assert_eq!(again, fs_dir);
        assert!(again.join("l").is_symlink());
        assert!(problems(&s).is_empty());
        // a truncated meta.json (also a crash outcome) is found too, and refused by the lookup
        fs::write(s.snapshot_dir(&diff_id).join("meta.json"), b"").unwrap();
        assert_eq!(problems(&s), ["snapshot missing or invalid meta.json"]);
        let err = s.snapshot(&desc, &diff_id).unwrap_err();
        assert!(err.to_string().contains("fsck --repair"), "{err}");
        assert!(s.fsck(true).unwrap().ok);
        assert_eq!(s.snapshot(&desc, &diff_id).unwrap(), fs_dir);
    }

    #[test]
    fn adopt_snapshot_moves_a_tree_into_the_store_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (desc, diff_id) = layer(&s);
        let upper = dir.path().join("runs/r1/upper");
        tree(&upper);
        let ino = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(upper.join("d/f")).unwrap().ino()
        };
        let lower = s.adopt_snapshot(&desc, &diff_id, &upper).unwrap();
        assert_eq!(lower, s.snapshot_dir(&diff_id).join("fs"));
        assert!(!upper.exists(), "moved, not copied");
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(fs::metadata(lower.join("d/f")).unwrap().ino(), ino);
        }
        // exactly the layout pelagos-build writes: fs/ + canonical meta.json, nothing else
        let mut names: Vec<String> = fs::read_dir(s.snapshot_dir(&diff_id))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["fs", "meta.json"]);
        let meta = SnapshotMeta {
            version: 1,
            diff_id: diff_id.clone(),
            layer: desc.digest.clone(),
            whiteouts: if rustix::process::geteuid().is_root() {
                "trusted"
            } else {
                "user"
            }
            .into(),
            entries: 4,
        };
        assert_eq!(
            fs::read(s.snapshot_dir(&diff_id).join("meta.json")).unwrap(),
            canonical_json(&meta).unwrap()
        );
        assert_eq!(s.snapshot_meta(&diff_id).unwrap(), meta);
        assert!(problems(&s).is_empty(), "{:?}", problems(&s));
        // the lookup finds it; nothing is unpacked
        assert_eq!(s.snapshot(&desc, &diff_id).unwrap(), lower);
        // a second tree for the same diff_id is discarded; the existing snapshot stays
        let other = dir.path().join("runs/r2/upper");
        tree(&other);
        fs::write(other.join("extra"), b"x").unwrap();
        assert_eq!(s.adopt_snapshot(&desc, &diff_id, &other).unwrap(), lower);
        assert!(!other.exists());
        assert!(!lower.join("extra").exists());
        // gc keeps it while this handle (or a tag) holds it
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert!(s.has_snapshot(&diff_id));
        // nothing left behind in tmp/
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn adopt_snapshot_refuses_another_filesystem_and_non_directories() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (desc, diff_id) = layer(&s);
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            s.adopt_snapshot(&desc, &diff_id, &file),
            Err(StoreError::Invalid { .. })
        ));
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        {
            use std::os::unix::fs::MetadataExt;
            assert_ne!(
                fs::metadata(shm.path()).unwrap().dev(),
                fs::metadata(dir.path()).unwrap().dev(),
                "test needs /dev/shm on another filesystem than the temp dir"
            );
        }
        let upper = shm.path().join("upper");
        tree(&upper);
        let err = s.adopt_snapshot(&desc, &diff_id, &upper).unwrap_err();
        assert!(
            err.to_string().contains("not on the store's filesystem"),
            "{err}"
        );
        assert!(upper.join("d/f").is_file(), "left where it was");
        assert!(!s.has_snapshot(&diff_id));
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }
}
