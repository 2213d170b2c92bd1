//! `pack_entries`: layers from explicit entries (COPY without staging).

use std::ffi::OsString;

use layer_pack::{
    Compression, Entry, EntrySource, PackError, PackOptions, pack_entries,
    pack_entries_to_blob_dir, unpack,
};

use crate::util::*;

fn e(path: &str, source: EntrySource, mode: u32) -> Entry {
    Entry {
        path_in_layer: path.into(),
        source,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: vec![],
    }
}

fn sample(host_file: &std::path::Path) -> Vec<Entry> {
    vec![
        e(
            "app/bin/run",
            EntrySource::File(host_file.to_path_buf()),
            0o755,
        ),
        e("app", EntrySource::Dir, 0o755),
        e("app/bin", EntrySource::Dir, 0o755),
        e(
            "app/link",
            EntrySource::Hardlink("app/bin/run".into()),
            0o755,
        ),
        e("app/conf.txt", EntrySource::Bytes(b"k=v\n".to_vec()), 0o644),
        e(
            "app/current",
            EntrySource::Symlink(OsString::from("/app/bin")),
            0o777,
        ),
        e("app/old", EntrySource::Whiteout, 0),
        e("app/cache", EntrySource::Dir, 0o700),
        e("app/cache", EntrySource::OpaqueWhiteout, 0o700),
        e("app/fifo", EntrySource::Fifo, 0o600),
    ]
}

#[test]
fn entries_are_sorted_and_written_as_given() {
    let t = tmp();
    let host = t.path().join("run.sh");
    write(&host, b"#!/bin/sh\n");
    let mut blob = Vec::new();
    let d = pack_entries(
        sample(&host),
        &PackOptions {
            compression: Compression::None,
            ..Default::default()
        },
        &mut blob,
    )
    .unwrap();
    assert_eq!(d.digest, d.diff_id);
    let got: Vec<(String, char, String)> = list_tar(&blob);
    let want: Vec<(String, char, String)> = [
        ("app/", '5', ""),
        ("app/bin/", '5', ""),
        ("app/bin/run", '0', ""),
        ("app/cache/", '5', ""),
        ("app/cache/.wh..wh..opq", '0', ""),
        ("app/conf.txt", '0', ""),
        ("app/current", '2', "/app/bin"),
        ("app/fifo", '6', ""),
        ("app/link", '1', "app/bin/run"),
        ("app/.wh.old", '0', ""),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_string(), *b, (*c).to_string()))
    .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    // order: a directory before its contents, names by bytes within a directory
    let pos = |n: &str| got.iter().position(|x| x.0 == n).unwrap();
    assert!(pos("app/") < pos("app/bin/") && pos("app/bin/") < pos("app/bin/run"));
    assert!(pos("app/bin/run") < pos("app/link"));
    // applying it gives the tree
    let out = t.path().join("out");
    unpack(blob.as_slice(), &out, &unpack_opts()).unwrap();
    assert_eq!(std::fs::read(out.join("app/link")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(
        std::fs::read_link(out.join("app/current"))
            .unwrap()
            .to_str(),
        Some("/app/bin")
    );
}

#[test]
fn descriptor_is_stable_across_versions() {
    // Pure in-memory entries: the digests below only change if the layer format changes.
    let entries = vec![
        e("etc", EntrySource::Dir, 0o755),
        e("etc/motd", EntrySource::Bytes(b"welcome\n".to_vec()), 0o644),
        e(
            "etc/long",
            EntrySource::Bytes("x".repeat(200_000).into_bytes()),
            0o600,
        ),
    ];
    let mut docs = Vec::new();
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut out = Vec::new();
        let d = pack_entries(
            entries.clone(),
            &PackOptions {
                compression: c,
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        docs.push(d);
    }
    insta::assert_json_snapshot!(docs);
}

#[test]
fn invalid_entries_are_refused() {
    let o = PackOptions::default();
    let bad = |entries: Vec<Entry>| pack_entries(entries, &o, std::io::sink()).unwrap_err();
    assert!(matches!(
        bad(vec![e("../x", EntrySource::Dir, 0)]),
        PackError::InvalidPath { .. }
    ));
    assert!(matches!(
        bad(vec![e("a/.wh.b", EntrySource::Dir, 0)]),
        PackError::ReservedName { .. }
    ));
    assert!(matches!(
        bad(vec![
            e("a", EntrySource::Dir, 0),
            e("/a/", EntrySource::Dir, 0)
        ]),
        PackError::Duplicate { .. }
    ));
    let err = bad(vec![
        e("z", EntrySource::Bytes(vec![]), 0),
        e("a", EntrySource::Hardlink("z".into()), 0),
    ]);
    assert!(matches!(err, PackError::BadHardlink { .. }), "{err}");
    assert!(err.to_string().contains('a'));
}

#[test]
fn entries_to_blob_dir_names_the_blob_by_digest() {
    let t = tmp();
    let blobs = t.path().join("blobs/sha256");
    let d = pack_entries_to_blob_dir(
        vec![e("f", EntrySource::Bytes(b"x".to_vec()), 0o644)],
        &PackOptions::default(),
        &blobs,
    )
    .unwrap();
    let hex = d.digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(blobs.join(hex)).unwrap();
    assert_eq!(sha256(&data), d.digest);
    assert_eq!(
        std::fs::read_dir(&blobs).unwrap().count(),
        1,
        "no temp file left"
    );
}
