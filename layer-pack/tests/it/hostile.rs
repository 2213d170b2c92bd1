//! Hostile archives built by hand: refused, naming the entry, nothing touched outside DIR.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use layer_pack::{UnpackError, UnpackOptions, unpack};

use crate::util::*;

/// Unpacks `layer` into `base/root` and returns the error text; `base/outside` must stay absent.
fn refuse(layer: &[u8], setup: impl FnOnce(&Path), entry: &str, reason: &str) {
    let t = tmp();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    setup(t.path());
    let err = unpack(
        layer,
        &root,
        &UnpackOptions {
            allow_devices: false,
            ..unpack_opts()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            UnpackError::Refused { .. } | UnpackError::Malformed { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains(entry), "error {msg:?} does not name {entry:?}");
    assert!(
        msg.contains(reason),
        "error {msg:?} does not say {reason:?}"
    );
    assert!(
        !t.path().join("outside").exists(),
        "wrote outside DIR: {msg}"
    );
    assert!(!t.path().join("evil").exists(), "wrote outside DIR: {msg}");
}

#[test]
fn dot_dot_components() {
    let l = raw_tar(&[(raw_header(b"a/../../evil", b'0', 4, b""), b"evil")]);
    refuse(&l, |_| {}, "a/../../evil", "'..'");
}

#[test]
fn absolute_paths() {
    let l = raw_tar(&[(raw_header(b"/tmp/evil", b'0', 4, b""), b"evil")]);
    refuse(&l, |_| {}, "/tmp/evil", "absolute");
}

#[test]
fn through_a_symlink_planted_in_the_archive() {
    let l = raw_tar(&[
        (raw_header(b"link", b'2', 0, b"../outside"), b""),
        (raw_header(b"link/file", b'0', 4, b""), b"evil"),
    ]);
    refuse(
        &l,
        |b| fs::create_dir(b.join("outside-target")).unwrap(),
        "link/file",
        "symlink",
    );
    // also when the symlink points to an existing directory outside
    let l = raw_tar(&[
        (raw_header(b"l2", b'2', 0, b"../outside"), b""),
        (raw_header(b"l2/x", b'0', 1, b""), b"x"),
    ]);
    let t = tmp();
    let root = t.path().join("root");
    fs::create_dir_all(t.path().join("outside")).unwrap();
    let err = unpack(l.as_slice(), &root, &unpack_opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("l2/x") && err.contains("symlink"), "{err}");
    assert_eq!(fs::read_dir(t.path().join("outside")).unwrap().count(), 0);
}

#[test]
fn through_a_symlink_already_in_dir() {
    let t = tmp();
    let root = t.path().join("root");
    fs::create_dir_all(t.path().join("outside")).unwrap();
    fs::create_dir_all(&root).unwrap();
    symlink("../outside", root.join("etc")).unwrap();
    let l = raw_tar(&[(raw_header(b"etc/passwd", b'0', 4, b""), b"evil")]);
    let err = unpack(l.as_slice(), &root, &unpack_opts())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("etc/passwd") && err.contains("symlink"),
        "{err}"
    );
    assert_eq!(fs::read_dir(t.path().join("outside")).unwrap().count(), 0);
}

#[test]
fn a_file_over_an_existing_symlink_replaces_the_link_not_the_target() {
    let t = tmp();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    write(&t.path().join("victim"), b"original");
    symlink("../victim", root.join("f")).unwrap();
    let l = raw_tar(&[(raw_header(b"f", b'0', 5, b""), b"pwned")]);
    unpack(l.as_slice(), &root, &unpack_opts()).unwrap();
    assert_eq!(fs::read(t.path().join("victim")).unwrap(), b"original");
    assert_eq!(fs::read(root.join("f")).unwrap(), b"pwned");
}

#[test]
fn hardlinks_to_outside() {
    let l = raw_tar(&[(raw_header(b"h", b'1', 0, b"../outside"), b"")]);
    refuse(
        &l,
        |b| write(&b.join("outside-file"), b"x"),
        "h",
        "hard link target leaves the root",
    );
    let l = raw_tar(&[(raw_header(b"h", b'1', 0, b"/etc/passwd"), b"")]);
    refuse(&l, |_| {}, "h", "hard link target leaves the root");
    let l = raw_tar(&[(raw_header(b"h", b'1', 0, b"nothing-here"), b"")]);
    refuse(&l, |_| {}, "h", "does not exist");
}

#[test]
fn hardlink_to_a_symlink_then_writing_through_it_does_not_escape() {
    let t = tmp();
    let root = t.path().join("root");
    write(&t.path().join("victim"), b"original");
    let l = raw_tar(&[
        (raw_header(b"s", b'2', 0, b"../victim"), b""),
        (raw_header(b"h", b'1', 0, b"s"), b""),
        (raw_header(b"h", b'0', 5, b""), b"pwned"),
    ]);
    unpack(l.as_slice(), &root, &unpack_opts()).unwrap();
    assert_eq!(fs::read(t.path().join("victim")).unwrap(), b"original");
}

#[test]
fn device_nodes_when_unprivileged() {
    let mut h = raw_header(b"dev/sda", b'4', 0, b"");
    h[329..336].copy_from_slice(b"0000010");
    fix_checksum(&mut h);
    let l = raw_tar(&[(h, b"")]);
    refuse(&l, |_| {}, "dev/sda", "device nodes are not allowed");
}

#[test]
fn oversized_extension_headers() {
    let mut h = raw_header(b"././@PaxHeader", b'x', 64 << 20, b"");
    fix_checksum(&mut h);
    let mut l = h.to_vec();
    l.extend(std::iter::repeat_n(0u8, 4096));
    refuse(&l, |_| {}, "@PaxHeader", "oversized");
    let h = raw_header(b"././@LongLink", b'L', 2 << 20, b"");
    let mut l = h.to_vec();
    l.extend(std::iter::repeat_n(b'a', 4096));
    refuse(&l, |_| {}, "LongLink", "oversized");
}

#[test]
fn bad_checksums_truncation_and_unknown_types() {
    let mut h = raw_header(b"f", b'0', 1, b"");
    h[0] = b'g'; // checksum no longer matches
    refuse(&raw_tar(&[(h, b"x")]), |_| {}, "g", "checksum");
    let mut l = raw_tar(&[(raw_header(b"big", b'0', 10_000, b""), b"short")]);
    l.truncate(512 + 100);
    refuse(&l, |_| {}, "big", "truncated");
    refuse(
        &raw_tar(&[(raw_header(b"sparse", b'S', 0, b""), b"")]),
        |_| {},
        "sparse",
        "unsupported entry type",
    );
}

#[test]
fn whiteouts_cannot_name_parents() {
    let l = raw_tar(&[(raw_header(b"d/.wh...", b'0', 0, b""), b"")]);
    let t = tmp();
    let root = t.path().join("root");
    write(&root.join("d/keep"), b"k");
    let err = unpack(l.as_slice(), &root, &unpack_opts())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d/.wh...") && err.contains("invalid whiteout"),
        "{err}"
    );
    assert!(root.join("d/keep").exists());
}

#[test]
fn pax_path_is_checked_too() {
    let mut pax = Vec::new();
    let rec = "path=../../evil\n";
    pax.extend_from_slice(format!("{} {rec}", rec.len() + 3).as_bytes());
    let l = raw_tar(&[
        (
            raw_header(b"././@PaxHeader", b'x', pax.len() as u64, b""),
            &pax,
        ),
        (raw_header(b"innocent", b'0', 1, b""), b"x"),
    ]);
    refuse(&l, |_| {}, "../../evil", "'..'");
}

#[test]
fn a_directory_replaced_by_a_symlink_mid_archive_is_not_written_through() {
    let t = tmp();
    let root = t.path().join("root");
    fs::create_dir_all(t.path().join("outside")).unwrap();
    let l = raw_tar(&[
        (raw_header(b"d/", b'5', 0, b""), b""),
        (raw_header(b"d/a", b'0', 1, b""), b"a"),
        (raw_header(b"d", b'2', 0, b"../outside"), b""),
        (raw_header(b"d/b", b'0', 1, b""), b"b"),
    ]);
    let err = unpack(l.as_slice(), &root, &unpack_opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("d/b") && err.contains("symlink"), "{err}");
    assert_eq!(fs::read_dir(t.path().join("outside")).unwrap().count(), 0);
}
