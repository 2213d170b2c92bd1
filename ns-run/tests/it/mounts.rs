//! RUN --mount: bind, cache, tmpfs, secret; none leaves a trace in the upper dir.
use super::{sh, tree, work_root};

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn mounts_work_and_leave_no_trace() {
    let w = work_root();
    let src = w.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("in.txt"), "hello").unwrap();
    let cache = w.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let secret = w.path().join("secret");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let m1 = format!("type=bind,source={},target=/mnt/src", src.display());
    let m2 = format!(
        "type=cache,source={},target=/root/.cache/x",
        cache.display()
    );
    let m3 = "type=tmpfs,target=/scratch,size=1048576".to_string();
    let m4 = format!(
        "type=secret,source={},target=/run/secrets/tok,uid=1000,mode=0440",
        secret.display()
    );
    let r = sh(
        w.path(),
        &[
            "--mount", &m1, "--mount", &m2, "--mount", &m3, "--mount", &m4,
        ],
        "cat /mnt/src/in.txt; echo; touch /mnt/src/no 2>/dev/null || echo ro; \
         echo c > /root/.cache/x/c; echo t > /scratch/t; \
         cat /run/secrets/tok; echo; stat -c '%a %u' /run/secrets/tok; \
         echo done > /result",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "hello\nro\ns3cr3t\n440 1000\n");
    assert_eq!(std::fs::read_to_string(cache.join("c")).unwrap(), "c\n");
    // /root exists in the base: its stand-in in the private layer kept it out of the upper
    assert_eq!(tree(&r.upper()), ["result"]);
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn a_missing_cache_dir_is_made_and_a_missing_bind_source_is_named() {
    let w = work_root();
    let cache = w.path().join("new/cache");
    let m = format!("type=cache,source={},target=/c", cache.display());
    let r = sh(w.path(), &["--mount", &m], "echo c > /c/f");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(cache.join("f")).unwrap(), "c\n");
    // a missing bind or secret source fails inside the container with its errno, named
    for kind in ["bind", "secret"] {
        let missing = w.path().join("missing");
        let m = format!("type={kind},source={},target=/m", missing.display());
        let r = sh(w.path(), &["--mount", &m], "true");
        assert_eq!(r.code, 1, "{}", r.stderr);
        let want = format!("{}: no such file or directory", missing.display());
        assert!(r.stderr.contains(&want), "{}", r.stderr);
    }
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn rw_bind_writes_through() {
    let w = work_root();
    let src = w.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let m = format!("type=bind,source={},target=/mnt/src,rw", src.display());
    let r = sh(w.path(), &["--mount", &m], "echo w > /mnt/src/f");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(src.join("f")).unwrap(), "w\n");
    assert_eq!(tree(&r.upper()), Vec::<String>::new());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn mount_target_through_symlink_stays_in_root() {
    let w = work_root();
    let low = w.path().join("low");
    std::fs::create_dir_all(low.join("var")).unwrap();
    std::os::unix::fs::symlink("/../../../../tmp-escape", low.join("var/run")).unwrap();
    let r = super::ns(
        w.path(),
        &[
            "--lower",
            low.to_str().unwrap(),
            "--mount",
            "type=tmpfs,target=/var/run/x",
        ],
        &["sh", "-c", "ls -d /tmp-escape/x"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "/tmp-escape/x\n");
    assert!(!std::path::Path::new("/tmp-escape").exists());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn nested_mounts_parent_first_whatever_the_order() {
    let w = work_root();
    let src = w.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "inner").unwrap();
    let inner = format!("type=bind,source={},target=/cache/sub", src.display());
    let r = sh(
        w.path(),
        &["--mount", &inner, "--mount", "type=tmpfs,target=/cache"],
        "cat /cache/sub/f; grep -c ' /cache' /proc/mounts",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "inner2\n");
    assert_eq!(tree(&r.upper()), Vec::<String>::new());
}

/// `/dev` is a fresh tmpfs: mount targets under it (BuildKit's heredoc scripts at
/// `/dev/pipes/NAME`) are created in that tmpfs, whatever the lowers hold at those paths, and
/// leave nothing in the upper dir.
#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn mount_targets_under_dev_live_in_the_dev_tmpfs() {
    let w = work_root();
    let f = w.path().join("script");
    std::fs::write(&f, "#!/bin/sh\necho from-pipe\n").unwrap();
    let d = w.path().join("cache");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("c"), "c").unwrap();
    // a lower whose /dev/pipes is a symlink out of /dev: not what the command sees
    let low = w.path().join("low");
    std::fs::create_dir_all(low.join("dev")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", low.join("dev/pipes")).unwrap();
    let m1 = format!("type=bind,source={},target=/dev/pipes/x", f.display());
    let m2 = format!("type=bind,source={},target=/dev/shm/c/d", d.display());
    let r = super::ns(
        w.path(),
        &[
            "--lower",
            low.to_str().unwrap(),
            "--mount",
            &m1,
            "--mount",
            &m2,
        ],
        &[
            "sh",
            "-c",
            "sh /dev/pipes/x; ls /dev/pipes; cat /dev/shm/c/d/c; echo; \
             ls -d /elsewhere 2>/dev/null; test -e /dev/null && echo null",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "from-pipe\nx\nc\nnull\n");
    assert_eq!(tree(&r.upper()), Vec::<String>::new());
}

/// Targets under /dev never follow the tmpfs' own symlinks (`/dev/fd` → `/proc/self/fd`) out
/// of it.
#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn mount_target_through_dev_symlink_is_refused() {
    let w = work_root();
    let r = sh(
        w.path(),
        &["--mount", "type=tmpfs,target=/dev/fd/x"],
        "true",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("/dev/fd: is a symbolic link in /dev"),
        "{}",
        r.stderr
    );
}
