//! `--output` as BuildKit: `type=local` into a directory that already has files (merged, never
//! through its symlinks), and the tar kinds on stdout (`-o -`, `type=oci,dest=-`).

use std::io::Read;
use std::os::unix::fs::symlink;

use crate::common::*;

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string()
        })
        .collect()
}

#[test]
fn local_output_merges_into_a_non_empty_directory_without_following_its_symlinks() {
    let e = Env::new();
    e.write("f.txt", "new\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /etc/f.txt\nCOPY f.txt /over.txt\n");
    let out = e.dir.path().join("out");
    let outside = e.dir.path().join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(out.join("keep.txt"), "mine\n").unwrap();
    std::fs::write(outside.join("victim"), "untouched\n").unwrap();
    // symlinks in the destination pointing out of it, where the image has a dir and a file
    symlink(&outside, out.join("etc")).unwrap();
    symlink(outside.join("victim"), out.join("over.txt")).unwrap();
    std::fs::create_dir_all(out.join("bin")).unwrap();
    std::fs::write(out.join("bin/mine"), "kept\n").unwrap();

    e.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    // others' files stay, same-named ones are replaced
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("bin/mine")).unwrap(),
        "kept\n"
    );
    assert!(
        std::fs::symlink_metadata(out.join("bin/sh"))
            .unwrap()
            .is_symlink()
    );
    let over = std::fs::symlink_metadata(out.join("over.txt")).unwrap();
    assert!(over.is_file(), "over.txt is still a symlink");
    assert_eq!(
        std::fs::read_to_string(out.join("over.txt")).unwrap(),
        "new\n"
    );
    assert!(std::fs::symlink_metadata(out.join("etc")).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(out.join("etc/f.txt")).unwrap(),
        "new\n"
    );
    assert!(out.join("etc/passwd").is_file());
    // nothing was written out of the destination
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched\n"
    );
    let mut left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["victim"]);

    // an OCI layout directory is merged the same way (BuildKit's oci exporter with tar=false)
    let layout = e.dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(layout.join("notes.txt"), "mine\n").unwrap();
    let (doc, _) = e.build_ok(&[
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
    ]);
    assert!(layout.join("notes.txt").is_file());
    assert!(layout.join("oci-layout").is_file());
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    let manifest = doc["manifest_digest"].as_str().unwrap();
    assert!(index.contains(manifest), "{index}");
    let hex = manifest.trim_start_matches("sha256:");
    assert!(layout.join("blobs/sha256").join(hex).is_file());

    // a file as the destination directory
    let f = e.dir.path().join("file");
    std::fs::write(&f, "x").unwrap();
    let o = e.build(&["-o", &format!("type=local,dest={}", f.display())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not a directory"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tar_and_oci_outputs_go_to_stdout_with_dest_dash() {
    let e = Env::new();
    e.write("f.txt", "new\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    // `-o -`: the root file system as a tar on stdout, and nothing else there
    let o = e.build(&["-o", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = tar_names(&o.stdout);
    assert!(names.iter().any(|n| n == "f.txt"), "{names:?}");
    assert!(names.iter().any(|n| n == "etc/passwd"), "{names:?}");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut found = String::new();
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            == "f.txt"
        {
            entry.read_to_string(&mut found).unwrap();
        }
    }
    assert_eq!(found, "new\n");
    // type=oci without dest (or dest=-): an OCI layout tar on stdout; -q prints no ID then
    for spec in ["type=oci", "type=oci,dest=-"] {
        let o = e.build(&["-q", "-o", spec]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let names = tar_names(&o.stdout);
        assert!(names.iter().any(|n| n == "oci-layout"), "{spec}: {names:?}");
        assert!(names.iter().any(|n| n == "index.json"), "{spec}: {names:?}");
    }
    // one stdout at most; never for a directory output
    for args in [
        &["-o", "-", "-o", "type=tar,dest=-"][..],
        &["-o", "type=local,dest=-"][..],
    ] {
        let o = e.build(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn an_archive_is_never_written_onto_a_terminal() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nLABEL a=b\n");
    // `script` (bsdutils) gives the command a terminal as stdout
    let cmd = format!(
        "{BIN} --store {} --progress plain -o - {}",
        e.store.display(),
        e.ctx.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("refusing to write to a terminal"), "{text}");
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn destinations_of_the_wrong_kind_fail_before_anything_is_built() {
    let e = Env::new();
    e.write("f.txt", "x\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    let file = e.dir.path().join("a-file");
    std::fs::write(&file, "mine\n").unwrap();
    let dir = e.dir.path().join("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let (f, d) = (file.display(), dir.display());
    for spec in [
        format!("type=local,dest={f}"),
        format!("type=oci,tar=false,dest={f}"),
        format!("type=local,dest={f}/below"),
        format!("type=oci,dest={d}"),
        format!("type=docker,dest={d}"),
        format!("type=tar,dest={d}"),
    ] {
        let o = e.build(&["-o", &spec]);
        let s = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{spec}: {s}");
        assert_eq!(
            s.lines().count(),
            1,
            "{spec}: one error line, no step ran: {s}"
        );
        assert!(s.contains("destination"), "{s}");
    }
    // nothing was touched, nothing was built
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert!(e.store().cache_entries().unwrap().is_empty());
}

#[test]
fn docker_and_image_outputs_name_the_image_in_the_store() {
    let e = Env::new();
    e.write("f.txt", "x\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    // buildx's `--load` form: no file, the image is in the store (named by -t and name=)
    let (doc, _) = e.build_ok(&["-t", "app:1", "-o", "type=docker,name=other:2"]);
    let out = &doc["outputs"][0];
    assert_eq!(out["type"], "docker", "{doc}");
    assert!(out.get("dest").is_none(), "{doc}");
    let store_root = std::fs::canonicalize(&e.store).unwrap();
    assert_eq!(out["store"], store_root.display().to_string(), "{doc}");
    assert_eq!(
        out["references"],
        serde_json::json!(["docker.io/library/app:1", "docker.io/library/other:2"])
    );
    let built = doc["manifest_digest"].as_str().unwrap();
    assert_eq!(e.image("other:2").manifest_digest().as_str(), built);
    // type=image with several names (a quoted CSV field, as buildx reads it)
    let (doc, _) = e.build_ok(&["-o", "type=image,\"name=x:1,y:2\""]);
    assert_eq!(
        doc["outputs"][0]["references"],
        serde_json::json!(["docker.io/library/x:1", "docker.io/library/y:2"])
    );
    assert_eq!(e.image("y:2").manifest_digest().as_str(), built);
    // several names in an archive: one index entry each (same manifest)
    let layout = e.dir.path().join("named");
    e.build_ok(&[
        "-o",
        &format!(
            "type=oci,tar=false,dest={},\"name=x:1,y:2\"",
            layout.display()
        ),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["digest"], built);
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(refs, ["docker.io/library/x:1", "docker.io/library/y:2"]);
    // type=docker,dest=FILE and dest=- still write a docker-load archive
    let tarf = e.dir.path().join("img.tar");
    let (doc, _) = e.build_ok(&[
        "-t",
        "app:1",
        "-o",
        &format!("type=docker,dest={}", tarf.display()),
    ]);
    assert_eq!(doc["outputs"][0]["dest"], tarf.display().to_string());
    let names = tar_names(&std::fs::read(&tarf).unwrap());
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    let o = e.build(&["-q", "-o", "type=docker,dest=-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tar_names(&o.stdout).iter().any(|n| n == "manifest.json"));
    // unknown attributes: one line naming them, before the build
    let o = e.build(&["-o", "type=oci,dest=o.tar,colour=blue,Shade=dark"]);
    assert_eq!(o.status.code(), Some(2));
    let s = stderr(&o);
    assert!(
        s.contains("unknown attributes \"colour\", \"shade\" for type=oci"),
        "{s}"
    );
    assert_eq!(s.lines().count(), 1, "{s}");
}

/// The layers of the one image of an OCI layout directory: (media type, blob bytes), and the
/// manifest's media type and the config's diff_ids.
/// (media type, blob bytes) of each layer.
type Layers = Vec<(String, Vec<u8>)>;

fn layout_layers(dir: &std::path::Path) -> (String, Layers, Vec<String>) {
    let blob = |d: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_string(),
                blob(l["digest"].as_str().unwrap()),
            )
        })
        .collect();
    let diff_ids = cfg["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (
        m["mediaType"].as_str().unwrap().to_string(),
        layers,
        diff_ids,
    )
}

fn sha256_of(r: impl Read) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut r = r;
    std::io::copy(&mut r, &mut h).unwrap();
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[test]
fn oci_output_compression_and_media_types() {
    let e = Env::new();
    e.write("f.txt", "some text to compress, some text to compress\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    let dir = |n: &str| e.dir.path().join(n);
    // zstd: every layer recompressed, OCI types (also asked for docker types: zstd needs OCI)
    let (doc, _) = e.build_ok(&[
        "-o",
        &format!(
            "type=oci,tar=false,dest={},compression=zstd,oci-mediatypes=false",
            dir("z").display()
        ),
    ]);
    let (mt, layers, diff_ids) = layout_layers(&dir("z"));
    assert_eq!(mt, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(layers.len(), diff_ids.len());
    for ((lmt, bytes), diff_id) in layers.iter().zip(&diff_ids) {
        assert_eq!(lmt, "application/vnd.oci.image.layer.v1.tar+zstd");
        let dec = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
        assert_eq!(&sha256_of(dec), diff_id);
    }
    let converted = doc["outputs"][0]["manifest_digest"].as_str().unwrap();
    assert_ne!(converted, doc["manifest_digest"].as_str().unwrap());
    // the stored image is unchanged: gzip, its own digest
    let stored = e.store();
    let built = stored
        .find_image(doc["manifest_digest"].as_str().unwrap())
        .unwrap();
    assert!(
        built
            .manifest
            .layers
            .iter()
            .all(|l| l.media_type.ends_with("+gzip"))
    );
    // docker media types, uncompressed layers
    e.build_ok(&[
        "-o",
        &format!(
            "type=oci,tar=false,dest={},oci-mediatypes=false,compression=uncompressed",
            dir("d").display()
        ),
    ]);
    let (mt, layers, diff_ids) = layout_layers(&dir("d"));
    assert_eq!(mt, "application/vnd.docker.distribution.manifest.v2+json");
    for ((lmt, bytes), diff_id) in layers.iter().zip(&diff_ids) {
        assert_eq!(lmt, "application/vnd.docker.image.rootfs.diff.tar");
        assert_eq!(&sha256_of(&bytes[..]), diff_id);
    }
    // gzip at another level: other bytes, same content
    e.build_ok(&[
        "-o",
        &format!(
            "type=oci,tar=false,dest={},compression=gzip,compression-level=1",
            dir("g1").display()
        ),
    ]);
    let (_, layers, diff_ids) = layout_layers(&dir("g1"));
    for ((lmt, bytes), diff_id) in layers.iter().zip(&diff_ids) {
        assert_eq!(lmt, "application/vnd.oci.image.layer.v1.tar+gzip");
        let dec = flate2::read::MultiGzDecoder::new(&bytes[..]);
        assert_eq!(&sha256_of(dec), diff_id);
    }
    // an independent reader accepts the converted layouts
    for n in ["z", "g1"] {
        let o = std::process::Command::new("skopeo")
            .args(["inspect", &format!("oci:{}", dir(n).display())])
            .output()
            .unwrap();
        assert!(o.status.success(), "{n}: {}", stderr(&o));
    }
}

#[test]
fn registry_and_image_push_with_compression_and_docker_media_types() {
    let reg = crate::registry::LocalRegistry::start();
    let e = Env::new();
    e.write("f.txt", "pushed\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    let (a, b, d) = (reg.name("a:1"), reg.name("b:1"), reg.name("d:1"));
    let (doc, _) = e.build_ok(&[
        "-o",
        &format!("type=image,\"name={a},{b}\",push=true,compression=zstd"),
        "-o",
        &format!("type=registry,name={d},oci-mediatypes=false"),
    ]);
    let raw = |r: &str| -> serde_json::Value {
        let o = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{r}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for r in [&a, &b] {
        let m = raw(r);
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        for l in m["layers"].as_array().unwrap() {
            assert_eq!(
                l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
                "{m}"
            );
        }
    }
    let m = raw(&d);
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    let pushed = doc["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 3, "{doc}");
    // type=image also names the image in the store
    assert_eq!(
        e.image(&a).manifest_digest().as_str(),
        doc["manifest_digest"].as_str().unwrap()
    );
    // skopeo copies both forms (it verifies every digest)
    for (i, r) in [&a, &d].into_iter().enumerate() {
        let out = e.dir.path().join(format!("copy-{i}"));
        let o = std::process::Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{r}"))
            .arg(format!("oci:{}:x", out.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{r}: {}", stderr(&o));
    }
}
