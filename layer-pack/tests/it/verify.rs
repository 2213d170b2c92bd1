//! Digest verification: a mismatch leaves DIR as it was.

use std::fs;

use layer_pack::{Compression, UnpackError, UnpackOptions, unpack, unpack_path};

use crate::util::*;

fn layer() -> (layer_pack::LayerDescriptor, Vec<u8>) {
    let t = tmp();
    write(&t.path().join("f"), b"content");
    pack_vec(t.path(), &opts(Compression::Gzip))
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".layer-pack"))
        .collect()
}

#[test]
fn mismatch_into_missing_or_empty_dir_leaves_it_untouched() {
    let (d, blob) = layer();
    let t = tmp();
    let missing = t.path().join("missing");
    let o = UnpackOptions {
        expect_diff_id: Some("sha256:00".into()),
        ..unpack_opts()
    };
    let err = unpack(blob.as_slice(), &missing, &o).unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    assert!(!missing.exists());
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let o = UnpackOptions {
        expect_digest: Some("sha256:00".into()),
        ..unpack_opts()
    };
    assert!(matches!(
        unpack(blob.as_slice(), &empty, &o).unwrap_err(),
        UnpackError::DigestMismatch { .. }
    ));
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    assert!(
        leftovers(t.path()).is_empty(),
        "temp dirs left: {:?}",
        leftovers(t.path())
    );
    // and the right digests succeed
    let o = UnpackOptions {
        expect_digest: Some(d.digest.clone()),
        expect_diff_id: Some(d.diff_id.clone()),
        ..unpack_opts()
    };
    let rep = unpack(blob.as_slice(), &empty, &o).unwrap();
    assert_eq!(rep.diff_id, d.diff_id);
    assert_eq!(fs::read(empty.join("f")).unwrap(), b"content");
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn non_empty_dir_needs_a_file_and_is_verified_first() {
    let (d, blob) = layer();
    let t = tmp();
    let dir = t.path().join("dir");
    write(&dir.join("existing"), b"e");
    let o = UnpackOptions {
        expect_diff_id: Some(d.diff_id.clone()),
        ..unpack_opts()
    };
    assert!(matches!(
        unpack(blob.as_slice(), &dir, &o).unwrap_err(),
        UnpackError::NeedsEmptyDir(_)
    ));
    let file = t.path().join("blob");
    fs::write(&file, &blob).unwrap();
    let bad = UnpackOptions {
        expect_diff_id: Some("sha256:11".into()),
        ..unpack_opts()
    };
    assert!(unpack_path(&file, &dir, &bad).is_err());
    assert!(!dir.join("f").exists(), "applied despite the mismatch");
    unpack_path(&file, &dir, &o).unwrap();
    assert!(dir.join("f").exists() && dir.join("existing").exists());
}

#[test]
fn digests_are_reported_for_every_compression() {
    let t = tmp();
    write(&t.path().join("f"), b"x");
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (d, blob) = pack_vec(t.path(), &opts(c));
        let out = tmp();
        let rep = unpack(blob.as_slice(), out.path(), &unpack_opts()).unwrap();
        assert_eq!(
            (rep.compression, rep.digest, rep.diff_id),
            (c, d.digest.clone(), d.diff_id.clone())
        );
        assert_eq!(layer_pack::diff_id_of(blob.as_slice()).unwrap(), d.diff_id);
        assert_eq!(layer_pack::digest_of(blob.as_slice()).unwrap(), d.digest);
    }
}
