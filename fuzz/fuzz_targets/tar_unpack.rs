//! layer-pack's unpacker (its own strict tar reader, gzip/zstd/plain detection) on any bytes.
//!
//! The first byte picks the options (plain or overlay whiteouts, owners, an expected diff_id
//! that is right or wrong); the rest is the blob. It is applied onto `tmp/root`, which already
//! holds a lower layer with a symlink `escape -> ../outside` and `abs -> /`, next to `tmp/outside`
//! holding a canary. Whatever the blob: no panic, `tmp` holds only `root` and `outside`,
//! `outside` is unchanged, and no temp dir is left behind. When a plain unpack succeeds, the
//! resulting tree packs into a layer that unpacks again to a tree that packs to the same layer.
#![no_main]

use std::fs;
use std::path::Path;

use layer_pack::{Compression, PackOptions, UnpackFormat, UnpackOptions};
use libfuzzer_sys::fuzz_target;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn pack(dir: &Path) -> Result<(Vec<u8>, String), layer_pack::PackError> {
    let opts = PackOptions {
        compression: Compression::None,
        threads: Some(1),
        ..Default::default()
    };
    let mut out = Vec::new();
    let d = layer_pack::pack_dir(dir, &opts, &mut out)?;
    Ok((out, d.diff_id))
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, blob)) = data.split_first() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    fs::write(outside.join("canary"), b"canary").expect("canary");
    let lower = ctl & 0x10 != 0;
    if lower {
        fs::create_dir_all(root.join("a/b")).expect("mkdir root");
        fs::write(root.join("a/file"), b"lower").expect("lower file");
        std::os::unix::fs::symlink("../outside", root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/", root.join("abs")).expect("symlink");
    }
    let format = match ctl & 3 {
        0 | 1 => UnpackFormat::Plain,
        2 => UnpackFormat::Overlay { userxattr: false },
        _ => UnpackFormat::Overlay { userxattr: true },
    };
    // an expectation needs an empty dir (unpack refuses a non-empty one, naming it)
    let expect_diff_id = match (ctl >> 2) & 3 {
        1 => layer_pack::diff_id_of(blob).ok(),
        2 => Some(format!("sha256:{}", "0".repeat(64))),
        _ => None,
    };
    let opts = UnpackOptions {
        format,
        expect_diff_id,
        allow_devices: false,
        preserve_owners: ctl & 0x20 != 0,
        ..Default::default()
    };
    let res = layer_pack::unpack(blob, &root, &opts);

    let mut want = vec!["outside".to_string()];
    if lower || fs::symlink_metadata(&root).is_ok() {
        want.push("root".to_string());
    }
    assert_eq!(
        names(tmp.path()),
        want,
        "unpack left something next to the root: {res:?}"
    );
    assert_eq!(names(&outside), ["canary"], "unpack wrote outside the root");
    assert_eq!(fs::read(outside.join("canary")).expect("canary"), b"canary");
    if opts.expect_diff_id.is_some() && res.is_err() && !lower {
        // a failed verified unpack leaves a missing dir missing
        assert!(
            fs::symlink_metadata(&root).is_err(),
            "failed verified unpack left {root:?}"
        );
    }

    if res.is_ok() && matches!(format, UnpackFormat::Plain) && !lower {
        // what we unpacked, we can pack, and it reads back the same
        let Ok((layer, diff_id)) = pack(&root) else {
            return;
        };
        let again = tmp.path().join("again");
        let opts = UnpackOptions {
            preserve_owners: opts.preserve_owners,
            ..Default::default()
        };
        layer_pack::unpack(&layer[..], &again, &opts).expect("our own layer must unpack");
        let (_, diff_id2) = pack(&again).expect("an unpacked layer must pack");
        assert_eq!(diff_id, diff_id2, "pack/unpack must round-trip");
    }
});
