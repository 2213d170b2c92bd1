//! The library called from threads of this (multi-threaded) test binary without
//! `RunSpec::helper`: the init is this binary re-executed, entered through `INIT_HOOK`.
use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Env vars naming the lower and work root to use instead of the defaults (set by
/// `rootless::rootless_library_reexec_from_threads`, which runs this test as another user).
pub const LOWER_ENV: &str = "NS_RUN_IT_LOWER";
pub const WORK_ENV: &str = "NS_RUN_IT_WORK";

#[test]
#[ignore = "needs root: namespaces and overlayfs (also run rootless by rootless.rs)"]
fn library_reexecs_self_from_threads() {
    let keep;
    let (lower, work) =
        if let (Some(l), Some(w)) = (std::env::var_os(LOWER_ENV), std::env::var_os(WORK_ENV)) {
            (PathBuf::from(l), PathBuf::from(w))
        } else {
            keep = super::work_root();
            (super::busybox().to_path_buf(), keep.path().to_path_buf())
        };
    let rootless = !rustix::process::geteuid().is_root();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (lower, work) = (lower.clone(), work.clone());
            std::thread::spawn(move || {
                let mut out = tempfile::tempfile().unwrap();
                let spec = ns_run::RunSpec {
                    lowers: vec![lower],
                    work_root: Some(work),
                    argv: [
                        "sh",
                        "-c",
                        &format!("id -u; grep CapEff /proc/self/status; echo {i} > /f"),
                    ]
                    .map(String::from)
                    .to_vec(),
                    stdout: ns_run::Output::Fd(OwnedFd::from(out.try_clone().unwrap())),
                    stderr: ns_run::Output::Fd(OwnedFd::from(out.try_clone().unwrap())),
                    ..Default::default()
                };
                let r = ns_run::run(&spec).unwrap_or_else(|e| panic!("run {i}: {e}"));
                let mut text = String::new();
                out.rewind().unwrap();
                out.read_to_string(&mut text).unwrap();
                assert_eq!(r.exit_code, 0, "{text}");
                assert_eq!(text, "0\nCapEff:\t00000000a80425fb\n");
                assert_eq!(r.uid_map.is_empty(), !rootless);
                assert_eq!(
                    std::fs::read_to_string(r.upper.join("f")).unwrap(),
                    format!("{i}\n")
                );
                assert_eq!(super::tree(&r.upper), ["f"]);
                ns_run::remove_tree(r.upper.parent().unwrap()).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
