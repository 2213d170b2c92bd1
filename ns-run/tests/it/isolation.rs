//! Namespaces, /proc, /dev, /sys, capabilities, seccomp, env, hostname.
use super::{sh, work_root};

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn fresh_pid_uts_net_namespaces() {
    let w = work_root();
    let r = sh(
        w.path(),
        &["--hostname", "box1"],
        "hostname; echo $$; ls /proc | grep -c '^[0-9]'; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // the shell is PID 2 (the init is PID 1); only init, sh and the pipeline are visible
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines[0], "box1");
    assert_eq!(lines[1], "2");
    assert!(lines[2].parse::<u32>().unwrap() <= 6, "{}", r.stderr);
    assert_eq!(&lines[3..], ["lo"]);
    let r = sh(
        w.path(),
        &[],
        "cat /sys/class/net/lo/operstate /etc/hostname 2>/dev/null; hostname",
    );
    assert!(r.stderr.ends_with("pelagos\n"), "{}", r.stderr);
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn dev_proc_sys() {
    let w = work_root();
    let r = sh(
        w.path(),
        &[],
        "for n in null zero full random urandom tty; do [ -c /dev/$n ] || echo missing $n; done; \
         [ -L /dev/ptmx ] && [ -d /dev/pts ] && [ -d /dev/shm ] && [ -L /dev/fd ] || echo missing links; \
         echo x > /dev/null; head -c 4 /dev/zero | wc -c; \
         touch /sys/x 2>/dev/null && echo sys-writable; \
         (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys-writable; \
         [ -s /proc/kcore ] && echo kcore-visible; true",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "4\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn capabilities_are_dockers_default_set() {
    let w = work_root();
    let r = sh(
        w.path(),
        &[],
        "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
         CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    );
    // a non-root user has no effective capabilities
    let r = sh(
        w.path(),
        &["-u", "app"],
        "grep -E '^CapEff' /proc/self/status",
    );
    assert_eq!(r.stderr, "CapEff:\t0000000000000000\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn seccomp_denies_with_eperm_and_can_be_disabled() {
    let w = work_root();
    let script = "unshare -U true && echo ok";
    let r = sh(w.path(), &[], script);
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    let r = sh(w.path(), &["--no-seccomp"], script);
    assert_eq!(r.stderr, "ok\n");
    let r = sh(w.path(), &[], "grep Seccomp: /proc/self/status");
    assert_eq!(r.stderr, "Seccomp:\t2\n");
    let r = sh(
        w.path(),
        &["--no-seccomp"],
        "grep Seccomp: /proc/self/status",
    );
    assert_eq!(r.stderr, "Seccomp:\t0\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn env_is_exactly_as_given_plus_path_and_home() {
    let w = work_root();
    let r = sh(w.path(), &["-e", "A=1", "-e", "B=x y"], "env | sort");
    assert_eq!(
        r.stderr,
        "A=1\nB=x y\nHOME=/root\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\n"
    );
    let r = sh(
        w.path(),
        &["-e", "PATH=/bin", "-e", "HOME=/h"],
        "echo $PATH $HOME",
    );
    assert_eq!(r.stderr, "/bin /h\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn init_reaps_orphans() {
    let w = work_root();
    // the background sleep is orphaned to PID 1 when the subshell exits; the init must reap it
    let r = sh(
        w.path(),
        &[],
        "(sleep 0.1 &); sleep 0.5; ps -o stat,comm | grep -c '^Z' || true",
    );
    assert_eq!(r.stderr, "0\n");
}
