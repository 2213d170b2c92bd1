//! The command child (user, capabilities, seccomp, exec) and the init's supervision loop
//! (signal forwarding, zombie reaping, exit status).
use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

use seccompiler::BpfProgram;

use crate::init::{ChildError, InitConfig};
use crate::rootfs::Prepared;

/// The executable paths to try for `argv0`, `PATH` taken from the command's environment.
pub(crate) fn candidates(argv0: &str, env: &[String]) -> Vec<CString> {
    if argv0.contains('/') {
        return CString::new(argv0).into_iter().collect();
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .filter_map(|d| CString::new(format!("{}/{argv0}", d.trim_end_matches('/'))).ok())
        .collect()
}

/// Applies the user, capabilities and seccomp, then executes the command. Returns only on
/// failure.
pub(crate) fn exec_command(
    cfg: &InitConfig,
    prep: &Prepared,
    programs: Option<&[BpfProgram]>,
    argv: &[CString],
    envp: &[CString],
    candidates: &[CString],
) -> ChildError {
    match try_exec(cfg, prep, programs, argv, envp, candidates) {
        Ok(e) | Err(e) => e,
    }
}

fn last_err(stage: &str, path: impl std::fmt::Display) -> ChildError {
    ChildError::os(stage, path, &io::Error::last_os_error())
}

fn try_exec(
    cfg: &InitConfig,
    prep: &Prepared,
    programs: Option<&[BpfProgram]>,
    argv: &[CString],
    envp: &[CString],
    candidates: &[CString],
) -> Result<ChildError, ChildError> {
    // SAFETY: plain system calls in a single-threaded child.
    unsafe {
        libc::setsid();
        // The error pipe closes on exec, so the parent sees only pre-exec failures.
        libc::fcntl(crate::init::ERROR_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        for s in FORWARDED.iter().chain(&[libc::SIGPIPE]) {
            libc::signal(*s, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
    }
    // Before the capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
    crate::rlimit::apply(&cfg.rlimits).map_err(|(l, e)| ChildError::os("setrlimit", l, &e))?;
    if cfg.insecure {
        // keep the permitted set across setuid: every capability goes back below
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    } else {
        crate::caps::drop_bounding(prep.last_cap)
            .map_err(|e| ChildError::os("drop capabilities", "bounding set", &e))?;
    }
    if let Some(p) = programs {
        crate::seccomp::install(p).map_err(|e| ChildError::os("seccomp", "install filter", &e))?;
    }
    let u = &prep.user;
    // SAFETY: plain system calls with valid pointers.
    unsafe {
        if libc::setgroups(u.groups.len(), u.groups.as_ptr()) != 0 {
            let e = io::Error::last_os_error();
            // setgroups is denied in a single-id user namespace; fine without extra groups.
            if cfg.setgroups_allowed || !u.groups.is_empty() {
                return Err(ChildError::os("setgroups", format!("{:?}", u.groups), &e));
            }
        }
        if libc::setgid(u.gid) != 0 {
            return Err(last_err("setgid", u.gid));
        }
        if libc::setuid(u.uid) != 0 {
            return Err(last_err("setuid", u.uid));
        }
    }
    if cfg.insecure {
        crate::caps::set_all_caps(prep.last_cap)
            .map_err(|e| ChildError::os("set capabilities", "all", &e))?;
    } else if u.uid == 0 {
        crate::caps::set_default_caps()
            .map_err(|e| ChildError::os("set capabilities", "default set", &e))?;
    }
    std::env::set_current_dir(&prep.workdir)
        .map_err(|e| ChildError::os("chdir", &prep.workdir, &e))?;

    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let mut first: Option<io::Error> = None;
    for c in candidates {
        // SAFETY: NUL-terminated arrays of valid C strings.
        unsafe { libc::execve(c.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        let e = io::Error::last_os_error();
        // Like execvp: remember a permission problem, keep looking after ENOENT/ENOTDIR.
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => {
                if first.is_none() && candidates.len() == 1 {
                    first = Some(e);
                }
            }
            _ => {
                if first
                    .as_ref()
                    .is_none_or(|f| f.raw_os_error() == Some(libc::ENOENT))
                {
                    first = Some(e);
                }
            }
        }
    }
    let name = cfg.argv.first().map_or("", String::as_str);
    Ok(match first {
        Some(e) => ChildError::os("exec", name, &e),
        None => ChildError {
            stage: "exec".into(),
            path: name.into(),
            errno: libc::ENOENT,
            message: "executable file not found in $PATH".into(),
        },
    })
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The signals PID 1 forwards to the command (and the command gets back at their defaults).
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// PID 1's loop: forwards signals to the command, reaps every child, and returns the
/// command's status (128+N when killed by signal N).
pub(crate) fn supervise(pid: libc::pid_t) -> i32 {
    CHILD.store(pid, Ordering::Relaxed);
    for s in FORWARDED {
        // SAFETY: installing an async-signal-safe handler.
        unsafe { libc::signal(s, forward as *const () as libc::sighandler_t) };
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &raw mut status, 0) };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return 1;
        }
        if r == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_uses_the_command_env() {
        let env = vec!["PATH=/a:/b/".to_string()];
        let c = candidates("sh", &env);
        assert_eq!(
            c,
            vec![
                CString::new("/a/sh").unwrap(),
                CString::new("/b/sh").unwrap()
            ]
        );
        assert_eq!(candidates("./x", &env), vec![CString::new("./x").unwrap()]);
        assert!(candidates("sh", &[]).len() == 1);
    }
}
