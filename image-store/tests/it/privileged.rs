//! Tests that need root: overlay mounts of snapshots, a full file system, rootless stores.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{TestStore, run_tool, tar_of};

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// base: etc/keep, etc/gone, opq/old; top: etc/.wh.gone, opq/ opaque + opq/new.
fn two_layer_image(s: &TestStore) {
    let base = tar_of(&[
        ("etc/", b""),
        ("etc/keep", b"k"),
        ("etc/gone", b"g"),
        ("opq/", b""),
        ("opq/old", b"o"),
    ]);
    let o = s.run_stdin(&["import", "-", "-t", "wbase"], &base);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top = tar_of(&[
        ("etc/", b""),
        ("etc/.wh.gone", b""),
        ("opq/", b""),
        ("opq/.wh..wh..opq", b""),
        ("opq/new", b"n"),
    ]);
    assert!(
        s.run_stdin(&["import", "-", "-t", "wtop"], &top)
            .status
            .success()
    );
    let i = s.json(&["inspect", "wtop"]);
    let l = &i["manifest"]["layers"][0];
    let doc = serde_json::json!({"media_type": l["mediaType"], "digest": l["digest"], "size": l["size"],
        "diff_id": i["config"]["rootfs"]["diff_ids"][0]});
    let o = s.run_stdin(
        &["commit", "--base", "wbase", "-t", "two"],
        doc.to_string().as_bytes(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn lowers(s: &TestStore, r: &str) -> Vec<String> {
    s.json(&["lowers", r])["lowers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs root: mounts overlayfs over the snapshots"]
fn snapshots_are_overlay_lowers_with_whiteouts() {
    let s = TestStore::new();
    two_layer_image(&s);
    let l = lowers(&s, "two");
    assert_eq!(l.len(), 2);
    // the top snapshot holds a char 0:0 whiteout and an opaque dir
    let top = Path::new(&l[0]);
    let gone = std::fs::symlink_metadata(top.join("etc/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &gone.file_type()
    ));
    assert_eq!(
        xattr::get(top.join("opq"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    let m = s.path("merged");
    std::fs::create_dir(&m).unwrap();
    run_tool(
        "mount",
        &[
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("lowerdir={}", l.join(":")),
            m.to_str().unwrap(),
        ],
    );
    let mount = Mount(m.clone());
    assert_eq!(names(&m.join("etc")), ["keep"]);
    assert_eq!(names(&m.join("opq")), ["new"]);
    // rootfs export flattens the same way
    let out = s.path("rootfs.tar");
    s.ok(&[
        "export",
        "two",
        "--format",
        "rootfs",
        "-o",
        out.to_str().unwrap(),
    ]);
    let o = run_tool("tar", &["-tf", out.to_str().unwrap()]);
    let mut list: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|x| x.trim_end_matches('/').to_string())
        .collect();
    list.sort();
    assert_eq!(list, ["etc", "etc/keep", "opq", "opq/new"]);
    // fsck compares the snapshots with their layers, whiteouts and opaque dirs included; a
    // lost whiteout (what a crash can do to an unsynced snapshot) is found and repaired
    drop(mount);
    s.fsck_clean();
    std::fs::remove_file(top.join("etc/gone")).unwrap();
    let o = s.run(&["fsck"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("incomplete: whiteout etc/.wh.gone missing"),
        "{err}"
    );
    s.ok(&["fsck", "--repair"]);
    assert_eq!(lowers(&s, "two"), l);
    assert!(std::fs::symlink_metadata(top.join("etc/gone")).is_ok());
    s.fsck_clean();
    // snapshots are complete or absent: gc of an untagged image removes them whole
    s.ok(&["rm", "two", "wtop", "wbase"]);
    let gc = s.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["snapshots_removed"], 2);
    s.fsck_clean();
}

#[test]
#[ignore = "needs root: mounts a small tmpfs to fill it"]
fn full_disk_fails_clearly_and_leaves_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    run_tool(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=3m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ],
    );
    let _g = Mount(mnt.clone());
    let s = TestStore::at(&mnt.join("store"));
    assert!(
        s.run_stdin(&["import", "-", "-t", "small"], &tar_of(&[("a", b"hello")]))
            .status
            .success()
    );
    let before = std::fs::read(s.root.join("index.json")).unwrap();
    // 8 MiB of incompressible data cannot fit
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..8 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let o = s.run_stdin(&["import", "-", "-t", "big"], &tar_of(&[("big", &big)]));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    // the message names the file being written (a temp file in the store), not only its dir
    let tmp_file = format!(
        "image-store: error: no space left on device while writing {}/",
        s.root.join("tmp").display()
    );
    assert!(err.starts_with(&tmp_file) && err.contains(".blob"), "{err}");
    assert_eq!(
        std::fs::read_dir(s.root.join("tmp")).unwrap().count(),
        0,
        "temp file left behind"
    );
    // a directory import (packed by layer-pack into the store's blob writer) says the same
    let src = s.path("bigdir");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big"), &big).unwrap();
    let o = s.run(&["import", src.to_str().unwrap(), "-t", "big"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&tmp_file) && err.contains(".blob"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(s.root.join("index.json")).unwrap(), before);
    s.fsck_clean();
    // fill the disk completely, then a tag (index.json rewrite) must fail without damage
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 4 << 20]);
    let o = s.run(&["tag", "small", "other"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no space left on device"));
    assert_eq!(std::fs::read(s.root.join("index.json")).unwrap(), before);
    std::fs::remove_file(&filler).unwrap();
    s.fsck_clean();
    assert_eq!(s.json(&["ls"])["images"].as_array().unwrap().len(), 1);
    s.ok(&["tag", "small", "other"]);
}

/// A temp dir the unprivileged test user can use.
fn user_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("is-rootless")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

const NOBODY: u32 = 65534;

#[test]
#[ignore = "needs root: switches to an unprivileged user"]
fn rootless_store_uses_xdg_data_home_and_user_xattr_whiteouts() {
    let d = user_dir();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    // default root of an unprivileged user: $XDG_DATA_HOME/pelagos
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_image-store"))
        .args(["--json", "df"])
        .env_remove("PELAGOS_STORE")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("xdg"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(home.join("xdg/pelagos/index.json").is_file());

    let mut s = TestStore::at(&home.join("xdg/pelagos"));
    s.user = Some(NOBODY);
    two_layer_image(&s);
    let l = lowers(&s, "two");
    let top = Path::new(&l[0]);
    // unprivileged whiteouts: a char 0:0 device (unprivileged since Linux 5.8) or an empty file
    // marked user.overlay.whiteout; opaque dirs use user.overlay.opaque
    let gone = top.join("etc/gone");
    let md = std::fs::symlink_metadata(&gone).unwrap();
    if md.is_file() {
        assert!(
            xattr::get(&gone, "user.overlay.whiteout")
                .unwrap()
                .is_some()
        );
    } else {
        use std::os::unix::fs::MetadataExt;
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &md.file_type()
        ));
        assert_eq!(md.rdev(), 0);
    }
    assert_eq!(
        xattr::get(top.join("opq"), "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(top.parent().unwrap().join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["whiteouts"], "user");
    // the unprivileged user mounts them in a user namespace with userxattr and sees the image
    let m = home.join("merged");
    let script = format!(
        "mkdir {m} && mount -t overlay overlay -o userxattr,lowerdir={} {m} && ls {m}/etc && ls {m}/opq",
        l.join(":"),
        m = m.display()
    );
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .args(["unshare", "-Urm", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["keep", "new"]
    );
    s.fsck_clean();
}
