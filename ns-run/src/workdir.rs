//! Per-run scratch dirs under the work root, their locks, the sweep of leftovers from killed
//! runs, and tree removal.
//!
//! Layout: `WORK_ROOT/run-<pid>-<n>-<nanos>/{upper,work,scratch}`; the run dir itself is held
//! with `flock` for the whole run (and its cleanup). A finished run removes `work` and
//! `scratch`; the upper dir stays for the caller. A killed run leaves an unlocked run dir that
//! still has `work`: [`crate::sweep`] (run at the start of every run) removes such dirs.
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
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
    lock: OwnedFd,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn open_dir(p: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
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
            let dir = work_root.join(&name);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create run dir", &dir)(e)),
            }
            let lock = open_dir(&dir).map_err(|e| io_err("open run dir", &dir)(rx(e)))?;
            rustix::fs::flock(&lock, FlockOperation::LockExclusive)
                .map_err(|e| io_err("lock run dir", &dir)(rx(e)))?;
            return Ok(Self { dir, lock });
        }
    }

    /// Removes everything but (when `keep_upper`) the upper dir; in the background when asked
    /// (the run dir stays locked until the removal is done).
    pub(crate) fn finish(self, keep_upper: bool, background: bool) {
        let targets: Vec<PathBuf> = if keep_upper {
            vec![self.dir.join("work"), self.dir.join("scratch")]
        } else {
            vec![self.dir.clone()]
        };
        if !background {
            remove_all(&targets);
            return;
        }
        if crate::parent::single_threaded() {
            detached_remove(&targets);
        } else {
            let lock = self.lock;
            std::thread::spawn(move || {
                remove_all(&targets);
                drop(lock);
            });
        }
    }
}

fn remove_all(targets: &[PathBuf]) {
    for t in targets {
        let _ = remove_tree(t);
    }
}

/// Removes `targets` in a detached grandchild (double fork) so that the caller can exit or go
/// on at once; the grandchild inherits the run dir's lock. Single-threaded callers only.
fn detached_remove(targets: &[PathBuf]) {
    // SAFETY: the process is single-threaded, so the forked children may run Rust code.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            remove_all(targets);
            return;
        }
        if pid > 0 {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            return;
        }
        libc::setsid();
        if libc::fork() != 0 {
            libc::_exit(0);
        }
        // Let pipelines reading the caller's stdout/stderr see EOF.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        remove_all(targets);
        libc::_exit(0);
    }
}

/// Removes stale runs (unlocked run dirs that still have their scratch) under `work_root`.
pub(crate) fn sweep(work_root: &Path) -> Result<usize, RunError> {
    let rd = match fs::read_dir(work_root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("read work root", work_root)(e)),
    };
    let mut n = 0;
    for ent in rd.flatten() {
        if !ent
            .file_name()
            .to_str()
            .is_some_and(|s| s.starts_with("run-"))
        {
            continue;
        }
        let dir = ent.path();
        if !dir.join("work").exists() && !dir.join("scratch").exists() {
            continue; // finished: the upper dir is the caller's
        }
        let Ok(fd) = open_dir(&dir) else { continue };
        if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a live run
        }
        remove_tree(&dir)?;
        n += 1;
    }
    Ok(n)
}

/// Removes a tree, making directories writable/searchable first when needed (overlayfs leaves
/// a mode-000 `work/work`; commands may leave read-only dirs). When not root and that fails
/// (files owned by sub-ids), removes it from inside a user namespace with the same id map.
pub(crate) fn remove_tree(path: &Path) -> Result<(), RunError> {
    match remove_plain(path) {
        Err(RunError::Io { source, .. })
            if !rustix::process::geteuid().is_root()
                && matches!(
                    source.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::ENOTEMPTY)
                ) =>
        {
            crate::parent::remove_in_userns(path)
        }
        r => r,
    }
}

fn remove_plain(path: &Path) -> Result<(), RunError> {
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
        fs::create_dir(live.dir.join("work")).unwrap();
        // a stale run: scratch present, not locked
        fs::create_dir_all(root.path().join("run-1-2-3/upper/x")).unwrap();
        fs::create_dir_all(root.path().join("run-1-2-3/work/work")).unwrap();
        // a finished run: only the upper dir, kept for the caller
        fs::create_dir_all(root.path().join("run-4-5-6/upper")).unwrap();
        assert_eq!(sweep(root.path()).unwrap(), 1);
        assert!(!root.path().join("run-1-2-3").exists());
        assert!(root.path().join("run-4-5-6").exists());
        assert!(live.dir.exists());
        let dir = live.dir.clone();
        live.finish(true, false);
        assert!(dir.join("upper").exists());
        assert!(!dir.join("work").exists());
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
