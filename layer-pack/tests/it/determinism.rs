//! Same content → same digest, whatever the atimes, ctimes, readdir order or thread count.

use std::fs;
use std::process::Command;

use layer_pack::{Compression, PackOptions};

use crate::roundtrip::user_tree;
use crate::util::*;

#[test]
fn same_tree_twice_and_a_copy_give_the_same_digest() {
    let t = tmp();
    let a = t.path().join("a");
    user_tree(&a);
    let b = t.path().join("b");
    // cp -a: new inodes, new ctimes, possibly another readdir order; mtimes preserved
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&a)
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    // touch atimes only
    for e in fs::read_dir(&b).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_file() && p.file_name().unwrap() != "secret" {
            let _ = fs::read(&p);
        }
    }
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let o = opts(c);
        let (d1, b1) = pack_vec(&a, &o);
        let (d2, _) = pack_vec(&a, &o);
        let (d3, b3) = pack_vec(&b, &o);
        assert_eq!(d1, d2);
        assert_eq!(d1, d3, "{c:?}");
        assert_eq!(b1, b3);
    }
}

#[test]
fn entries_created_in_another_order_give_the_same_digest() {
    let t = tmp();
    let a = t.path().join("a");
    let b = t.path().join("b");
    let names = ["zeta", "alpha", "mid", "Beta", "a.b", "a-b", "a"];
    for n in names {
        write(&a.join(n).join("f"), n.as_bytes());
    }
    for n in names.iter().rev() {
        write(&b.join(n).join("f"), n.as_bytes());
    }
    set_all_mtimes(&a, 1_000);
    set_all_mtimes(&b, 1_000);
    let (d1, blob) = pack_vec(&a, &opts(Compression::Gzip));
    let (d2, _) = pack_vec(&b, &opts(Compression::Gzip));
    assert_eq!(d1, d2);
    let order: Vec<String> = list_tar(&blob).into_iter().map(|e| e.0).collect();
    assert_eq!(
        order,
        [
            "Beta/", "Beta/f", "a/", "a/f", "a-b/", "a-b/f", "a.b/", "a.b/f", "alpha/", "alpha/f",
            "mid/", "mid/f", "zeta/", "zeta/f"
        ]
    );
}

#[test]
fn sub_second_mtimes_do_not_matter() {
    let t = tmp();
    let p = t.path().join("f");
    write(&p, b"x");
    filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(1_000, 1)).unwrap();
    let (d1, _) = pack_vec(t.path(), &opts(Compression::None));
    filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(1_000, 999_999_999)).unwrap();
    let (d2, _) = pack_vec(t.path(), &opts(Compression::None));
    assert_eq!(d1, d2);
}

#[test]
fn thread_count_does_not_change_the_output() {
    let t = tmp();
    user_tree(t.path());
    for c in [Compression::Gzip, Compression::Zstd] {
        for level in [1, 3, 9] {
            let base = PackOptions {
                threads: Some(1),
                level: Some(level),
                ..opts(c)
            };
            let (d1, b1) = pack_vec(t.path(), &base);
            for n in [2, 3, 8] {
                let (dn, bn) = pack_vec(
                    t.path(),
                    &PackOptions {
                        threads: Some(n),
                        ..base.clone()
                    },
                );
                assert_eq!(d1, dn, "{c:?} level {level} threads {n}");
                assert!(b1 == bn);
            }
        }
    }
}

#[test]
fn source_date_epoch_clamps_newer_mtimes_only() {
    let t = tmp();
    write(&t.path().join("old"), b"o");
    write(&t.path().join("new"), b"n");
    set_mtime(&t.path().join("old"), 500);
    set_mtime(&t.path().join("new"), 5_000);
    let o = PackOptions {
        source_date_epoch: Some(1_000),
        ..opts(Compression::None)
    };
    let (_, blob) = pack_vec(t.path(), &o);
    let mut a = tar::Archive::new(blob.as_slice());
    let mut got = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        got.push((
            String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            e.header().mtime().unwrap(),
        ));
    }
    assert_eq!(got, [("new".to_string(), 1_000), ("old".to_string(), 500)]);
}

#[test]
fn headers_have_no_user_or_group_names() {
    let t = tmp();
    user_tree(t.path());
    let (_, blob) = pack_vec(t.path(), &opts(Compression::None));
    let mut a = tar::Archive::new(blob.as_slice());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().username_bytes(), Some(&b""[..]));
        assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
    }
}

#[test]
fn incompressible_data_is_stored_almost_verbatim() {
    let t = tmp();
    let mut x: u64 = 0x1234_5678;
    let data: Vec<u8> = (0..(4 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    write(&t.path().join("random"), &data);
    let (d, blob) = pack_vec(t.path(), &opts(Compression::Gzip));
    // stored blocks: 5 bytes per 64 KiB plus headers, never more than 0.1% growth
    assert!(
        d.size < data.len() as u64 + data.len() as u64 / 1000 + 4096,
        "size {}",
        d.size
    );
    assert_eq!(decompress(&blob).len(), 512 + data.len() + 1024);
}

#[test]
fn zstd_with_incompressible_chunks_is_deterministic_and_round_trips() {
    let t = tmp();
    let src = t.path().join("src");
    noisy_tree(&src);
    let base = PackOptions {
        threads: Some(1),
        level: Some(1),
        ..opts(Compression::Zstd)
    };
    let (d1, b1) = pack_vec(&src, &base);
    for n in [2, 3, 8] {
        let (dn, bn) = pack_vec(
            &src,
            &PackOptions {
                threads: Some(n),
                ..base.clone()
            },
        );
        assert_eq!(d1, dn, "threads {n}");
        assert!(b1 == bn);
    }
    // the noise is stored (raw blocks), the text compressed: the blob is a little over the noise
    let noise_len = 5 * 1024 * 1024 + 777;
    assert!(
        b1.len() > noise_len && b1.len() < noise_len + 200 * 1024,
        "{}",
        b1.len()
    );
    let tar = decompress(&b1);
    assert_eq!(d1.diff_id, sha256(&tar));
    assert_eq!(d1.digest, sha256(&b1));
    let (dn, _) = pack_vec(&src, &opts(Compression::None));
    assert_eq!(dn.diff_id, d1.diff_id);
    let out = t.path().join("out");
    let r = layer_pack::unpack(b1.as_slice(), &out, &unpack_opts()).unwrap();
    assert_eq!(r.diff_id, d1.diff_id);
    assert_eq!(snapshot(&out), snapshot(&src));
}
