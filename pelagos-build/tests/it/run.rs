//! RUN and whole example builds end to end (root: namespaces and overlayfs).

use crate::common::*;

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn example_hello_builds_and_its_files_are_right() {
    let e = Env::new();
    let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let o = std::process::Command::new(BIN)
        .args(["--store", e.store.to_str().unwrap(), "--progress", "plain", "-t", "hello:test"])
        .arg(&ex)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let root = e.rootfs("hello:test");
    let greet = std::fs::read_to_string(root.path().join("opt/hello/bin/greet")).unwrap();
    assert!(greet.contains("1.0.0"), "{greet}");
    let cfg = e.config("hello:test");
    let c = cfg.config.unwrap();
    assert_eq!(c.entrypoint.unwrap(), ["greet"]);
    assert_eq!(c.user.as_deref(), Some("greeter"));
}
