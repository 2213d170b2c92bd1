//! Rootless: ns-run run by an unprivileged user the test creates (useradd), via setpriv.
use super::{BIN, Run};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static SETUP: Mutex<()> = Mutex::new(());

/// Creates (once) user `name`, with /etc/subuid ranges when `subids`, and returns its uid.
fn user(name: &str, subids: bool) -> u32 {
    let _g = SETUP.lock().unwrap();
    let exists = Command::new("id").arg("-u").arg(name).output().unwrap();
    if !exists.status.success() {
        let mut c = Command::new("useradd");
        c.arg("-m");
        if !subids {
            c.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        assert!(c.arg(name).status().unwrap().success(), "useradd {name}");
    }
    if subids {
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with(&format!("{name}:"))) {
                let mut t = text;
                writeln!(t, "{name}:300000:65536").unwrap();
                std::fs::write(f, t).unwrap();
            }
        }
    }
    let out = Command::new("id").arg("-u").arg(name).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A work dir owned by `name` holding a busybox lower extracted by that user (so the lower's
/// files belong to container root) and a work root.
fn home(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("ns-run-rootless-")
        .tempdir_in("/tmp")
        .unwrap();
    let st = Command::new("chown")
        .arg(name)
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let low = d.path().join("lower");
    let wr = d.path().join("work");
    let mut tar = super::busybox().parent().unwrap().join("busybox.tar");
    if !readable_by(name, &tar) {
        let t = d.path().join("busybox.tar");
        std::fs::copy(&tar, &t).unwrap();
        tar = t;
    }
    let sh = format!(
        "mkdir {0} {1} && tar -xpf {2} -C {0}",
        low.display(),
        wr.display(),
        tar.display()
    );
    let st = as_user(name).args(["sh", "-c", &sh]).status().unwrap();
    assert!(st.success());
    (d, low, wr)
}

fn readable_by(name: &str, p: &Path) -> bool {
    as_user(name)
        .arg("test")
        .arg("-r")
        .arg(p)
        .status()
        .unwrap()
        .success()
}

/// The ns-run binary as `name` can run it (a copy in /tmp when the build dir is private, as
/// under /root).
fn bin_for(name: &str) -> PathBuf {
    static COPY: Mutex<Option<PathBuf>> = Mutex::new(None);
    if readable_by(name, Path::new(BIN)) {
        return PathBuf::from(BIN);
    }
    let mut c = COPY.lock().unwrap();
    c.get_or_insert_with(|| {
        let p = std::env::temp_dir().join(format!("ns-run-it-{}", std::process::id()));
        std::fs::copy(BIN, &p).unwrap();
        p
    })
    .clone()
}

fn as_user(name: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", name, "--regid", name, "--init-groups"])
        .current_dir("/");
    c
}

fn run(name: &str, low: &Path, wr: &Path, args: &[&str], script: &str) -> Run {
    let mut c = as_user(name);
    c.arg(bin_for(name))
        .arg("--work-root")
        .arg(wr)
        .arg("--lower")
        .arg(low)
        .args(args);
    c.args(["--", "sh", "-c", script]);
    c.output().unwrap().into()
}

#[test]
#[ignore = "needs root: creates users, runs ns-run as one of them"]
fn rootless_with_subordinate_ids() {
    let uid = user("nsrun-sub", true);
    let (_d, low, wr) = home("nsrun-sub");
    let r = run(
        "nsrun-sub",
        &low,
        &wr,
        &[],
        "id -u; echo hi > /f; mkdir /tmp/d; touch /tmp/d/f; chown -R 1000:1000 /tmp/d; rm /bin/ls",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "0\n");
    let j = r.json();
    assert_eq!(j["uid_map"][0]["host_id"], uid);
    let sub = j["uid_map"][1]["host_id"].as_u64().unwrap() as u32;
    let up = r.upper();
    // container root's files belong to the user; container uid 1000 to sub-id start + 999
    assert_eq!(std::fs::metadata(up.join("f")).unwrap().uid(), uid);
    assert_eq!(
        std::fs::metadata(up.join("tmp/d")).unwrap().uid(),
        sub + 999
    );
    // the deletion is recorded as a whiteout
    assert!(std::fs::symlink_metadata(up.join("bin/ls")).unwrap().rdev() == 0);
    // the user cannot delete sub-id-owned files itself; `ns-run --rm` can (in a user namespace)
    let run_dir = up.parent().unwrap().to_path_buf();
    let rm = as_user("nsrun-sub")
        .arg("rm")
        .arg("-rf")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(!rm.status.success());
    let rm = as_user("nsrun-sub")
        .arg(bin_for("nsrun-sub"))
        .arg("--rm")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(!run_dir.exists());
    // USER with sub-ids, supplementary groups
    let r = run(
        "nsrun-sub",
        &low,
        &wr,
        &["-u", "app", "-w", "/tmp/w"],
        "id -u; id -G; touch /tmp/x",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "1000\n1000 50\n");
    // isolation holds: default caps, seccomp, hostname, no host mounts
    let r = run(
        "nsrun-sub",
        &low,
        &wr,
        &[],
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; hostname; ls /sys/class/net",
    );
    assert_eq!(
        r.stderr,
        "CapEff:\t00000000a80425fb\nSeccomp:\t2\npelagos\nlo\n"
    );
}

#[test]
#[ignore = "needs root: creates users, runs ns-run as one of them"]
fn rootless_single_id_map() {
    let uid = user("nsrun-single", false);
    let (_d, low, wr) = home("nsrun-single");
    let r = run(
        "nsrun-single",
        &low,
        &wr,
        &[],
        "id -u; cat /proc/self/uid_map | tr -s ' '; echo x > /y",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, format!("0\n 0 {uid} 1\n"));
    assert_eq!(r.json()["uid_map"].as_array().unwrap().len(), 1);
    assert_eq!(std::fs::metadata(r.upper().join("y")).unwrap().uid(), uid);
    // a user other than root cannot exist without sub-ids: reported with the real errno
    let r = run("nsrun-single", &low, &wr, &["-u", "app"], "true");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("ns-run: error: setgroups") || r.stderr.contains("setgid"),
        "{}",
        r.stderr
    );
    // the failed run left nothing; the successful one only its upper dir (once the background
    // cleanup is done)
    // (removals run in the background: poll, tolerating entries vanishing mid-walk)
    let want = vec![vec!["upper".to_string(), "upper/y".to_string()]];
    let t0 = std::time::Instant::now();
    loop {
        let left: Option<Vec<Vec<String>>> = std::fs::read_dir(&wr)
            .unwrap()
            .flatten()
            .map(|e| std::panic::catch_unwind(|| super::tree(&e.path())).ok())
            .collect();
        if left.as_ref() == Some(&want) {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "{left:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root: creates users, makes /dev/fuse usable by them (0666, the Debian default)"]
fn rootless_fuse_overlayfs() {
    let m = std::fs::metadata("/dev/fuse").unwrap();
    if m.mode() & 0o006 != 0o006 {
        std::fs::set_permissions(
            "/dev/fuse",
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
    }
    user("nsrun-sub", true);
    let (_d, low, wr) = home("nsrun-sub");
    let r = run(
        "nsrun-sub",
        &low,
        &wr,
        &["--overlay", "fuse"],
        "grep -c fuse-overlayfs /proc/mounts; echo f > /f; rm /bin/ls",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "1\n");
    let up = r.upper();
    assert_eq!(std::fs::read_to_string(up.join("f")).unwrap(), "f\n");
    assert!(std::fs::symlink_metadata(up.join("bin/ls")).is_ok());
}

#[test]
#[ignore = "needs root: creates users, makes /dev/net/tun usable by them (0666, the Debian default)"]
fn rootless_slirp_and_pasta_reach_host_loopback() {
    let m = std::fs::metadata("/dev/net/tun").unwrap();
    if m.mode() & 0o006 != 0o006 {
        std::fs::set_permissions(
            "/dev/net/tun",
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
    }
    user("nsrun-sub", true);
    let (_d, low, wr) = home("nsrun-sub");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut b = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut b);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\npong",
            );
        }
    });
    let r = run(
        "nsrun-sub",
        &low,
        &wr,
        &["--network", "slirp"],
        &format!("wget -q -O - http://10.0.2.2:{port}/"),
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, "pong"));
    let script =
        format!("gw=$(ip route | awk '/^default/ {{print $3}}'); wget -q -O - http://$gw:{port}/");
    let r = run("nsrun-sub", &low, &wr, &["--network", "pasta"], &script);
    assert_eq!((r.code, r.stderr.as_str()), (0, "pong"));
}

/// The reported bug: a multi-threaded program calling the library rootless (the init is the
/// program itself re-executed) failed with "make mounts private /: operation not permitted",
/// as the helper was executed before the id maps were written and lost its capabilities.
#[test]
#[ignore = "needs root: creates users, runs this test binary as one of them"]
fn rootless_library_reexec_from_threads() {
    use super::reexec::{LOWER_ENV, WORK_ENV};
    user("nsrun-sub", true);
    let (d, low, wr) = home("nsrun-sub");
    let mut exe = std::env::current_exe().unwrap();
    if !readable_by("nsrun-sub", &exe) {
        let p = d.path().join("it");
        std::fs::copy(&exe, &p).unwrap();
        exe = p;
    }
    let o = as_user("nsrun-sub")
        .arg(&exe)
        .args([
            "reexec::library_reexecs_self_from_threads",
            "--exact",
            "--include-ignored",
        ])
        .env(LOWER_ENV, &low)
        .env(WORK_ENV, &wr)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("1 passed"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
