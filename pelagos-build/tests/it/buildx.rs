//! buildx flags: `-f -`, a Remfile as the `-` context, `--build-context`, `--add-host`,
//! `--no-cache-filter`, `--shm-size` and the accepted/refused compatibility flags.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::{BIN, Env};

/// Runs the binary with `args` and `input` on stdin.
fn with_stdin(e: &Env, args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--store")
        .arg(&e.store)
        .args(["--progress", "plain"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn remfile_on_stdin_with_a_context_dir() {
    let e = Env::new();
    e.write("x.txt", "from ctx");
    // a Remfile in the context that must NOT be used
    e.remfile("FROM busybox:local\nCOPY x.txt /wrong\n");
    let o = with_stdin(
        &e,
        &["-t", "s", "-f", "-", e.ctx.to_str().unwrap()],
        b"FROM busybox:local\nCOPY x.txt /right\n",
    );
    ok(&o);
    let r = e.rootfs("s");
    assert_eq!(
        std::fs::read_to_string(r.path().join("right")).unwrap(),
        "from ctx"
    );
    assert!(!r.path().join("wrong").exists());
}

#[test]
fn a_plain_remfile_as_the_stdin_context_has_an_empty_context() {
    let e = Env::new();
    let o = with_stdin(
        &e,
        &["-t", "s", "-"],
        b"FROM busybox:local\nLABEL from=stdin\n",
    );
    ok(&o);
    let cfg = e.config("s").config.unwrap();
    assert_eq!(
        cfg.labels.unwrap().get("from").map(String::as_str),
        Some("stdin")
    );
    // the context is empty: a COPY of anything fails
    let o = with_stdin(&e, &["-t", "s", "-"], b"FROM busybox:local\nCOPY x /x\n");
    assert!(!o.status.success());
}

#[test]
fn build_context_dir_serves_copy_from_and_from() {
    let e = Env::new();
    let named = e.dir.path().join("named");
    std::fs::create_dir_all(named.join("sub")).unwrap();
    std::fs::write(named.join("sub/n.txt"), "named ctx").unwrap();
    e.remfile(
        "FROM busybox:local\nCOPY --from=files sub/n.txt /got\n\
         FROM files AS flat\nFROM busybox:local\nCOPY --from=flat /sub /flat\n",
    );
    let spec = format!("files={}", named.display());
    e.build_ok(&["-t", "s", "--build-context", &spec]);
    let r = e.rootfs("s");
    assert_eq!(
        std::fs::read_to_string(r.path().join("flat/n.txt")).unwrap(),
        "named ctx"
    );
    // the first stage (not the target) also works
    e.build_ok(&["-t", "a", "--build-context", &spec, "--target", "flat"]);
    let r = e.rootfs("a");
    assert_eq!(
        std::fs::read_to_string(r.path().join("sub/n.txt")).unwrap(),
        "named ctx"
    );
    e.remfile("FROM busybox:local\nCOPY --from=files sub/n.txt /got\n");
    let (_, err) = e.build_ok(&["-t", "b", "--build-context", &spec]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("b").path().join("got")).unwrap(),
        "named ctx"
    );
    assert!(!err.contains("CACHED"), "{err}");
    // unchanged named dir: cached; a changed one: rebuilt with the new content
    let (_, err) = e.build_ok(&["-t", "b", "--build-context", &spec]);
    assert!(err.contains("CACHED"), "{err}");
    std::fs::write(named.join("sub/n.txt"), "changed").unwrap();
    e.build_ok(&["-t", "b", "--build-context", &spec]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("b").path().join("got")).unwrap(),
        "changed"
    );
    // without the flag, `files` is an image that does not exist
    assert!(!e.build(&["-t", "c"]).status.success());
}

#[test]
fn build_context_docker_image_replaces_images_and_stages() {
    let e = Env::new();
    e.write("a", "A");
    // FROM of an image name that is not in the store
    e.remfile("FROM alpine:3.19\nLABEL k=v\n");
    assert!(!e.build(&["-t", "x"]).status.success());
    e.build_ok(&[
        "-t",
        "x",
        "--build-context",
        "alpine:3.19=docker-image://busybox:local",
    ]);
    assert!(e.rootfs("x").path().join("bin/busybox").exists());
    // a stage of the name is replaced: its COPY never runs
    e.remfile("FROM busybox:local AS base\nCOPY a /in-stage\nFROM base\nCOPY a /final\n");
    e.build_ok(&["-t", "y"]);
    assert!(e.rootfs("y").path().join("in-stage").exists());
    e.build_ok(&[
        "-t",
        "y",
        "--build-context",
        "base=docker-image://busybox:local",
    ]);
    let r = e.rootfs("y");
    assert!(!r.path().join("in-stage").exists());
    assert!(r.path().join("final").exists());
    // COPY --from of an image name
    e.remfile("FROM scratch\nCOPY --from=tools /bin/busybox /bb\n");
    e.build_ok(&[
        "-t",
        "z",
        "--build-context",
        "tools=docker-image://docker.io/library/busybox:local",
    ]);
    assert!(e.rootfs("z").path().join("bb").is_file());
}

#[test]
fn build_context_oci_layout_by_tag_and_digest() {
    let e = Env::new();
    let s = e.store();
    let img = s
        .image(&image_store::Reference::parse("busybox:local").unwrap())
        .unwrap();
    let layout = e.dir.path().join("layout");
    s.export(
        std::slice::from_ref(&img),
        image_store::ExportFormat::OciDir,
        Some(&layout),
        &mut std::io::sink(),
    )
    .unwrap();
    e.remfile("FROM base\nLABEL k=v\n");
    let lp = layout.display().to_string();
    // the only image of the layout
    e.build_ok(&[
        "-t",
        "o",
        "--build-context",
        &format!("base=oci-layout://{lp}"),
    ]);
    assert!(e.rootfs("o").path().join("bin/busybox").exists());
    let digest = img.manifest_digest().to_string();
    e.build_ok(&[
        "-t",
        "p",
        "--build-context",
        &format!("base=oci-layout://{lp}@{digest}"),
    ]);
    assert!(e.rootfs("p").path().join("bin/busybox").exists());
    // the loaded layout is not tagged in the store (nothing but our results)
    let tags: Vec<String> = s
        .list_tags()
        .unwrap()
        .into_iter()
        .map(|t| t.reference)
        .collect();
    assert!(
        tags.iter().all(|t| !t.contains("pelagos-build-context")),
        "{tags:?}"
    );
    let o = e.build(&[
        "-t",
        "q",
        "--build-context",
        &format!("base=oci-layout://{lp}:nosuch"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"));
}

#[test]
fn compatibility_flags_are_accepted_or_refused_clearly() {
    let e = Env::new();
    e.remfile("FROM busybox:local\n");
    e.build_ok(&[
        "--load",
        "--provenance=false",
        "--sbom=false",
        "--attest",
        "type=provenance,disabled=true",
        "--ulimit",
        "nofile=1024:1024",
        "--allow",
        "network.host",
    ]);
    for args in [
        &["--provenance=true"][..],
        &["--provenance"],
        &["--sbom=true"],
        &["--attest", "type=sbom"],
        &["--ulimit", "nofile=2048:1024"],
        &["--allow", "device"],
        &["--build-context", "x=target:base"],
        &["--add-host", "nocolon"],
        &["--shm-size", "big"],
    ] {
        let o = e.build(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("pelagos-build: error: "), "{err}");
    }
}

/// `(step name, cached)` of a build's `--metadata-file`.
fn steps_of(e: &Env, args: &[&str]) -> Vec<(String, bool)> {
    let meta = e.dir.path().join("meta.json");
    let mut a = args.to_vec();
    let m = meta.display().to_string();
    a.extend(["--metadata-file", &m]);
    e.build_ok(&a);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["name"].as_str().unwrap().contains("FROM"))
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["cached"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn no_cache_filter_rebuilds_only_the_named_stages() {
    let e = Env::new();
    e.write("a", "A");
    e.write("b", "B");
    e.remfile(
        "FROM busybox:local AS Builder\nCOPY a /a\n\
         FROM busybox:local\nCOPY --from=builder /a /a\nCOPY b /b\n",
    );
    let first = steps_of(&e, &["-t", "n"]);
    assert!(first.iter().all(|(_, c)| !c), "{first:?}");
    let all = steps_of(&e, &["-t", "n"]);
    assert!(all.iter().all(|(_, c)| *c), "{all:?}");
    // stage names are case-insensitive, as in the Remfile
    let filtered = steps_of(&e, &["-t", "n", "--no-cache-filter", "BUILDER"]);
    for (name, cached) in &filtered {
        assert_eq!(*cached, !name.starts_with("[builder"), "{filtered:?}");
    }
    assert_eq!(filtered.iter().filter(|(_, c)| !c).count(), 1);
    // a name that is no stage changes nothing
    let other = steps_of(&e, &["-t", "n", "--no-cache-filter", "nosuch"]);
    assert!(other.iter().all(|(_, c)| *c), "{other:?}");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn add_host_and_shm_size_reach_run_steps_only() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local\n\
         RUN cat /etc/hosts > /hosts.txt && df -k /dev/shm | tail -n 1 > /shm.txt\n",
    );
    let (_, err) = e.build_ok(&[
        "-t",
        "h",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw=host-gateway",
        "--add-host",
        "v6:[fd00::1]",
        "--shm-size",
        "128m",
    ]);
    let r = e.rootfs("h");
    let hosts = std::fs::read_to_string(r.path().join("hosts.txt")).unwrap();
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost"),
        "{hosts}"
    );
    assert!(
        hosts.ends_with("10.1.2.3\tdb\n127.0.0.1\tgw\nfd00::1\tv6\n"),
        "{hosts}"
    );
    let shm = std::fs::read_to_string(r.path().join("shm.txt")).unwrap();
    assert!(
        shm.split_whitespace().nth(1) == Some("131072"),
        "{shm} {err}"
    );
    // the mounted /etc/hosts is not in any layer (the base has none)
    let base = e.rootfs("busybox:local");
    assert_eq!(
        r.path().join("etc/hosts").exists(),
        base.path().join("etc/hosts").exists()
    );
    let img = e.image("h");
    let top = img.layers().unwrap().last().unwrap().0.clone();
    let names = layer_names(&e, &top);
    assert!(names.iter().all(|n| !n.contains("etc")), "{names:?}");
    // the flags are part of the RUN's cache key: without them the step runs again
    let (_, err) = e.build_ok(&["-t", "h2"]);
    assert!(!err.contains("CACHED"), "{err}");
    let hosts = std::fs::read_to_string(e.rootfs("h2").path().join("hosts.txt")).unwrap();
    assert!(!hosts.contains("\tdb"), "{hosts}");
    // host-gateway without a network is an error of the step
    let o = e.build(&["--network", "none", "--add-host", "gw:host-gateway"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("host-gateway"));
}

/// The entry names of a layer blob.
fn layer_names(e: &Env, d: &image_store::Descriptor) -> Vec<String> {
    let s = e.store();
    let f = std::fs::File::open(s.blob_path(&d.digest)).unwrap();
    let gz = flate2::read::MultiGzDecoder::new(f);
    let mut ar = tar::Archive::new(gz);
    ar.entries()
        .unwrap()
        .map(|en| en.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn file_flag_names_a_file_inside_a_stdin_tar_context() {
    let e = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("Remfile", "FROM busybox:local\nCOPY x.txt /default\n"),
        ("build/Alt.remfile", "FROM busybox:local\nCOPY x.txt /alt\n"),
        ("x.txt", "in tar"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    let t = b.into_inner().unwrap();
    let o = with_stdin(&e, &["-t", "s", "-f", "build/Alt.remfile", "-"], &t);
    ok(&o);
    let r = e.rootfs("s");
    assert_eq!(
        std::fs::read_to_string(r.path().join("alt")).unwrap(),
        "in tar"
    );
    assert!(!r.path().join("default").exists());
    // never a file outside the archive
    let o = with_stdin(&e, &["-t", "s", "-f", "../../etc/passwd", "-"], &t);
    assert!(!o.status.success());
}

#[test]
#[ignore = "needs root: chown of the named context's files"]
fn a_named_context_directory_is_owned_by_root_as_a_sent_context() {
    use std::os::unix::fs::MetadataExt;
    let e = Env::new();
    let named = e.dir.path().join("named");
    std::fs::create_dir_all(named.join("d")).unwrap();
    std::fs::write(named.join("d/f"), "x").unwrap();
    std::os::unix::fs::symlink("f", named.join("d/l")).unwrap();
    for p in ["d", "d/f"] {
        std::os::unix::fs::chown(named.join(p), Some(1234), Some(5678)).unwrap();
    }
    e.remfile("FROM busybox:local\nCOPY --from=files /d /d\n");
    e.build_ok(&[
        "-t",
        "o",
        "--build-context",
        &format!("files={}", named.display()),
    ]);
    let r = e.rootfs("o");
    let md = std::fs::metadata(r.path().join("d/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    assert_eq!(
        std::fs::read_link(r.path().join("d/l")).unwrap(),
        std::path::Path::new("f")
    );
}

#[test]
fn a_named_context_directory_applies_its_dockerignore() {
    let e = Env::new();
    let named = e.dir.path().join("named");
    for (p, body) in [
        (".dockerignore", "secret*\nbuild\n!build/keep\n"),
        ("secret.txt", "s"),
        ("ok.txt", "o"),
        ("build/drop", "d"),
        ("build/keep", "k"),
    ] {
        let f = named.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
    e.remfile("FROM busybox:local\nCOPY --from=files / /n/\n");
    e.build_ok(&[
        "-t",
        "i",
        "--build-context",
        &format!("files={}", named.display()),
    ]);
    let r = e.rootfs("i");
    let n = r.path().join("n");
    assert!(n.join("ok.txt").is_file());
    assert!(!n.join("secret.txt").exists());
    assert!(!n.join("build/drop").exists());
    assert_eq!(std::fs::read_to_string(n.join("build/keep")).unwrap(), "k");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn a_named_context_serves_run_mount_from() {
    let e = Env::new();
    let named = e.dir.path().join("named");
    std::fs::create_dir_all(&named).unwrap();
    std::fs::write(named.join("n.txt"), "mounted").unwrap();
    e.remfile(
        "FROM busybox:local\n\
         RUN --mount=type=bind,from=files,target=/m cat /m/n.txt > /out\n",
    );
    e.build_ok(&[
        "-t",
        "m",
        "--build-context",
        &format!("files={}", named.display()),
    ]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("m").path().join("out")).unwrap(),
        "mounted"
    );
}
