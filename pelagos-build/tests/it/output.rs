//! `--output` as BuildKit: `type=local` into a directory that already has files (merged, never
//! through its symlinks), and the tar kinds on stdout (`-o -`, `type=oci,dest=-`).

use std::io::Read;
use std::os::unix::fs::symlink;

use crate::common::*;

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string()
        })
        .collect()
}

#[test]
fn local_output_merges_into_a_non_empty_directory_without_following_its_symlinks() {
    let e = Env::new();
    e.write("f.txt", "new\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /etc/f.txt\nCOPY f.txt /over.txt\n");
    let out = e.dir.path().join("out");
    let outside = e.dir.path().join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(out.join("keep.txt"), "mine\n").unwrap();
    std::fs::write(outside.join("victim"), "untouched\n").unwrap();
    // symlinks in the destination pointing out of it, where the image has a dir and a file
    symlink(&outside, out.join("etc")).unwrap();
    symlink(outside.join("victim"), out.join("over.txt")).unwrap();
    std::fs::create_dir_all(out.join("bin")).unwrap();
    std::fs::write(out.join("bin/mine"), "kept\n").unwrap();

    e.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    // others' files stay, same-named ones are replaced
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("bin/mine")).unwrap(),
        "kept\n"
    );
    assert!(
        std::fs::symlink_metadata(out.join("bin/sh"))
            .unwrap()
            .is_symlink()
    );
    let over = std::fs::symlink_metadata(out.join("over.txt")).unwrap();
    assert!(over.is_file(), "over.txt is still a symlink");
    assert_eq!(
        std::fs::read_to_string(out.join("over.txt")).unwrap(),
        "new\n"
    );
    assert!(std::fs::symlink_metadata(out.join("etc")).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(out.join("etc/f.txt")).unwrap(),
        "new\n"
    );
    assert!(out.join("etc/passwd").is_file());
    // nothing was written out of the destination
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched\n"
    );
    let mut left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["victim"]);

    // an OCI layout directory is merged the same way (BuildKit's oci exporter with tar=false)
    let layout = e.dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(layout.join("notes.txt"), "mine\n").unwrap();
    let (doc, _) = e.build_ok(&[
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
    ]);
    assert!(layout.join("notes.txt").is_file());
    assert!(layout.join("oci-layout").is_file());
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    let manifest = doc["manifest_digest"].as_str().unwrap();
    assert!(index.contains(manifest), "{index}");
    let hex = manifest.trim_start_matches("sha256:");
    assert!(layout.join("blobs/sha256").join(hex).is_file());

    // a file as the destination directory
    let f = e.dir.path().join("file");
    std::fs::write(&f, "x").unwrap();
    let o = e.build(&["-o", &format!("type=local,dest={}", f.display())]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tar_and_oci_outputs_go_to_stdout_with_dest_dash() {
    let e = Env::new();
    e.write("f.txt", "new\n");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\n");
    // `-o -`: the root file system as a tar on stdout, and nothing else there
    let o = e.build(&["-o", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = tar_names(&o.stdout);
    assert!(names.iter().any(|n| n == "f.txt"), "{names:?}");
    assert!(names.iter().any(|n| n == "etc/passwd"), "{names:?}");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut found = String::new();
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            == "f.txt"
        {
            entry.read_to_string(&mut found).unwrap();
        }
    }
    assert_eq!(found, "new\n");
    // type=oci without dest (or dest=-): an OCI layout tar on stdout; -q prints no ID then
    for spec in ["type=oci", "type=oci,dest=-"] {
        let o = e.build(&["-q", "-o", spec]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let names = tar_names(&o.stdout);
        assert!(names.iter().any(|n| n == "oci-layout"), "{spec}: {names:?}");
        assert!(names.iter().any(|n| n == "index.json"), "{spec}: {names:?}");
    }
    // one stdout at most; never for a directory output
    for args in [
        &["-o", "-", "-o", "type=tar,dest=-"][..],
        &["-o", "type=local,dest=-"][..],
    ] {
        let o = e.build(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn an_archive_is_never_written_onto_a_terminal() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nLABEL a=b\n");
    // `script` (bsdutils) gives the command a terminal as stdout
    let cmd = format!(
        "{BIN} --store {} --progress plain -o - {}",
        e.store.display(),
        e.ctx.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("refusing to write to a terminal"), "{text}");
}
