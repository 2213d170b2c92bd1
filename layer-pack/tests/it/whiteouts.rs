//! Overlay whiteouts: all three upper-dir forms → OCI whiteouts, and back.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use layer_pack::{
    Compression, PackError, PackOptions, UnpackFormat, UnpackOptions, pack_dir, unpack,
};
use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};

use crate::util::*;

fn upper_opts(userxattr: bool) -> PackOptions {
    PackOptions {
        overlay_upper: true,
        userxattr,
        ..opts(Compression::None)
    }
}

fn names(blob: &[u8]) -> Vec<String> {
    list_tar(blob).into_iter().map(|e| e.0).collect()
}

fn whiteout_dev(p: &Path) {
    mknodat(
        CWD,
        p,
        FileType::CharacterDevice,
        Mode::empty(),
        makedev(0, 0),
    )
    .unwrap();
}

/// An upper dir with a char 0:0 whiteout, an opaque dir and an xattr whiteout.
fn hand_upper(d: &Path, prefix: &str) {
    write(&d.join("kept"), b"k");
    whiteout_dev(&d.join("gone-dev"));
    fs::create_dir_all(d.join("opaque")).unwrap();
    write(&d.join("opaque/new"), b"n");
    xattr::set(d.join("opaque"), format!("{prefix}overlay.opaque"), b"y").unwrap();
    fs::create_dir_all(d.join("notopaque")).unwrap();
    // "x" means "contains xattr whiteouts", not opaque
    xattr::set(d.join("notopaque"), format!("{prefix}overlay.opaque"), b"x").unwrap();
    write(&d.join("notopaque/gone-x"), b"");
    xattr::set(
        d.join("notopaque/gone-x"),
        format!("{prefix}overlay.whiteout"),
        b"",
    )
    .unwrap();
    // an overlay xattr that must never reach the layer
    xattr::set(d.join("kept"), format!("{prefix}overlay.origin"), b"zz").unwrap();
}

const EXPECTED: [&str; 7] = [
    ".wh.gone-dev",
    "kept",
    "notopaque/",
    "notopaque/.wh.gone-x",
    "opaque/",
    "opaque/.wh..wh..opq",
    "opaque/new",
];

#[test]
fn user_xattr_upper_dir_converts_all_three_forms() {
    let t = tmp();
    hand_upper(t.path(), "user.");
    let (_, blob) = pack_vec(t.path(), &upper_opts(true));
    assert_eq!(names(&blob), EXPECTED);
    // no overlay xattrs in the layer
    let raw = decompress(&blob);
    assert!(
        !raw.windows(8).any(|w| w == b"overlay."),
        "overlay xattr leaked"
    );
}

#[test]
#[ignore = "needs root: trusted.* xattrs"]
fn trusted_xattr_upper_dir_converts_all_three_forms() {
    let t = tmp();
    hand_upper(t.path(), "trusted.");
    let (_, blob) = pack_vec(t.path(), &upper_opts(false));
    assert_eq!(names(&blob), EXPECTED);
}

#[test]
fn without_overlay_upper_a_whiteout_device_is_a_plain_device() {
    let t = tmp();
    whiteout_dev(&t.path().join("w"));
    let (_, blob) = pack_vec(t.path(), &opts(Compression::None));
    assert_eq!(list_tar(&blob), [("w".to_string(), '3', String::new())]);
}

#[test]
fn input_names_with_the_whiteout_prefix_are_an_error() {
    let t = tmp();
    write(&t.path().join("d/.wh.sneaky"), b"");
    let err = pack_dir(t.path(), &upper_opts(true), std::io::sink()).unwrap_err();
    assert!(
        matches!(&err, PackError::ReservedName { path } if path == "d/.wh.sneaky"),
        "{err}"
    );
}

#[test]
fn plain_unpack_deletes_and_opaque_keeps_this_layers_entries() {
    let t = tmp();
    let root = t.path().join("root");
    write(&root.join("a"), b"a");
    write(&root.join("d/old1"), b"1");
    write(&root.join("d/sub/old2"), b"2");
    write(&root.join("e/x"), b"x");
    let layer = raw_tar(&[
        (raw_header(b".wh.a", b'0', 0, b""), b""),
        (raw_header(b"d/", b'5', 0, b""), b""),
        (raw_header(b"d/new-before", b'0', 1, b""), b"n"),
        (raw_header(b"d/.wh..wh..opq", b'0', 0, b""), b""),
        (raw_header(b"d/new-after", b'0', 1, b""), b"m"),
        (raw_header(b"e/.wh.x", b'0', 0, b""), b""),
        (raw_header(b".wh.missing", b'0', 0, b""), b""),
    ]);
    let rep = unpack(layer.as_slice(), &root, &unpack_opts()).unwrap();
    assert_eq!(rep.whiteouts, 4);
    assert!(!root.join("a").exists());
    let mut d: Vec<String> = fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    d.sort();
    assert_eq!(d, ["new-after", "new-before"]);
    assert_eq!(fs::read_dir(root.join("e")).unwrap().count(), 0);
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_overlay(lower: &str, upper: Option<(&Path, &Path)>, merged: &Path, extra: &str) -> Mount {
    fs::create_dir_all(merged).unwrap();
    let mut o = format!("lowerdir={lower}");
    if let Some((u, w)) = upper {
        use std::fmt::Write as _;
        write!(o, ",upperdir={},workdir={}", u.display(), w.display()).unwrap();
    }
    o.push_str(extra);
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &o])
        .arg(merged)
        .status()
        .unwrap();
    assert!(st.success(), "mount -o {o}");
    Mount(merged.to_path_buf())
}

fn real_overlay_round_trip(userxattr: bool) {
    let tdir = tmp();
    let p = tdir.path();
    let lower = p.join("lower");
    write(&lower.join("a"), b"a");
    write(&lower.join("keep"), b"keep");
    write(&lower.join("d/old"), b"old");
    write(&lower.join("e/y"), b"y");
    write(&lower.join("e/z"), b"z");
    set_all_mtimes(&lower, 1_000);
    let (upper, work, merged) = (p.join("upper"), p.join("work"), p.join("merged"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    let extra = if userxattr { ",userxattr" } else { "" };
    let m = mount_overlay(
        lower.to_str().unwrap(),
        Some((&upper, &work)),
        &merged,
        extra,
    );
    fs::remove_file(merged.join("a")).unwrap();
    fs::remove_dir_all(merged.join("d")).unwrap();
    fs::create_dir(merged.join("d")).unwrap();
    write(&merged.join("d/new"), b"new");
    fs::remove_file(merged.join("e/y")).unwrap();
    write(&merged.join("f"), b"f");
    set_all_mtimes(&merged, 2_000);
    let want = snapshot(&merged);
    drop(m);
    let o = PackOptions {
        overlay_upper: true,
        userxattr,
        ..PackOptions::default()
    };
    let (_, blob) = pack_vec(&upper, &o);
    let n = names(&blob);
    for w in [
        ".wh.a",
        "d/",
        "d/.wh..wh..opq",
        "d/new",
        "e/",
        "e/.wh.y",
        "f",
    ] {
        assert!(n.contains(&w.to_string()), "{w} missing from {n:?}");
    }
    // flatten: lower copy + layer == what the container saw
    let flat = p.join("flat");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&lower)
            .arg(&flat)
            .status()
            .unwrap()
            .success()
    );
    unpack(blob.as_slice(), &flat, &unpack_opts()).unwrap();
    assert_eq!(snapshot(&flat), want);
    // overlay format: the unpacked layer as a lower dir over the original lower gives the same view
    let ovl = p.join("ovl-layer");
    let uo = UnpackOptions {
        format: UnpackFormat::Overlay { userxattr },
        ..unpack_opts()
    };
    unpack(blob.as_slice(), &ovl, &uo).unwrap();
    let merged2 = p.join("merged2");
    let _m2 = mount_overlay(
        &format!("{}:{}", ovl.display(), lower.display()),
        None,
        &merged2,
        extra,
    );
    assert_eq!(snapshot(&merged2), want);
}

#[test]
#[ignore = "needs root: mounts overlayfs (trusted.overlay xattrs)"]
fn real_overlay_whiteouts_round_trip() {
    real_overlay_round_trip(false);
}

#[test]
#[ignore = "needs root: mounts overlayfs (userxattr)"]
fn real_overlay_userxattr_whiteouts_round_trip() {
    real_overlay_round_trip(true);
}

#[test]
fn overlay_unpack_writes_overlay_whiteouts_and_opaque_xattrs() {
    let t = tmp();
    let layer = raw_tar(&[
        (raw_header(b".wh.a", b'0', 0, b""), b""),
        (raw_header(b"d/", b'5', 0, b""), b""),
        (raw_header(b"d/.wh..wh..opq", b'0', 0, b""), b""),
        (raw_header(b"d/new", b'0', 1, b""), b"n"),
    ]);
    let out = t.path().join("lower");
    let uo = UnpackOptions {
        format: UnpackFormat::Overlay { userxattr: true },
        ..unpack_opts()
    };
    let rep = unpack(layer.as_slice(), &out, &uo).unwrap();
    assert_eq!(rep.whiteouts, 2);
    let md = fs::symlink_metadata(out.join("a")).unwrap();
    assert!(
        md.file_type().is_char_device() && md.rdev() == 0,
        "not a 0:0 whiteout"
    );
    assert_eq!(
        xattr::get(out.join("d"), "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(out.join("d/new").exists());
    assert!(!out.join("d/.wh..wh..opq").exists());
}

#[test]
fn plain_whiteouts_under_missing_directories_create_nothing() {
    let t = tmp();
    let root = t.path().join("root");
    let layer = raw_tar(&[
        (raw_header(b"no/such/.wh.x", b'0', 0, b""), b""),
        (raw_header(b"gone/.wh..wh..opq", b'0', 0, b""), b""),
    ]);
    let rep = unpack(layer.as_slice(), &root, &unpack_opts()).unwrap();
    assert_eq!(rep.whiteouts, 2);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}
