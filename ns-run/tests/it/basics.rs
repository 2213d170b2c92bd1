//! Output routing, the JSON document, exit codes, the upper dir.
use super::{BIN, busybox, ns, sh, tree, work_root};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::{Command, Stdio};

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn output_goes_to_stderr_and_json_to_stdout() {
    let w = work_root();
    let r = sh(w.path(), &[], "echo out; echo err >&2");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "out\nerr\n");
    let j = r.json();
    assert_eq!(j["version"], 1);
    assert_eq!(j["exit_code"], 0);
    assert!(r.upper().starts_with(w.path()));
    assert_eq!(r.stdout.lines().count(), 1);
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn exit_codes_pass_through() {
    let w = work_root();
    let r = sh(w.path(), &[], "exit 7");
    assert_eq!((r.code, r.json()["exit_code"].as_i64()), (7, Some(7)));
    let r = sh(w.path(), &[], "kill -9 $$");
    assert_eq!((r.code, r.json()["exit_code"].as_i64()), (137, Some(137)));
    let r = sh(w.path(), &[], "kill -TERM $$");
    assert_eq!(r.code, 143);
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn a_closed_stdout_keeps_the_command_status_and_no_panic() {
    let w = work_root();
    // a pipe whose reader is gone: writing the document fails with EPIPE
    let (r, wr) = std::io::pipe().unwrap();
    drop(r);
    let o = Command::new(BIN)
        .arg("--work-root")
        .arg(w.path())
        .arg("--lower")
        .arg(busybox())
        .args(["--", "sh", "-c", "exit 3"])
        .stdin(Stdio::null())
        .stdout(wr)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn upper_holds_only_what_the_command_wrote() {
    let w = work_root();
    let r = sh(w.path(), &[], "echo x > /new; mkdir -p /opt/d; rm /bin/ls");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let up = r.upper();
    assert_eq!(tree(&up), ["bin", "bin/ls", "new", "opt", "opt/d"]);
    assert_eq!(std::fs::read_to_string(up.join("new")).unwrap(), "x\n");
    // the deletion is an overlay whiteout (0/0 char device)
    let m = std::fs::symlink_metadata(up.join("bin/ls")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn lower_without_etc_leaves_no_mount_targets_in_upper() {
    // A rootfs with only a shell: no /etc, /proc, /dev, /sys, so every runtime mount target
    // must come from the private layer, not the upper dir.
    let w = work_root();
    let low = w.path().join("min");
    std::fs::create_dir_all(low.join("bin")).unwrap();
    std::fs::copy(busybox().join("bin/busybox"), low.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "ls", "mount"] {
        std::os::unix::fs::symlink("busybox", low.join("bin").join(a)).unwrap();
    }
    let o = Command::new(BIN)
        .arg("--work-root")
        .arg(w.path().join("wr"))
        .arg("--lower")
        .arg(&low)
        .args(["--", "/bin/sh", "-c", "cat /etc/hosts /etc/resolv.conf >/dev/null && ls /proc/self /dev/null /sys/kernel >/dev/null"])
        .output()
        .unwrap();
    let r: super::Run = o.into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tree(&r.upper()), Vec::<String>::new());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn lowers_are_stacked_top_first() {
    let w = work_root();
    let a = w.path().join("a");
    let b = w.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("x"), "top").unwrap();
    std::fs::write(b.join("x"), "bottom").unwrap();
    std::fs::write(b.join("y"), "only-b").unwrap();
    let r = ns(
        w.path(),
        &[
            "--lower",
            a.to_str().unwrap(),
            "--lower",
            b.to_str().unwrap(),
        ],
        &["sh", "-c", "cat /x /y"],
    );
    // busybox is the first --lower given by `ns`, so it sits on top; a and b follow.
    assert_eq!(r.stderr, "toponly-b");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn scratch_rootfs_fails_cleanly() {
    let w = work_root();
    let o = Command::new(BIN)
        .arg("--work-root")
        .arg(w.path())
        .args(["--", "/bin/sh", "-c", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "ns-run: error: exec /bin/sh: no such file or directory\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn child_errors_carry_the_real_errno() {
    let w = work_root();
    let r = sh(w.path(), &["--workdir", "/etc/passwd"], "true");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("workdir /etc/passwd: not a directory"),
        "{}",
        r.stderr
    );
    let r = ns(w.path(), &[], &["no-such-cmd"]);
    assert!(
        r.stderr
            .contains("exec no-such-cmd: executable file not found in $PATH"),
        "{}",
        r.stderr
    );
    let r = ns(w.path(), &[], &["/etc/passwd"]);
    assert!(
        r.stderr.contains("exec /etc/passwd: permission denied"),
        "{}",
        r.stderr
    );
    let r = sh(
        w.path(),
        &["--mount", "type=bind,source=/nonexistent/x,target=/m"],
        "true",
    );
    assert!(
        r.stderr
            .contains("mount source /nonexistent/x: no such file or directory"),
        "{}",
        r.stderr
    );
    // the library reports the errno itself
    let spec = ns_run::RunSpec {
        lowers: vec![busybox().to_path_buf()],
        work_root: Some(w.path().to_path_buf()),
        argv: vec!["/etc/passwd".into()],
        helper: Some(BIN.into()),
        ..Default::default()
    };
    let e = ns_run::run(&spec).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EACCES), "{e}");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn stdin_is_dev_null_unless_interactive() {
    let w = work_root();
    let run = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--work-root")
            .arg(w.path())
            .arg("--lower")
            .arg(busybox())
            .args(extra);
        c.args(["--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        ch.stdin.take().unwrap().write_all(b"data").unwrap();
        let o = ch.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert_eq!(run(&[]), "");
    assert_eq!(run(&["-i"]), "data");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn caller_upper_dir_is_used_and_kept() {
    let w = work_root();
    let up = w.path().join("my-upper");
    let r = sh(w.path(), &["--upper", up.to_str().unwrap()], "echo 1 > /f");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.upper(), up);
    assert_eq!(std::fs::read_to_string(up.join("f")).unwrap(), "1\n");
}

#[test]
#[ignore = "needs root: namespaces, overlayfs, snapshot unpack with device nodes"]
fn image_from_the_store() {
    let w = work_root();
    let store_root = w.path().join("store");
    let store = image_store::Store::open(&store_root).unwrap();
    let tar = busybox().parent().unwrap().join("busybox.tar");
    let opts = image_store::ImportOptions {
        reference: Some(image_store::Reference::parse("bb:local").unwrap()),
        ..Default::default()
    };
    store
        .import_tar(std::fs::File::open(tar).unwrap(), &opts)
        .unwrap();
    drop(store);
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&store_root)
        .args([
            "--image",
            "bb:local",
            "--",
            "sh",
            "-c",
            "echo img > /i; cat /etc/group | head -1",
        ])
        .output()
        .unwrap();
    let r: super::Run = o.into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "root:x:0:\n");
    // runs live in STORE/runs, never in STORE/tmp (image-store's gc owns that)
    assert!(r.upper().starts_with(store_root.join("runs")));
    assert_eq!(tree(&r.upper()), ["i"]);
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&store_root)
        .args(["--image", "nope:1", "--", "true"])
        .output()
        .unwrap();
    // an unknown image is an input error (2), in the store's words naming it
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim_end(),
        "ns-run: error: image docker.io/library/nope:1 not found"
    );
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&store_root)
        .args(["--image", "Bad/Ref", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Bad/Ref"));
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn many_long_lowers_exceed_the_mount_option_limit() {
    let w = work_root();
    let mut args: Vec<String> = Vec::new();
    for i in 0..60 {
        let d = w.path().join(format!("layer-{i:03}-{}", "x".repeat(80)));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), format!("{i}")).unwrap();
        args.push("--lower".into());
        args.push(d.to_string_lossy().into_owned());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ns(
        w.path(),
        &refs,
        &["sh", "-c", "cat /f0 /f59; ls / | grep -c '^f'"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "05960\n");
}

#[test]
#[ignore = "needs root: mounts a tmpfs for a second file system"]
fn upper_on_another_file_system_is_an_input_error() {
    let w = work_root();
    let other = w.path().join("other");
    std::fs::create_dir(&other).unwrap();
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let up = other.join("up");
    let r = sh(w.path(), &["--upper", up.to_str().unwrap()], "true");
    let _ = Command::new("umount").arg(&other).status();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not on the work root's file system"),
        "{}",
        r.stderr
    );
}
