//! COPY/ADD end to end: the built image's root file system is unpacked and compared.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::*;

fn meta(root: &std::path::Path, rel: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn copy_sources_wildcards_dirs_dest_rules_and_ignore_files() {
    let e = Env::new();
    e.write("src/a.txt", "a");
    e.write("src/b.md", "b");
    e.write("src/sub/c.txt", "c");
    e.write("top.txt", "top");
    e.write("secret.key", "no");
    e.write("logs/x.log", "no");
    e.write("logs/keep.log", "yes");
    e.write("deep/n/x.tmp", "kept: *.tmp is root-relative");
    e.write(".dockerignore", "secret.key\nlogs\n!logs/keep.log\n*.tmp\n");
    e.write("root.tmp", "ignored");
    std::os::unix::fs::symlink("src/a.txt", e.ctx.join("link")).unwrap();
    e.remfile(
        "FROM busybox:local\nWORKDIR /w\nCOPY src/ app/\nCOPY src/*.txt top.txt /multi/\nCOPY top.txt /file/renamed\n\
         COPY src /nodirslash\nCOPY . /all/\nCOPY link /followed\nCOPY **/c.txt /globstar/\nCOPY src/[ab].* ./cls/\n",
    );
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let p = r.path();
    let read = |rel: &str| {
        std::fs::read_to_string(p.join(rel)).unwrap_or_else(|err| panic!("{rel}: {err}"))
    };
    assert_eq!(
        read("w/app/a.txt"),
        "a",
        "a directory source copies its contents, relative to WORKDIR"
    );
    assert_eq!(read("w/app/sub/c.txt"), "c");
    assert!(!p.join("w/app/src").exists());
    assert_eq!(read("multi/a.txt"), "a");
    assert_eq!(read("multi/top.txt"), "top");
    assert!(!p.join("multi/b.md").exists());
    assert_eq!(
        read("file/renamed"),
        "top",
        "a dest without slash names the file; parents are created"
    );
    assert_eq!(read("nodirslash/sub/c.txt"), "c");
    assert!(!p.join("all/secret.key").exists(), ".dockerignore applies");
    assert!(!p.join("all/logs/x.log").exists());
    assert_eq!(read("all/logs/keep.log"), "yes", "! exceptions re-include");
    assert!(!p.join("all/root.tmp").exists());
    assert!(
        p.join("all/deep/n/x.tmp").exists(),
        "Docker semantics: *.tmp matches only at the root"
    );
    assert!(
        meta(p, "all/link").file_type().is_symlink(),
        "symlinks inside a copied dir stay symlinks"
    );
    assert_eq!(
        std::fs::read_link(p.join("all/link")).unwrap().to_str(),
        Some("src/a.txt")
    );
    assert!(
        meta(p, "followed").is_file(),
        "a named symlink source is followed inside the context"
    );
    assert_eq!(read("globstar/c.txt"), "c");
    assert_eq!(read("w/cls/a.txt"), "a");
    assert_eq!(read("w/cls/b.md"), "b");
    // context files are root-owned with their own modes and mtimes kept
    let m = meta(p, "w/app/a.txt");
    if is_root() {
        // (unprivileged unpacking cannot keep owners)
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }
    let src_mtime = std::fs::metadata(e.ctx.join("src/a.txt")).unwrap().mtime();
    assert_eq!(m.mtime(), src_mtime);
}

#[test]
fn a_missing_source_is_an_input_error() {
    // (several sources onto a dest without `/`: conformance::several_sources_onto_...)
    let e = Env::new();
    e.remfile("FROM busybox:local\nCOPY missing.txt /x\n");
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.txt"));
}

#[test]
fn chown_chmod_parents_exclude() {
    let e = Env::new();
    e.write("f.txt", "f");
    e.write("d/x.txt", "x");
    e.write("d/y.log", "y");
    e.write("pkg/a/b/c.go", "c");
    e.remfile(
        "FROM busybox:local\nCOPY --chown=app:staff f.txt /o/named\nCOPY --chown=12:34 --chmod=0600 f.txt /o/num\n\
         COPY --chown=app f.txt /o/useronly\nCOPY --chmod=u+x,g-r f.txt /o/sym\nCOPY --exclude=*.log d/ /ex/\n\
         COPY --parents pkg/a/b/c.go /par/\nCOPY --parents ./pkg/./a/b/c.go /piv/\n",
    );
    std::fs::set_permissions(e.ctx.join("f.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let p = r.path();
    if is_root() {
        let m = meta(p, "o/named");
        assert_eq!(
            (m.uid(), m.gid()),
            (1000, 50),
            "names resolved in the target's /etc/passwd and /etc/group"
        );
        let m = meta(p, "o/num");
        assert_eq!((m.uid(), m.gid()), (12, 34));
        let m = meta(p, "o/useronly");
        assert_eq!((m.uid(), m.gid()), (1000, 1000));
    }
    assert_eq!(meta(p, "o/num").mode() & 0o7777, 0o600);
    assert_eq!(meta(p, "o/sym").mode() & 0o7777, 0o704);
    assert!(p.join("ex/x.txt").exists());
    assert!(!p.join("ex/y.log").exists(), "--exclude");
    assert!(
        p.join("par/pkg/a/b/c.go").exists(),
        "--parents keeps the path"
    );
    assert!(
        p.join("piv/a/b/c.go").exists(),
        "--parents with a /./ pivot"
    );
    e.remfile("FROM busybox:local\nCOPY --chown=nosuchuser f.txt /x\n");
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuchuser"));
}

fn tarball(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o640);
        h.set_mtime(1_000_000);
        h.set_uid(7);
        h.set_gid(8);
        b.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn add_archives_are_extracted_by_content_and_urls_downloaded_with_checksum() {
    let e = Env::new();
    let t = tarball(&[("inner/one.txt", "one"), ("two.txt", "two")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &t).unwrap();
    std::fs::write(e.ctx.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(e.ctx.join("noext"), &t).unwrap();
    std::fs::write(e.ctx.join("z.tzst"), zstd::encode_all(&t[..], 1).unwrap()).unwrap();
    e.write("plain.gz.txt", "not an archive");
    let body = b"downloaded\n".to_vec();
    let srv = pelagos_build::fetch::testserver::serve(
        [("/dl/file.bin".to_string(), body.clone())].into(),
    )
    .unwrap();
    let sum = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
    );
    e.remfile(&format!(
        "FROM busybox:local\nADD a.tar.gz /gz/\nADD noext /plain\nADD z.tzst /zst/\nADD plain.gz.txt /copied/\n\
         ADD --checksum={sum} {}/dl/file.bin /net/\nCOPY a.tar.gz /notextracted/\n",
        srv.base
    ));
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let p = r.path();
    assert_eq!(
        std::fs::read_to_string(p.join("gz/inner/one.txt")).unwrap(),
        "one"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("plain/two.txt")).unwrap(),
        "two",
        "a plain tar without extension is extracted"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("zst/two.txt")).unwrap(),
        "two"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("copied/plain.gz.txt")).unwrap(),
        "not an archive"
    );
    assert_eq!(std::fs::read(p.join("net/file.bin")).unwrap(), body);
    assert_eq!(
        meta(p, "net/file.bin").mode() & 0o777,
        0o600,
        "URL downloads are 0600"
    );
    assert!(
        p.join("notextracted/a.tar.gz").is_file(),
        "COPY never extracts"
    );
    assert_eq!(
        meta(p, "gz/two.txt").mode() & 0o777,
        0o640,
        "archive modes kept"
    );
    let bad = format!("sha256:{}", "0".repeat(64));
    e.remfile(&format!(
        "FROM busybox:local\nADD --checksum={bad} {}/dl/file.bin /net/\n",
        srv.base
    ));
    let o = e.build(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum mismatch"));
}

#[test]
fn copy_heredoc_and_context_from_stdin_tar() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nCOPY <<EOF /etc/greeting\nhello heredoc\nEOF\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert_eq!(
        std::fs::read_to_string(r.path().join("etc/greeting")).unwrap(),
        "hello heredoc\n"
    );
    // `-`: a tar context on stdin
    let t = tarball(&[
        ("Remfile", "FROM busybox:local\nCOPY x.txt /from-stdin\n"),
        ("x.txt", "stdin ctx"),
    ]);
    let mut c = std::process::Command::new(BIN);
    c.args(["--store", e.store.to_str().unwrap(), "-q", "-t", "s", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &t).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = e.rootfs("s");
    assert_eq!(
        std::fs::read_to_string(r.path().join("from-stdin")).unwrap(),
        "stdin ctx"
    );
}

#[test]
fn a_final_layer_of_one_wasm_file_gets_the_wasm_media_type_and_raw_bytes() {
    let e = Env::empty();
    let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0".to_vec();
    let component = b"\0asm\x0d\0\x01\0".to_vec();
    std::fs::write(e.ctx.join("app.wasm"), &module).unwrap();
    std::fs::write(e.ctx.join("comp.wasm"), &component).unwrap();
    std::fs::write(e.ctx.join("other.txt"), "text").unwrap();
    for (src, mt, bytes) in [
        ("app.wasm", "application/wasm", &module),
        (
            "comp.wasm",
            "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
            &component,
        ),
    ] {
        e.remfile(&format!(
            "FROM scratch\nCOPY {src} /app.wasm\nENTRYPOINT [\"/app.wasm\"]\n"
        ));
        e.build_ok(&["-t", "w"]);
        let img = e.image("w");
        let last = img.manifest.layers.last().unwrap();
        assert_eq!(last.media_type, mt);
        let blob = std::fs::read(e.store().blob_path(&last.digest)).unwrap();
        assert_eq!(&blob, bytes, "the layer is the module's bytes, unchanged");
        assert_eq!(img.config.rootfs.diff_ids.last().unwrap(), &last.digest);
    }
    // two files, or a non-wasm file: an ordinary tar layer
    e.remfile("FROM scratch\nCOPY app.wasm other.txt /\n");
    e.build_ok(&["-t", "n"]);
    assert_eq!(
        e.image("n").manifest.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}

#[test]
fn copy_from_an_image_and_a_stage_index_and_only_needed_stages_run() {
    let e = Env::new();
    e.write("a.txt", "a");
    e.remfile(
        "FROM busybox:local AS unused\nCOPY missing-file /x\n\
         FROM scratch AS files\nCOPY a.txt /a.txt\n\
         FROM scratch\nCOPY --from=busybox:local /etc/passwd /from-image\nCOPY --from=1 /a.txt /from-index\n",
    );
    // the unused stage would fail: it is pruned
    let (_, err) = e.build_ok(&["-t", "t"]);
    assert!(!err.contains("missing-file"), "{err}");
    let r = e.rootfs("t");
    assert!(
        std::fs::read_to_string(r.path().join("from-image"))
            .unwrap()
            .contains("root:x:0:0")
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("from-index")).unwrap(),
        "a"
    );
    if is_root() {
        assert_eq!(
            meta(r.path(), "from-image").uid(),
            0,
            "--from keeps the source owner"
        );
    }
}
