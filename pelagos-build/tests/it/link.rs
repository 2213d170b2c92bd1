//! `COPY --link` / `ADD --link`: the layer is made on an empty tree (destination symlinks of the
//! previous state are not followed, parents are fresh 0755 directories) and its cache key leaves
//! the previous steps out, so it is reused when the base or an earlier step changes.

use std::os::unix::fs::MetadataExt;

use crate::common::*;

const REMFILE: &str = "FROM busybox:local
RUN echo VERSION > /v && mkdir /srv /srv2 && ln -s /srv /app && ln -s /srv2 /lnk
COPY --link f.txt /app/f.txt
COPY --link --chown=1000:50 f.txt /own/deep/f.txt
ADD --link --chown=root f.txt /rootowned/
COPY f.txt /lnk/plain.txt
COPY --link --chmod=600 f.txt /lnk/chmod.txt
RUN cat /app/f.txt /v > /seen
";

/// (cached, name) of every step in a metadata file.
fn steps(meta: &std::path::Path) -> Vec<(bool, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(meta).unwrap()).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["cached"].as_bool().unwrap(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn cached(steps: &[(bool, String)], needle: &str) -> bool {
    steps
        .iter()
        .find(|(_, n)| n.contains(needle))
        .unwrap_or_else(|| panic!("no step {needle:?} in {steps:?}"))
        .0
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn copy_link_ignores_the_previous_state_and_is_reused_when_it_changes() {
    let e = Env::new();
    e.write("f.txt", "linked\n");
    e.remfile(&REMFILE.replace("VERSION", "one"));
    let meta = e.dir.path().join("m.json");
    let m = meta.to_str().unwrap();
    e.build_ok(&["-t", "link:1", "--metadata-file", m]);
    let first = steps(&meta);
    assert!(first.iter().all(|(c, _)| !c), "{first:?}");

    let r = e.rootfs("link:1");
    let root = r.path();
    // the destination symlink of the previous state was not followed: /app is a directory
    let app = std::fs::symlink_metadata(root.join("app")).unwrap();
    assert!(app.is_dir(), "/app is still a symlink");
    assert_eq!((app.mode() & 0o7777, app.uid(), app.gid()), (0o755, 0, 0));
    assert_eq!(
        std::fs::read_to_string(root.join("app/f.txt")).unwrap(),
        "linked\n"
    );
    assert!(!root.join("srv/f.txt").exists());
    // the RUN after it sees the merged file system
    assert_eq!(
        std::fs::read_to_string(root.join("seen")).unwrap(),
        "linked\none\n"
    );
    // numeric --chown: the file and the parents it creates (BuildKit's MkdirAll)
    for p in ["own", "own/deep", "own/deep/f.txt"] {
        let md = std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 50), "{p}");
    }
    let md = std::fs::metadata(root.join("own/deep")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    // --chown=root is the one name known without the previous state
    let md = std::fs::metadata(root.join("rootowned/f.txt")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    // without --link the destination symlink is followed; --link with --chmod is a plain
    // COPY in BuildKit (no merge), so it follows it too
    assert!(
        std::fs::symlink_metadata(root.join("lnk"))
            .unwrap()
            .is_symlink()
    );
    assert!(root.join("srv2/plain.txt").is_file());
    let md = std::fs::metadata(root.join("srv2/chmod.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);

    // change the step before: the --link layers are cache hits with the same blobs, the
    // steps that read the previous state run again
    e.remfile(&REMFILE.replace("VERSION", "two"));
    e.build_ok(&["-t", "link:2", "--metadata-file", m]);
    let second = steps(&meta);
    assert!(!cached(&second, "RUN echo two"), "{second:?}");
    assert!(
        cached(&second, "COPY --link f.txt /app/f.txt"),
        "{second:?}"
    );
    assert!(cached(&second, "COPY --link --chown=1000:50"), "{second:?}");
    assert!(cached(&second, "ADD --link --chown=root"), "{second:?}");
    assert!(!cached(&second, "COPY f.txt /lnk/plain.txt"), "{second:?}");
    assert!(!cached(&second, "--chmod=600"), "{second:?}");
    assert!(!cached(&second, "RUN cat"), "{second:?}");
    let l1 = e.image("link:1").layers().unwrap();
    let l2 = e.image("link:2").layers().unwrap();
    assert_eq!(l1.len(), 8);
    assert_eq!(l2.len(), 8);
    assert_ne!(l1[1].0.digest, l2[1].0.digest, "the RUN layer changed");
    for i in 2..5 {
        assert_eq!(l1[i].0.digest, l2[i].0.digest, "--link layer {i} rebuilt");
    }
    let r = e.rootfs("link:2");
    assert_eq!(
        std::fs::read_to_string(r.path().join("seen")).unwrap(),
        "linked\ntwo\n"
    );

    // a new base stage under the same --link step: still the same layer
    e.remfile("FROM busybox:local\nRUN echo other > /o\nCOPY --link f.txt /app/f.txt\n");
    e.build_ok(&["-t", "link:3", "--metadata-file", m]);
    assert!(cached(&steps(&meta), "COPY --link f.txt"));
    let l3 = e.image("link:3").layers().unwrap();
    assert_eq!(l3[2].0.digest, l1[2].0.digest);

    // every layer made by these builds (RUN upper dirs and COPY entries adopted through
    // Store::adopt_snapshot) has a snapshot that fsck finds identical to its layer
    let store = e.store();
    for (_, diff_id) in l1.iter().chain(&l2).skip(1) {
        let meta = store.snapshot_meta(diff_id).unwrap();
        assert_eq!(
            (&meta.diff_id, meta.whiteouts.as_str()),
            (diff_id, "trusted")
        );
    }
    let report = store.fsck(false).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert!(
        report.snapshots_checked >= 8,
        "{}",
        report.snapshots_checked
    );

    // changing the source does invalidate it
    e.write("f.txt", "changed\n");
    e.build_ok(&["-t", "link:4", "--metadata-file", m]);
    assert!(!cached(&steps(&meta), "COPY --link f.txt"));
}

#[test]
fn copy_link_refuses_chown_names() {
    let e = Env::new();
    e.write("f.txt", "x");
    e.remfile("FROM busybox:local\nCOPY --link --chown=app:staff f.txt /f\n");
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("with --link") && err.contains("numeric"),
        "{err}"
    );
    // numeric ids work without the previous state (and without RUN: no root needed)
    e.remfile("FROM busybox:local\nCOPY --link --chown=7:8 f.txt /d/f\n");
    e.build_ok(&["-t", "l:1"]);
    let img = e.image("l:1");
    assert_eq!(img.layers().unwrap().len(), 2);
}
