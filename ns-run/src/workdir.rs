//! Per-run scratch dirs under the work root, their locks, the sweep of leftovers from killed
//! runs, and tree removal.
//!
//! Layout: `WORK_ROOT/run-<pid>-<n>-<nanos>.lock` (held with `flock` for the whole run) and
//! `WORK_ROOT/run-<pid>-<n>-<nanos>/{upper,work,scratch}`. A finished run removes `work`,
//! `scratch` and the lock file; the upper dir stays for the caller. A killed run leaves its lock
//! file unlocked: [`crate::sweep`] (run at the start of every run) removes such runs.
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::RunError;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunError + use<'a> {
    move |source| RunError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn rx(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// A run's scratch dir, locked while it lives.
pub(crate) struct RunDir {
    pub dir: PathBuf,
    pub lock_path: PathBuf,
    _lock: OwnedFd,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn same_file(fd: &impl AsFd, path: &Path) -> bool {
    match (rustix::fs::fstat(fd), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.st_ino == b.ino() && a.st_dev == b.dev(),
        _ => false,
    }
}

impl RunDir {
    pub(crate) fn create(work_root: &Path) -> Result<Self, RunError> {
        fs::create_dir_all(work_root).map_err(io_err("create work root", work_root))?;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(
                "run-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let lock_path = work_root.join(format!("{name}.lock"));
            let fd = match rustix::fs::open(
                &lock_path,
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(io_err("create lock", &lock_path)(rx(e))),
            };
            rustix::fs::flock(&fd, FlockOperation::LockExclusive)
                .map_err(|e| io_err("lock", &lock_path)(rx(e)))?;
            // A concurrent sweep may have taken the lock first and removed the file.
            if !same_file(&fd, &lock_path) {
                continue;
            }
            let dir = work_root.join(&name);
            fs::create_dir(&dir).map_err(io_err("create run dir", &dir))?;
            return Ok(Self {
                dir,
                lock_path,
                _lock: fd,
            });
        }
    }

    /// Removes everything but (when `keep_upper`) the upper dir, then the lock.
    pub(crate) fn finish(self, keep_upper: bool) {
        if keep_upper {
            for d in ["work", "scratch"] {
                let _ = remove_tree(&self.dir.join(d));
            }
        } else {
            let _ = remove_tree(&self.dir);
        }
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Removes stale runs (unlocked lock files) under `work_root`.
pub(crate) fn sweep(work_root: &Path) -> Result<usize, RunError> {
    let rd = match fs::read_dir(work_root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("read work root", work_root)(e)),
    };
    let mut n = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(stem) = name.to_str().and_then(|s| s.strip_suffix(".lock")) else {
            continue;
        };
        if !stem.starts_with("run-") {
            continue;
        }
        let lock_path = ent.path();
        let Ok(fd) = rustix::fs::open(&lock_path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        else {
            continue;
        };
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a live run
        }
        if !same_file(&fd, &lock_path) {
            continue; // finished (and unlinked) meanwhile
        }
        let dir = work_root.join(stem);
        if dir.exists() {
            remove_tree(&dir)?;
        }
        let _ = fs::remove_file(&lock_path);
        n += 1;
    }
    Ok(n)
}

/// Removes a tree, making directories writable/searchable first when needed (overlayfs leaves
/// a mode-000 `work/work`; commands may leave read-only dirs).
pub(crate) fn remove_tree(path: &Path) -> Result<(), RunError> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    open_up(path);
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

fn open_up(path: &Path) {
    let Ok(m) = fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    if m.mode() & 0o700 != 0o700 {
        let _ = fs::set_permissions(
            path,
            fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700),
        );
    }
    if let Ok(rd) = fs::read_dir(path) {
        for e in rd.flatten() {
            open_up(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_unlocked_runs() {
        let root = tempfile::tempdir().unwrap();
        let live = RunDir::create(root.path()).unwrap();
        fs::create_dir(live.dir.join("upper")).unwrap();
        // a stale run: lock file present, not locked
        fs::create_dir_all(root.path().join("run-1-2-3/upper/x")).unwrap();
        fs::write(root.path().join("run-1-2-3.lock"), "").unwrap();
        // a finished run: no lock file, kept for the caller
        fs::create_dir_all(root.path().join("run-4-5-6/upper")).unwrap();
        assert_eq!(sweep(root.path()).unwrap(), 1);
        assert!(!root.path().join("run-1-2-3").exists());
        assert!(!root.path().join("run-1-2-3.lock").exists());
        assert!(root.path().join("run-4-5-6").exists());
        assert!(live.dir.exists());
        let dir = live.dir.clone();
        live.finish(true);
        assert!(dir.join("upper").exists());
        assert_eq!(sweep(root.path()).unwrap(), 0);
    }

    #[test]
    fn remove_tree_handles_mode_000_dirs() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("t/work/work");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), "").unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o000)).unwrap();
        remove_tree(&root.path().join("t")).unwrap();
        assert!(!root.path().join("t").exists());
    }
}
