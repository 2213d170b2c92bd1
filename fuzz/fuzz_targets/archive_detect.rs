//! pelagos-build's ADD archive detection and extraction on any file content.
//!
//! The bytes are written to a file; `detect` decides whether it is an archive (gzip, bzip2, xz,
//! zstd or plain tar by content); an archive is extracted into layer entries below `dest`, and
//! the entries are packed into a layer. Never a panic; every entry lands below `dest` with clean
//! components; nothing is written outside the staging dir; a packed layer unpacks.
#![no_main]

use std::fs;
use std::io::Read;

use layer_pack::{Compression, PackOptions, UnpackOptions};
use libfuzzer_sys::fuzz_target;
use pelagos_build::archive::{codec_of, decoder, detect, extract, is_tar_header};

fuzz_target!(|data: &[u8]| {
    let _ = is_tar_header(data);
    // the decoders alone, bounded
    if let Ok(mut d) = decoder(codec_of(data), data) {
        let mut sink = Vec::new();
        let _ = d.by_ref().take(1 << 20).read_to_end(&mut sink);
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("archive");
    fs::write(&file, data).expect("write archive");
    let staging = tmp.path().join("staging");
    fs::create_dir(&staging).expect("mkdir staging");
    let Ok(Some(codec)) = detect(&file) else {
        return;
    };
    let Ok(entries) = extract(&file, codec, "dest", &staging, Some((1, 2))) else {
        return;
    };
    let mut listing: Vec<String> = fs::read_dir(tmp.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    listing.sort();
    assert_eq!(
        listing,
        ["archive", "staging"],
        "extract wrote next to its staging dir"
    );
    for e in &entries {
        let p = &e.path_in_layer;
        assert!(
            p.starts_with("dest/") && p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "entry {p:?} is not a clean path below dest"
        );
    }
    // device nodes need CAP_MKNOD to unpack again
    let devices = entries.iter().any(|e| {
        matches!(
            e.source,
            layer_pack::EntrySource::CharDevice { .. }
                | layer_pack::EntrySource::BlockDevice { .. }
        )
    });
    let opts = PackOptions {
        compression: Compression::None,
        threads: Some(1),
        ..Default::default()
    };
    let mut layer = Vec::new();
    if layer_pack::pack_entries(entries, &opts, &mut layer).is_ok() && !devices {
        let root = tmp.path().join("root");
        layer_pack::unpack(&layer[..], &root, &UnpackOptions::default())
            .expect("a packed ADD layer must unpack");
    }
});
