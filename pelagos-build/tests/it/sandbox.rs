//! RUN sandbox options of the command line: `--ulimit` and `--allow security.insecure` with
//! `RUN --security=insecure` (root: RUN steps use namespaces and overlayfs).

use crate::common::*;

fn hard_nofile() -> String {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut l) },
        0
    );
    if l.rlim_max == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        l.rlim_max.to_string()
    }
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn ulimit_reaches_every_run_step_and_the_cache_key() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local\n\
         RUN ulimit -n > /n1 && ulimit -Hn >> /n1\n\
         RUN ulimit -n > /n2 && ulimit -u > /u\n",
    );
    e.build_ok(&[
        "-t",
        "u",
        "--ulimit",
        "nofile=1024:2048",
        "--ulimit",
        "nproc=100",
        "--ulimit",
        "nproc=300:400",
    ]);
    let r = e.rootfs("u");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("n1"), "1024\n2048\n");
    assert_eq!(read("n2"), "1024\n");
    assert_eq!(read("u"), "300\n");
    // without --ulimit: BuildKit's default (no rlimits: the builder's own, soft = hard), and
    // the steps run again (the limits are part of the RUN cache key)
    let (_, err) = e.build_ok(&["-t", "d"]);
    assert!(!err.contains("CACHED"), "{err}");
    let r = e.rootfs("d");
    let hard = hard_nofile();
    assert_eq!(
        std::fs::read_to_string(r.path().join("n1")).unwrap(),
        format!("{hard}\n{hard}\n")
    );
    // the same limits again hit the cache
    let (_, err) = e.build_ok(&[
        "-t",
        "u2",
        "--ulimit",
        "nproc=300:400",
        "--ulimit",
        "nofile=1024:2048",
    ]);
    assert_eq!(count_cached(&err), (2, 2), "{err}");
    for bad in ["nofile", "as=1", "nofile=2:1", "nofile=1:2:3"] {
        let o = e.build(&["--ulimit", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let msg = String::from_utf8_lossy(&o.stderr);
        assert!(
            msg.starts_with("pelagos-build: error: invalid --ulimit"),
            "{msg}"
        );
    }
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn insecure_run_needs_allow_security_insecure() {
    let e = Env::new();
    e.remfile(
        "# syntax=docker/dockerfile:1-labs\n\
         FROM busybox:local\n\
         RUN grep -E '^(CapEff|Seccomp):' /proc/self/status > /sandbox\n\
         RUN --security=insecure grep -E '^(CapEff|Seccomp):' /proc/self/status > /insecure\n",
    );
    // refused before anything runs, as BuildKit checks entitlements first
    let o = e.build(&["-t", "i"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("security.insecure is not allowed")
            && err.contains("--allow security.insecure"),
        "{err}"
    );
    assert!(!err.contains("DONE"), "a step ran: {err}");
    // network.host is always granted (dockerd's default), so it alone changes nothing
    let o = e.build(&["-t", "i", "--allow", "network.host"]);
    assert_eq!(o.status.code(), Some(2));
    let o = e.build(&["-t", "i", "--allow", "device"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid --allow"));
    e.build_ok(&["-t", "i", "--allow", "network.host,security.insecure"]);
    let r = e.rootfs("i");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("sandbox"), "CapEff:\t00000000a80425fb\nSeccomp:\t2\n");
    let all = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    assert_eq!(read("insecure"), format!("CapEff:\t{all}\nSeccomp:\t0\n"));
}
