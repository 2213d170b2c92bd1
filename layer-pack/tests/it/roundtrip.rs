//! pack → unpack plain → the same tree: types, modes, owners, times, xattrs, links.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::Path;

use layer_pack::{Compression, PackOptions, unpack};

use crate::util::*;

/// Mode of the `secret` file: unreadable by anyone but root, which can still pack it.
pub fn secret_mode() -> u32 {
    if is_root() { 0o000 } else { 0o400 }
}

/// A tree with every entry kind an unprivileged user can make.
pub fn user_tree(d: &Path) {
    write(&d.join("a"), b"hello\n");
    write(&d.join("bin/tool"), b"#!/bin/sh\necho tool\n");
    write(&d.join("bin/sg"), b"sg");
    fs::create_dir_all(d.join("tmp")).unwrap();
    fs::create_dir_all(d.join("empty")).unwrap();
    fs::create_dir_all(d.join("hl")).unwrap();
    fs::hard_link(d.join("a"), d.join("hl/a2")).unwrap();
    symlink("a", d.join("rel")).unwrap();
    symlink("/etc/passwd", d.join("abs")).unwrap();
    symlink("nowhere/at/all", d.join("dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let long = "l".repeat(120);
    write(&d.join(format!("deep/{long}/{long}/file")), b"deep");
    symlink(format!("../{}", "t".repeat(150)), d.join("longlink")).unwrap();
    write(&d.join(OsStr::from_bytes(b"caf\xe9")), b"latin1 name");
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u32 = 1;
    while big.len() < (3 << 20) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        big.extend_from_slice(&x.to_le_bytes());
    }
    write(&d.join("big.bin"), &big);
    write(
        &d.join("text.txt"),
        "some text line\n".repeat(70_000).as_bytes(),
    );
    write(&d.join("ro/inside"), b"in a read-only dir");
    write(&d.join("secret"), b"mode 0");
    xattr::set(d.join("a"), "user.mime", b"text/plain").unwrap();
    xattr::set(d.join("bin"), "user.dir", b"yes").unwrap();
    for (p, m) in [
        ("bin/tool", 0o4755),
        ("bin/sg", 0o2755),
        ("tmp", 0o1777),
        ("ro", 0o555),
        ("secret", secret_mode()),
    ] {
        fs::set_permissions(d.join(p), fs::Permissions::from_mode(m)).unwrap();
    }
    set_all_mtimes(d, 1_600_000_000);
    set_mtime(&d.join("a"), 1_500_000_123);
    set_mtime(&d.join("rel"), 1_400_000_000);
}

/// Adds what needs root: owners (including ids beyond the octal header fields), devices, caps.
pub fn root_tree(d: &Path) {
    user_tree(d);
    write(&d.join("owned"), b"x");
    rustix::fs::chownat(
        rustix::fs::CWD,
        d.join("owned"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1001)),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    write(&d.join("bigid"), b"y");
    rustix::fs::chownat(
        rustix::fs::CWD,
        d.join("bigid"),
        Some(rustix::fs::Uid::from_raw(3_000_000)),
        Some(rustix::fs::Gid::from_raw(3_000_001)),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        d.join("rel"),
        Some(rustix::fs::Uid::from_raw(7)),
        Some(rustix::fs::Gid::from_raw(8)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    fs::create_dir_all(d.join("dev")).unwrap();
    let mk = |name: &str, ft, maj, min| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join(name),
            ft,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(maj, min),
        )
        .unwrap();
    };
    mk("dev/null", rustix::fs::FileType::CharacterDevice, 1, 3);
    mk("dev/loop0", rustix::fs::FileType::BlockDevice, 7, 0);
    // vfs_cap_data v2: cap_net_bind_service permitted + effective
    let mut cap = vec![0u8; 20];
    cap[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
    cap[4..8].copy_from_slice(&(1u32 << 10).to_le_bytes());
    xattr::set(d.join("bin/tool"), "security.capability", &cap).unwrap();
    set_all_mtimes(d, 1_600_000_000);
    set_mtime(&d.join("a"), 1_500_000_123);
    set_mtime(&d.join("rel"), 1_400_000_000);
}

fn round_trip(src: &Path, o: &PackOptions) {
    let (desc, blob) = pack_vec(src, o);
    assert_eq!(desc.size, blob.len() as u64);
    assert_eq!(desc.digest, sha256(&blob));
    assert_eq!(desc.diff_id, sha256(&decompress(&blob)));
    let t = tmp();
    let dst = t.path().join("out");
    let rep = unpack(blob.as_slice(), &dst, &unpack_opts()).unwrap();
    assert_eq!(rep.digest, desc.digest);
    assert_eq!(rep.diff_id, desc.diff_id);
    assert_eq!(
        snapshot(src),
        snapshot(&dst),
        "compression {:?}",
        o.compression
    );
}

#[test]
fn round_trip_user_tree_all_compressions() {
    let t = tmp();
    user_tree(t.path());
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let o = if is_root() {
            PackOptions {
                compression: c,
                ..PackOptions::default()
            }
        } else {
            opts(c)
        };
        round_trip(t.path(), &o);
    }
}

#[test]
#[ignore = "needs root: chown, mknod of devices, security.capability"]
fn round_trip_root_tree_owners_devices_caps() {
    let t = tmp();
    root_tree(t.path());
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        round_trip(
            t.path(),
            &PackOptions {
                compression: c,
                ..PackOptions::default()
            },
        );
    }
    // The layer really carries the big ids through PAX and the devices.
    let (_, blob) = pack_vec(
        t.path(),
        &PackOptions {
            compression: Compression::None,
            ..PackOptions::default()
        },
    );
    let mut a = tar::Archive::new(blob.as_slice());
    let mut seen = 0;
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path_bytes().as_ref() == b"bigid" {
            assert_eq!(e.header().uid().unwrap(), 3_000_000);
            seen += 1;
        }
    }
    assert_eq!(seen, 1);
}

#[test]
fn sockets_are_skipped() {
    let t = tmp();
    write(&t.path().join("f"), b"x");
    let _l = std::os::unix::net::UnixListener::bind(t.path().join("sock")).unwrap();
    let (_, blob) = pack_vec(t.path(), &opts(Compression::None));
    let names: Vec<String> = list_tar(&blob).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["f"]);
}

#[test]
fn layers_apply_in_order_onto_one_dir() {
    let t = tmp();
    let l1 = t.path().join("l1");
    let l2 = t.path().join("l2");
    write(&l1.join("etc/conf"), b"v1");
    write(&l1.join("etc/keep"), b"keep");
    write(&l2.join("etc/conf"), b"v2");
    let out = t.path().join("rootfs");
    for l in [&l1, &l2] {
        let (_, blob) = pack_vec(l, &opts(Compression::Gzip));
        unpack(blob.as_slice(), &out, &unpack_opts()).unwrap();
    }
    assert_eq!(fs::read(out.join("etc/conf")).unwrap(), b"v2");
    assert_eq!(fs::read(out.join("etc/keep")).unwrap(), b"keep");
}

#[test]
fn a_file_replaces_a_directory_and_back() {
    let t = tmp();
    let out = t.path().join("rootfs");
    let l1 = t.path().join("l1");
    write(&l1.join("x/child"), b"c");
    write(&l1.join("y"), b"file");
    let l2 = t.path().join("l2");
    write(&l2.join("x"), b"now a file");
    write(&l2.join("y/child"), b"now a dir");
    for l in [&l1, &l2] {
        let (_, blob) = pack_vec(l, &opts(Compression::None));
        unpack(blob.as_slice(), &out, &unpack_opts()).unwrap();
    }
    assert_eq!(fs::read(out.join("x")).unwrap(), b"now a file");
    assert_eq!(fs::read(out.join("y/child")).unwrap(), b"now a dir");
}

#[test]
fn user_xattrs_the_kernel_refuses_on_fifos_do_not_fail_the_unpack() {
    let rec = "SCHILY.xattr.user.tag=v\n";
    let pax = format!("{} {rec}", rec.len() + 3);
    let l = raw_tar(&[
        (
            raw_header(b"././@PaxHeader", b'x', pax.len() as u64, b""),
            pax.as_bytes(),
        ),
        (raw_header(b"fifo", b'6', 0, b""), b""),
    ]);
    let t = tmp();
    let rep = unpack(l.as_slice(), t.path(), &unpack_opts()).unwrap();
    assert_eq!(rep.entries, 1);
    assert!(
        std::fs::symlink_metadata(t.path().join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn many_mib_of_files_round_trip_through_recycled_buffers() {
    // ~13 MiB of tar: the 1 MiB tar chunks and output blocks are reused many times, after
    // full and partial fills (a stale byte of an earlier chunk would change the content).
    let t = tmp();
    let d = t.path();
    write(&d.join("a-noise"), &noise(5 * 1024 * 1024 + 333, 1));
    write(&d.join("b-small"), b"tiny");
    write(&d.join("c-zeros"), &vec![0u8; 3 * 1024 * 1024 + 7]);
    write(&d.join("d-noise"), &noise(4 * 1024 * 1024 - 5, 2));
    write(&d.join("e-text"), &b"line of text\n".repeat(40_000));
    set_all_mtimes(d, 1_600_000_000);
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let o = PackOptions {
            level: (c != Compression::None).then_some(1),
            ..opts(c)
        };
        round_trip(d, &o);
    }
}
