//! Garbage collection: removes blobs and snapshots that no tag, cache record or live lease
//! reaches, dead owners' temp files and stale leases.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use rustix::fs::FlockOperation;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::oci::{Index, Manifest, from_json, is_index_media_type};
use crate::store::{Store, lease_is_live, temp_owner};

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Always 1.
    pub version: u32,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Temp files and directories of dead processes removed.
    pub temp_removed: u64,
    /// Cache records removed (`--prune-cache`).
    pub cache_records_removed: u64,
    /// Bytes freed (apparent sizes).
    pub bytes_freed: u64,
}

/// Options of [`Store::gc_with`].
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Empty the build cache index first.
    pub prune_cache: bool,
    /// Keep unreferenced content younger than this.
    pub grace: Duration,
}

/// Age after which a foreign temp file in `blobs/sha256` counts as abandoned.
pub const FOREIGN_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Whether a foreign temp file is older than [`FOREIGN_TEMP_AGE`].
pub(crate) fn is_abandoned(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= FOREIGN_TEMP_AGE)
}

/// Size of a file or a directory tree (apparent sizes).
pub(crate) fn tree_size(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

/// The live-lease ids, removing stale lease files on the way. Returns (live ids, their digests).
pub(crate) fn scan_leases(
    store: &Store,
    remove_stale: bool,
) -> Result<(HashSet<String>, HashSet<String>)> {
    let dir = store.root().join("leases");
    let mut live = HashSet::new();
    let mut digests = HashSet::new();
    for e in fs::read_dir(&dir).ctx("read dir", &dir)? {
        let e = e.ctx("read dir", &dir)?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if lease_is_live(&path) {
            if let Ok(text) = fs::read_to_string(&path) {
                digests.extend(text.lines().map(str::to_string));
            }
            live.insert(name);
        } else if remove_stale {
            let _ = fs::remove_file(&path);
        }
    }
    Ok((live, digests))
}

/// Whether the owner of temp entry `name` is alive, checked now (a lease taken after any earlier
/// scan counts).
pub(crate) fn temp_owner_live(store: &Store, name: &str) -> bool {
    let owner = temp_owner(name);
    lease_is_live(&store.root().join("leases").join(owner))
        || (Path::new(name).extension().is_some_and(|e| e == "lease")
            && lease_is_live(&store.tmp_dir().join(name)))
}

/// Removes temp entries whose owner lease is not live (checked per entry, at that moment) and
/// not in `keep`. Returns (count, bytes).
pub(crate) fn clean_temp(store: &Store, keep: &HashSet<String>) -> Result<(u64, u64)> {
    let dir = store.tmp_dir();
    let (mut n, mut bytes) = (0, 0);
    for e in fs::read_dir(&dir).ctx("read dir", &dir)? {
        let e = e.ctx("read dir", &dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(temp_owner(&name)) || temp_owner_live(store, &name) {
            continue;
        }
        let p = e.path();
        bytes += tree_size(&p);
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if r.is_ok() {
            n += 1;
        }
    }
    Ok((n, bytes))
}

/// Reachability from the roots: returns (blob digests, snapshot diff_ids).
pub(crate) fn reachable(
    store: &Store,
    index: &Index,
    extra_roots: &HashSet<String>,
) -> (HashSet<String>, HashSet<String>) {
    let mut blobs: HashSet<String> = HashSet::new();
    let mut snaps: HashSet<String> = HashSet::new();
    let mut stack: Vec<(String, String)> = index
        .manifests
        .iter()
        .map(|d| (d.digest.to_string(), d.media_type.clone()))
        .collect();
    for (_, rec) in store.cache_entries().unwrap_or_default() {
        if let Some(l) = rec.layer {
            blobs.insert(l.descriptor.digest.to_string());
            snaps.insert(l.diff_id.to_string());
        }
    }
    for d in extra_roots {
        blobs.insert(d.clone());
        snaps.insert(d.clone());
    }
    while let Some((digest, media_type)) = stack.pop() {
        if !blobs.insert(digest.clone()) && !extra_roots.contains(&digest) {
            continue;
        }
        let Ok(d) = Digest::parse(&digest) else {
            continue;
        };
        let Ok(bytes) = fs::read(store.blob_path(&d)) else {
            continue;
        };
        if is_index_media_type(&media_type) {
            if let Ok(idx) = from_json::<Index>(&bytes, "index") {
                stack.extend(
                    idx.manifests
                        .iter()
                        .map(|m| (m.digest.to_string(), m.media_type.clone())),
                );
            }
            continue;
        }
        let Ok(m) = from_json::<Manifest>(&bytes, "manifest") else {
            continue;
        };
        blobs.insert(m.config.digest.to_string());
        for l in &m.layers {
            blobs.insert(l.digest.to_string());
        }
        if let Ok(cb) = fs::read(store.blob_path(&m.config.digest))
            && let Ok(c) = from_json::<crate::oci::ImageConfig>(&cb, "config")
        {
            snaps.extend(c.rootfs.diff_ids.iter().map(ToString::to_string));
        }
    }
    (blobs, snaps)
}

impl Store {
    /// Collects garbage. Holds the gc lock exclusively while it decides and deletes, so no writer
    /// or reader is between "recorded in its lease" and "made/read the content". With
    /// `prune_cache` the build cache index is emptied first.
    pub fn gc(&self, prune_cache: bool) -> Result<GcReport> {
        self.gc_with(&GcOptions {
            prune_cache,
            grace: Duration::ZERO,
        })
    }

    /// [`Store::gc`] with options: unreferenced blobs that this library did not write or verify
    /// (no `verified/` stamp) and unreferenced snapshots modified less than `grace` ago are kept
    /// (for writers outside this library, such as `layer-pack pack --store` piped into
    /// `image-store commit`, which hold no lease, and for a run still using the lower dirs of
    /// an image removed meanwhile). Blobs of a removed image are freed at once.
    pub fn gc_with(&self, opts: &GcOptions) -> Result<GcReport> {
        let prune_cache = opts.prune_cache;
        let young = |p: &Path| {
            !opts.grace.is_zero()
                && fs::symlink_metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age < opts.grace)
        };
        let mut report = GcReport {
            version: 1,
            ..GcReport::default()
        };
        // our own lease must not be taken while we hold the gc lock exclusively (it is not needed)
        let gc_lock = self.lock_file("gc", FlockOperation::LockExclusive)?;
        if prune_cache {
            report.cache_records_removed = self.cache_clear()? as u64;
        }
        // leases first, then the index and cache: a writer tags (or caches) before it releases
        // its lease, so content is seen in one or the other
        let (_, leased) = scan_leases(self, true)?;
        let index = self.read_index()?;
        let (blobs, snaps) = reachable(self, &index, &leased);
        let trash = self.tmp_dir();
        let mut doomed_snapshots = Vec::new();
        let sdir = self.snapshots_dir();
        for e in fs::read_dir(&sdir).ctx("read dir", &sdir)? {
            let e = e.ctx("read dir", &sdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if snaps.contains(&format!("sha256:{name}")) || young(&e.path()) {
                continue;
            }
            // rename out of the way first: the snapshot vanishes in one step
            let t = trash.join(format!("gc-{name}.trash"));
            if fs::rename(e.path(), &t).is_ok() {
                doomed_snapshots.push(t);
            }
        }
        let bdir = self.blobs_dir().join("sha256");
        for e in fs::read_dir(&bdir).ctx("read dir", &bdir)? {
            let e = e.ctx("read dir", &bdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            // the grace covers blobs another tool wrote (no stamp: `layer-pack pack --store`
            // before its `commit`); what the store wrote or verified went in under a lease
            if blobs.contains(&format!("sha256:{name}"))
                || (young(&e.path()) && !self.root().join("verified").join(&name).exists())
            {
                continue;
            }
            // another tool's temp file (e.g. `.layer-pack-XXXX`): only when clearly abandoned
            if Digest::parse(&format!("sha256:{name}")).is_err() && !is_abandoned(&e.path()) {
                continue;
            }
            let size = e.metadata().map_or(0, |m| m.len());
            if fs::remove_file(e.path()).is_ok() {
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }
        }
        crate::store::sync_parent(&bdir.join("x"))?;
        // `verify_blob_fast` stamps of removed blobs (a stamp is only a hint: a stale one is
        // harmless, but it would pile up). `build/` and `runs/` belong to pelagos-build and
        // ns-run and are never looked at.
        self.clean_verified_stamps();
        drop(gc_lock);
        for t in doomed_snapshots {
            report.bytes_freed += tree_size(&t);
            if fs::remove_dir_all(&t).is_ok() {
                report.snapshots_removed += 1;
            }
        }
        let (n, bytes) = clean_temp(self, &HashSet::new())?;
        report.temp_removed = n;
        report.bytes_freed += bytes;
        Ok(report)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::oci::{Descriptor, ImageConfig, MEDIA_TYPE_LAYER_TAR, RootFs};
    use crate::reference::Reference;

    /// Writes an untagged one-layer image (shared by the store's unit tests).
    pub(crate) fn image(s: &Store, layer: &[u8]) -> crate::images::WrittenImage {
        let b = s.put_blob_bytes(layer).unwrap();
        let cfg = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![b.digest.clone()],
            },
            ..ImageConfig::default()
        };
        s.write_image(
            &cfg,
            &[Descriptor::new(MEDIA_TYPE_LAYER_TAR, b.digest, b.size)],
        )
        .unwrap()
    }

    #[test]
    fn gc_keeps_what_a_live_handle_wrote_and_frees_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Store::open(dir.path()).unwrap();
        let collector = Store::open(dir.path()).unwrap();
        let img = image(&writer, b"layer one");
        // not tagged yet: only the writer's lease protects it
        let r = collector.gc(false).unwrap();
        assert_eq!(r.blobs_removed, 0);
        assert!(writer.has_blob(&img.manifest.digest));
        // the writer can still tag what it made
        writer
            .tag(&Reference::parse("a:1").unwrap(), &img.manifest)
            .unwrap();
        writer.untag(&Reference::parse("a:1").unwrap()).unwrap();
        drop(writer);
        let r = collector.gc(false).unwrap();
        assert_eq!(r.blobs_removed, 3, "{r:?}");
        assert!(!collector.has_blob(&img.manifest.digest));
    }

    #[test]
    fn gc_keeps_tagged_and_cached_content() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let img = image(&s, b"tagged");
        s.tag(&Reference::parse("t").unwrap(), &img.manifest)
            .unwrap();
        let b = s.put_blob_bytes(b"cached layer").unwrap();
        s.cache_put(
            "k",
            &crate::CacheRecord::with_layer(
                Descriptor::new(MEDIA_TYPE_LAYER_TAR, b.digest.clone(), b.size),
                b.digest.clone(),
            ),
        )
        .unwrap();
        let loose = s.put_blob_bytes(b"loose").unwrap();
        s.release();
        let r = s.gc(false).unwrap();
        assert_eq!(r.blobs_removed, 1);
        assert_eq!(r.bytes_freed, 5);
        assert!(!s.has_blob(&loose.digest));
        assert!(s.has_blob(&b.digest));
        assert!(s.has_blob(&img.config.digest));
        s.release();
        let r = s.gc(true).unwrap();
        assert_eq!(r.cache_records_removed, 1);
        assert!(!s.has_blob(&b.digest));
        assert!(s.has_blob(&img.config.digest));
    }

    #[test]
    fn stale_leases_and_their_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let loose = s.put_blob_bytes(b"x").unwrap();
        // a lease nobody holds (its process died) protects nothing
        let stale = dir.path().join("leases/ldead");
        fs::write(&stale, format!("{}\n", loose.digest)).unwrap();
        fs::write(dir.path().join("tmp/ldead.1.blob"), b"partial").unwrap();
        s.release();
        let r = s.gc(false).unwrap();
        assert_eq!(r.blobs_removed, 1);
        assert_eq!(r.temp_removed, 1);
        assert!(!stale.exists());
    }

    /// The builder's and ns-run's state dirs under the store root, with some content; a live
    /// run holds a flock on its run dir.
    pub(crate) fn plant_foreign_state(root: &Path) -> (Vec<std::path::PathBuf>, fs::File) {
        let files = vec![
            root.join("build/statcache.json"),
            root.join("build/cache-mounts/0123abcd/data/file"),
            root.join("runs/r-1234/lock"),
            root.join("runs/r-1234/upper/x"),
            root.join("runs/r-dead/upper/y"),
        ];
        for f in &files {
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, b"state").unwrap();
        }
        let lock = fs::File::open(root.join("runs/r-1234/lock")).unwrap();
        rustix::fs::flock(&lock, FlockOperation::LockExclusive).unwrap();
        (files, lock)
    }

    #[test]
    fn gc_leaves_build_and_runs_alone_and_drops_stale_verified_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (files, _lock) = plant_foreign_state(dir.path());
        let kept = image(&s, b"kept layer");
        s.tag(&Reference::parse("kept").unwrap(), &kept.manifest)
            .unwrap();
        let gone = image(&s, b"gone layer");
        let gone_layer = s.read_blob(&gone.manifest.digest).unwrap();
        let gone_layer: crate::oci::Manifest = crate::oci::from_json(&gone_layer, "m").unwrap();
        let gone_layer = gone_layer.layers[0].digest.clone();
        s.verify_blob_fast(&gone_layer, None).unwrap();
        s.verify_blob_fast(&kept.config.digest, None).unwrap();
        let stale = s.verified_stamp_path(&gone_layer);
        let live = s.verified_stamp_path(&kept.config.digest);
        assert!(stale.is_file() && live.is_file());
        let abandoned_tmp = stale.with_extension("tmp999999");
        fs::write(&abandoned_tmp, b"x").unwrap();
        let old = std::time::SystemTime::now() - FOREIGN_TEMP_AGE - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&abandoned_tmp)
            .unwrap()
            .set_modified(old)
            .unwrap();
        drop(s);
        let r = Store::open(dir.path()).unwrap().gc(true).unwrap();
        assert!(r.blobs_removed >= 3, "{r:?}");
        assert!(!stale.exists() && !abandoned_tmp.exists());
        assert!(live.is_file());
        for f in &files {
            assert_eq!(fs::read(f).unwrap(), b"state", "{}", f.display());
        }
    }
}
