//! The `layer-pack` binary: flags, documents on stdout, one error line, exit codes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::util::*;

fn id_flags() -> Vec<String> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    vec![
        format!("--uid-map=0:{uid}:1"),
        format!("--gid-map=0:{gid}:1"),
    ]
}

#[test]
fn pack_to_file_prints_the_document() {
    let t = tmp();
    let src = t.path().join("src");
    write(&src.join("hello.txt"), b"hello\n");
    set_all_mtimes(&src, 1_700_000_000);
    let blob = t.path().join("layer.tgz");
    let out = bin()
        .arg("pack")
        .arg(&src)
        .arg("-o")
        .arg(&blob)
        .args(id_flags())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let data = fs::read(&blob).unwrap();
    assert_eq!(doc["digest"], sha256(&data));
    assert_eq!(doc["size"], data.len());
    insta::assert_json_snapshot!(doc);
    // an ordinary file, readable by all (not the 0600 of its temp file)
    assert_eq!(
        fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // `-o -` would mix the blob with the document on stdout: refused, nothing named `-`
    let out = bin()
        .current_dir(t.path())
        .args(["pack", src.to_str().unwrap(), "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-o - is not supported"));
    assert!(!t.path().join("-").exists());
    // the same with SOURCE_DATE_EPOCH from the environment clamps the mtime: another digest
    let out2 = bin()
        .arg("pack")
        .arg(&src)
        .arg("-o")
        .arg(&blob)
        .args(id_flags())
        .env("SOURCE_DATE_EPOCH", "1000")
        .output()
        .unwrap();
    let doc2: serde_json::Value = serde_json::from_slice(&out2.stdout).unwrap();
    assert_ne!(doc2["diff_id"], doc["diff_id"]);
    let out3 = bin()
        .arg("pack")
        .arg(&src)
        .arg("-o")
        .arg(&blob)
        .args(id_flags())
        .arg("--source-date-epoch=1000")
        .output()
        .unwrap();
    let doc3: serde_json::Value = serde_json::from_slice(&out3.stdout).unwrap();
    assert_eq!(doc2["diff_id"], doc3["diff_id"]);
}

#[test]
fn pack_reads_an_ns_run_document_on_stdin_and_writes_into_a_store() {
    let t = tmp();
    let upper = t.path().join("upper");
    write(&upper.join("x"), b"x");
    let store = t.path().join("store");
    let mut child = bin()
        .args([
            "pack",
            "--overlay-upper",
            "--compression",
            "zstd",
            "--store",
        ])
        .arg(&store)
        .args(id_flags())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = serde_json::json!({"version": 1, "exit_code": 0, "upper": upper});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        d["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let hex = d["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let data = fs::read(store.join("blobs/sha256").join(&hex)).unwrap();
    assert_eq!(sha256(&data), d["digest"].as_str().unwrap());
    // readable by all, like the blobs image-store writes
    let mode = fs::metadata(store.join("blobs/sha256").join(&hex))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn usage_and_input_errors_exit_2_with_one_line() {
    let t = tmp();
    let cases: Vec<Vec<String>> = vec![
        vec!["pack".into(), t.path().display().to_string()],
        vec![
            "pack".into(),
            t.path().join("missing").display().to_string(),
            "-o".into(),
            t.path().join("o").display().to_string(),
        ],
        vec![
            "pack".into(),
            t.path().display().to_string(),
            "--level=12".into(),
            "-o".into(),
            t.path().join("o").display().to_string(),
        ],
        vec!["pack".into(), "--compression=lz4".into()],
        vec![
            "pack".into(),
            t.path().display().to_string(),
            "--uid-map=1:2".into(),
            "-o".into(),
            "x".into(),
        ],
    ];
    for args in cases {
        let out = bin().args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        if !args.iter().any(|a| a.contains("lz4")) {
            assert!(
                err.starts_with("layer-pack: error: ") && err.lines().count() == 1,
                "{args:?}: {err}"
            );
            // a cause the message already carries is not repeated
            assert!(err.matches("(os error").count() <= 1, "{args:?}: {err}");
        }
        assert!(out.stdout.is_empty());
    }
}

/// `layer-pack unpack BLOB DST` fails with 2 and one line `BLOB: WANT…`.
fn unpack_fails(blob: &std::path::Path, dst: &std::path::Path, want: &str) {
    let out = bin().arg("unpack").arg(blob).arg(dst).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = format!("layer-pack: error: {}: {want}", blob.display());
    assert!(err.starts_with(&line) && err.lines().count() == 1, "{err}");
}

#[test]
fn unpack_reports_and_refuses() {
    let t = tmp();
    let src = t.path().join("src");
    write(&src.join("f"), b"f");
    let blob = t.path().join("l.tar");
    assert!(
        bin()
            .arg("pack")
            .arg(&src)
            .args(["--compression", "none", "-o"])
            .arg(&blob)
            .output()
            .unwrap()
            .status
            .success()
    );
    let dst = t.path().join("dst");
    let out = bin().arg("unpack").arg(&blob).arg(&dst).output().unwrap();
    assert!(out.status.success());
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["version"], 1);
    assert_eq!(rep["compression"], "none");
    assert_eq!(rep["entries"], 1);
    assert_eq!(fs::read(dst.join("f")).unwrap(), b"f");
    // a mismatch fails with 1 and leaves the new dir absent
    let dst2 = t.path().join("dst2");
    let out = bin()
        .arg("unpack")
        .arg(&blob)
        .arg(&dst2)
        .args(["--expect-diff-id", "sha256:00"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // the error names the blob
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .collect::<Vec<_>>(),
        [format!(
            "layer-pack: error: {}: diff_id mismatch: expected sha256:00, got {}",
            blob.display(),
            rep["diff_id"].as_str().unwrap()
        )]
    );
    assert!(!dst2.exists());
    // a hostile archive is refused with 2, naming the blob
    let evil = t.path().join("evil.tar");
    fs::write(&evil, raw_tar(&[(raw_header(b"../x", b'0', 0, b""), b"")])).unwrap();
    unpack_fails(&evil, &t.path().join("dst3"), "refused entry ../x");
    // not a layer at all: names the file (stdin as `stdin`)
    let junk = t.path().join("junk");
    fs::write(&junk, b"junk\n").unwrap();
    unpack_fails(&junk, &t.path().join("dst5"), "malformed layer");
    let out = bin()
        .arg("unpack")
        .arg("-")
        .arg(t.path().join("dst6"))
        .stdin(fs::File::open(&junk).unwrap())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("layer-pack: error: stdin: malformed layer")
    );
    // stdin works
    let out = bin()
        .arg("unpack")
        .arg("-")
        .arg(t.path().join("dst4"))
        .stdin(fs::File::open(&blob).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn a_rootless_run_document_brings_its_id_maps_and_userxattr() {
    let t = tmp();
    let upper = t.path().join("upper");
    write(&upper.join("d/new"), b"n");
    xattr::set(upper.join("d"), "user.overlay.opaque", b"y").unwrap();
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let doc = serde_json::json!({
        "version": 1, "exit_code": 0, "upper": upper,
        "uid_map": [{"container_id": 0, "host_id": uid, "size": 1}],
        "gid_map": [{"container_id": 0, "host_id": gid, "size": 1}],
    });
    let blob = t.path().join("l.tar");
    let mut child = bin()
        .args(["pack", "--overlay-upper", "--compression", "none", "-o"])
        .arg(&blob)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let data = fs::read(&blob).unwrap();
    let names: Vec<String> = list_tar(&data).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["d/", "d/.wh..wh..opq", "d/new"]);
    let mut a = tar::Archive::new(data.as_slice());
    for e in a.entries().unwrap() {
        assert_eq!(e.unwrap().header().uid().unwrap(), 0);
    }
}
