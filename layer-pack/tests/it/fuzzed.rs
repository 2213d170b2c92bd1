//! Inputs that broke the unpacker under `fuzz/fuzz_targets/tar_unpack.rs` (overflow panics in
//! debug builds, wrapped arithmetic in release builds), kept as regression tests.

use std::path::Path;

use layer_pack::{UnpackError, UnpackOptions, unpack};

use crate::util::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fuzz")
            .join(name),
    )
    .unwrap()
}

#[test]
fn entry_size_beyond_int64_is_malformed_not_an_overflow() {
    // a directory whose base-256 size field says 2^64-1: skipping its content + padding
    // overflowed
    let t = tmp();
    let err = unpack(
        fixture("huge-size-dir.tar").as_slice(),
        &t.path().join("root"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, UnpackError::Malformed { entry, reason } if entry == "d/" && reason.contains("out of range")),
        "{err}"
    );
}

#[test]
fn pax_mtime_of_the_smallest_int64_with_a_fraction_does_not_overflow() {
    // `mtime=-9223372036854775808.5` rounds down one second: that subtraction overflowed
    let t = tmp();
    let root = t.path().join("root");
    match unpack(
        fixture("pax-mtime-min.tar").as_slice(),
        &root,
        &UnpackOptions::default(),
    ) {
        Ok(r) => assert_eq!(r.entries, 1),
        // the kernel may refuse such a time: an error naming the file, not a panic
        Err(e) => assert!(e.to_string().contains("root/f"), "{e}"),
    }
}
