//! Shared helpers: temp dirs, tree snapshots, the binary, hand-built tar archives.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use layer_pack::{Compression, LayerDescriptor, PackOptions, UnpackOptions};
use sha2::{Digest, Sha256};

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lp-it-").tempdir().unwrap()
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layer-pack"))
}

/// Options mapping the current uid/gid to 0, so digests do not depend on who runs the tests.
pub fn opts(c: Compression) -> PackOptions {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let r = |host| layer_pack::IdRange {
        container: 0,
        host,
        len: 1,
    };
    PackOptions {
        compression: c,
        id_map: Some(layer_pack::IdMap {
            uids: vec![r(uid)],
            gids: vec![r(gid)],
        }),
        ..PackOptions::default()
    }
}

pub fn pack_vec(dir: &Path, o: &PackOptions) -> (LayerDescriptor, Vec<u8>) {
    let mut out = Vec::new();
    let d = layer_pack::pack_dir(dir, o, &mut out).unwrap();
    (d, out)
}

pub fn unpack_opts() -> UnpackOptions {
    UnpackOptions {
        allow_devices: is_root(),
        preserve_owners: is_root(),
        ..Default::default()
    }
}

/// One line per entry under `dir`: path, type, mode, owner, mtime, size/content hash or target
/// or device, allowed xattrs, and hard-link identity. Directory mtimes are included.
pub fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(dir, "", &mut out, &mut inodes);
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>, inodes: &mut HashMap<(u64, u64), String>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for n in names {
        let p = dir.join(&n);
        let r = format!("{rel}{}", String::from_utf8_lossy(n.as_bytes()));
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink->{}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = fs::read(&p).unwrap();
            format!(
                "file:{}:{}",
                data.len(),
                &hex::encode(Sha256::digest(&data))[..16]
            )
        } else if ft.is_char_device() {
            format!("char:{}:{}", libc::major(md.rdev()), libc::minor(md.rdev()))
        } else if ft.is_block_device() {
            format!(
                "block:{}:{}",
                libc::major(md.rdev()),
                libc::minor(md.rdev())
            )
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mut xs: Vec<String> = xattr::list(&p)
            .map(|l| {
                l.filter_map(|k| {
                    let ks = k.to_string_lossy().into_owned();
                    let keep = ks == "security.capability"
                        || ks.starts_with("user.")
                        || ks.starts_with("trusted.overlay.");
                    keep.then(|| {
                        format!(
                            "{ks}={:?}",
                            xattr::get(&p, &k).ok().flatten().unwrap_or_default()
                        )
                    })
                })
                .collect()
            })
            .unwrap_or_default();
        xs.sort();
        let mut link = String::new();
        if !ft.is_dir() && md.nlink() > 1 {
            let first = inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| r.clone());
            if *first != r {
                link = format!(" hardlink={first}");
            }
        }
        let mtime = md.mtime();
        out.push(format!(
            "{r} {what} mode={:o} owner={}:{} mtime={mtime} xattrs=[{}]{link}",
            md.mode() & 0o7777,
            md.uid(),
            md.gid(),
            xs.join(",")
        ));
        if ft.is_dir() {
            walk(&p, &format!("{r}/"), out, inodes);
        }
    }
}

pub fn write(p: &Path, data: &[u8]) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, data).unwrap();
}

pub fn set_mtime(p: &Path, secs: i64) {
    filetime::set_symlink_file_times(
        p,
        filetime::FileTime::from_unix_time(secs, 0),
        filetime::FileTime::from_unix_time(secs, 0),
    )
    .unwrap();
}

/// Sets every mtime in the tree (deepest first) to `secs`.
pub fn set_all_mtimes(dir: &Path, secs: i64) {
    let mut stack = vec![dir.to_path_buf()];
    let mut all: Vec<PathBuf> = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        set_mtime(&p, secs);
    }
}

/// Entries of a tar (any compression) as `(path, type char, link target)`.
pub fn list_tar(blob: &[u8]) -> Vec<(String, char, String)> {
    let raw = decompress(blob);
    let mut a = tar::Archive::new(raw.as_slice());
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                char::from(h.entry_type().as_byte()),
                link,
            )
        })
        .collect()
}

pub fn decompress(blob: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(blob)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = blob.to_vec();
    }
    out
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A hand-built ustar header with arbitrary (unvalidated) name and link bytes.
pub fn raw_header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..107].copy_from_slice(if typeflag == b'5' {
        b"0000755"
    } else {
        b"0000644"
    });
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = typeflag;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_checksum(&mut h);
    h
}

pub fn fix_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// Builds a tar from `(header, content)` pairs, padding content and adding the end marker.
pub fn raw_tar(entries: &[([u8; 512], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, data) in entries {
        out.extend_from_slice(h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// `n` pseudo-random (incompressible) bytes from `seed` (xorshift64).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tree mixing incompressible files (> 1 MiB, so whole tar chunks of noise) with text.
pub fn noisy_tree(d: &Path) {
    write(
        &d.join("a-text"),
        "some text line\n".repeat(100_000).as_bytes(),
    );
    write(&d.join("b-noise"), &noise(3 * 1024 * 1024 + 777, 1));
    write(&d.join("c-text"), "more text\n".repeat(200_000).as_bytes());
    write(&d.join("d/noise"), &noise(2 * 1024 * 1024, 2));
    set_all_mtimes(d, 1_700_000_000);
}
