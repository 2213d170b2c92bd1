//! Inputs the fuzz targets (`fuzz/`) found problems with, kept as regression tests.

use std::path::{Path, PathBuf};

use pelagos_build::archive::{ArchiveError, Codec, detect, extract};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(name)
}

/// Extracts a fixture archive below `dest` and returns the error it must give.
fn extract_err(name: &str) -> String {
    let f = fixture(name);
    assert_eq!(detect(&f).unwrap(), Some(Codec::None), "{name} is a tar");
    let staging = tempfile::tempdir().unwrap();
    match extract(&f, Codec::None, "dest", staging.path(), None) {
        Err(e @ ArchiveError::Malformed { .. }) => e.to_string(),
        other => panic!("{name}: expected a malformed-archive error, got {other:?}"),
    }
}

#[test]
fn archive_entry_below_a_file_of_the_archive_is_refused() {
    // `a` (a file), then `a/b`: untar fails with ENOTDIR; the layer used to be made anyway and
    // could not be applied ("dest/a is not a directory")
    let err = extract_err("archive-below-file.tar");
    assert!(
        err.contains("archive-below-file.tar: malformed archive: a/b: a parent of the entry is not a directory"),
        "{err}"
    );
}

#[test]
fn archive_hard_link_to_a_directory_is_refused() {
    // `d/` then `h` linked to `d`: link(2) refuses directories, and so did applying the layer
    let err = extract_err("archive-hardlink-dir.tar");
    assert!(err.contains("h: hard link to a directory"), "{err}");
}

#[test]
fn archive_nul_byte_in_a_link_target_is_refused() {
    // a GNU long-link record whose target holds a NUL: the layer was made, and applying it
    // failed with EINVAL
    let err = extract_err("archive-nul-link.tar");
    assert!(
        err.contains("a/s: NUL byte in a name or link target"),
        "{err}"
    );
}

#[test]
fn archive_xz_stream_that_overflows_the_decoder_is_an_error() {
    // an xz index with huge sizes overflows inside lzma-rs (a panic with overflow checks, in the
    // decoder thread): it must be an error, not a panic or a silently truncated stream
    let f = fixture("archive-xz-overflow.xz");
    let data = std::fs::read(&f).unwrap();
    let mut d = pelagos_build::archive::decoder(Codec::Xz, data.as_slice()).unwrap();
    let mut out = Vec::new();
    assert!(std::io::Read::read_to_end(&mut d, &mut out).is_err());
}
