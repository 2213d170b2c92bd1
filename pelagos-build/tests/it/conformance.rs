//! Differences from BuildKit found by `scripts/compare-buildkit` (the corpus in
//! `tests/conformance/`), each pinned by an end-to-end build.

use std::os::unix::fs::MetadataExt;

use crate::common::*;

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn onbuild_adds_no_history_entry_and_triggers_run_in_the_child() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local AS parent\nONBUILD RUN echo triggered > /trig\nONBUILD ENV TRIG=1\n\
         RUN echo parent > /p\nFROM parent\nRUN echo child > /c\n",
    );
    e.build_ok(&["-t", "t"]);
    let cfg = e.config("t");
    let base = e.config("busybox:local").history.len();
    let created: Vec<&str> = cfg.history[base..]
        .iter()
        .map(|h| h.created_by.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        created,
        [
            "RUN /bin/sh -c echo parent > /p # buildkit",
            "RUN /bin/sh -c echo triggered > /trig # buildkit",
            "ENV TRIG=1",
            "RUN /bin/sh -c echo child > /c # buildkit",
        ]
    );
    let r = e.rootfs("t");
    assert!(r.path().join("trig").is_file());
}

#[test]
fn copy_wildcard_matching_nothing_is_no_error() {
    let e = Env::new();
    e.write("c.log", "c");
    e.remfile("FROM busybox:local\nCOPY nomatch* /x/\nCOPY nomatch* c.log /mixed/\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert!(!r.path().join("x").exists(), "nothing copied, no dest made");
    assert_eq!(
        std::fs::read_to_string(r.path().join("mixed/c.log")).unwrap(),
        "c"
    );
    // a literal source that is missing still fails
    e.remfile("FROM busybox:local\nCOPY missing.txt /x/\n");
    assert_eq!(e.build(&[]).status.code(), Some(2));
}

#[test]
fn copy_through_an_existing_file_fails() {
    let e = Env::new();
    e.write("f", "f");
    // /etc/passwd is a file of the base
    e.remfile("FROM busybox:local\nCOPY f /etc/passwd/\n");
    let o = e.build(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a directory"), "{err}");
    // a file destination replaces the file
    e.remfile("FROM busybox:local\nCOPY f /etc/passwd\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("t").path().join("etc/passwd")).unwrap(),
        "f"
    );
}

#[test]
fn history_text_of_arg_and_healthcheck_and_scratch_workdir_as_buildkit() {
    let e = Env::new();
    e.write("f", "f");
    e.remfile(
        "ARG G=g\nFROM scratch\nARG G\nARG A=def\nHEALTHCHECK --interval=5s --retries=4 CMD [\"true\"]\n\
         COPY f /f\n",
    );
    e.build_ok(&["-t", "t", "--build-arg", "A=cli"]);
    let cfg = e.config("t");
    let created: Vec<&str> = cfg
        .history
        .iter()
        .map(|h| h.created_by.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        created,
        [
            "ARG G",
            "ARG A=def",
            r#"HEALTHCHECK &{["CMD" "true"] "5s" "0s" "0s" '\x04'}"#,
            "COPY f /f # buildkit",
        ]
    );
    assert_eq!(cfg.config.unwrap().working_dir.as_deref(), Some("/"));
}

#[test]
#[ignore = "needs root: the rootfs is unpacked with its owners"]
fn add_archive_keeps_its_owners_modes_and_hard_links_under_chown() {
    let e = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o4750);
    h.set_uid(1000);
    h.set_gid(50);
    h.set_size(2);
    b.append_data(&mut h, "top/owned", &b"hi"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    // a link header carries its file's metadata (tar writes it so; untar applies it)
    h.set_mode(0o4750);
    h.set_uid(1000);
    h.set_gid(50);
    // sorts before its target: the layer must still be valid
    b.append_link(&mut h, "top/hard", "top/owned").unwrap();
    std::fs::write(e.ctx.join("a.tar"), b.into_inner().unwrap()).unwrap();
    e.remfile("FROM busybox:local\nADD --chown=2:2 a.tar /x/\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let owned = std::fs::metadata(r.path().join("x/top/owned")).unwrap();
    let hard = std::fs::metadata(r.path().join("x/top/hard")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1000, 50, 0o4750)
    );
    assert_eq!(owned.ino(), hard.ino(), "still one file");
    let x = std::fs::metadata(r.path().join("x")).unwrap();
    assert_eq!(
        (x.uid(), x.gid()),
        (2, 2),
        "--chown owns the created dest dir"
    );
    let top = std::fs::metadata(r.path().join("x/top")).unwrap();
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o7777),
        (0, 0, 0o755),
        "a dir the archive implies is made as untar does"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn run_mount_targets_leave_their_directories_as_in_buildkit() {
    let e = Env::new();
    e.write("f", "f");
    e.remfile(
        "FROM busybox:local\nRUN --mount=type=cache,target=/var/cache/x --mount=type=tmpfs,target=/scratch \
         --mount=type=bind,source=f,target=/opt/f true\n",
    );
    e.build_ok(&["-t", "t"]);
    let cfg = e.config("t");
    assert_eq!(
        cfg.history.last().unwrap().empty_layer,
        None,
        "the stubs make a layer"
    );
    let r = e.rootfs("t");
    for d in ["var/cache/x", "scratch", "opt"] {
        let m = std::fs::symlink_metadata(r.path().join(d)).unwrap();
        assert!(m.is_dir(), "{d}");
        assert_eq!(
            std::fs::read_dir(r.path().join(d)).unwrap().count(),
            0,
            "{d} empty"
        );
    }
    assert!(!r.path().join("opt/f").exists(), "no file stub");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn run_sees_buildkits_hostname_or_the_sandbox_hostname_arg() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nRUN hostname > /h && echo \"$HOSTNAME\" >> /h\n");
    e.build_ok(&["-t", "t"]);
    let h = std::fs::read_to_string(e.rootfs("t").path().join("h")).unwrap();
    assert_eq!(h, "buildkitsandbox\nbuildkitsandbox\n");
    e.build_ok(&["-t", "t2", "--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=box"]);
    let h = std::fs::read_to_string(e.rootfs("t2").path().join("h")).unwrap();
    assert_eq!(h, "box\nbox\n");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn identical_layers_twice_in_a_stage_still_run() {
    let e = Env::new();
    e.write("f", "same");
    // two COPY steps make the same layer (same diff_id): one snapshot, used once in the lowers
    e.remfile("FROM busybox:local\nCOPY f /f\nCOPY f /f\nRUN cat /f > /g\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("t").path().join("g")).unwrap(),
        "same"
    );
    assert_eq!(
        e.image("t").layers().unwrap().len(),
        4,
        "both COPY layers stay"
    );
}

#[test]
fn cmd_sets_args_escaped_and_json_form_ignores_trailing_text() {
    let e = Env::new();
    e.remfile("FROM busybox:local AS p\nCMD [\"a\"] extra\nFROM p\nENTRYPOINT [\"e\"]\n");
    e.build_ok(&["-t", "t", "--target", "p"]);
    let c = e.config("t").config.unwrap();
    assert_eq!(c.cmd.as_deref(), Some(&["a".to_string()][..]));
    assert_eq!(c.args_escaped, Some(true));
    e.build_ok(&["-t", "child"]);
    let c = e.config("child").config.unwrap();
    // ENTRYPOINT clears the inherited Cmd; ArgsEscaped stays, as in BuildKit
    assert_eq!(c.cmd, None);
    assert_eq!(c.args_escaped, Some(true));
    assert_eq!(e.config("busybox:local").config.unwrap().args_escaped, None);
}

#[test]
fn copy_onto_a_dangling_symlink_writes_its_target() {
    let e = Env::new();
    e.write("f", "content");
    std::os::unix::fs::symlink("/nowhere", e.ctx.join("dangle")).unwrap();
    e.remfile("FROM busybox:local\nCOPY dangle /dangle\nCOPY f /dangle\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let link = r.path().join("dangle");
    assert_eq!(
        std::fs::read_link(&link).unwrap().to_str(),
        Some("/nowhere"),
        "the link stays"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("nowhere")).unwrap(),
        "content"
    );
}

#[test]
fn copy_skips_named_pipes_and_add_link_headers_set_the_file_mode() {
    let e = Env::new();
    e.write("d/f", "f");
    let st = std::process::Command::new("mkfifo")
        .arg(e.ctx.join("d/pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    // a tar whose hard link header carries another mode than its file (Docker's untar chmods
    // the link path, i.e. the one inode)
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o4755);
    h.set_size(2);
    b.append_data(&mut h, "x/f", &b"ff"[..]).unwrap();
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Link);
    link.set_mode(0o640);
    link.set_size(0);
    b.append_link(&mut link, "hard", "x/f").unwrap();
    std::fs::write(e.ctx.join("l.tar"), b.into_inner().unwrap()).unwrap();
    e.remfile("FROM busybox:local\nCOPY d /d/\nADD l.tar /t/\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert!(r.path().join("d/f").is_file());
    assert!(
        std::fs::symlink_metadata(r.path().join("d/pipe")).is_err(),
        "no fifo copied"
    );
    for p in ["t/x/f", "t/hard"] {
        let m = std::fs::metadata(r.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(m, 0o640, "{p}");
    }
}

#[test]
fn pre_from_arg_without_value_empties_a_predefined_arg() {
    let e = Env::new();
    e.remfile(
        "ARG TARGETARCH\nFROM busybox:local\nARG TARGETARCH\nARG TARGETOS\n\
         LABEL arch=[$TARGETARCH] os=[$TARGETOS]\n",
    );
    e.build_ok(&["-t", "t"]);
    let labels = e.config("t").config.unwrap().labels.unwrap();
    assert_eq!(labels["arch"], "[]");
    assert_eq!(labels["os"], "[linux]");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn writable_bind_of_the_context_never_changes_the_context() {
    let e = Env::new();
    e.write("d/f", "f");
    e.remfile(
        "FROM busybox:local\nRUN --mount=type=bind,source=d,target=/src,rw echo new > /src/added \
         && ls /src > /ls\nRUN --mount=type=bind,source=d/f,target=/one,rw echo x >> /one\n",
    );
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert_eq!(
        std::fs::read_to_string(r.path().join("ls")).unwrap(),
        "added\nf\n",
        "the step writes into its copy"
    );
    assert!(
        !e.ctx.join("d/added").exists(),
        "as BuildKit: rw writes are dropped"
    );
    assert_eq!(std::fs::read_to_string(e.ctx.join("d/f")).unwrap(), "f");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn bind_mount_sources_resolve_symlinks_inside_the_context() {
    let e = Env::new();
    e.write("etc/mine", "in the context");
    std::os::unix::fs::symlink("/etc", e.ctx.join("hostetc")).unwrap();
    e.remfile("FROM busybox:local\nRUN --mount=type=bind,source=hostetc,target=/h ls /h > /ls\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("t").path().join("ls")).unwrap(),
        "mine\n",
        "CONTEXT/etc, never the host's /etc"
    );
    // the bound content is part of the step's cache key, as in BuildKit
    e.write("etc/mine", "changed");
    e.write("etc/other", "new");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        std::fs::read_to_string(e.rootfs("t").path().join("ls")).unwrap(),
        "mine\nother\n"
    );
    std::fs::remove_dir_all(e.ctx.join("etc")).unwrap();
    let o = e.build(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn several_sources_onto_a_dest_without_slash_are_copied_in_turn() {
    // BuildKit (Docker 20.10 and newer): no error, the last file wins
    let e = Env::new();
    e.write("a", "a");
    e.write("b", "b");
    e.write("d/in", "in");
    e.remfile("FROM busybox:local\nCOPY a b /dest\nCOPY *.x a /none-matched\nCOPY d a /dir\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert_eq!(std::fs::read_to_string(r.path().join("dest")).unwrap(), "b");
    assert_eq!(
        std::fs::read_to_string(r.path().join("none-matched")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("dir/in")).unwrap(),
        "in"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("dir/a")).unwrap(),
        "a"
    );
}

#[test]
fn add_of_several_archives_onto_a_dest_without_slash_extracts_each() {
    let e = Env::new();
    let tar_with = |name: &str, data: &[u8]| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    };
    std::fs::write(e.ctx.join("a.tar"), tar_with("d/f", b"a")).unwrap();
    std::fs::write(e.ctx.join("b.tar"), tar_with("d/g", b"b")).unwrap();
    e.remfile("FROM busybox:local\nADD a.tar b.tar /x\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert_eq!(
        std::fs::read_to_string(r.path().join("x/d/f")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("x/d/g")).unwrap(),
        "b"
    );
    // the first archive's content keys the step although its entry was replaced
    std::fs::write(e.ctx.join("a.tar"), tar_with("d/f", b"A")).unwrap();
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert_eq!(
        std::fs::read_to_string(r.path().join("x/d/f")).unwrap(),
        "A"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn bind_of_the_context_sees_what_the_ignore_file_leaves() {
    let e = Env::new();
    e.write(".dockerignore", "secret.txt\nd/*.log\n");
    e.write("secret.txt", "s");
    e.write("d/keep.txt", "k");
    e.write("d/drop.log", "l");
    e.remfile(
        "FROM busybox:local\nRUN --mount=type=bind,target=/ctx ls -a /ctx > /root-list\n\
         RUN --mount=type=bind,source=d,target=/d,rw ls /d > /d-list && echo x > /d/new\n",
    );
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("root-list"), ".\n..\n.dockerignore\nRemfile\nd\n");
    assert_eq!(read("d-list"), "keep.txt\n");
    assert!(!e.ctx.join("d/new").exists());
}

/// The pax extensions of `name` in the last layer of image `t`.
fn last_layer_pax(e: &Env, name: &str) -> Vec<(String, Vec<u8>)> {
    let s = e.store();
    let (last, _) = e.image("t").layers().unwrap().pop().unwrap();
    let blob = std::fs::File::open(s.blob_path(&last.digest)).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut found = Vec::new();
    for en in ar.entries().unwrap() {
        let mut en = en.unwrap();
        if en.path().unwrap().ends_with(name) {
            for x in en.pax_extensions().unwrap().into_iter().flatten() {
                let x = x.unwrap();
                found.push((x.key().unwrap().to_string(), x.value_bytes().to_vec()));
            }
        }
    }
    found
}

const CAP: &[u8] =
    b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn tar_with_cap() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.security.capability", CAP),
        ("SCHILY.xattr.user.note", &b"dropped"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o755);
    h.set_size(1);
    b.append_data(&mut h, "tool", &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
#[ignore = "needs root: a stage's file capability is only set on its snapshot by root"]
fn copy_from_a_stage_keeps_a_file_capability() {
    let e = Env::new();
    std::fs::write(e.ctx.join("t.tar"), tar_with_cap()).unwrap();
    e.remfile(
        "FROM busybox:local AS s\nADD t.tar /x/\nFROM busybox:local\nCOPY --from=s /x/tool /t/\n",
    );
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        last_layer_pax(&e, "tool"),
        [("SCHILY.xattr.security.capability".to_string(), CAP.to_vec())]
    );
}

#[test]
fn add_keeps_an_archive_entrys_file_capability() {
    // untar sets the xattrs, Docker's layer writer keeps security.capability only
    let e = Env::new();
    std::fs::write(e.ctx.join("t.tar"), tar_with_cap()).unwrap();
    e.remfile("FROM busybox:local\nADD t.tar /x/\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        last_layer_pax(&e, "tool"),
        [("SCHILY.xattr.security.capability".to_string(), CAP.to_vec())]
    );
}

#[test]
fn chown_that_expands_to_nothing_is_no_chown() {
    let e = Env::new();
    e.write("f", "f");
    e.remfile("FROM busybox:local\nCOPY --chown=$NOPE f /x\nCOPY --chown=${NOPE}:${NOPE2} f /y\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    assert!(r.path().join("x").is_file() && r.path().join("y").is_file());
    if is_root() {
        for p in ["x", "y"] {
            let m = std::fs::metadata(r.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{p}");
        }
    }
}

#[test]
fn workdir_through_a_file_fails_naming_the_workdir() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nWORKDIR /etc/passwd/sub\n");
    let o = e.build(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"/etc/passwd/sub\": /etc/passwd is not a directory"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn run_on_scratch_keeps_the_runtime_mount_points() {
    let e = Env::new();
    e.remfile("FROM scratch\nCOPY --from=busybox:local /bin /bin\nRUN echo \"$PATH\" > /p\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    for d in ["dev", "proc", "sys", "etc"] {
        let m = std::fs::symlink_metadata(r.path().join(d)).unwrap();
        assert!(m.is_dir(), "{d}");
        assert_eq!(m.mode() & 0o7777, 0o755, "{d}");
    }
    assert!(
        !r.path().join("etc/hosts").exists(),
        "file stubs are removed"
    );
    assert!(!r.path().join("etc/resolv.conf").exists());
    // a base that has them: a RUN that changes nothing still adds no layer
    e.remfile("FROM busybox:local\nRUN true\n");
    e.build_ok(&["-t", "u"]);
    assert_eq!(
        e.config("u").history.last().unwrap().empty_layer,
        Some(true)
    );
}

#[test]
fn copy_wildcard_class_negates_with_caret_only() {
    let e = Env::new();
    for f in ["xa.txt", "xy.txt", "x!.txt"] {
        e.write(f, f);
    }
    e.remfile("FROM busybox:local\nCOPY x[!y].txt /bang/\nCOPY x[^y].txt /caret/\n");
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(r.path().join(d))
            .unwrap()
            .map(|x| x.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("bang"), ["x!.txt", "xy.txt"]);
    assert_eq!(names("caret"), ["x!.txt", "xa.txt"]);
}

#[test]
fn remfile_bytes_that_are_not_utf8_become_replacement_chars() {
    let e = Env::new();
    std::fs::write(
        e.ctx.join("Remfile"),
        b"# caf\xe9 comment\nFROM busybox:local\nLABEL author=Jos\xe9\nENV V=caf\xe9\n",
    )
    .unwrap();
    e.build_ok(&["-t", "t"]);
    let c = e.config("t").config.unwrap();
    assert_eq!(c.labels.unwrap()["author"], "Jos\u{fffd}");
    assert!(
        c.env.unwrap().iter().any(|v| v == "V=caf\u{fffd}"),
        "env keeps U+FFFD"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn user_with_an_empty_part_runs_as_runc_reads_it() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local\nUSER :staff\nRUN id > /tmp/a\nUSER app:\nRUN id > /tmp/b\n\
         USER :\nRUN id -u > /tmp/c\n",
    );
    e.build_ok(&["-t", "t"]);
    let r = e.rootfs("t");
    let read = |f: &str| std::fs::read_to_string(r.path().join(f)).unwrap();
    assert_eq!(read("tmp/a"), "uid=0(root) gid=50(staff)\n");
    assert!(read("tmp/b").starts_with("uid=1000(app) gid=1000(app)"));
    assert_eq!(read("tmp/c"), "0\n");
    assert_eq!(e.config("t").config.unwrap().user.as_deref(), Some(":"));
}
