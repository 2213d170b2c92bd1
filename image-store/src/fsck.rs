//! `fsck`: re-hashes every blob, checks every tag's image, every snapshot and cache record, and
//! reports (with `repair`: removes) what is broken, plus dead processes' temp files.

use std::collections::HashSet;
use std::fs;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::gc::{clean_temp, scan_leases, temp_owner_live};
use crate::oci::{ANNOTATION_REF_NAME, ImageConfig, Manifest, from_json};
use crate::reference::Reference;
use crate::snapshots::SnapshotMeta;
use crate::store::{Store, temp_owner};

/// One problem found by `fsck`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `layout`, `index`, `blob`, `image`, `snapshot` or `cache`.
    pub kind: String,
    /// The object: a digest, reference, path or cache file.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Whether `--repair` fixed it (by removing the broken object or tag).
    pub repaired: bool,
}

/// The `fsck` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Always 1.
    pub version: u32,
    /// True when no problem is left (temp files of dead processes do not count).
    pub ok: bool,
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Tags checked.
    pub images_checked: u64,
    /// Snapshots checked.
    pub snapshots_checked: u64,
    /// Cache records checked.
    pub cache_records_checked: u64,
    /// Temp entries left by dead processes (found; removed with repair).
    pub stale_temp: u64,
    /// The problems.
    pub problems: Vec<Problem>,
}

impl Store {
    /// Checks the whole store. With `repair`, removes corrupt blobs, broken snapshots and cache
    /// records, tags whose image is incomplete, and dead processes' temp files and leases.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let mut r = FsckReport {
            version: 1,
            ok: true,
            blobs_checked: 0,
            images_checked: 0,
            snapshots_checked: 0,
            cache_records_checked: 0,
            stale_temp: 0,
            problems: Vec::new(),
        };
        // keep gc out while we look
        let gc_lock = self.gc_shared()?;
        let mut problem = |kind: &str, object: String, message: String, repaired: bool| {
            r.problems.push(Problem {
                kind: kind.into(),
                object,
                message,
                repaired,
            });
        };

        let layout = self.root().join("oci-layout");
        match fs::read_to_string(&layout) {
            // any JSON spelling (skopeo writes `{"imageLayoutVersion": "1.0.0"}`)
            Ok(s)
                if serde_json::from_str::<serde_json::Value>(&s)
                    .is_ok_and(|v| v["imageLayoutVersion"] == "1.0.0") => {}
            _ => {
                let fixed = repair
                    && self
                        .write_atomic(&layout, crate::OCI_LAYOUT.as_bytes())
                        .is_ok();
                problem(
                    "layout",
                    layout.display().to_string(),
                    "missing or invalid oci-layout".into(),
                    fixed,
                );
            }
        }

        // blobs
        let bdir = self.blobs_dir().join("sha256");
        let mut good: HashSet<Digest> = HashSet::new();
        for e in fs::read_dir(&bdir).ctx("read dir", &bdir)? {
            let e = e.ctx("read dir", &bdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                // a temp file of another writer (e.g. `.layer-pack-XXXX`): not a problem while
                // it may still be in use
                if name.starts_with('.') && !crate::gc::is_abandoned(&path) {
                    continue;
                }
                let fixed = repair && fs::remove_file(&path).is_ok();
                problem(
                    "blob",
                    path.display().to_string(),
                    "not a blob name".into(),
                    fixed,
                );
                continue;
            };
            r.blobs_checked += 1;
            match self.verify_blob(&d, None) {
                Ok(()) => {
                    good.insert(d);
                }
                Err(err) => {
                    // a corrupt blob must be re-hashed by `verify_blob_fast` from now on, even
                    // when it is kept (a flipped bit changes no ctime)
                    let _ = fs::remove_file(self.verified_stamp_path(&d));
                    let fixed = repair && fs::remove_file(&path).is_ok();
                    let msg = match err {
                        StoreError::DigestMismatch { actual, .. } => {
                            format!("corrupt: content hashes to {actual}")
                        }
                        err => format!("corrupt: {err}"),
                    };
                    problem("blob", d.to_string(), msg, fixed);
                }
            }
        }

        // tags
        let mut live_snapshots: HashSet<String> = HashSet::new();
        match self.read_index() {
            Err(err) => problem("index", "index.json".into(), err.to_string(), false),
            Ok(idx) => {
                let mut broken: Vec<String> = Vec::new();
                for d in &idx.manifests {
                    r.images_checked += 1;
                    let name = d.annotations.get(ANNOTATION_REF_NAME).cloned();
                    let label = name.clone().unwrap_or_else(|| d.digest.to_string());
                    if let Some(n) = &name
                        && Reference::parse(n).is_err()
                    {
                        problem(
                            "index",
                            label.clone(),
                            "ref.name is not a valid reference".into(),
                            false,
                        );
                    }
                    match check_image(self, &good, &d.digest, d.size) {
                        Ok(diff_ids) => live_snapshots.extend(diff_ids),
                        Err(msg) => {
                            broken.push(label.clone());
                            problem("image", label, msg, repair);
                        }
                    }
                }
                if repair && !broken.is_empty() {
                    let set: HashSet<String> = broken.into_iter().collect();
                    self.update_index(|i| {
                        i.manifests.retain(|d| {
                            let label = d
                                .annotations
                                .get(ANNOTATION_REF_NAME)
                                .cloned()
                                .unwrap_or_else(|| d.digest.to_string());
                            !set.contains(&label)
                        });
                        Ok(())
                    })?;
                }
            }
        }
        let _ = live_snapshots;

        // snapshots
        let sdir = self.snapshots_dir();
        for e in fs::read_dir(&sdir).ctx("read dir", &sdir)? {
            let e = e.ctx("read dir", &sdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            r.snapshots_checked += 1;
            let path = e.path();
            let msg = match Digest::parse(&format!("sha256:{name}")) {
                Err(_) => Some("not a snapshot name".to_string()),
                Ok(d) => {
                    let meta = fs::read(path.join("meta.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice::<SnapshotMeta>(&b).ok());
                    match meta {
                        None => Some("missing or invalid meta.json".into()),
                        Some(m) if m.diff_id != d => Some(format!("meta.json names {}", m.diff_id)),
                        Some(_) if !path.join("fs").is_dir() => Some("missing fs directory".into()),
                        // the content, when the layer is here to compare with (snapshots are
                        // not fsynced: a crash can leave one renamed but incomplete)
                        Some(m) if good.contains(&m.layer) => self
                            .snapshot_mismatch(&m)
                            .map(|why| format!("incomplete: {why}")),
                        Some(_) => None,
                    }
                }
            };
            if let Some(msg) = msg {
                let fixed = repair && fs::remove_dir_all(&path).is_ok();
                problem("snapshot", path.display().to_string(), msg, fixed);
            }
        }

        // cache records
        let cdir = self.cache_dir();
        for e in fs::read_dir(&cdir).ctx("read dir", &cdir)? {
            let e = e.ctx("read dir", &cdir)?;
            let path = e.path();
            r.cache_records_checked += 1;
            let rec = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            let msg = match rec {
                None => Some("unreadable record".to_string()),
                Some(v) => {
                    let key = v.get("key").and_then(|k| k.as_str()).unwrap_or_default();
                    let name_ok = path.file_name().and_then(|n| n.to_str())
                        == Some(&format!("{}.json", Digest::of(key.as_bytes()).hex()));
                    let layer = v
                        .pointer("/record/layer/descriptor/digest")
                        .and_then(|d| d.as_str())
                        .map(Digest::parse);
                    if name_ok {
                        match layer {
                            Some(Ok(d)) if !good.contains(&d) => {
                                Some(format!("layer {d} missing or corrupt"))
                            }
                            Some(Err(_)) => Some("invalid layer digest".into()),
                            _ => None,
                        }
                    } else {
                        Some("file name does not match the key".into())
                    }
                }
            };
            if let Some(msg) = msg {
                let fixed = repair && fs::remove_file(&path).is_ok();
                problem("cache", path.display().to_string(), msg, fixed);
            }
        }
        drop(gc_lock);

        // temp files of dead owners (never a problem: a killed process leaves them)
        scan_leases(self, repair)?;
        let tdir = self.tmp_dir();
        let mut own = HashSet::new();
        if let Ok(id) = self.lease_id() {
            own.insert(id);
        }
        for e in fs::read_dir(&tdir).ctx("read dir", &tdir)? {
            let e = e.ctx("read dir", &tdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !own.contains(temp_owner(&name)) && !temp_owner_live(self, &name) {
                r.stale_temp += 1;
            }
        }
        if repair {
            clean_temp(self, &own)?;
        }
        r.ok = r.problems.iter().all(|p| p.repaired);
        Ok(r)
    }
}

/// Checks one tagged image against the set of good blobs; returns its diff_ids.
fn check_image(
    store: &Store,
    good: &HashSet<Digest>,
    digest: &Digest,
    size: u64,
) -> std::result::Result<Vec<String>, String> {
    if !good.contains(digest) {
        return Err(format!("manifest {digest} missing or corrupt"));
    }
    let bytes = fs::read(store.blob_path(digest)).map_err(|e| e.to_string())?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "manifest {digest} has size {} not {size}",
            bytes.len()
        ));
    }
    let m: Manifest = from_json(&bytes, "manifest").map_err(|e| e.to_string())?;
    if !good.contains(&m.config.digest) {
        return Err(format!("config {} missing or corrupt", m.config.digest));
    }
    let cb = fs::read(store.blob_path(&m.config.digest)).map_err(|e| e.to_string())?;
    let c: ImageConfig = from_json(&cb, "config").map_err(|e| e.to_string())?;
    for l in &m.layers {
        if !good.contains(&l.digest) {
            return Err(format!("layer {} missing or corrupt", l.digest));
        }
        let actual = fs::metadata(store.blob_path(&l.digest)).map_or(0, |m| m.len());
        if actual != l.size {
            return Err(format!(
                "layer {} has size {actual} not {}",
                l.digest, l.size
            ));
        }
    }
    if c.rootfs.diff_ids.len() != m.layers.len() {
        return Err(format!(
            "{} layers but {} diff_ids",
            m.layers.len(),
            c.rootfs.diff_ids.len()
        ));
    }
    Ok(c.rootfs.diff_ids.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Descriptor, MEDIA_TYPE_LAYER_TAR, RootFs};

    #[test]
    fn finds_and_repairs_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let b = s.put_blob_bytes(b"layer").unwrap();
        let cfg = ImageConfig {
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![b.digest.clone()],
            },
            ..ImageConfig::default()
        };
        let img = s
            .write_image(
                &cfg,
                &[Descriptor::new(
                    MEDIA_TYPE_LAYER_TAR,
                    b.digest.clone(),
                    b.size,
                )],
            )
            .unwrap();
        s.tag(&Reference::parse("x").unwrap(), &img.manifest)
            .unwrap();
        let clean = s.fsck(false).unwrap();
        assert!(clean.ok, "{clean:?}");
        assert_eq!(clean.blobs_checked, 3);
        // corrupt the layer, plant a broken snapshot and a dead process's temp file
        fs::write(s.blob_path(&b.digest), b"LAYER").unwrap();
        fs::create_dir_all(s.snapshots_dir().join(b.digest.hex())).unwrap();
        fs::write(s.tmp_dir().join("ldead.3.blob"), b"x").unwrap();
        let r = s.fsck(false).unwrap();
        assert!(!r.ok);
        let kinds: Vec<&str> = r.problems.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["blob", "image", "snapshot"], "{r:?}");
        assert_eq!(r.stale_temp, 1);
        let r = s.fsck(true).unwrap();
        assert!(r.ok && r.problems.iter().all(|p| p.repaired), "{r:?}");
        let r = s.fsck(false).unwrap();
        assert!(r.ok && r.problems.is_empty() && r.stale_temp == 0, "{r:?}");
        assert!(s.list_tags().unwrap().is_empty());
    }

    #[test]
    fn fsck_leaves_build_runs_and_verified_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (files, _lock) = crate::gc::tests::plant_foreign_state(dir.path());
        let b = s.put_blob_bytes(b"layer").unwrap();
        s.verify_blob_fast(&b.digest, None).unwrap();
        let stamp = s.verified_stamp_path(&b.digest);
        assert!(stamp.is_file());
        let r = s.fsck(true).unwrap();
        assert!(r.ok && r.problems.is_empty() && r.stale_temp == 0, "{r:?}");
        for planted in &files {
            assert_eq!(
                fs::read(planted).unwrap(),
                b"state",
                "{}",
                planted.display()
            );
        }
        assert!(stamp.is_file());
        // a blob corrupted in place (same size, no new stamp) loses its stamp, so the fast
        // check re-hashes it
        let blob = s.blob_path(&b.digest);
        let file = fs::File::options().write(true).open(&blob).unwrap();
        std::os::unix::fs::FileExt::write_at(&file, b"L", 0).unwrap();
        let r = s.fsck(false).unwrap();
        assert!(!r.ok);
        assert!(!stamp.exists());
        assert!(s.verify_blob_fast(&b.digest, None).is_err());
    }
}
