//! USER and WORKDIR.
use super::{sh, tree, work_root};
use std::os::unix::fs::MetadataExt;

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn named_user_gets_ids_and_supplementary_groups() {
    let w = work_root();
    let r = sh(w.path(), &["-u", "app"], "id -u; id -g; id -G; echo $HOME");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "1000\n1000\n1000 50\n/home/app\n");
    let r = sh(w.path(), &["-u", "app:daemon"], "id -u; id -G");
    assert_eq!(r.stderr, "1000\n1\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn numeric_user_works_without_passwd_entry() {
    let w = work_root();
    let r = sh(
        w.path(),
        &["-u", "4242:77"],
        "id -u; id -g; echo $HOME; touch /tmp/f; stat -c %u:%g /tmp/f",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "4242\n77\n/\n4242:77\n");
    let m = std::fs::metadata(r.upper().join("tmp/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4242, 77));
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn unknown_user_is_an_error() {
    let w = work_root();
    let r = sh(w.path(), &["-u", "ghost"], "true");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unable to find user ghost"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn workdir_is_created_when_missing() {
    let w = work_root();
    let r = sh(
        w.path(),
        &["-w", "/srv/app/sub", "-u", "app"],
        "pwd; touch x",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "/srv/app/sub\n");
    assert_eq!(
        tree(&r.upper()),
        ["srv", "srv/app", "srv/app/sub", "srv/app/sub/x"]
    );
    // the directories it made are the user's (BuildKit's executor), 0755
    for d in ["srv", "srv/app", "srv/app/sub"] {
        let m = std::fs::metadata(r.upper().join(d)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1000, 1000, 0o755),
            "{d}"
        );
    }
    // existing workdir: nothing created
    let r = sh(w.path(), &["-w", "/home/app"], "pwd; touch x");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tree(&r.upper()), ["home", "home/app", "home/app/x"]);
}
