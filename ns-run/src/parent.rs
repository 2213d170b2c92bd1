//! The caller's side of a run: scratch dir, `clone` of the init (which only `execve`s the
//! helper, so multi-threaded callers are safe), id maps, network helper, config, wait, errors.
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::RunError;
use crate::init::{ChildError, INIT_ENV, InitConfig};
use crate::spec::{IdMapping, MountSpec, Network, Output, RunResult, RunSpec};
use crate::workdir::RunDir;

const SLOTS: usize = 128;
static ACTIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// Forwards `sig` to every init started by this process that is still running.
pub(crate) fn forward_signal(sig: i32) {
    for s in &ACTIVE {
        let pid = s.load(Ordering::Relaxed);
        if pid > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

struct Registered(Option<usize>);

impl Registered {
    fn new(pid: i32) -> Self {
        Self(ACTIVE.iter().position(|s| {
            s.compare_exchange(0, pid, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        }))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            ACTIVE[i].store(0, Ordering::Relaxed);
        }
    }
}

fn invalid(msg: impl Into<String>) -> RunError {
    RunError::InvalidSpec(msg.into())
}

fn validate(spec: &RunSpec) -> Result<(), RunError> {
    if spec.argv.is_empty() {
        return Err(invalid("empty command"));
    }
    for l in &spec.lowers {
        if !l.is_absolute() {
            return Err(invalid(format!(
                "lower dir {} is not absolute",
                l.display()
            )));
        }
        if !l.is_dir() {
            return Err(invalid(format!(
                "lower dir {} is not a directory",
                l.display()
            )));
        }
    }
    if let Some(u) = &spec.upper {
        if !u.is_absolute() {
            return Err(invalid(format!(
                "upper dir {} is not absolute",
                u.display()
            )));
        }
    }
    for e in &spec.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(invalid(format!(
                "environment entry {e:?} is not NAME=VALUE"
            )));
        }
    }
    if let Some(w) = &spec.workdir {
        if !w.starts_with('/') {
            return Err(invalid(format!("workdir {w:?} is not absolute")));
        }
    }
    for m in &spec.mounts {
        if !m.target().starts_with('/') {
            return Err(invalid(format!(
                "mount target {:?} is not absolute",
                m.target()
            )));
        }
    }
    Ok(())
}

/// Makes missing cache mount sources (like BuildKit, which creates a cache on first use).
fn make_cache_dirs(spec: &RunSpec) -> Result<(), RunError> {
    for m in &spec.mounts {
        if let MountSpec::Cache { source, .. } = m
            && !source.exists()
        {
            fs::create_dir_all(source).map_err(|e| RunError::Io {
                op: "create cache dir",
                path: source.clone(),
                source: e,
            })?;
        }
    }
    Ok(())
}

fn dup_high(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor owned by the caller.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: n is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
    Ok((dup_high(r.as_raw_fd())?, dup_high(w.as_raw_fd())?))
}

fn output_fd(o: &Output, own: RawFd, null: &OwnedFd) -> io::Result<OwnedFd> {
    match o {
        Output::Inherit => dup_high(own),
        Output::Null => dup_high(null.as_raw_fd()),
        Output::Stderr => dup_high(2),
        Output::Fd(fd) => dup_high(fd.as_raw_fd()),
    }
}

/// Everything the cloned child touches, prepared before `clone` (no allocation after it).
struct ChildPlan {
    /// Run the init in the cloned child itself instead of re-executing the helper: only when
    /// the caller is single-threaded, where a forked child may do anything.
    direct: bool,
    /// Rootless: a pipe the child reads one byte from before it goes on, sent once its uid and
    /// gid maps are written. `execve` by a uid that is not 0 in the new user namespace (an
    /// unmapped one is not) drops every capability there, so the helper must not be executed
    /// before the maps exist. `-1`: no wait (not rootless).
    go: RawFd,
    fds: [RawFd; 5],
    helper: CString,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 2],
}

/// Runs in the cloned child: async-signal-safe calls only, then `execve`.
unsafe fn child(plan: &ChildPlan) -> ! {
    // SAFETY: raw system calls on descriptors and pointers prepared before clone.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        for (target, &src) in plan.fds.iter().enumerate() {
            if libc::dup2(src, target as RawFd) < 0 {
                libc::_exit(126);
            }
        }
        // Unblock all signals for the init (the caller may block some in its threads).
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
        if plan.go >= 0 {
            let mut b = 0u8;
            loop {
                let n = libc::read(plan.go, (&raw mut b).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                // The caller gave up (failed to write the maps): it kills and reaps us.
                libc::_exit(126);
            }
        }
        if plan.direct {
            crate::init::main();
        }
        libc::execve(plan.helper.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
        let errno = *libc::__errno_location();
        let mut rec = [0xffu8; 5];
        rec[1..].copy_from_slice(&errno.to_le_bytes());
        libc::write(4, rec.as_ptr().cast(), rec.len());
        libc::_exit(127)
    }
}

/// Whether this process has exactly one thread (then no other thread can appear while the
/// calling one is busy here).
pub(crate) fn single_threaded() -> bool {
    fs::read_to_string("/proc/self/stat").is_ok_and(|s| {
        // Field 20 (num_threads), counted after the parenthesised command name.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(17).map(|n| n == "1"))
            .unwrap_or(false)
    })
}

fn subid_range(file: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let who = f.next()?;
        let start = f.next()?.trim().parse().ok()?;
        let count = f.next()?.trim().parse().ok()?;
        (who == name || who == id.to_string()).then_some((start, count))
    })
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Writes the id maps of `pid`'s user namespace; returns (uid map, gid map, setgroups allowed).
fn map_ids(pid: i32) -> Result<(Vec<IdMapping>, Vec<IdMapping>, bool), RunError> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let own = |id| IdMapping {
        container_id: 0,
        host_id: id,
        size: 1,
    };
    if let (Some((us, uc)), Some((gs, gc))) = (
        subid_range("/etc/subuid", &name, uid),
        subid_range("/etc/subgid", &name, gid),
    ) {
        if on_path("newuidmap") && on_path("newgidmap") && uc > 0 && gc > 0 {
            for (tool, id, s, c) in [("newuidmap", uid, us, uc), ("newgidmap", gid, gs, gc)] {
                let out = std::process::Command::new(tool)
                    .args([
                        pid.to_string(),
                        "0".into(),
                        id.to_string(),
                        "1".into(),
                        "1".into(),
                        s.to_string(),
                        c.to_string(),
                    ])
                    .output()
                    .map_err(|e| RunError::IdMap(format!("{tool}: {e}")))?;
                if !out.status.success() {
                    return Err(RunError::IdMap(format!(
                        "{tool}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
            }
            let sub = |s, c| IdMapping {
                container_id: 1,
                host_id: s,
                size: c,
            };
            return Ok((
                vec![own(uid), sub(us, uc)],
                vec![own(gid), sub(gs, gc)],
                true,
            ));
        }
    }
    let w = |file: &str, s: String| {
        let p = format!("/proc/{pid}/{file}");
        fs::write(&p, s).map_err(|e| RunError::IdMap(format!("write {p}: {e}")))
    };
    w("setgroups", "deny".into())?;
    w("uid_map", format!("0 {uid} 1\n"))?;
    w("gid_map", format!("0 {gid} 1\n"))?;
    Ok((vec![own(uid)], vec![own(gid)], false))
}

fn read_errors(r: &OwnedFd) -> Option<RunError> {
    // SAFETY: fcntl on an owned descriptor.
    unsafe {
        let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(r, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if buf.first() == Some(&0xff) && buf.len() >= 5 {
        let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        return Some(RunError::Spawn(io::Error::from_raw_os_error(errno)));
    }
    let line = buf.split(|&b| b == b'\n').find(|l| !l.is_empty())?;
    Some(match serde_json::from_slice::<ChildError>(line) {
        Ok(e) => RunError::Child {
            stage: e.stage,
            path: e.path,
            errno: e.errno,
            message: e.message,
        },
        Err(_) => RunError::Init(String::from_utf8_lossy(line).into_owned()),
    })
}

pub(crate) fn run(spec: &RunSpec) -> Result<RunResult, RunError> {
    validate(spec)?;
    make_cache_dirs(spec)?;
    let rootless = !rustix::process::geteuid().is_root();
    let work_root = spec
        .work_root
        .clone()
        .unwrap_or_else(crate::default_work_root);
    let _ = crate::workdir::sweep(&work_root);
    let rd = RunDir::create(&work_root)?;
    let own_upper = spec.upper.is_none();
    let result = run_in(spec, &rd, rootless, own_upper);
    rd.finish(result.is_ok() && own_upper, spec.background_cleanup);
    result
}

fn run_in(
    spec: &RunSpec,
    rd: &RunDir,
    rootless: bool,
    own_upper: bool,
) -> Result<RunResult, RunError> {
    let upper = spec.upper.clone().unwrap_or_else(|| rd.dir.join("upper"));
    let work = rd.dir.join("work");
    let scratch = rd.dir.join("scratch");
    let mkdir = |p: &Path| {
        fs::create_dir_all(p).map_err(|source| RunError::Io {
            op: "create",
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(&upper)?;
    mkdir(&work)?;
    mkdir(&scratch)?;
    if !own_upper {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if dev(&upper) != dev(&work) {
            return Err(invalid(format!(
                "upper dir {} is not on the work root's file system ({}): overlayfs needs both \
                 together (set the work root next to it)",
                upper.display(),
                rd.dir.display()
            )));
        }
    }
    let fresh_upper = fs::read_dir(&upper).is_ok_and(|mut d| d.next().is_none());

    let spawn = RunError::Spawn;
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(spawn)?;
    let null: OwnedFd = null.into();
    let stdin = if spec.stdin {
        dup_high(0)
    } else {
        dup_high(null.as_raw_fd())
    }
    .map_err(spawn)?;
    let stdout = output_fd(&spec.stdout, 1, &null).map_err(spawn)?;
    let stderr = output_fd(&spec.stderr, 2, &null).map_err(spawn)?;
    let (cfg_r, cfg_w) = pipe().map_err(spawn)?;
    let (err_r, err_w) = pipe().map_err(spawn)?;
    let go = if rootless {
        Some(pipe().map_err(spawn)?)
    } else {
        None
    };

    let helper = match &spec.helper {
        Some(p) => CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid("helper path contains NUL"))?,
        None => CString::new("/proc/self/exe").map_err(|_| invalid("helper"))?,
    };
    let arg0 = CString::new("ns-run-init").map_err(|_| invalid("arg0"))?;
    let env0 = CString::new(format!("{INIT_ENV}=1")).map_err(|_| invalid("env"))?;
    let plan = ChildPlan {
        direct: spec.helper.is_none() && single_threaded(),
        go: go.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
        fds: [
            stdin.as_raw_fd(),
            stdout.as_raw_fd(),
            stderr.as_raw_fd(),
            cfg_r.as_raw_fd(),
            err_w.as_raw_fd(),
        ],
        helper,
        argv: [arg0.as_ptr(), std::ptr::null()],
        envp: [env0.as_ptr(), std::ptr::null()],
    };
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
    if spec.network != Network::Host {
        flags |= libc::CLONE_NEWNET;
    }
    if rootless {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: a fork-like clone (no CLONE_VM); the child runs only `child`, which makes
    // async-signal-safe calls on data prepared above and execs or exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_long::from(flags | libc::SIGCHLD),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(RunError::Spawn(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe { child(&plan) }
    }
    let pid = pid as i32;
    let _reg = Registered::new(pid);
    drop((stdin, stdout, stderr, cfg_r, err_w, null));
    let waiter = Waiter(pid);

    let (uid_map, gid_map, setgroups_allowed) = if rootless {
        map_ids(pid)?
    } else {
        (Vec::new(), Vec::new(), true)
    };
    if let Some((go_r, go_w)) = go {
        drop(go_r);
        // The maps exist: the child may exec the helper (as uid 0, keeping its capabilities).
        rustix::io::write(&go_w, &[1])
            .map_err(|e| RunError::Spawn(io::Error::from_raw_os_error(e.raw_os_error())))?;
    }
    let _net = crate::net::start(spec.network, pid, rootless)?;

    let cfg = InitConfig {
        lowers: spec.lowers.clone(),
        upper: upper.clone(),
        fresh_upper,
        work,
        scratch,
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        workdir: spec.workdir.clone().unwrap_or_else(|| "/".into()),
        user: spec.user.clone().unwrap_or_else(|| "0".into()),
        hostname: spec.hostname.clone().unwrap_or_else(|| "pelagos".into()),
        network: spec.network,
        mounts: spec.mounts.clone(),
        seccomp: !spec.no_seccomp,
        insecure: spec.security == crate::Security::Insecure,
        rlimits: spec.rlimits.clone(),
        overlay: spec.overlay,
        rootless,
        setgroups_allowed,
    };
    let json = serde_json::to_vec(&cfg).map_err(|e| RunError::Init(e.to_string()))?;
    let mut msg = (json.len() as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&json);
    let mut w = fs::File::from(cfg_w);
    // A failed write means the init died early; its status and error tell why.
    let _ = w.write_all(&msg);
    drop(w);

    let status = waiter.wait()?;
    if let Some(e) = read_errors(&err_r) {
        return Err(e);
    }
    Ok(RunResult {
        version: 1,
        exit_code: status,
        upper,
        uid_map,
        gid_map,
    })
}

/// Kills and reaps the init if the run is abandoned early (error before `wait`).
struct Waiter(i32);

impl Waiter {
    fn wait(self) -> Result<i32, RunError> {
        let pid = self.0;
        std::mem::forget(self);
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &raw mut status, libc::__WALL) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(RunError::Init(format!("wait: {e}")));
            }
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(128 + libc::WTERMSIG(status));
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // SAFETY: kill and reap our own child.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), libc::__WALL);
        }
    }
}

/// `rm -rf PATH` inside a new user namespace mapped like a run's (container root = this user,
/// sub-ids when available), for trees holding files owned by sub-ids.
pub(crate) fn remove_in_userns(path: &Path) -> Result<(), RunError> {
    let io = |source| RunError::Io {
        op: "remove",
        path: path.to_path_buf(),
        source,
    };
    let abs = std::path::absolute(path).map_err(io)?;
    let rm = ["/bin/rm", "/usr/bin/rm"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| io(io::Error::from_raw_os_error(libc::ENOENT)))?;
    let rm_c = CString::new(rm).map_err(|_| invalid("rm path"))?;
    let rm_args: Vec<CString> = ["rm", "-rf", "--"]
        .iter()
        .map(|a| CString::new(*a))
        .chain(std::iter::once(CString::new(
            abs.as_os_str().as_encoded_bytes(),
        )))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid("path contains NUL"))?;
    let mut argv: Vec<*const libc::c_char> = rm_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let (go_r, go_w) = pipe().map_err(io)?;
    let go_fd = go_r.as_raw_fd();
    // SAFETY: fork-like clone; the child only reads, execs or exits (async-signal-safe).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_long::from(libc::CLONE_NEWUSER | libc::SIGCHLD),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            let mut b = 0u8;
            if libc::read(go_fd, (&raw mut b).cast(), 1) == 1 {
                libc::execve(rm_c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            libc::_exit(127)
        }
    }
    let waiter = Waiter(pid as i32);
    drop(go_r);
    map_ids(pid as i32)?;
    rustix::io::write(&go_w, &[1])
        .map_err(|e| io(io::Error::from_raw_os_error(e.raw_os_error())))?;
    let status = waiter.wait()?;
    if status != 0 || abs.exists() {
        return Err(io(io::Error::other(format!(
            "rm -rf in a user namespace exited with {status}"
        ))));
    }
    Ok(())
}
