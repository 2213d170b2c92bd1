//! The sandbox against what BuildKit's runc worker gives a RUN step (containerd's default spec
//! as BuildKit generates it): mounts, masked paths, /dev, namespaces, descriptors, umask,
//! process state, seccomp spot checks, rlimits, `security.insecure`.
use super::{BIN, busybox, ns, sh, work_root};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Env var that turns this test binary, run inside a container, into a syscall prober.
pub const PROBE_ENV: &str = "NS_RUN_IT_PROBE";

/// `(mount point, per-mount options, super options)` of `/proc/self/mountinfo` text.
fn mounts(info: &str) -> Vec<(String, String, String)> {
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((
                f.get(4)?.to_string(),
                f.get(5)?.to_string(),
                f.get(sep + 3)?.to_string(),
            ))
        })
        .collect()
}

fn host_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        .unwrap()
}

/// The expected mount points: BuildKit's mounts, containerd's masked paths (those this kernel
/// has) and read-only /proc paths, hosts and resolv.conf; nothing from the host.
fn expected_mounts(probe_proc: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]
    .map(String::from)
    .to_vec();
    for p in probe_proc {
        v.push(format!("/proc/{p}"));
    }
    for p in ["firmware", "devices/virtual/powercap"] {
        if Path::new("/sys").join(p).exists() {
            v.push(format!("/sys/{p}"));
        }
    }
    v.extend(cgroup_points());
    v.sort();
    v
}

/// Where runc mounts the cgroups without a cgroup namespace, from this host's mounts: a
/// tmpfs with one entry per v1 hierarchy (hybrid hosts: v1 only), or the v2 cgroup itself.
fn cgroup_points() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ms = mounts(&info);
    let fstype = |l: &str| {
        l.split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .map(String::from)
    };
    let mut v1: Vec<String> = Vec::new();
    let mut v2 = false;
    for (l, m) in info.lines().zip(&ms) {
        match fstype(l).as_deref() {
            Some("cgroup") => {
                let name = Path::new(&m.0)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let p = format!("/sys/fs/cgroup/{name}");
                if !v1.contains(&p) {
                    v1.push(p);
                }
            }
            Some("cgroup2") => v2 = true,
            _ => {}
        }
    }
    if !v1.is_empty() {
        v1.push("/sys/fs/cgroup".into());
        v1
    } else if v2 {
        vec!["/sys/fs/cgroup".into()]
    } else {
        Vec::new()
    }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn mounts_are_buildkits_with_masked_and_read_only_paths() {
    let w = work_root();
    // which of containerd's /proc paths this kernel has (a fresh proc inside shows them all)
    let r = sh(
        w.path(),
        &["--no-seccomp"],
        "for p in asound acpi kcore keys latency_stats timer_list timer_stats sched_debug scsi \
         bus fs irq sys sysrq-trigger; do [ -e /proc/$p ] && echo $p; done; \
         cat /proc/self/mountinfo",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (present, info): (Vec<&str>, Vec<&str>) = r.stderr.lines().partition(|l| !l.contains(' '));
    let ms = mounts(&info.join("\n"));
    let mut points: Vec<String> = ms.iter().map(|m| m.0.clone()).collect();
    points.sort();
    assert_eq!(points, expected_mounts(&present), "{}", r.stderr);
    let opts = |p: &str| ms.iter().find(|m| m.0 == p).unwrap().clone();
    let ro = |o: &str| o.split(',').any(|x| x == "ro");
    for p in ["/sys", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(ro(&opts(p).1), "{p} not read-only: {:?}", opts(p));
    }
    for p in ["/etc/hosts", "/etc/resolv.conf"] {
        let o = opts(p).1;
        assert!(o.contains("nosuid,nodev,noexec"), "{p}: {o}");
    }
    for p in ["bus", "fs", "irq", "sys", "sysrq-trigger"] {
        if present.contains(&p) {
            let o = opts(&format!("/proc/{p}"));
            assert!(ro(&o.1), "/proc/{p} not read-only: {o:?}");
        }
    }
    // masked: files read as empty, dirs are empty read-only tmpfs
    let r = sh(
        w.path(),
        &[],
        "for p in /proc/keys /proc/timer_list /proc/kcore /proc/acpi /proc/scsi /sys/firmware \
         /sys/devices/virtual/powercap; do [ -e $p ] && echo $p $(cat $p 2>/dev/null | wc -c) \
         $(ls -A $p 2>/dev/null | wc -l); done; true",
    );
    for l in r.stderr.lines().filter(|l| l.starts_with('/')) {
        assert!(l.ends_with(" 0 0") || l.ends_with(" 0 1"), "{l}");
    }
    assert!(r.stderr.contains("/sys/firmware 0 0"), "{}", r.stderr);
    // the generated files cannot be written through (they are read-only binds)
    let r = sh(w.path(), &[], "echo x >> /etc/hosts || echo refused");
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    assert_eq!(super::tree(&r.upper()), Vec::<String>::new());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn cgroups_are_the_runs_own_and_read_only() {
    let w = work_root();
    let points = cgroup_points();
    let script = "grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f5,6; \
                  cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; \
                  mkdir /sys/fs/cgroup/pids/ns-run-it 2>/dev/null && echo writable; true";
    let r = sh(w.path(), &[], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let inside: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with('/'))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = inside.clone();
    sorted.sort_unstable();
    let mut want = points.clone();
    want.sort();
    assert_eq!(sorted, want, "{}", r.stderr);
    for l in lines.iter().filter(|l| l.starts_with("/sys/fs/cgroup/")) {
        assert!(l.contains(" ro,nosuid,nodev,noexec"), "{l}");
    }
    assert!(!r.stderr.contains("writable"), "{}", r.stderr);
    // the memory hierarchy is this process's own cgroup (the run makes none)
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let memory = own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let _id = f.next();
        (f.next() == Some("memory")).then(|| f.next().unwrap_or("/").to_string())
    });
    if let Some(path) = memory
        && points.iter().any(|p| p == "/sys/fs/cgroup/memory")
    {
        let host = std::fs::read_to_string(
            Path::new("/sys/fs/cgroup/memory")
                .join(path.trim_start_matches('/'))
                .join("memory.limit_in_bytes"),
        )
        .unwrap();
        assert!(lines.contains(&host.trim()), "{host} {}", r.stderr);
    }
    // security.insecure: writable, as BuildKit's WithWriteableCgroupfs
    let r = sh(w.path(), &["--security", "insecure"], script);
    for l in r
        .stderr
        .lines()
        .filter(|l| l.starts_with("/sys/fs/cgroup/"))
    {
        assert!(l.contains(" rw,"), "{l}");
    }
    if points.iter().any(|p| p == "/sys/fs/cgroup/pids") {
        assert!(r.stderr.contains("writable"), "{}", r.stderr);
        let _ = std::fs::remove_dir("/sys/fs/cgroup/pids/ns-run-it");
    }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn dev_holds_only_the_default_devices() {
    let w = work_root();
    let r = sh(
        w.path(),
        &[],
        "ls -A /dev | tr '\\n' ' '; echo; ls -A /dev/pts | tr '\\n' ' '; echo; \
         stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
         for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; \
         grep -E ' /dev(/pts|/shm|/mqueue)? ' /proc/self/mountinfo | cut -d' ' -f5,6,8-",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    // `core` only when the kernel has /proc/kcore, as runc
    let core = if Path::new("/proc/kcore").exists() {
        "core "
    } else {
        ""
    };
    assert_eq!(
        lines[0],
        format!(
            "{core}fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
        )
    );
    // a private devpts instance: only its own ptmx, none of the host's terminals
    assert_eq!(lines[1], "ptmx ");
    assert_eq!(
        &lines[2..8],
        [
            "/dev/null character special file 1:3 666",
            "/dev/zero character special file 1:5 666",
            "/dev/full character special file 1:7 666",
            "/dev/random character special file 1:8 666",
            "/dev/urandom character special file 1:9 666",
            "/dev/tty character special file 5:0 666",
        ]
    );
    assert_eq!(
        &lines[8..13],
        [
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
            "pts/ptmx"
        ]
    );
    let m = &lines[13..];
    assert!(
        m.iter()
            .any(|l| l.starts_with("/dev rw,nosuid") && l.contains("tmpfs")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|l| l.starts_with("/dev/pts rw,nosuid,noexec")
            && l.contains("devpts")
            && l.contains("ptmxmode=666")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|l| l.starts_with("/dev/shm rw,nosuid,nodev,noexec")
                && l.contains("tmpfs")
                && l.contains("size=65536k")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|l| l.starts_with("/dev/mqueue rw,nosuid,nodev,noexec")),
        "{m:?}"
    );
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn namespaces_are_fresh_except_user_and_cgroup() {
    let w = work_root();
    let names = ["mnt", "pid", "uts", "ipc", "net", "user", "cgroup"];
    let host: Vec<String> = names
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/self/ns/{n}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let script = names
        .map(|n| format!("readlink /proc/self/ns/{n}"))
        .join("; ");
    for (args, fresh_net) in [(&[][..], true), (&["--network", "host"][..], false)] {
        let r = sh(w.path(), args, &script);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let inside: Vec<&str> = r.stderr.lines().collect();
        for (i, n) in names.iter().enumerate() {
            // root runs need no user namespace; no cgroup namespace, as BuildKit on cgroup v1
            let fresh = match *n {
                "user" | "cgroup" => false,
                "net" => fresh_net,
                _ => true,
            };
            assert_eq!(
                inside[i] != host[i],
                fresh,
                "{n}: {} vs {}",
                inside[i],
                host[i]
            );
        }
    }
}

/// Opens `/etc/passwd` without `O_CLOEXEC` (inherited by every child of this process).
fn leaky_fd() -> OwnedFd {
    // SAFETY: open with a valid C string; the fd is owned by the returned value.
    let fd = unsafe { libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn no_descriptor_of_the_caller_reaches_the_command() {
    let w = work_root();
    let fd = leaky_fd();
    // the CLI (single-threaded: its cloned child runs the init without re-exec) inherits it
    let r = sh(w.path(), &[], "ls /proc/self/fd | tr '\\n' ' '");
    drop(fd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "0 1 2 3 ");
    // the library, re-executing a helper from this multi-threaded process
    let fd = leaky_fd();
    let mut out = tempfile::tempfile().unwrap();
    let spec = ns_run::RunSpec {
        lowers: vec![busybox().to_path_buf()],
        work_root: Some(w.path().to_path_buf()),
        argv: ["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]
            .map(String::from)
            .to_vec(),
        stdout: ns_run::Output::Fd(OwnedFd::from(out.try_clone().unwrap())),
        helper: Some(BIN.into()),
        ..Default::default()
    };
    let res = ns_run::run(&spec).unwrap();
    drop(fd);
    assert_eq!(res.exit_code, 0);
    let mut text = String::new();
    std::io::Seek::rewind(&mut out).unwrap();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    assert_eq!(text, "0 1 2 3 ");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn umask_is_0022_whatever_the_callers() {
    let w = work_root();
    let mut c = Command::new(BIN);
    c.arg("--work-root")
        .arg(w.path())
        .arg("--lower")
        .arg(busybox())
        .args([
            "-w",
            "/new/wd",
            "--",
            "sh",
            "-c",
            "umask; touch /f; mkdir /d",
        ]);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let r: super::Run = c.stdin(Stdio::null()).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "0022\n");
    let mode = |p: &str| {
        std::fs::symlink_metadata(r.upper().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(
        [mode("f"), mode("d"), mode("new"), mode("new/wd")],
        [0o644, 0o755, 0o755, 0o755]
    );
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn process_state_is_buildkits() {
    let w = work_root();
    // no_new_privs off (BuildKit: WithNewPrivileges), so set-uid programs work; seccomp on
    let r = sh(
        w.path(),
        &[],
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "NoNewPrivs:\t0\nSeccomp:\t2\n");
}

/// A lower dir holding this test binary as `/probe` and the shared libraries it needs.
fn probe_lower(dir: &Path) -> PathBuf {
    let low = dir.join("probe-lower");
    let me = std::env::current_exe().unwrap();
    let out = Command::new("ldd").arg(&me).output().unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = l
            .split_whitespace()
            .find(|t| t.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            let dst = low.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &dst).unwrap();
        }
    }
    std::fs::create_dir_all(&low).unwrap();
    if std::fs::hard_link(&me, low.join("probe")).is_err() {
        std::fs::copy(&me, low.join("probe")).unwrap();
    }
    low
}

/// Runs inside a container (entered from `.init_array` when [`PROBE_ENV`] is set): tries
/// a few system calls Docker's default seccomp profile refuses or allows, prints
/// `name=ok|EPERM|ENOSYS|E<n>` per call and exits.
pub fn probe() -> ! {
    let show = |rc: libc::c_long| {
        if rc >= 0 {
            return "ok".to_string();
        }
        match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::EPERM => "EPERM".into(),
            libc::ENOSYS => "ENOSYS".into(),
            n => format!("E{n}"),
        }
    };
    let mut out: Vec<String> = Vec::new();
    // SAFETY: system calls with integer arguments or null pointers only; this process only
    // prints and exits afterwards.
    unsafe {
        // KEYCTL_GET_KEYRING_ID of the session keyring, without creating it
        let rc = libc::syscall(libc::SYS_keyctl, 0i64, -3i64, 0i64);
        out.push(format!("keyctl={}", show(rc)));
        let rc = libc::c_long::from(libc::unshare(libc::CLONE_NEWUSER));
        out.push(format!("unshare-user={}", show(rc)));
        let rc = libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0i64);
        out.push(format!("clone3={}", show(rc)));
        let rc = libc::syscall(libc::SYS_personality, 0xffff_ffffu64);
        out.push(format!("personality-query={}", show(rc)));
        let rc = libc::syscall(libc::SYS_personality, 6u64); // PER_BSD
        out.push(format!("personality-bsd={}", show(rc)));
        let rc = libc::syscall(libc::SYS_ptrace, 0i64, 0i64, 0i64, 0i64); // PTRACE_TRACEME
        out.push(format!("ptrace={}", show(rc)));
        let rc = libc::syscall(libc::SYS_bpf, 0i64, std::ptr::null::<u8>(), 0i64);
        out.push(format!("bpf={}", show(rc)));
    }
    println!("{}", out.join("\n"));
    std::process::exit(0)
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn seccomp_spot_checks_match_dockers_default_profile() {
    let w = work_root();
    let low = probe_lower(w.path());
    let lower = low.to_str().unwrap();
    let env = format!("{PROBE_ENV}=1");
    let run = |extra: &[&str]| {
        let mut args = vec!["--lower", lower, "-e", &env];
        args.extend_from_slice(extra);
        let r = ns(w.path(), &args, &["/probe"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stderr
    };
    assert_eq!(
        run(&[]),
        "keyctl=EPERM\nunshare-user=EPERM\nclone3=ENOSYS\npersonality-query=ok\n\
         personality-bsd=EPERM\nptrace=ok\nbpf=EPERM\n"
    );
    // without the filter the same calls get past it
    let off = run(&["--no-seccomp"]);
    for l in ["unshare-user=ok", "personality-bsd=ok", "ptrace=ok"] {
        assert!(off.lines().any(|x| x == l), "{l}: {off}");
    }
    for l in ["keyctl=EPERM", "clone3=ENOSYS", "bpf=EPERM"] {
        assert!(!off.lines().any(|x| x == l), "{l}: {off}");
    }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn ulimits_are_applied_and_nofile_defaults_to_the_hard_limit() {
    let w = work_root();
    let r = sh(
        w.path(),
        &[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=300:400",
            "--ulimit",
            "core=-1",
            "--ulimit",
            "stack=4096000",
        ],
        "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu; ulimit -c; ulimit -s",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "1024\n2048\n300\n400\nunlimited\n4000\n");
    // the library takes them too (later entries of a type win)
    let mut out = tempfile::tempfile().unwrap();
    let spec = ns_run::RunSpec {
        lowers: vec![busybox().to_path_buf()],
        work_root: Some(w.path().to_path_buf()),
        argv: ["sh", "-c", "ulimit -n; ulimit -Hn"]
            .map(String::from)
            .to_vec(),
        rlimits: vec![
            "nofile=10:20".parse().unwrap(),
            "nofile=100:200".parse().unwrap(),
        ],
        stdout: ns_run::Output::Fd(OwnedFd::from(out.try_clone().unwrap())),
        helper: Some(BIN.into()),
        ..Default::default()
    };
    assert_eq!(ns_run::run(&spec).unwrap().exit_code, 0);
    let mut text = String::new();
    std::io::Seek::rewind(&mut out).unwrap();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    assert_eq!(text, "100\n200\n");
    // default: soft raised to the caller's hard limit, whatever the caller's soft limit
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut hard) },
        0
    );
    let hard = hard.rlim_max;
    let mut c = Command::new(BIN);
    c.arg("--work-root")
        .arg(w.path())
        .arg("--lower")
        .arg(busybox())
        .args(["--", "sh", "-c", "ulimit -n; ulimit -Hn"]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: 256,
                rlim_max: hard,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const l);
            Ok(())
        });
    }
    let r: super::Run = c.stdin(Stdio::null()).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = if hard == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    assert_eq!(r.stderr, format!("{shown}\n{shown}\n"));
    // Docker's syntax errors are usage errors
    for bad in ["nofile", "as=1", "nofile=2:1", "nofile=1:2:3", "nofile=x"] {
        let r = sh(w.path(), &["--ulimit", bad], "true");
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
    }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn insecure_mode_has_every_capability_no_seccomp_and_no_masks() {
    let w = work_root();
    let all = host_status("CapBnd:");
    let script = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|Seccomp):' /proc/self/status; \
                  grep -cE ' /proc/(keys|timer_list|sys|bus) ' /proc/self/mountinfo; \
                  grep -E ' /sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1";
    let r = sh(w.path(), &["--security", "insecure"], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "CapInh:\t{all}\nCapPrm:\t{all}\nCapEff:\t{all}\nCapBnd:\t{all}\nCapAmb:\t{all}\n\
             Seccomp:\t0\n0\nrw\n"
        )
    );
    // a non-root user keeps them too (ambient), as with BuildKit
    let r = sh(
        w.path(),
        &["--security", "insecure", "-u", "app"],
        "id -u; grep -E '^CapEff:' /proc/self/status",
    );
    assert_eq!(r.stderr, format!("1000\nCapEff:\t{all}\n"));
    // the sandbox for comparison
    let r = sh(w.path(), &[], script);
    assert!(
        r.stderr.contains("CapEff:\t00000000a80425fb\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Seccomp:\t2\n"), "{}", r.stderr);
    assert!(r.stderr.ends_with("\nro\n"), "{}", r.stderr);
    let r = sh(w.path(), &["--security", "bogus"], "true");
    assert_eq!(r.code, 2, "{}", r.stderr);
}
