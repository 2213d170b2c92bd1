//! Remote contexts: a git repository or an http(s) URL as the build's context (docker build's
//! `PATH | URL`) and as `--build-context NAME=URL`, served from 127.0.0.1 only (`git daemon`,
//! a tiny HTTP server).

use std::io::Write;
use std::path::Path;

use pelagos_build::fetch::testserver;

use crate::common::*;
use crate::git::{Daemon, commit, new_work, publish, write};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the binary with `context` as the context argument.
fn build_at(e: &Env, context: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("--store")
        .arg(&e.store)
        .args(["--progress", "plain"])
        .args(args)
        .arg(context)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn read(r: &Path, rel: &str) -> String {
    std::fs::read_to_string(r.join(rel)).unwrap()
}

/// A gzip tar of `(path, content)` entries (raw names: `../x` is written as given).
fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, c) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        {
            let name = h.as_gnu_mut().unwrap();
            name.name[..p.len()].copy_from_slice(p.as_bytes());
        }
        h.set_cksum();
        b.append(&h, c.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_git_repository_as_the_context_and_as_a_named_context() {
    let e = Env::empty();
    let root = e.dir.path().join("srv");
    std::fs::create_dir_all(&root).unwrap();
    let daemon = Daemon::start(&root);
    let work = new_work(&e.dir.path().join("work"));
    write(&work.join("top.txt"), "top\n", 0o644);
    write(
        &work.join("app/Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nCOPY --from=lib /lib.txt /lib.txt\n",
        0o644,
    );
    write(&work.join("app/hello.txt"), "hello from git\n", 0o644);
    write(&work.join("lib.txt"), "named from git\n", 0o644);
    commit(&work, "one", 1_600_000_000);
    publish(&work, &root, "ctx.git");
    let url = daemon.url("ctx.git");
    // the context is the subdir `app` of main; a named context is the whole repository
    let o = build_at(
        &e,
        &format!("{url}#main:app"),
        &["-t", "g:1", "--build-context", &format!("lib={url}")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = e.rootfs("g:1");
    assert_eq!(read(r.path(), "hello.txt"), "hello from git\n");
    assert_eq!(read(r.path(), "lib.txt"), "named from git\n");
    // a subdir outside the repository, a missing ref: exit 1, the URL named
    for bad in [format!("{url}#main:nope"), format!("{url}#nope")] {
        let o = build_at(&e, &bad, &[]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains(&url), "{}", stderr(&o));
    }
    // -f names a file inside the remote context
    write(
        &work.join("other.Dockerfile"),
        "FROM scratch\nCOPY top.txt /t\n",
        0o644,
    );
    commit(&work, "two", 1_600_000_100);
    publish(&work, &root, "ctx.git");
    let o = build_at(&e, &url, &["-t", "g:2", "-f", "other.Dockerfile"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(e.rootfs("g:2").path(), "t"), "top\n");
}

#[test]
fn an_http_tarball_or_text_file_as_the_context_and_a_download_as_a_named_context() {
    let e = Env::empty();
    let ctx = tar_gz(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY data.txt /data.txt\nCOPY --from=dl /context /dl\n",
        ),
        ("data.txt", "from the tarball\n"),
    ]);
    let evil = tar_gz(&[
        ("Dockerfile", "FROM scratch\nCOPY . /\n"),
        ("../../escaped.txt", "out\n"),
    ]);
    let srv = testserver::serve(
        [
            ("/ctx.tar.gz".to_string(), ctx),
            ("/evil.tar.gz".to_string(), evil),
            ("/blob.bin".to_string(), b"raw download\n".to_vec()),
            (
                "/Dockerfile".to_string(),
                b"FROM scratch\nLABEL from=text\n".to_vec(),
            ),
        ]
        .into(),
    )
    .unwrap();
    let base = &srv.base;
    let o = build_at(
        &e,
        &format!("{base}/ctx.tar.gz"),
        &[
            "-t",
            "h:1",
            "--build-context",
            &format!("dl={base}/blob.bin"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = e.rootfs("h:1");
    assert_eq!(read(r.path(), "data.txt"), "from the tarball\n");
    // BuildKit's HTTP named context: the download as the file `context`
    assert_eq!(read(r.path(), "dl"), "raw download\n");
    // a text file is the Remfile, with an empty context
    let o = build_at(&e, &format!("{base}/Dockerfile"), &["-t", "h:2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let labels = e.config("h:2").config.unwrap().labels;
    assert_eq!(
        labels.unwrap_or_default().get("from").map(String::as_str),
        Some("text")
    );
    // an archive entry climbing out never lands outside the context
    let o = build_at(&e, &format!("{base}/evil.tar.gz"), &["-t", "h:3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused entry ../../escaped.txt"),
        "{}",
        stderr(&o)
    );
    for entry in walkdir::WalkDir::new(e.dir.path()) {
        let entry = entry.unwrap();
        assert_ne!(entry.file_name(), "escaped.txt", "{}", stderr(&o));
    }
    // a missing URL fails (exit 1), credentials never shown
    let bad = format!(
        "http://u:s3cret@{}/nope.tar.gz",
        base.trim_start_matches("http://")
    );
    for args in [
        vec![],
        vec!["--build-context".to_string(), format!("x={bad}")],
    ] {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        let ctx_arg = if a.is_empty() {
            bad.clone()
        } else {
            e.ctx.display().to_string()
        };
        e.remfile("FROM x\n");
        a.push("-t");
        a.push("h:4");
        let o = build_at(&e, &ctx_arg, &a);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("xxxxx:xxxxx@"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("s3cret"), "{}", stderr(&o));
    }
}

#[test]
fn target_contexts_are_refused_as_buildx_build_does() {
    let e = Env::new();
    e.remfile("FROM busybox:local\n");
    let o = e.build(&["--build-context", "base=target:builder"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("buildx bake"), "{}", stderr(&o));
}
