//! Cleanup on every exit path, leftovers of killed runs, signals, concurrent library calls.
use super::{BIN, busybox, sh, work_root};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Polls `done` every 10 ms until it holds; fails with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the background cleanup has removed the scratch of every run under `root`.
fn wait_clean(root: &Path) {
    wait_until("scratch never removed", Duration::from_secs(10), || {
        !std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("work").exists() || e.path().join("scratch").exists())
    });
}

/// Runs ns-run (`args` before `--`) on `touch /started; sleep SECS` in the background and waits
/// until the command runs (a distinct `secs` lets `pgrep -f` find this container).
fn spawn_started(work: &Path, args: &[&str], secs: u32, stdout: Stdio) -> Child {
    let ch = Command::new(BIN)
        .arg("--work-root")
        .arg(work)
        .arg("--lower")
        .arg(busybox())
        .args(args)
        .args(["--", "sh", "-c", &format!("touch /started; sleep {secs}")])
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("command never started", Duration::from_secs(10), || {
        std::fs::read_dir(work)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("upper/started").exists())
    });
    ch
}

fn host_mounts_mention(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(p.to_str().unwrap())
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn finished_run_leaves_only_the_upper() {
    let w = work_root();
    let r = sh(w.path(), &[], "true");
    let up = r.upper();
    let run_dir = up.parent().unwrap();
    wait_clean(w.path());
    assert_eq!(
        entries(w.path()),
        [run_dir.file_name().unwrap().to_string_lossy()]
    );
    assert_eq!(entries(run_dir), ["upper"]);
    // failed setup: nothing at all is left
    let w2 = work_root();
    let r = sh(w2.path(), &["-u", "ghost"], "true");
    assert_eq!(r.code, 1);
    wait_until("run dir never removed", Duration::from_secs(10), || {
        entries(w2.path()).is_empty()
    });
    assert!(!host_mounts_mention(w.path()));
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn killed_ns_run_leaves_removable_leftovers_and_no_mounts() {
    let w = work_root();
    let mut ch = spawn_started(w.path(), &[], 31, Stdio::null());
    ch.kill().unwrap();
    ch.wait().unwrap();
    // the container died with ns-run (PDEATHSIG), its mounts with its mount namespace
    std::thread::sleep(Duration::from_millis(200));
    let ps = Command::new("pgrep")
        .args(["-f", "sleep 31"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "container still running"
    );
    assert!(!host_mounts_mention(w.path()));
    assert_eq!(entries(w.path()).len(), 1, "{:?}", entries(w.path()));
    assert_eq!(ns_run::sweep(w.path()).unwrap(), 1);
    assert!(entries(w.path()).is_empty());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn sigterm_is_forwarded_and_cleanup_runs() {
    let w = work_root();
    let ch = spawn_started(w.path(), &[], 32, Stdio::piped());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ch.id() as i32, libc::SIGTERM) };
    let o = ch.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["exit_code"], 143);
    assert_eq!(entries(w.path()).len(), 1);
    wait_clean(w.path());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn library_runs_concurrently_from_threads() {
    let w = work_root();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let root = w.path().to_path_buf();
                s.spawn(move || {
                    let (r, wr) = rustix::pipe::pipe().unwrap();
                    let spec = ns_run::RunSpec {
                        lowers: vec![busybox().to_path_buf()],
                        work_root: Some(root),
                        argv: vec![
                            "sh".into(),
                            "-c".into(),
                            format!("echo {i} > /n; echo out{i}; exit {i}"),
                        ],
                        stdout: ns_run::Output::Fd(wr),
                        stderr: ns_run::Output::Null,
                        helper: Some(BIN.into()),
                        ..Default::default()
                    };
                    let res = ns_run::run(&spec).unwrap();
                    drop(spec);
                    let mut out = String::new();
                    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
                    (i, res, out)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, res, out) in results {
        assert_eq!(res.exit_code, i);
        assert_eq!(out, format!("out{i}\n"));
        assert_eq!(
            std::fs::read_to_string(res.upper.join("n")).unwrap(),
            format!("{i}\n")
        );
        ns_run::remove_tree(res.upper.parent().unwrap()).unwrap();
    }
}

#[test]
#[ignore = "needs root: namespaces, slirp4netns, pasta"]
fn killed_ns_run_takes_its_network_helper_along() {
    for (mode, tool) in [("slirp", "slirp4netns"), ("pasta", "pasta")] {
        helper_dies_with_ns_run(mode, tool);
    }
}

fn helper_dies_with_ns_run(mode: &str, tool: &str) {
    let w = work_root();
    let mut ch = spawn_started(w.path(), &["--network", mode], 33, Stdio::null());
    // ns-run's children: the container init (named ns-run) and the helper
    let out = Command::new("pgrep")
        .args(["-l", "-P", &ch.id().to_string()])
        .output()
        .unwrap();
    // (pasta runs as passt.avx2 on CPUs with AVX2)
    let helper: Option<i32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&tool[..3]))
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let Some(helper) = helper else {
        let _ = ch.kill();
        panic!("no {tool} child: {}", String::from_utf8_lossy(&out.stdout));
    };
    ch.kill().unwrap();
    ch.wait().unwrap();
    let gone = || {
        // no process, or a dead one waiting to be reaped by init
        !Path::new(&format!("/proc/{helper}")).exists()
            || std::fs::read_to_string(format!("/proc/{helper}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    wait_until(
        &format!("{tool} outlived ns-run"),
        Duration::from_secs(5),
        gone,
    );
}
