//! Integration tests: drive the `ns-run` binary (and the library with the binary as helper).
//! Almost all need root (namespaces, overlayfs, mknod) and are `#[ignore]`d otherwise.
mod basics;
mod isolation;
mod lifecycle;
mod mounts;
mod network;
mod reexec;
mod rootless;
mod sandbox;
mod user;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_ns-run");

/// Makes this test binary a container init when `ns_run::run` re-executes it
/// (`/proc/self/exe`, no `RunSpec::helper`): libtest owns `main`, so the call that a program's
/// `main` starts with runs from `.init_array`, before it.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT_HOOK: extern "C" fn() = init_hook;

extern "C" fn init_hook() {
    if std::env::var_os(sandbox::PROBE_ENV).is_some() {
        sandbox::probe();
    }
    ns_run::init_if_requested();
}

/// A busybox rootfs (scripts/make-base) extracted once per test run, world-readable.
pub fn busybox() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // bases of earlier test processes that are gone
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("ns-run-base-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ns-run-base-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let tar = base.join("busybox.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-base");
        let st = Command::new(script)
            .arg(&tar)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "make-base failed");
        let root = base.join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success());
        root
    })
}

/// The result of one `ns-run` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
    pub fn upper(&self) -> PathBuf {
        PathBuf::from(self.json()["upper"].as_str().unwrap())
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A work root of its own for each test.
pub fn work_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ns-run-it-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Runs `ns-run --work-root W --lower busybox ARGS -- CMD`.
pub fn ns(work: &Path, args: &[&str], cmd: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.arg("--work-root").arg(work).arg("--lower").arg(busybox());
    c.args(args).arg("--").args(cmd).stdin(Stdio::null());
    c.output().unwrap().into()
}

/// Runs a shell script inside the busybox container.
pub fn sh(work: &Path, args: &[&str], script: &str) -> Run {
    ns(work, args, &["sh", "-c", script])
}

/// All paths in a tree, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn help_lists_every_flag() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    for f in [
        "--lower",
        "--upper",
        "--work-root",
        "--env",
        "--workdir",
        "--user",
        "--hostname",
        "--network",
        "--mount",
        "--no-seccomp",
        "--interactive",
        "--overlay",
        "--security",
        "--ulimit",
    ] {
        assert!(s.contains(f), "{f} missing from --help");
    }
}

#[test]
fn usage_errors_exit_2() {
    let o = Command::new(BIN)
        .args(["--network", "bogus", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(BIN)
        .args(["--lower", "relative/dir", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("ns-run: error: invalid run spec"));
}
