//! The command line: usage errors, exit codes, documents.

use crate::common::*;

#[test]
fn usage_errors_exit_2_with_one_line() {
    let e = Env::empty();
    for args in [
        vec!["--progress", "fancy"],
        vec!["--label", "nokey"],
        vec!["--output", "type=zip,dest=x"],
    ] {
        let o = std::process::Command::new(BIN)
            .args(&args)
            .arg(&e.ctx)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("pelagos-build: error: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn missing_remfile_and_bad_remfile_are_input_errors() {
    let e = Env::empty();
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no Remfile, Dockerfile or Containerfile"));
    e.remfile("FROM scratch\nBOGUS x\n");
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("pelagos-build: error: Remfile:2:"), "{err}");
}

#[test]
fn dockerfile_and_containerfile_lookup_and_file_flag() {
    let e = Env::empty();
    e.write("Containerfile", "FROM scratch\nLABEL from=containerfile\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        e.config("t").config.unwrap().labels.unwrap()["from"],
        "containerfile"
    );
    e.write("Dockerfile", "FROM scratch\nLABEL from=dockerfile\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        e.config("t").config.unwrap().labels.unwrap()["from"],
        "dockerfile"
    );
    e.write("Remfile", "FROM scratch\nLABEL from=remfile\n");
    e.build_ok(&["-t", "t"]);
    assert_eq!(
        e.config("t").config.unwrap().labels.unwrap()["from"],
        "remfile"
    );
    let other = e.dir.path().join("elsewhere.rem");
    std::fs::write(&other, "FROM scratch\nLABEL from=flag\n").unwrap();
    e.build_ok(&["-t", "t", "-f", other.to_str().unwrap()]);
    assert_eq!(
        e.config("t").config.unwrap().labels.unwrap()["from"],
        "flag"
    );
}

#[test]
fn scratch_config_only_image_result_tags_iidfile_metadata_quiet() {
    let e = Env::empty();
    e.remfile("FROM scratch\nENV A=1\nLABEL l=v\nCMD [\"/x\"]\n");
    let iid = e.dir.path().join("iid");
    let meta = e.dir.path().join("meta.json");
    let (v, _) = e.build_ok(&[
        "-t",
        "app:1",
        "-t",
        "localhost:5000/app",
        "--label",
        "extra=yes",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    assert_eq!(v["version"], 1);
    assert_eq!(v["reference"], "docker.io/library/app:1");
    assert_eq!(v["references"][1], "localhost:5000/app:latest");
    let id = v["image_id"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(m["version"], 1);
    assert_eq!(m["image_id"], id);
    assert_eq!(m["containerimage.digest"], v["manifest_digest"]);
    let cfg = e.config("app:1");
    let c = cfg.config.clone().unwrap();
    // BuildKit gives every image a PATH, scratch ones included
    assert_eq!(
        c.env.unwrap(),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1"
        ]
    );
    assert_eq!(c.labels.as_ref().unwrap()["extra"], "yes");
    assert_eq!(c.labels.as_ref().unwrap()["l"], "v");
    assert_eq!(c.cmd.unwrap(), ["/x"]);
    assert!(cfg.rootfs.diff_ids.is_empty());
    assert_eq!(cfg.history.len(), 3);
    assert!(cfg.history.iter().all(|h| h.empty_layer == Some(true)));
    assert_eq!(cfg.history[0].created_by.as_deref(), Some("ENV A=1"));
    let o = e.build(&["-q"]);
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.trim().starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    assert!(o.stderr.is_empty(), "quiet means no progress");
}

#[test]
fn missing_base_image_fails_with_exit_1() {
    let reg = crate::registry::LocalRegistry::start();
    let e = Env::empty();
    e.remfile(&format!("FROM {}\nRUN true\n", reg.name("nothere:1")));
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothere"));
}

#[test]
fn plan_pipe_gives_the_same_image_as_a_remfile_build() {
    let e = Env::new();
    e.write("f.txt", "x");
    let text = "FROM busybox:local AS one\nENV A=1 PATH=/opt/bin:$PATH\nCOPY f.txt /f\nFROM one\nLABEL k=v\nCMD [\"sh\"]\n";
    e.remfile(text);
    let (direct, _) = e.build_ok(&["-t", "direct"]);
    // remfile-parse | remfile-plan (without base configs) | pelagos-build --plan -
    let ast = remfile_parse::parse(text).unwrap();
    let plan = remfile_plan::plan(
        &ast,
        &remfile_plan::PlanOptions::default(),
        &remfile_plan::NoBases,
    )
    .unwrap();
    let mut c = std::process::Command::new(BIN);
    c.args([
        "--store",
        e.store.to_str().unwrap(),
        "-q",
        "--plan",
        "-",
        "-t",
        "piped",
    ])
    .arg(&e.ctx);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &plan).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        direct["image_id"].as_str().unwrap()
    );
    let bad = std::process::Command::new(BIN)
        .args(["--store", e.store.to_str().unwrap(), "--plan"])
        .arg(e.dir.path().join("nope.json"))
        .arg(&e.ctx)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
