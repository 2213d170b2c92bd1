//! ADD of git repositories, end to end: repositories served from this machine only, by
//! `git daemon` on 127.0.0.1 (git://) and by `git http-backend` behind a tiny HTTP server
//! (smart HTTP, with credentials in the URL that must never show).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use test_support::free_port;

use crate::common::Env;

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_ALLOW_PROTOCOL", "file:git:http")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Commits the work tree with a fixed committer time.
pub(crate) fn commit(dir: &Path, msg: &str, time: i64) -> String {
    git(dir, &["add", "-A"]);
    let o = Command::new("git")
        .current_dir(dir)
        .args(["commit", "-q", "-m", msg])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", format!("@{time} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{time} +0000"))
        .status()
        .unwrap();
    assert!(o.success());
    git(dir, &["rev-parse", "HEAD"])
}

/// Bare repositories under `root`, served by `git daemon` on 127.0.0.1 until dropped.
pub(crate) struct Daemon {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl Daemon {
    pub(crate) fn start(root: &Path) -> Daemon {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Daemon {
            child,
            port,
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A work tree at `dir` published as the bare repository `root/NAME` (push with [`publish`]).
pub(crate) fn publish(work: &Path, root: &Path, name: &str) {
    let bare = root.join(name);
    if !bare.exists() {
        git(root, &["init", "-q", "--bare", "-b", "main", name]);
    }
    git(
        work,
        &[
            "push",
            "-q",
            "--force",
            "--tags",
            &bare.display().to_string(),
            "main",
        ],
    );
}

pub(crate) fn new_work(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    dir.to_path_buf()
}

pub(crate) fn write(p: &Path, content: &str, mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Fixture {
    env: Env,
    daemon: Daemon,
    work: PathBuf,
    c0: String,
    c1: String,
    c2: String,
}

const T1: i64 = 1_600_000_000;
const T2: i64 = 1_650_000_000;

/// repo.git: commit 1 (tagged v1, annotated) with README, run.sh (0775), a symlink and docs/;
/// commit 2 on main changes README. sub.git is a submodule of repo.git at `vendor/sub`.
fn fixture() -> Fixture {
    let env = Env::empty();
    let root = env.dir.path().join("srv");
    std::fs::create_dir_all(&root).unwrap();
    let daemon = Daemon::start(&root);
    // the submodule repository
    let sub = new_work(&env.dir.path().join("sub-work"));
    write(&sub.join("lib.txt"), "sub lib\n", 0o644);
    commit(&sub, "sub", T1);
    publish(&sub, &root, "sub.git");
    let work = new_work(&env.dir.path().join("work"));
    // commit 0: no ref points at it
    write(&work.join("README"), "version 0\n", 0o644);
    let c0 = commit(&work, "zero", T1 - 100);
    write(&work.join("README"), "version 1\n", 0o644);
    write(&work.join("run.sh"), "#!/bin/sh\necho hi\n", 0o775);
    write(&work.join("docs/guide.md"), "# guide\n", 0o664);
    std::os::unix::fs::symlink("README", work.join("link")).unwrap();
    git(
        &work,
        &[
            "submodule",
            "add",
            "-q",
            &daemon.url("sub.git"),
            "vendor/sub",
        ],
    );
    let c1 = commit(&work, "one", T1);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    write(&work.join("README"), "version 2\n", 0o644);
    // a link out of the repository: never followed by a subdir
    std::os::unix::fs::symlink("/etc", work.join("escape")).unwrap();
    let c2 = commit(&work, "two", T2);
    publish(&work, &root, "repo.git");
    Fixture {
        env,
        daemon,
        work,
        c0,
        c1,
        c2,
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn add_git_refs_subdirs_modes_mtimes_submodules_and_keep_git_dir() {
    let f = fixture();
    let e = &f.env;
    let url = f.daemon.url("repo.git");
    e.remfile(&format!(
        "FROM scratch\n\
         ADD {url} /src\n\
         ADD {url}#v1 /v1/\n\
         ADD {url}#{c1} /sha\n\
         ADD {url}#main:docs /docs\n\
         ADD {url}?tag=v1&subdir=docs&submodules=false /qdocs\n\
         ADD --keep-git-dir=true {url}#main /kept\n\
         ADD --chmod=600 {url}?branch=main&submodules=false /chmod\n",
        c1 = f.c1
    ));
    e.build_ok(&["-t", "g:1"]);
    let r = e.rootfs("g:1");
    let p = |rel: &str| r.path().join(rel);
    let read = |rel: &str| std::fs::read_to_string(p(rel)).unwrap();
    let meta = |rel: &str| std::fs::symlink_metadata(p(rel)).unwrap();
    // the default branch, no .git (also none in the submodule), submodule checked out
    assert_eq!(read("src/README"), "version 2\n");
    assert!(!p("src/.git").exists());
    assert_eq!(read("src/vendor/sub/lib.txt"), "sub lib\n");
    assert!(!p("src/vendor/sub/.git").exists());
    // BuildKit's modes: 0644, 0755 when executable, directories 0755; symlinks kept
    assert_eq!(meta("src/README").mode() & 0o7777, 0o644);
    assert_eq!(meta("src/run.sh").mode() & 0o7777, 0o755);
    assert_eq!(meta("src/docs").mode() & 0o7777, 0o755);
    assert_eq!(meta("src/docs/guide.md").mode() & 0o7777, 0o644);
    assert_eq!(
        std::fs::read_link(p("src/link")).unwrap(),
        Path::new("README")
    );
    // mtimes: the commit's time
    assert_eq!(meta("src/README").mtime(), T2);
    assert_eq!(meta("src/docs/guide.md").mtime(), T2);
    assert_eq!(meta("v1/README").mtime(), T1);
    // a tag, a commit hash, a subdir (fragment and query forms)
    assert_eq!(read("v1/README"), "version 1\n");
    assert_eq!(read("sha/README"), "version 1\n");
    assert_eq!(read("docs/guide.md"), "# guide\n");
    assert!(!p("docs/README").exists());
    assert_eq!(read("qdocs/guide.md"), "# guide\n");
    // --keep-git-dir: a repository at the commit
    assert!(p("kept/.git").is_dir());
    let head = git(&p("kept"), &["rev-parse", "HEAD"]);
    assert_eq!(head, f.c2);
    // --chmod applies to every file and directory; submodules=false leaves the dir empty
    assert_eq!(meta("chmod/README").mode() & 0o7777, 0o600);
    assert!(!p("chmod/vendor/sub/lib.txt").exists());
    // history names the source
    let cfg = e.config("g:1");
    let h = serde_json::to_string(&cfg.history).unwrap();
    assert!(h.contains(&format!("ADD {url}#v1 /v1/")), "{h}");
    let _ = &f.work;
}

#[test]
fn git_cache_key_is_the_resolved_commit() {
    let f = fixture();
    let e = &f.env;
    let url = f.daemon.url("repo.git");
    e.remfile(&format!("FROM scratch\nADD {url}#main /src\n"));
    let (d1, err) = e.build_ok(&["-t", "c:1"]);
    assert!(!err.contains("CACHED"), "{err}");
    // the same commit: cached (no checkout)
    let (d2, err) = e.build_ok(&["-t", "c:2"]);
    assert!(err.contains("CACHED"), "{err}");
    assert_eq!(d1["image_id"], d2["image_id"]);
    // a new commit on the branch: the step runs again and takes it
    write(&f.work.join("README"), "version 3\n", 0o644);
    commit(&f.work, "three", T2 + 10);
    publish(&f.work, &f.daemon.root, "repo.git");
    let (_, err) = e.build_ok(&["-t", "c:3"]);
    assert!(!err.contains("CACHED"), "{err}");
    let r = e.rootfs("c:3");
    assert_eq!(
        std::fs::read_to_string(r.path().join("src/README")).unwrap(),
        "version 3\n"
    );
}

#[test]
fn git_checksum_and_errors_name_the_url() {
    let f = fixture();
    let e = &f.env;
    let url = f.daemon.url("repo.git");
    // --checksum: the commit or a prefix of it (also as a query)
    e.remfile(&format!(
        "FROM scratch\nADD --checksum={} {url}#v1 /a\nADD {url}?ref=main&checksum={} /b\n",
        &f.c1[..8],
        &f.c2[..12]
    ));
    e.build_ok(&["-t", "k:1"]);
    // a mismatch fails, naming both
    e.remfile(&format!(
        "FROM scratch\nADD --checksum={} {url}#main /a\n",
        &f.c1[..10]
    ));
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = stderr(&o);
    assert!(s.contains("checksum mismatch"), "{s}");
    assert!(s.contains(&f.c2) && s.contains(&f.c1[..10]), "{s}");
    // an http-style checksum is refused for git
    e.remfile(&format!(
        "FROM scratch\nADD --checksum=sha256:{} {url} /a\n",
        "0".repeat(64)
    ));
    let o = e.build(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("commit hash"), "{}", stderr(&o));
    // an unknown ref
    e.remfile(&format!("FROM scratch\nADD {url}#nope /a\n"));
    let o = e.build(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("\"nope\" not found"), "{}", stderr(&o));
    // a subdir that is not there, or reached through a symlink out of the repository
    for sub in ["missing", "escape", "escape/ssl", "escape/."] {
        e.remfile(&format!("FROM scratch\nADD {url}#main:{sub} /a\n"));
        let o = e.build(&[]);
        assert_eq!(o.status.code(), Some(1), "{sub}");
        assert!(
            stderr(&o).contains("is not a directory of the repository"),
            "{}",
            stderr(&o)
        );
    }
    // an unreachable repository: the error names the URL
    let dead = format!("git://127.0.0.1:{}/repo.git", free_port());
    e.remfile(&format!("FROM scratch\nADD {dead} /a\n"));
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
    // a short hash as the ref is refused with a hint (BuildKit wants the full hash there)
    e.remfile(&format!("FROM scratch\nADD {url}#{} /a\n", &f.c1[..7]));
    let o = e.build(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("full hash"), "{}", stderr(&o));
}

/// Smart HTTP: `git http-backend` run as a CGI by a tiny HTTP/1.0 server on 127.0.0.1.
struct HttpGit {
    port: u16,
}

fn serve_http_backend(root: PathBuf) -> HttpGit {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(c) = conn else { continue };
            let root = root.clone();
            std::thread::spawn(move || cgi(c, &root));
        }
    });
    HttpGit { port }
}

fn cgi(mut c: TcpStream, root: &Path) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_or(true, |n| n == 0) || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let len: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", len.to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        // no GIT_PROTOCOL: the backend speaks protocol v0, where a commit no ref points at
        // cannot be fetched by hash (the builder then fetches all branches and tags)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| text.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((i, n)) = split else { return };
    let head = String::from_utf8_lossy(&text[..i]).into_owned();
    let mut status = "200 OK".to_string();
    let mut resp = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            _ => {
                resp.push_str(h.trim_end());
                resp.push_str("\r\n");
            }
        }
    }
    let body = &text[i + n..];
    let _ = c.write_all(
        format!(
            "HTTP/1.0 {status}\r\n{resp}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = c.write_all(body);
}

#[test]
fn git_over_smart_http_never_shows_credentials() {
    let f = fixture();
    let e = &f.env;
    let srv = serve_http_backend(f.daemon.root.clone());
    let url = format!(
        "http://builder:s3cret-t0ken@127.0.0.1:{}/repo.git",
        srv.port
    );
    let shown = format!("http://xxxxx:xxxxx@127.0.0.1:{}/repo.git", srv.port);
    let meta = e.dir.path().join("meta.json");
    e.remfile(&format!(
        "FROM scratch\nADD --keep-git-dir=true {url}#v1 /src\nADD {url}#{} /zero\n",
        f.c0
    ));
    let (doc, err) = e.build_ok(&["-t", "h:1", "--metadata-file", &meta.display().to_string()]);
    let r = e.rootfs("h:1");
    assert_eq!(
        std::fs::read_to_string(r.path().join("src/README")).unwrap(),
        "version 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("src/vendor/sub/lib.txt")).unwrap(),
        "sub lib\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("zero/README")).unwrap(),
        "version 0\n"
    );
    // the progress log, the result, the metadata, the history and the kept .git say xxxxx
    assert!(err.contains(&shown), "{err}");
    let cfg = serde_json::to_string(&e.config("h:1")).unwrap();
    assert!(cfg.contains(&shown), "{cfg}");
    assert!(r.path().join("src/.git/config").is_file());
    for text in [
        &err,
        &doc.to_string(),
        &std::fs::read_to_string(&meta).unwrap(),
        &cfg,
    ] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    // no file of the image holds it (the kept .git names the URL redacted)
    for f in walkdir::WalkDir::new(r.path()) {
        let f = f.unwrap();
        if f.file_type().is_file() {
            let bytes = std::fs::read(f.path()).unwrap();
            assert!(
                !bytes.windows(6).any(|w| w == b"s3cret"),
                "{}",
                f.path().display()
            );
        }
    }
    // errors too: an unreachable server, and a checksum mismatch
    let dead = format!(
        "http://builder:s3cret-t0ken@127.0.0.1:{}/repo.git",
        free_port()
    );
    for (flags, src) in [("", dead.as_str()), ("--checksum=0000 ", url.as_str())] {
        e.remfile(&format!("FROM scratch\nADD {flags}{src} /src\n"));
        let o = e.build(&[]);
        assert_eq!(o.status.code(), Some(1));
        let s = stderr(&o);
        assert!(s.contains("xxxxx@127.0.0.1"), "{s}");
        assert!(!s.contains("s3cret"), "{s}");
    }
}

/// A server on 127.0.0.1 that accepts connections and never answers (a hung remote).
fn silent_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            if s2.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            // keep the connection open, say nothing
            held.push(c);
        }
    });
    (port, stop)
}

#[test]
fn a_hung_git_remote_times_out_and_names_the_limit() {
    let e = Env::empty();
    let (port, _stop) = silent_server();
    let url = format!("git://127.0.0.1:{port}/repo.git");
    e.remfile(&format!("FROM scratch\nADD {url}#main /src\n"));
    let started = std::time::Instant::now();
    let o = Command::new(crate::common::BIN)
        .arg("--store")
        .arg(&e.store)
        .args(["--progress", "plain"])
        .arg(&e.ctx)
        .env("PELAGOS_GIT_TIMEOUT", "2")
        .output()
        .unwrap();
    let s = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{s}");
    assert!(s.contains("no result within 2s"), "{s}");
    assert!(s.contains("PELAGOS_GIT_TIMEOUT"), "{s}");
    assert!(s.contains(&url), "{s}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // a bad value is an input error
    let o = Command::new(crate::common::BIN)
        .arg("--store")
        .arg(&e.store)
        .arg(&e.ctx)
        .env("PELAGOS_GIT_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PELAGOS_GIT_TIMEOUT"), "{}", stderr(&o));
}

#[test]
fn add_url_credentials_are_redacted_as_buildkit_redacts_them() {
    let e = Env::empty();
    let srv = pelagos_build::fetch::testserver::serve(
        [("/f.txt".to_string(), b"payload\n".to_vec())].into(),
    )
    .unwrap();
    let base = srv.base.trim_start_matches("http://");
    let url = format!("http://builder:s3cret-t0ken@{base}/f.txt");
    let shown = format!("http://xxxxx:xxxxx@{base}/f.txt");
    let meta = e.dir.path().join("meta.json");
    e.remfile(&format!("FROM scratch\nADD {url} /f.txt\n"));
    let (doc, err) = e.build_ok(&["-t", "u:1", "--metadata-file", meta.to_str().unwrap()]);
    let r = e.rootfs("u:1");
    assert_eq!(
        std::fs::read_to_string(r.path().join("f.txt")).unwrap(),
        "payload\n"
    );
    let cfg = serde_json::to_string(&e.config("u:1")).unwrap();
    assert!(cfg.contains(&format!("ADD {shown} /f.txt")), "{cfg}");
    assert!(err.contains(&shown), "{err}");
    for text in [
        &err,
        &cfg,
        &doc.to_string(),
        &std::fs::read_to_string(&meta).unwrap(),
    ] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    // a failed download: the error shows the URL redacted
    e.remfile(&format!(
        "FROM scratch\nADD http://builder:s3cret-t0ken@{base}/missing /f\n"
    ));
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(1));
    let s = stderr(&o);
    assert!(s.contains("xxxxx:xxxxx@"), "{s}");
    assert!(!s.contains("s3cret"), "{s}");
}
