//! Our layers checked by real tools: GNU tar, umoci and oci-image-tool on an OCI layout.

use std::fs;
use std::path::Path;
use std::process::Command;

use layer_pack::{Compression, PackOptions, pack_to_blob_dir, unpack};
use serde_json::json;

use crate::roundtrip::{root_tree, user_tree};
use crate::util::*;

/// Without root, owners cannot be restored by other tools: compare everything else.
fn comparable(lines: Vec<String>) -> Vec<String> {
    if is_root() {
        return lines;
    }
    lines
        .into_iter()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("owner="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Runs a validator; panics with its output when it fails; returns its stdout.
fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `umoci unpack` (rootless when not root) of `IMAGE:v1` into `bundle`.
fn umoci_unpack(image: &Path, bundle: &Path) {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !is_root() {
        cmd.arg("--rootless");
    }
    run_ok(
        cmd.arg("--image")
            .arg(format!("{}:v1", image.display()))
            .arg(bundle),
    );
}

fn tree(d: &Path) {
    if is_root() {
        root_tree(d);
    } else {
        user_tree(d);
    }
}

fn pack_opts(c: Compression) -> PackOptions {
    if is_root() {
        PackOptions {
            compression: c,
            ..PackOptions::default()
        }
    } else {
        opts(c)
    }
}

#[test]
fn gnu_tar_lists_our_layer() {
    let t = tmp();
    let src = t.path().join("src");
    user_tree(&src);
    let (_, blob) = pack_vec(&src, &opts(Compression::Gzip));
    let file = t.path().join("layer.tar.gz");
    fs::write(&file, &blob).unwrap();
    let out = run_ok(Command::new("tar").env("TZ", "UTC").arg("-tvzf").arg(&file));
    let listing = String::from_utf8_lossy(&out);
    for want in [
        "-rw-r--r-- 0/0               6 2017-07-14 02:42 a\n",
        "hrw-r--r-- 0/0               0 2017-07-14 02:42 hl/a2 link to a\n",
        "lrwxrwxrwx 0/0               0 2014-05-13 16:53 rel -> a\n",
        "lrwxrwxrwx 0/0               0 2020-09-13 12:26 abs -> /etc/passwd\n",
        "prw-r--r-- 0/0               0 2020-09-13 12:26 pipe\n",
        "-rwsr-xr-x 0/0              20 2020-09-13 12:26 bin/tool\n",
        "drwxrwxrwt 0/0               0 2020-09-13 12:26 tmp/\n",
        "dr-xr-xr-x 0/0               0 2020-09-13 12:26 ro/\n",
    ] {
        assert!(listing.contains(want), "missing {want:?} in\n{listing}");
    }
    let secret = if is_root() {
        "----------"
    } else {
        "-r--------"
    };
    assert!(
        listing.contains(&format!(
            "{secret} 0/0               6 2020-09-13 12:26 secret\n"
        )),
        "{listing}"
    );
    let long = "l".repeat(120);
    assert!(listing.contains(&format!("deep/{long}/{long}/file\n")));
}

#[test]
fn gnu_tar_extracts_our_layer_to_the_same_tree() {
    let t = tmp();
    let src = t.path().join("src");
    tree(&src);
    let (_, blob) = pack_vec(&src, &pack_opts(Compression::None));
    let file = t.path().join("layer.tar");
    fs::write(&file, &blob).unwrap();
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&file)
            .arg("-C")
            .arg(&dst),
    );
    assert_eq!(comparable(snapshot(&dst)), comparable(snapshot(&src)));
}

fn put_json(blobs: &Path, v: &serde_json::Value) -> (String, u64) {
    let data = serde_json::to_vec(v).unwrap();
    let d = sha256(&data);
    fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), &data).unwrap();
    (d, data.len() as u64)
}

/// An OCI layout holding one image made of `layers` (packed upper dirs), tagged `v1`.
fn layout(dir: &Path, layers: &[(&Path, PackOptions)]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let descs: Vec<_> = layers
        .iter()
        .map(|(p, o)| pack_to_blob_dir(p, o, &blobs).unwrap())
        .collect();
    let (cd, cs) = put_json(
        &blobs,
        &json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": descs.iter().map(|d| d.diff_id.clone()).collect::<Vec<_>>()}
        }),
    );
    let (md, ms) = put_json(
        &blobs,
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs.iter().map(|d| json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})).collect::<Vec<_>>()
        }),
    );
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn umoci_and_oci_image_tool_accept_an_image_of_our_layers() {
    let t = tmp();
    let l1 = t.path().join("l1");
    tree(&l1);
    // second layer: an upper dir deleting `a`, hiding `hl`'s old content, adding a file
    let l2 = t.path().join("l2");
    fs::create_dir_all(l2.join("hl")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        l2.join("a"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    xattr::set(l2.join("hl"), "user.overlay.opaque", b"y").unwrap();
    write(&l2.join("hl/fresh"), b"fresh");
    set_all_mtimes(&l2, 1_650_000_000);
    let upper = PackOptions {
        overlay_upper: true,
        userxattr: true,
        ..pack_opts(Compression::Gzip)
    };
    let img = t.path().join("image");
    layout(
        &img,
        &[(&l1, pack_opts(Compression::Gzip)), (&l2, upper.clone())],
    );

    run_ok(
        Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=v1"])
            .arg(&img),
    );
    let bundle = t.path().join("bundle");
    umoci_unpack(&img, &bundle);

    // our own flattening of the same two layers is the reference
    let flat = t.path().join("flat");
    for (p, o) in [(&l1, pack_opts(Compression::Gzip)), (&l2, upper)] {
        let (_, blob) = pack_vec(p, &o);
        unpack(blob.as_slice(), &flat, &unpack_opts()).unwrap();
    }
    assert!(!flat.join("a").exists());
    assert_eq!(fs::read_dir(flat.join("hl")).unwrap().count(), 1);
    let ours = comparable(snapshot(&flat));
    // umoci keeps no xattrs it does not know in rootless mode; compare the rest when needed
    let theirs = comparable(snapshot(&bundle.join("rootfs")));
    assert_eq!(theirs, ours);
}

/// A zstd layer with incompressible data (raw-block frames between libzstd frames) is read by
/// the zstd CLI and by skopeo (containers/image's Go zstd decoder), which recompresses it to
/// gzip; umoci 0.4 (no zstd support) then unpacks that copy to the same tree.
#[test]
fn zstd_cli_and_skopeo_read_a_zstd_layer_with_raw_frames() {
    let t = tmp();
    let src = t.path().join("src");
    noisy_tree(&src);
    let o = PackOptions {
        level: Some(1),
        ..pack_opts(Compression::Zstd)
    };
    let (d, blob) = pack_vec(&src, &o);
    let file = t.path().join("layer.tar.zst");
    fs::write(&file, &blob).unwrap();
    let out = run_ok(Command::new("zstd").args(["-d", "-c", "-q"]).arg(&file));
    assert_eq!(sha256(&out), d.diff_id);

    let img = t.path().join("image");
    layout(&img, &[(&src, o)]);
    let copy = t.path().join("copy");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-compress-format", "gzip"])
            .arg(format!("oci:{}:v1", img.display()))
            .arg(format!("oci:{}:v1", copy.display())),
    );
    // the recompressed layer holds the same tar
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(copy.join("index.json")).unwrap()).unwrap();
    let blob_path = |d: &str| {
        copy.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let mdig = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob_path(mdig)).unwrap()).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gz = fs::read(blob_path(layer["digest"].as_str().unwrap())).unwrap();
    assert_eq!(sha256(&decompress(&gz)), d.diff_id);

    let bundle = t.path().join("bundle");
    umoci_unpack(&copy, &bundle);
    assert_eq!(
        comparable(snapshot(&bundle.join("rootfs"))),
        comparable(snapshot(&src))
    );
}
