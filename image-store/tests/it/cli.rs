//! The CLI subcommands and their JSON documents.

use crate::helpers::{TestStore, busybox_tar, import_busybox, tar_of};

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.starts_with("sha256:") => *s = "[digest]".into(),
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "created" || k == "size" || k == "bytes" || k == "reclaimable_bytes" {
                    *x = serde_json::Value::String(format!("[{k}]"));
                } else {
                    redact(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

#[test]
fn import_ls_inspect_config_tag_rm() {
    let s = TestStore::new();
    let imp = import_busybox(&s);
    assert_eq!(imp["reference"], "docker.io/library/busybox:latest");
    let mut ls = s.json(&["ls"]);
    assert_eq!(ls["images"][0]["image_id"], imp["image_id"]);
    redact(&mut ls);
    insta::assert_json_snapshot!("ls", ls);

    let insp = s.json(&["inspect", "busybox"]);
    assert_eq!(insp["config"]["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        insp["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        insp["manifest"]["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // by image id prefix too
    let id = imp["image_id"].as_str().unwrap();
    let by_id = s.json(&["inspect", &id[7..19]]);
    assert_eq!(by_id["image_id"], imp["image_id"]);

    // config prints the stored canonical config bytes
    let cfg = s.ok(&["config", "busybox:latest"]);
    assert!(cfg.starts_with(r#"{"architecture":"#), "{cfg}");
    assert!(!cfg.trim_end().contains(' ') || cfg.contains("\"created_by\""));

    s.ok(&["tag", "busybox", "localhost:5000/app"]);
    let refs: Vec<String> = s.json(&["ls"])["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        refs,
        [
            "docker.io/library/busybox:latest",
            "localhost:5000/app:latest"
        ]
    );
    let rm = s.json(&["rm", "busybox"]);
    assert_eq!(rm["removed"][0], "docker.io/library/busybox:latest");
    assert_eq!(s.json(&["ls"])["images"].as_array().unwrap().len(), 1);
    // gc keeps the image still tagged as localhost:5000/app
    let gc = s.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["blobs_removed"], 0);
    s.ok(&["rm", "localhost:5000/app"]);
    let gc = s.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["blobs_removed"], 3);
    assert!(gc["bytes_freed"].as_u64().unwrap() > 1_000_000);
    s.fsck_clean();
}

#[test]
fn exit_codes_and_error_lines() {
    let s = TestStore::new();
    let o = s.run(&["inspect", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("image-store: error: image docker.io/library/nope:latest not found"),
        "{err}"
    );
    let o = s.run(&["tag", "a", "Bad/Name"]);
    assert_eq!(o.status.code(), Some(2));
    // a missing input file is an input error naming it
    let o = s.run(&["import", "/nonexistent/x.tar", "-t", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.tar"));
    let o = s.run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = s.run_stdin(&["import", "-", "-t", "x"], b"not a tar at all, really not");
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn df_reports_usage() {
    let s = TestStore::new();
    import_busybox(&s);
    let mut df = s.json(&["df"]);
    assert_eq!(df["blobs"]["count"], 3);
    assert!(df["blobs"]["bytes"].as_u64().unwrap() > 1_000_000);
    assert_eq!(df["blobs"]["reclaimable_bytes"], 0);
    redact(&mut df);
    insta::assert_json_snapshot!("df", df);
}

#[test]
fn import_from_stdin_gzip_and_directory_and_platform() {
    let s = TestStore::new();
    let tar = tar_of(&[("etc/", b""), ("etc/hello", b"hi\n")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let a = s.run_stdin(&["--json", "import", "-", "-t", "plain"], &tar);
    assert!(a.status.success());
    let b = s.run_stdin(
        &[
            "--json",
            "import",
            "-",
            "-t",
            "gz",
            "--platform",
            "linux/arm64/v8",
        ],
        &gz,
    );
    assert!(b.status.success());
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    assert!(
        s.run_stdin(&["import", "-", "-t", "zst"], &zst)
            .status
            .success()
    );
    // same content, same diff_id whatever the input compression
    let d = |r: &str| s.json(&["inspect", r])["config"]["rootfs"]["diff_ids"][0].clone();
    assert_eq!(d("plain"), d("gz"));
    assert_eq!(d("plain"), d("zst"));
    let cfg = s.json(&["inspect", "gz"])["config"].clone();
    assert_eq!(
        (cfg["os"].as_str(), cfg["architecture"].as_str()),
        (Some("linux"), Some("arm64"))
    );
    assert_eq!(cfg["variant"], "v8");
    // a directory goes through layer-pack
    let dir = s.path("rootfs");
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/hello"), "hi\n").unwrap();
    s.ok(&[
        "import",
        dir.to_str().unwrap(),
        "-t",
        "fromdir",
        "-c",
        "ENV A=1",
        "-c",
        "WORKDIR /w",
    ]);
    let c = s.json(&["inspect", "fromdir"])["config"]["config"].clone();
    assert_eq!(c["Env"], serde_json::json!(["A=1"]));
    assert_eq!(c["WorkingDir"], "/w");
    // a tar with `..` is refused
    let evil = tar_of(&[("../evil", b"x")]);
    let o = s.run_stdin(&["import", "-", "-t", "evil"], &evil);
    assert_eq!(o.status.code(), Some(2));
    s.fsck_clean();
}

#[test]
fn commit_layers_from_stdin_on_a_base() {
    let s = TestStore::new();
    import_busybox(&s);
    // a layer made by the library (as layer-pack --store would)
    let store = image_store::Store::open(&s.root).unwrap();
    let layer = store
        .ingest_tar_layer(&tar_of(&[("app/", b""), ("app/run", b"echo hi\n")])[..])
        .unwrap();
    drop(store);
    let doc = serde_json::json!({"version": 1, "media_type": layer.media_type, "digest": layer.digest,
        "diff_id": layer.diff_id, "size": layer.size});
    let o = s.run_stdin(
        &[
            "--json",
            "commit",
            "--base",
            "busybox",
            "-t",
            "mine:1",
            "-c",
            r#"CMD ["/app/run"]"#,
        ],
        doc.to_string().as_bytes(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["reference"], "docker.io/library/mine:1");
    let i = s.json(&["inspect", "mine:1"]);
    assert_eq!(i["image_id"], out["image_id"]);
    assert_eq!(i["manifest"]["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        i["config"]["rootfs"]["diff_ids"][1],
        serde_json::json!(layer.diff_id)
    );
    assert_eq!(
        i["config"]["config"]["Cmd"],
        serde_json::json!(["/app/run"])
    );
    assert_eq!(i["config"]["history"].as_array().unwrap().len(), 2);
    // lowers: top first
    let lowers = s.json(&["lowers", "mine:1"])["lowers"].clone();
    let l: Vec<&str> = lowers
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(l.len(), 2);
    assert!(l[0].contains(layer.diff_id.hex()), "{l:?}");
    assert!(std::path::Path::new(l[0]).join("app/run").is_file());
    assert!(std::path::Path::new(l[1]).join("bin/busybox").is_file());
    // config-only commit from scratch with no layers, and a missing layer is refused
    let o = s.run_stdin(&["commit", "-t", "empty", "-c", "LABEL a=b"], b"");
    assert!(o.status.success());
    let bogus = serde_json::json!({"media_type": "application/vnd.oci.image.layer.v1.tar",
        "digest": format!("sha256:{}", "0".repeat(64)), "diff_id": format!("sha256:{}", "0".repeat(64)), "size": 1});
    let o = s.run_stdin(&["commit", "-t", "bad"], bogus.to_string().as_bytes());
    assert_eq!(o.status.code(), Some(1));
    s.fsck_clean();
}

#[test]
fn import_is_reproducible_with_source_date_epoch() {
    let a = TestStore::new();
    let b = TestStore::new();
    let ids: Vec<String> = [&a, &b]
        .iter()
        .map(|s| {
            let o = s
                .cmd(&[
                    "--json",
                    "import",
                    busybox_tar().to_str().unwrap(),
                    "-t",
                    "bb",
                ])
                .env("SOURCE_DATE_EPOCH", "0")
                .output()
                .unwrap();
            assert!(o.status.success());
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            v["manifest_digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn export_to_a_fifo_or_device_writes_in_place() {
    let s = TestStore::new();
    assert!(
        s.run_stdin(&["import", "-", "-t", "x"], &tar_of(&[("a", b"hello")]))
            .status
            .success()
    );
    let fifo = s.path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(f2).unwrap());
    s.ok(&["export", "x", "-o", fifo.to_str().unwrap()]);
    let bytes = reader.join().unwrap();
    assert!(bytes.len() > 1024);
    let md = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&md.file_type()),
        "the fifo was replaced"
    );
    // a regular file is replaced atomically, with no .partial left over
    let out = s.path("out.tar");
    s.ok(&["export", "x", "-o", out.to_str().unwrap()]);
    assert!(out.is_file() && !s.path("out.tar.partial").exists());
}

#[test]
fn gc_grace_keeps_young_unreferenced_content_and_foreign_temp_files() {
    let s = TestStore::new();
    assert!(
        s.run_stdin(&["import", "-", "-t", "x"], &tar_of(&[("a", b"hello")]))
            .status
            .success()
    );
    s.ok(&["lowers", "x"]);
    // a blob another tool just wrote (layer-pack pack --store, not committed yet) and a
    // layer-pack temp file in blobs/sha256 while it writes
    let layer = tar_of(&[("b", b"other")]);
    let hex = image_store::Digest::of(&layer).hex().to_string();
    let pending = s.root.join("blobs/sha256").join(&hex);
    std::fs::write(&pending, &layer).unwrap();
    let foreign = s.root.join("blobs/sha256/.layer-pack-abc123");
    std::fs::write(&foreign, b"partial").unwrap();
    s.ok(&["rm", "x"]);
    // the removed image's blobs (written by the store) go at once, like `docker rmi` + prune;
    // the fresh foreign blob and the snapshot (a run may still use it) are kept
    let gc = s.json(&["gc"]);
    assert_eq!(gc["blobs_removed"], 3, "{gc}");
    assert!(gc["bytes_freed"].as_u64().unwrap() > 0, "{gc}");
    assert_eq!(gc["snapshots_removed"], 0, "{gc}");
    assert!(pending.exists(), "a fresh foreign blob was removed");
    s.fsck_clean();
    let gc = s.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["blobs_removed"], 1, "{gc}");
    assert_eq!(gc["snapshots_removed"], 1, "{gc}");
    assert!(!pending.exists());
    assert!(foreign.exists(), "a fresh foreign temp file was removed");
    s.fsck_clean();
}

/// A raw tar entry: (name, type, link target or content).
type RawEntry<'a> = (&'a str, tar::EntryType, &'a str);

/// A tar of raw entries.
fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, arg) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let data = if kind.is_file() { arg.as_bytes() } else { &[] };
        h.set_size(data.len() as u64);
        // raw names: the builder API refuses hostile ones
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if !kind.is_file() {
            h.as_old_mut().linkname[..arg.len()].copy_from_slice(arg.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn import_refuses_entries_layer_pack_would_not_apply_naming_file_and_entry() {
    use tar::EntryType::{Link, Regular, Symlink};
    let s = TestStore::new();
    let cases: [(&[RawEntry], &str); 5] = [
        (
            &[("../evil", Regular, "x")],
            "entry ../evil escapes the root",
        ),
        (&[("/abs", Regular, "x")], "entry /abs has an absolute path"),
        (
            &[("ln", Symlink, "/tmp"), ("ln/evil", Regular, "x")],
            "entry ln/evil goes through the symlink ln",
        ),
        (
            &[("hl", Link, "../../etc/passwd")],
            "entry hl links to ../../etc/passwd outside the root",
        ),
        (
            &[("etc", Symlink, "/etc"), ("hl", Link, "etc/passwd")],
            "entry hl links through the symlink etc",
        ),
    ];
    for (i, (entries, want)) in cases.iter().enumerate() {
        let file = s.path(&format!("hostile{i}.tar"));
        std::fs::write(&file, raw_tar(entries)).unwrap();
        let o = s.run(&["import", file.to_str().unwrap(), "-t", "h"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{want}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("image-store: error: {}: {want}", file.display()),
        );
    }
    // nothing was tagged, nothing half-written remains
    assert!(s.json(&["ls"])["images"].as_array().unwrap().is_empty());
    s.fsck_clean();
    // `./` names, a link to a symlink itself, and a symlink replaced by a directory are fine,
    // and the image's snapshot can be made
    let file = s.path("fine.tar");
    std::fs::write(
        &file,
        raw_tar(&[
            ("./etc", tar::EntryType::Directory, ""),
            ("./etc/passwd", Regular, "root:x:0:0::/:/bin/sh\n"),
            ("./hl", Link, "./etc/passwd"),
            ("./sl", Symlink, "etc"),
            ("./sl2", Link, "./sl"),
            ("./d", Symlink, "/tmp"),
            ("./d", tar::EntryType::Directory, ""),
            ("./d/f", Regular, "x"),
        ]),
    )
    .unwrap();
    s.ok(&["import", file.to_str().unwrap(), "-t", "fine"]);
    s.ok(&["lowers", "fine"]);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let s = TestStore::new();
    import_busybox(&s);
    // a pipe whose reader is gone: every write fails with EPIPE
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    let o = s
        .cmd(&["inspect", "busybox"])
        .stdout(w)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn export_to_a_file_prints_a_document_with_json() {
    let s = TestStore::new();
    let imp = import_busybox(&s);
    let file = s.path("bb.tar");
    let doc = s.json(&[
        "export",
        "busybox",
        "--format",
        "docker",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["format"], "docker");
    assert_eq!(doc["output"], file.to_str().unwrap());
    assert_eq!(
        doc["images"][0]["reference"],
        "docker.io/library/busybox:latest"
    );
    assert_eq!(doc["images"][0]["image_id"], imp["image_id"]);
    assert!(file.is_file());
    // to stdout, stdout holds the archive alone
    let o = s.run(&["--json", "export", "busybox", "-o", "-"]);
    assert!(o.status.success());
    assert!(
        o.stdout.len() > 512 && serde_json::from_slice::<serde_json::Value>(&o.stdout).is_err()
    );
}
