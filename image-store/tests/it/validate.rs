//! Our store and exports checked by real tools: skopeo, umoci, oci-image-tool, runc.

use std::path::Path;

use crate::helpers::{TestStore, import_busybox, run_tool};

const BB: &str = "docker.io/library/busybox:latest";

fn listing(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().strip_prefix(root).unwrap().display().to_string();
            let t = if e.file_type().is_dir() {
                "d"
            } else if e.file_type().is_symlink() {
                "l"
            } else {
                "f"
            };
            format!("{t} {p}")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn skopeo_reads_the_store_and_every_export() {
    let s = TestStore::new();
    let imp = import_busybox(&s);
    let store_ref = format!("oci:{}:{BB}", s.root.display());
    let o = run_tool("skopeo", &["inspect", &store_ref]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], imp["manifest_digest"]);
    let o = run_tool("skopeo", &["inspect", "--config", &store_ref]);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["sh"]));

    // OCI dir and OCI tar exports
    let dir = s.path("oci-dir");
    s.ok(&[
        "export",
        "busybox",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let o = run_tool(
        "skopeo",
        &["inspect", &format!("oci:{}:{BB}", dir.display())],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], imp["manifest_digest"]);
    let tar = s.path("oci.tar");
    s.ok(&["export", "busybox", "-o", tar.to_str().unwrap()]);
    let o = run_tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}:{BB}", tar.display())],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], imp["manifest_digest"]);

    // docker archive export: skopeo reads it and sees the same config (image ID)
    let d = s.path("docker.tar");
    s.ok(&[
        "export",
        "busybox",
        "--format",
        "docker",
        "-o",
        d.to_str().unwrap(),
    ]);
    let o = run_tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", d.display()),
        ],
    );
    let dc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dc, c);
    let o = run_tool("tar", &["-xOf", d.to_str().unwrap(), "manifest.json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
}

#[test]
fn skopeo_copy_round_trips_through_docker_archive_and_oci() {
    let s = TestStore::new();
    let imp = import_busybox(&s);
    let arch = s.path("sk.tar");
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:{BB}", s.root.display()),
            &format!("docker-archive:{}:mine:1", arch.display()),
        ],
    );
    let other = TestStore::new();
    let l = other.json(&["load", arch.to_str().unwrap()]);
    assert_eq!(l["images"][0]["reference"], "docker.io/library/mine:1");
    // the config survives byte for byte: same image ID
    assert_eq!(l["images"][0]["image_id"], imp["image_id"]);
    // and skopeo copies from our store into a fresh OCI layout, which we load back
    let oci = s.path("copy");
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:{BB}", s.root.display()),
            &format!("oci:{}:v2", oci.display()),
        ],
    );
    let l = other.json(&["load", oci.to_str().unwrap(), "-t", "again:2"]);
    assert_eq!(l["images"][0]["manifest_digest"], imp["manifest_digest"]);
    // a tag-only name in a layout becomes localhost/<dir name>:<tag>
    let l = other.json(&["load", oci.to_str().unwrap()]);
    assert_eq!(l["images"][0]["reference"], "localhost/copy:v2");
    other.fsck_clean();
}

#[test]
fn skopeo_writing_into_the_store_leaves_a_store_we_use_and_fsck_passes() {
    let s = TestStore::new();
    let imp = import_busybox(&s);
    // skopeo rewrites index.json and oci-layout in its own spelling, with a short ref.name
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:{BB}", s.root.display()),
            &format!("oci:{}:foo:2", s.root.display()),
        ],
    );
    let layout = std::fs::read_to_string(s.root.join("oci-layout")).unwrap();
    assert_ne!(
        layout, r#"{"imageLayoutVersion":"1.0.0"}"#,
        "skopeo kept our spelling"
    );
    s.fsck_clean();
    // the short name resolves as its normalised reference
    let i = s.json(&["inspect", "foo:2"]);
    assert_eq!(i["image_id"], imp["image_id"]);
    s.ok(&["lowers", "docker.io/library/foo:2"]);
    // re-tagging it replaces skopeo's entry instead of adding a second one; rm removes it
    s.ok(&["tag", BB, "foo:2"]);
    let names: Vec<String> = s.json(&["ls"])["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [BB, "docker.io/library/foo:2"]);
    s.ok(&["rm", "foo:2"]);
    assert_eq!(s.json(&["ls"])["images"].as_array().unwrap().len(), 1);
    s.fsck_clean();
}

#[test]
fn umoci_unpacks_the_same_tree_as_rootfs_export() {
    let s = TestStore::new();
    import_busybox(&s);
    let bundle = s.path("bundle");
    run_tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{BB}", s.root.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let ours = s.path("rootfs.tar");
    s.ok(&[
        "export",
        "busybox",
        "--format",
        "rootfs",
        "-o",
        ours.to_str().unwrap(),
    ]);
    let x = s.path("x");
    std::fs::create_dir(&x).unwrap();
    run_tool(
        "tar",
        &["-xf", ours.to_str().unwrap(), "-C", x.to_str().unwrap()],
    );
    let a = listing(&bundle.join("rootfs"));
    assert!(a.contains(&"f bin/busybox".to_string()), "{a:?}");
    assert_eq!(a, listing(&x));
}

#[test]
fn oci_image_tool_validates_store_and_exports() {
    let s = TestStore::new();
    import_busybox(&s);
    run_tool(
        "oci-image-tool",
        &["validate", "--type", "image", s.root.to_str().unwrap()],
    );
    let dir = s.path("oci-dir");
    s.ok(&[
        "export",
        "busybox",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
    ]);
    run_tool(
        "oci-image-tool",
        &["validate", "--type", "image", dir.to_str().unwrap()],
    );
}

#[test]
#[ignore = "needs root: runc runs a container"]
fn runc_runs_imported_busybox_from_a_umoci_bundle() {
    let s = TestStore::new();
    import_busybox(&s);
    let bundle = s.path("bundle");
    run_tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{BB}", s.root.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "echo hello from $(cat /etc/hostname 2>/dev/null || echo busybox); ls /bin/busybox"
    ]);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("is-test-{}", std::process::id());
    let o = std::process::Command::new("runc")
        .args(["run", &id])
        .current_dir(&bundle)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::process::Command::new("runc")
        .args(["delete", "-f", &id])
        .output();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("hello from") && out.contains("/bin/busybox"),
        "{out}"
    );
}
