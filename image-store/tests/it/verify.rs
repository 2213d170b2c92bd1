//! Every blob from outside is verified before it becomes visible; a mismatch names the blob and
//! tags nothing.

use std::fs;
use std::path::Path;

use crate::helpers::{TestStore, run_tool, tar_of};

/// A one-layer image exported as an OCI dir; returns (dir, layer digest hex).
fn small_oci_dir(s: &TestStore) -> (std::path::PathBuf, String) {
    let tar = tar_of(&[("etc/", b""), ("etc/data", &[7u8; 4096][..])]);
    assert!(
        s.run_stdin(&["import", "-", "-t", "small"], &tar)
            .status
            .success()
    );
    let dir = s.path("layout");
    s.ok(&[
        "export",
        "small",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let layer = s.json(&["inspect", "small"])["manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    (dir, layer)
}

fn flip_last_byte(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    fs::write(p, b).unwrap();
}

fn assert_nothing_loaded(t: &TestStore, hex: &str) {
    if t.root.exists() {
        assert!(t.json(&["ls"])["images"].as_array().unwrap().is_empty());
        assert!(!t.root.join("blobs/sha256").join(hex).exists());
        t.fsck_clean();
    }
}

#[test]
fn corrupt_blob_in_oci_dir_is_refused() {
    damaged_oci_dir_is_refused(flip_last_byte, &["digest mismatch"]);
}

/// Damages the layer blob of an exported OCI dir, loads the dir: exit 2, one error line
/// naming the layer and `want`, nothing loaded.
fn damaged_oci_dir_is_refused(damage: impl Fn(&Path), want: &[&str]) {
    let s = TestStore::new();
    let (dir, layer) = small_oci_dir(&s);
    damage(&dir.join("blobs/sha256").join(&layer));
    let t = TestStore::new();
    let o = t.run(&["load", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&layer) && want.iter().all(|w| err.contains(w)),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_nothing_loaded(&t, &layer);
}

#[test]
fn corrupt_blob_in_oci_tar_is_refused() {
    let s = TestStore::new();
    let (dir, layer) = small_oci_dir(&s);
    flip_last_byte(&dir.join("blobs/sha256").join(&layer));
    let tar = s.path("bad.tar");
    run_tool(
        "tar",
        &[
            "-cf",
            tar.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            ".",
        ],
    );
    let t = TestStore::new();
    let o = t.run(&["load", tar.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&layer));
    assert_nothing_loaded(&t, &layer);
}

#[test]
fn wrong_size_in_descriptor_is_refused() {
    let s = TestStore::new();
    let (dir, _) = small_oci_dir(&s);
    // make index.json claim a wrong manifest size
    let p = dir.join("index.json");
    let mut idx: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let size = idx["manifests"][0]["size"].as_u64().unwrap();
    idx["manifests"][0]["size"] = (size + 1).into();
    fs::write(&p, serde_json::to_vec(&idx).unwrap()).unwrap();
    let t = TestStore::new();
    let o = t.run(&["load", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("size mismatch"));
}

#[test]
fn tampered_docker_archive_layer_is_refused() {
    let s = TestStore::new();
    let tar = tar_of(&[("etc/", b""), ("etc/data", &[7u8; 4096][..])]);
    assert!(
        s.run_stdin(&["import", "-", "-t", "small"], &tar)
            .status
            .success()
    );
    let d = s.path("d.tar");
    s.ok(&[
        "export",
        "small",
        "--format",
        "docker",
        "-o",
        d.to_str().unwrap(),
    ]);
    let x = s.path("x");
    fs::create_dir(&x).unwrap();
    run_tool(
        "tar",
        &["-xf", d.to_str().unwrap(), "-C", x.to_str().unwrap()],
    );
    // good archive loads
    let t = TestStore::new();
    t.ok(&["load", d.to_str().unwrap()]);
    // change one byte of the file data inside layer.tar
    let layer = fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
        .join("layer.tar");
    let mut b = fs::read(&layer).unwrap();
    let pos = b.windows(16).position(|w| w == [7u8; 16]).unwrap();
    b[pos] = 8;
    fs::write(&layer, b).unwrap();
    let bad = s.path("bad.tar");
    run_tool(
        "tar",
        &["-cf", bad.to_str().unwrap(), "-C", x.to_str().unwrap(), "."],
    );
    let t2 = TestStore::new();
    let o = t2.run(&["load", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("layer.tar") && err.contains("digest mismatch"),
        "{err}"
    );
    assert!(t2.json(&["ls"])["images"].as_array().unwrap().is_empty());
    // a config that does not hash to its name
    let cfg = fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("manifest.json"))
        .unwrap();
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"os\":\"linux\"", "\"os\":\"linux\" ");
    fs::write(&cfg, text).unwrap();
    run_tool(
        "tar",
        &["-cf", bad.to_str().unwrap(), "-C", x.to_str().unwrap(), "."],
    );
    let o = t2.run(&["load", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn put_blob_with_expected_digest_verifies_streaming_input() {
    let s = TestStore::new();
    let store = image_store::Store::open(&s.root).unwrap();
    let good = image_store::Digest::of(b"payload");
    // a registry-like streaming ingest: wrong bytes, right length
    let e = store
        .put_blob(&b"PAYLOAD"[..], Some((&good, 7)))
        .unwrap_err();
    assert!(e.to_string().contains(good.as_str()), "{e}");
    assert!(!store.has_blob(&good));
    // too long is caught while streaming
    let e = store
        .put_blob(&b"payload and more"[..], Some((&good, 7)))
        .unwrap_err();
    assert!(
        matches!(e, image_store::StoreError::SizeMismatch { .. }),
        "{e}"
    );
    let info = store.put_blob(&b"payload"[..], Some((&good, 7))).unwrap();
    assert_eq!(info.digest, good);
    assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn load_picks_the_platform_from_a_multi_platform_index() {
    let s = TestStore::new();
    let (dir, _) = small_oci_dir(&s);
    let p = dir.join("index.json");
    let idx: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let mut amd = idx["manifests"][0].clone();
    amd.as_object_mut().unwrap().remove("annotations");
    let host = image_store::Platform::host();
    amd["platform"] = serde_json::json!({"os": "linux", "architecture": host.architecture});
    // an entry for another platform whose blobs are absent: must not be needed
    let other = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "1".repeat(64)), "size": 10,
        "platform": {"os": "linux", "architecture": "s390x"}});
    let list = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, amd]});
    let bytes = serde_json::to_vec(&list).unwrap();
    let d = image_store::Digest::of(&bytes);
    fs::write(dir.join("blobs/sha256").join(d.hex()), &bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": d.as_str(), "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:1"}}]});
    fs::write(&p, serde_json::to_vec(&top).unwrap()).unwrap();
    let t = TestStore::new();
    let l = t.json(&["load", dir.to_str().unwrap()]);
    assert_eq!(l["images"][0]["reference"], "example.com/multi:1");
    assert_eq!(
        l["images"][0]["manifest_digest"],
        idx["manifests"][0]["digest"]
    );
    let o = t.run(&["load", dir.to_str().unwrap(), "--platform", "linux/s390x"]);
    // the s390x manifest is not in the layout: an input error naming it
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&"1".repeat(64)) && err.contains("missing"),
        "{err}"
    );
    t.fsck_clean();
}

#[test]
fn truncated_blob_in_oci_dir_says_size_mismatch() {
    let truncate = |p: &Path| {
        let f = fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(10).unwrap();
    };
    damaged_oci_dir_is_refused(truncate, &["size mismatch", "got 10"]);
}

#[test]
fn blob_missing_from_oci_dir_is_an_input_error_naming_it() {
    let remove = |p: &Path| fs::remove_file(p).unwrap();
    damaged_oci_dir_is_refused(remove, &["missing from the layout"]);
}

#[test]
fn load_of_a_missing_or_non_archive_file_names_it() {
    let t = TestStore::new();
    let missing = t.path("nope.tar");
    let o = t.run(&["load", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("image-store: error: ")
            && err.contains("nope.tar: no such file or directory"),
        "{err}"
    );
    let o = t.run(&["import", missing.to_str().unwrap(), "-t", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.tar: no such file or directory"));
    let junk = t.path("junk.tar");
    fs::write(&junk, b"garbage\n").unwrap();
    let o = t.run(&["load", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("junk.tar: not a readable tar archive"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn fsck_names_a_corrupt_blob_once_and_reading_it_fails_with_one_line() {
    let s = TestStore::new();
    let tar = tar_of(&[("etc/", b""), ("etc/data", &[7u8; 4096][..])]);
    assert!(
        s.run_stdin(&["import", "-", "-t", "small"], &tar)
            .status
            .success()
    );
    let layer = s.json(&["inspect", "small"])["manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    flip_last_byte(
        &s.root
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    );
    let o = s.run(&["--json", "fsck"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let blob = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "blob")
        .unwrap();
    assert_eq!(blob["object"], layer.as_str());
    let msg = blob["message"].as_str().unwrap();
    assert!(
        msg.starts_with("corrupt: content hashes to sha256:"),
        "{msg}"
    );
    assert!(!msg.contains(&layer), "{msg}");
    // reading it (export) fails with one line naming the blob once as the subject
    let out = s.path("x.tar");
    let o = s.run(&["export", "small", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "image-store: error: blob {layer}: digest mismatch"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists() && !s.path("x.tar.partial").exists());
}

#[test]
fn a_broken_index_json_is_reported_once() {
    let s = TestStore::new();
    s.ok(&["ls"]);
    fs::write(s.root.join("index.json"), b"{bad").unwrap();
    let o = s.run(&["ls"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("index.json: invalid JSON"), "{err}");
    // the parser's message appears once, not once per level of the error chain
    assert_eq!(err.matches("line 1 column").count(), 1, "{err}");
}

/// Loads `input` into `t`: exit 2 and one error line starting with `want`.
fn load_fails_with(t: &TestStore, input: &Path, want: &str) {
    let o = t.run(&["load", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!("image-store: error: {want}")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn malformed_documents_of_a_layout_are_input_errors_naming_the_input() {
    let s = TestStore::new();
    let (dir, _) = small_oci_dir(&s);
    let index = dir.join("index.json");
    let mut idx: serde_json::Value = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
    // a digest that would escape blobs/ if it were used as a path
    idx["manifests"][0]["digest"] = "sha256:../../../../etc/passwd".into();
    fs::write(&index, serde_json::to_vec(&idx).unwrap()).unwrap();
    let t = TestStore::new();
    let want = format!(
        "{}: index.json: invalid JSON: invalid digest",
        dir.display()
    );
    load_fails_with(&t, &dir, &want);
    // a truncated index.json in a layout tar names the tar
    fs::write(&index, b"{\"manifests\":").unwrap();
    let tar = s.path("bad.tar");
    let (tar_s, dir_s) = (tar.to_str().unwrap(), dir.to_str().unwrap());
    run_tool("tar", &["-cf", tar_s, "-C", dir_s, "."]);
    load_fails_with(&t, &tar, &format!("{tar_s}: index.json: invalid JSON"));
    // nothing tagged (a tar's verified blobs may stay until gc, as documented)
    assert!(t.json(&["ls"])["images"].as_array().unwrap().is_empty());
    t.fsck_clean();
}

#[test]
fn load_takes_the_full_name_from_io_containerd_image_name() {
    // BuildKit's type=oci, containerd and `docker save` (25+) write the tag alone in ref.name
    let s = TestStore::new();
    let (dir, _) = small_oci_dir(&s);
    let index = dir.join("index.json");
    let mut idx: serde_json::Value = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
    idx["manifests"][0]["annotations"] = serde_json::json!({
        "org.opencontainers.image.ref.name": "1",
        "io.containerd.image.name": "registry.example:5000/team/app:1"});
    fs::write(&index, serde_json::to_vec(&idx).unwrap()).unwrap();
    let t = TestStore::new();
    let l = t.json(&["load", dir.to_str().unwrap()]);
    assert_eq!(
        l["images"][0]["reference"],
        "registry.example:5000/team/app:1"
    );
    // without it, a tag-only ref.name is named after the layout
    idx["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "1"});
    fs::write(&index, serde_json::to_vec(&idx).unwrap()).unwrap();
    let l = t.json(&["load", dir.to_str().unwrap()]);
    assert_eq!(l["images"][0]["reference"], "localhost/layout:1");
}
