//! The container init: the helper binary re-executed by [`crate::run`] in a fresh set of
//! namespaces. It is single-threaded, so it may allocate, read files and fork freely.
//!
//! File descriptors: 0–2 the command's stdio, 3 the config (a little-endian u32 length then
//! JSON), 4 the error channel (one JSON [`ChildError`] line per failure).
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{MountSpec, Network, OverlayDriver};

/// Env var naming the init mode (value: the protocol version).
pub(crate) const INIT_ENV: &str = "_NS_RUN_INIT";
pub(crate) const CONFIG_FD: i32 = 3;
pub(crate) const ERROR_FD: i32 = 4;

/// What the parent sends to the init.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub fresh_upper: bool,
    pub work: PathBuf,
    pub scratch: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub hostname: String,
    pub network: Network,
    pub mounts: Vec<MountSpec>,
    pub seccomp: bool,
    pub insecure: bool,
    pub rlimits: Vec<crate::Rlimit>,
    pub overlay: OverlayDriver,
    pub rootless: bool,
    pub setgroups_allowed: bool,
}

/// A failure inside the container before the command was executed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildError {
    pub stage: String,
    pub path: String,
    pub errno: i32,
    pub message: String,
}

impl ChildError {
    pub(crate) fn os(stage: &str, path: impl std::fmt::Display, e: &io::Error) -> Self {
        Self {
            stage: stage.into(),
            path: path.to_string(),
            errno: e.raw_os_error().unwrap_or(0),
            message: strip_os_suffix(e),
        }
    }

    pub(crate) fn msg(stage: &str, path: impl std::fmt::Display, message: String) -> Self {
        Self {
            stage: stage.into(),
            path: path.to_string(),
            errno: 0,
            message,
        }
    }
}

/// `io::Error`'s text without the " (os error N)" suffix.
fn strip_os_suffix(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

/// Adds context to an `io::Result`.
pub(crate) trait Ctx<T> {
    fn ctx(self, stage: &str, path: impl std::fmt::Display) -> Result<T, ChildError>;
}

impl<T> Ctx<T> for io::Result<T> {
    fn ctx(self, stage: &str, path: impl std::fmt::Display) -> Result<T, ChildError> {
        self.map_err(|e| ChildError::os(stage, path, &e))
    }
}

impl<T> Ctx<T> for Result<T, nix::Error> {
    fn ctx(self, stage: &str, path: impl std::fmt::Display) -> Result<T, ChildError> {
        self.map_err(|e| ChildError::os(stage, path, &io::Error::from(e)))
    }
}

fn report(e: &ChildError) {
    if let Ok(mut line) = serde_json::to_vec(e) {
        line.push(b'\n');
        // SAFETY: ERROR_FD is the error pipe handed over by the parent; not closed elsewhere.
        let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(ERROR_FD) });
        let _ = f.write_all(&line);
    }
}

fn read_config() -> Result<InitConfig, ChildError> {
    // SAFETY: CONFIG_FD is the config pipe handed over by the parent; owned here from now on.
    let mut f = unsafe { std::fs::File::from_raw_fd(CONFIG_FD) };
    let mut len = [0u8; 4];
    f.read_exact(&mut len).ctx("read config", "fd 3")?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    f.read_exact(&mut buf).ctx("read config", "fd 3")?;
    serde_json::from_slice(&buf).map_err(|e| ChildError::msg("read config", "fd 3", e.to_string()))
}

/// The init's main: never returns.
pub(crate) fn main() -> ! {
    // Drop every descriptor but stdio, config and error pipe.
    // runc's default umask, whatever the caller's.
    // SAFETY: close_range on descriptors this process does not use; umask cannot fail.
    unsafe {
        libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
        libc::umask(0o022);
    }
    let code = match run_init() {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            1
        }
    };
    // SAFETY: plain _exit.
    unsafe { libc::_exit(code) }
}

fn run_init() -> Result<i32, ChildError> {
    let cfg = read_config()?;
    let prepared = crate::rootfs::setup(&cfg)?;
    let programs = if cfg.seccomp && !cfg.insecure {
        Some(crate::seccomp::programs().map_err(|m| ChildError::msg("seccomp", "profile", m))?)
    } else {
        None
    };
    // Everything the command child needs, prepared before fork.
    let argv: Vec<CString> = cfg
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ChildError::msg("exec", "argv", "argument contains a NUL byte".into()))?;
    let envp: Vec<CString> = prepared
        .env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ChildError::msg("exec", "env", "variable contains a NUL byte".into()))?;
    let argv0 = cfg.argv.first().map_or("", String::as_str);
    let candidates = crate::exec::candidates(argv0, &prepared.env);
    // SAFETY: this process is single-threaded (a freshly exec'd helper).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ChildError::os(
            "fork",
            "command",
            &io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        let e = crate::exec::exec_command(
            &cfg,
            &prepared,
            programs.as_deref(),
            &argv,
            &envp,
            &candidates,
        );
        report(&e);
        // SAFETY: plain _exit.
        unsafe { libc::_exit(127) }
    }
    // SAFETY: closing the config fd is harmless here; the command child has its own copy.
    Ok(crate::exec::supervise(pid))
}
