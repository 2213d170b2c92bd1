//! The store handle: layout creation, paths, locks, leases and atomic writes.
//!
//! Concurrency protocol (see the README):
//! - `locks/index` (exclusive flock) serialises read-modify-write of `index.json`.
//! - `locks/gc`: gc holds it exclusively while it computes reachability and deletes; every writer
//!   or reader holds it shared while it records digests in its lease and makes or reads the
//!   content. So gc sees either the lease entry or nothing in flight.
//! - A lease is a file `leases/<id>` held under an exclusive flock by its owner for the owner's
//!   lifetime, listing the digests (blobs and snapshot diff_ids) it uses. gc treats them as roots;
//!   a lease whose lock can be taken belongs to a dead process and is removed. Temp files carry
//!   their owner's lease id as a prefix so that gc and fsck remove only dead owners' temp files.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::oci::{Index, canonical_json};

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A handle on a store directory. Cheap to open; `Send + Sync` (one handle can serve threads).
///
/// A handle takes a lease on first use: everything it writes or resolves stays protected from a
/// concurrent `gc` until the handle is dropped (or [`Store::release`] is called).
pub struct Store {
    root: PathBuf,
    lease: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

struct Lease {
    id: String,
    file: File,
    protected: HashSet<String>,
}

/// A held flock on a file under `locks/`; released on drop.
pub(crate) struct LockGuard {
    _file: File,
}

fn flock(file: &File, op: FlockOperation, path: &Path) -> Result<()> {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(StoreError::io("lock", path, e.into())),
        }
    }
}

/// Whether the lease file at `path` is held by a live process (its flock cannot be taken).
pub(crate) fn lease_is_live(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    match rustix::fs::flock(&f, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(_) => true,
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Store {
    /// Opens the store at `root`, creating the layout (`oci-layout`, `index.json`, `blobs/sha256`
    /// and the private directories) when missing.
    pub fn open(root: &Path) -> Result<Store> {
        fs::create_dir_all(root).ctx("create directory", root)?;
        let store = Store {
            // absolute, so snapshot paths handed to other tools work from any directory
            root: fs::canonicalize(root).ctx("resolve", root)?,
            lease: Mutex::new(None),
        };
        for d in [
            store.root.clone(),
            store.root.join("blobs/sha256"),
            store.snapshots_dir(),
            store.cache_dir(),
            store.root.join("leases"),
            store.root.join("locks"),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&d).ctx("create directory", &d)?;
        }
        let layout = store.root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                let v: serde_json::Value =
                    crate::oci::from_json(&bytes, &layout.display().to_string())?;
                if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
                    return Err(StoreError::Invalid {
                        what: layout.display().to_string(),
                        reason: "unsupported imageLayoutVersion".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store.write_atomic(&layout, OCI_LAYOUT.as_bytes())?;
            }
            Err(e) => return Err(StoreError::io("read", &layout, e)),
        }
        let index = store.index_path();
        if !index.exists() {
            let _g = store.lock_index()?;
            if !index.exists() {
                store.write_atomic(&index, &canonical_json(&Index::empty())?)?;
            }
        }
        Ok(store)
    }

    /// The default store root: `$PELAGOS_STORE`, else `/var/lib/pelagos` for root, else
    /// `$XDG_DATA_HOME/pelagos`, else `~/.local/share/pelagos`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("PELAGOS_STORE").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/pelagos");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return PathBuf::from(x).join("pelagos");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        home.join(".local/share/pelagos")
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/blobs` (holds `sha256/<hex>`).
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `ROOT/index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// `ROOT/tmp`: scratch space on the store's file system (renames into the store are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `ROOT/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `ROOT/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The path of a blob (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    pub(crate) fn lock_file(&self, name: &str, op: FlockOperation) -> Result<LockGuard> {
        let path = self.root.join("locks").join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open lock", &path)?;
        flock(&file, op, &path)?;
        Ok(LockGuard { _file: file })
    }

    /// Holds the `index.json` lock.
    pub(crate) fn lock_index(&self) -> Result<LockGuard> {
        self.lock_file("index", FlockOperation::LockExclusive)
    }

    /// Ensures this handle has a lease; returns its id.
    pub(crate) fn lease_id(&self) -> Result<String> {
        let mut guard = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = guard.as_ref() {
            return Ok(l.id.clone());
        }
        let lease = self.new_lease()?;
        let id = lease.id.clone();
        *guard = Some(lease);
        Ok(id)
    }

    fn new_lease(&self) -> Result<Lease> {
        let mut last_err = None;
        for _ in 0..5 {
            let id = format!("l{}", unique_suffix());
            let tmp = self.tmp_dir().join(format!("{id}.lease"));
            let file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .append(true)
                .open(&tmp)
                .ctx("create lease", &tmp)?;
            flock(&file, FlockOperation::LockExclusive, &tmp)?;
            let dest = self.root.join("leases").join(&id);
            match fs::rename(&tmp, &dest) {
                Ok(()) => {
                    return Ok(Lease {
                        id,
                        file,
                        protected: HashSet::new(),
                    });
                }
                // a concurrent cleaner removed the not-yet-live temp lease: try again
                Err(e) => last_err = Some(StoreError::io("rename", &dest, e)),
            }
        }
        Err(last_err.unwrap_or_else(|| StoreError::Unsupported("lease creation".into())))
    }

    /// Releases this handle's lease: what it protected becomes collectable by `gc` unless
    /// referenced. A later write takes a new lease.
    pub fn release(&self) {
        let mut guard = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = guard.take() {
            let _ = fs::remove_file(self.root.join("leases").join(&l.id));
        }
    }

    /// Runs `f` while holding the gc lock shared, after recording `digests` in this handle's
    /// lease. Whatever `f` makes present or reads stays protected from gc afterwards.
    pub(crate) fn protected<T>(
        &self,
        digests: &[&Digest],
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _g = self.lock_file("gc", FlockOperation::LockShared)?;
        self.protect_locked(digests)?;
        f()
    }

    /// Records digests in the lease; the caller holds the gc lock shared.
    pub(crate) fn protect_locked(&self, digests: &[&Digest]) -> Result<()> {
        self.lease_id()?;
        let mut guard = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(lease) = guard.as_mut() else {
            return Ok(());
        };
        let mut lines = String::new();
        for d in digests {
            if lease.protected.insert(d.as_str().to_string()) {
                lines.push_str(d.as_str());
                lines.push('\n');
            }
        }
        if !lines.is_empty() {
            let path = self.root.join("leases").join(&lease.id);
            lease
                .file
                .write_all(lines.as_bytes())
                .ctx("write lease", &path)?;
        }
        Ok(())
    }

    /// Protects blobs (by digest) and snapshots (by diff_id) from `gc` for the life of this handle,
    /// e.g. content a build is about to reference. Protecting something absent is allowed.
    pub fn protect(&self, digests: &[&Digest]) -> Result<()> {
        self.protected(digests, || Ok(()))
    }

    /// Holds the gc lock shared (for callers that protect several things in one go).
    pub(crate) fn gc_shared(&self) -> Result<LockGuard> {
        self.lock_file("gc", FlockOperation::LockShared)
    }

    /// A fresh temp path in `ROOT/tmp` owned by this handle's lease.
    pub fn temp_path(&self, purpose: &str) -> Result<PathBuf> {
        let id = self.lease_id()?;
        Ok(self.tmp_dir().join(format!(
            "{id}.{}.{purpose}",
            SEQ.fetch_add(1, Ordering::Relaxed)
        )))
    }

    /// Writes `bytes` to `dest` atomically and durably (temp file, fsync, rename, fsync dir).
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path("write")?;
        let res = (|| {
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o644)
                .open(&tmp)
                .ctx("create", &tmp)?;
            f.write_all(bytes).ctx("write", &tmp)?;
            f.sync_all().ctx("fsync", &tmp)?;
            fs::rename(&tmp, dest).ctx("rename", dest)?;
            sync_parent(dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.release();
    }
}

/// fsyncs the directory containing `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let d = File::open(dir).ctx("open dir", dir)?;
    d.sync_all().ctx("fsync dir", dir)
}

/// Owner lease id of a temp entry name (`<lease>.<rest>`).
pub(crate) fn temp_owner(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        let idx = fs::read_to_string(s.index_path()).unwrap();
        assert_eq!(
            idx,
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
        drop(s);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn refuses_unknown_layout_version() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"9"}"#,
        )
        .unwrap();
        assert!(Store::open(dir.path()).is_err());
    }

    #[test]
    fn lease_is_live_while_held_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = s.lease_id().unwrap();
        let p = dir.path().join("leases").join(&id);
        assert!(lease_is_live(&p));
        drop(s);
        assert!(!p.exists());
    }
}
