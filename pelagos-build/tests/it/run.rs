//! RUN, multi-stage and whole example builds end to end (root: namespaces and overlayfs),
//! checked through the store and with skopeo, umoci and runc.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::*;

const NEEDS_ROOT: &str = "needs root: RUN steps use namespaces and overlayfs";

fn run_tool(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn example_hello_exported_checked_by_skopeo_umoci_and_run_by_runc() {
    let _ = NEEDS_ROOT;
    let e = Env::new();
    let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let layout = e.dir.path().join("oci");
    let o = Command::new(BIN)
        .args([
            "--store",
            e.store.to_str().unwrap(),
            "--progress",
            "plain",
            "-t",
            "hello:test",
        ])
        .arg("--output")
        .arg(format!("type=oci,dest={},tar=false", layout.display()))
        .arg(&ex)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // skopeo reads the layout and verifies digests
    let img = format!("oci:{}:docker.io/library/hello:test", layout.display());
    let inspect: serde_json::Value =
        serde_json::from_str(&run_tool(Command::new("skopeo").args(["inspect", &img]))).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "hello");
    let cfg: serde_json::Value = serde_json::from_str(&run_tool(
        Command::new("skopeo").args(["inspect", "--config", &img]),
    ))
    .unwrap();
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["greet"]));
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["world"]));
    assert_eq!(cfg["config"]["User"], "greeter");
    assert_eq!(cfg["config"]["WorkingDir"], "/opt/hello");
    assert_eq!(
        cfg["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    // skopeo's OCI view drops Docker's extension fields: read Healthcheck from the store
    let hc = e.config("hello:test").config.unwrap().healthcheck.unwrap();
    assert_eq!(hc["Test"], serde_json::json!(["CMD", "greet", "--check"]));
    let hist = cfg["history"].as_array().unwrap();
    assert!(hist.iter().any(|h| {
        h["created_by"]
            .as_str()
            .is_some_and(|c| c.starts_with("RUN "))
    }));
    let layers = cfg["rootfs"]["diff_ids"].as_array().unwrap().len();
    let nonempty = hist.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(
        layers, nonempty,
        "one history entry without empty_layer per layer"
    );
    // umoci unpacks it (verifying every blob) and the rootfs is the expected tree
    let bundle = e.dir.path().join("bundle");
    run_tool(
        Command::new("umoci")
            .args([
                "unpack",
                "--image",
                &format!("{}:docker.io/library/hello:test", layout.display()),
            ])
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let greet = std::fs::read_to_string(rootfs.join("opt/hello/bin/greet")).unwrap();
    assert!(greet.contains("hello 1.0.0"));
    assert_eq!(
        std::fs::metadata(rootfs.join("opt/hello/bin/greet"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("opt/hello/share/hello/index.html"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );
    assert!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("greeter:x:1001")
    );
    // runc runs ENTRYPOINT + CMD as the image's user
    let cfgp = bundle.join("config.json");
    let text = std::fs::read_to_string(&cfgp)
        .unwrap()
        .replace("\"terminal\": true", "\"terminal\": false");
    std::fs::write(&cfgp, text).unwrap();
    let out = run_tool(
        Command::new("runc")
            .args(["run", &format!("pb-test-{}", std::process::id())])
            .current_dir(&bundle),
    );
    assert_eq!(out.trim(), "Hello, world! (hello 1.0.0)");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn whiteouts_opaque_dirs_and_copy_from_flattened_stage() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local AS base\nRUN mkdir -p /d/sub && touch /d/a /d/sub/b /keep /etc/gone\n\
         RUN rm /d/a /etc/gone\nRUN rm -rf /d/sub && mkdir /d/sub && touch /d/sub/new\nRUN true\n\
         FROM busybox:local\nCOPY --from=base /d /copied\n",
    );
    e.build_ok(&["-t", "final", "--target", "base"]);
    let r = e.rootfs("final");
    let p = r.path();
    assert!(p.join("keep").exists());
    assert!(
        !p.join("d/a").exists(),
        "a file deleted in a RUN stays deleted"
    );
    assert!(!p.join("etc/gone").exists());
    assert!(
        !p.join("d/sub/b").exists(),
        "rm -rf d && mkdir d hides the old children (opaque)"
    );
    assert!(p.join("d/sub/new").exists());
    assert!(
        p.join("etc/passwd").exists(),
        "a whiteout deletes only its file"
    );
    let cfg = e.config("final");
    let last = cfg.history.last().unwrap();
    assert_eq!(
        last.created_by.as_deref(),
        Some("RUN /bin/sh -c true # buildkit")
    );
    assert_eq!(
        last.empty_layer,
        Some(true),
        "a RUN that changes nothing adds no layer"
    );
    assert_eq!(cfg.rootfs.diff_ids.len(), 4);
    e.build_ok(&["-t", "copy"]);
    let r = e.rootfs("copy");
    assert!(r.path().join("copied/sub/new").exists());
    assert!(
        !r.path().join("copied/a").exists(),
        "COPY --from sees the flattened stage"
    );
    assert!(!r.path().join("copied/sub/b").exists());
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn users_permissions_env_heredocs_and_shell() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local\nARG WHO=arg\nENV GREETING=\"hi there\"\nUSER app\nWORKDIR /home/app/w\n\
         RUN id -u > uid && echo \"$GREETING $WHO $0\" > env.txt && touch mine\nUSER root\n\
         RUN <<EOF\nset -e\nf=/made-by-heredoc\necho \"shell var kept: $f\" > $f\nEOF\n\
         RUN <<EOF\n#!/bin/sh\necho \"script $(basename $0)\" > /script.txt\nEOF\n\
         SHELL [\"/bin/sh\", \"-ec\"]\nRUN echo \"$-\" > /flags\n\
         RUN chmod 4755 /bin/busybox && mkdir -m 1777 /sticky && mknod /dev-null-copy c 1 3 || true\n",
    );
    e.build_ok(&["-t", "t", "--build-arg", "WHO=cli"]);
    let r = e.rootfs("t");
    let p = r.path();
    let read = |rel: &str| {
        std::fs::read_to_string(p.join(rel)).unwrap_or_else(|err| panic!("{rel}: {err}"))
    };
    assert_eq!(read("home/app/w/uid").trim(), "1000", "USER applies to RUN");
    assert_eq!(
        read("home/app/w/env.txt").trim(),
        "hi there cli /bin/sh",
        "ENV and ARG in scope are the RUN's env"
    );
    assert_eq!(
        std::fs::metadata(p.join("home/app/w/mine")).unwrap().uid(),
        1000
    );
    assert_eq!(
        read("made-by-heredoc").trim(),
        "shell var kept: /made-by-heredoc",
        "no builder-side expansion of $f"
    );
    assert_eq!(
        read("script.txt").trim(),
        "script EOF",
        "a heredoc with #! runs as a script at /dev/pipes/EOF, as in BuildKit"
    );
    assert!(
        read("flags").contains('e'),
        "SHELL changes how RUN is wrapped"
    );
    assert_eq!(
        std::fs::metadata(p.join("bin/busybox")).unwrap().mode() & 0o7777,
        0o4755,
        "setuid kept"
    );
    assert_eq!(
        std::fs::metadata(p.join("sticky")).unwrap().mode() & 0o7777,
        0o1777,
        "sticky kept"
    );
    let cfg = e.config("t").config.unwrap();
    assert!(cfg.env.unwrap().contains(&"GREETING=hi there".to_string()));
    assert!(
        !format!("{:?}", e.config("t").config).contains("WHO"),
        "ARGs are not persisted"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn failing_run_exits_1_and_reports_the_step() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nRUN echo visible-output && exit 3\n");
    let o = e.build(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("visible-output"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("pelagos-build: error: [stage-0 2/2] RUN"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn reproducible_with_source_date_epoch_on_two_clean_stores() {
    let a = Env::new();
    let b = Env::new_like(&a);
    for e in [&a, &b] {
        e.write("f.txt", "same content");
        e.remfile(
            "FROM busybox:local\nCOPY f.txt /f.txt\nRUN echo x > /x && mkdir -p /d/e\nENV A=1\n",
        );
    }
    let digest = |e: &Env| {
        let (v, _) = e.build_ok(&["--source-date-epoch", "1700000000", "-t", "r"]);
        (
            v["image_id"].as_str().unwrap().to_string(),
            v["manifest_digest"].as_str().unwrap().to_string(),
        )
    };
    // different (newer than the epoch, so clamped) mtimes of the context file and different run
    // times: the same image anyway
    filetime::set_file_mtime(
        b.ctx.join("f.txt"),
        filetime::FileTime::from_unix_time(1_800_000_000, 0),
    )
    .unwrap();
    let da = digest(&a);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let db = digest(&b);
    assert_eq!(da, db);
    let cfg = a.config("r");
    assert_eq!(cfg.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    let r = a.rootfs("r");
    assert!(
        std::fs::metadata(r.path().join("x")).unwrap().mtime() <= 1_700_000_000,
        "RUN-written files are clamped"
    );
}

/// (cached, total) of the non-FROM steps of a build, from plain progress.
fn cached_steps(e: &Env, args: &[&str]) -> (usize, usize) {
    let (_, err) = e.build_ok(args);
    count_cached(&err)
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn cache_rules() {
    let e = Env::new();
    e.write("a.txt", "a");
    e.write("b.txt", "b");
    let rem = |env: &str, user: &str, wd: &str, shell: &str| {
        format!(
            "FROM busybox:local\nARG V=1\nENV E={env}\nCOPY a.txt /a.txt\nRUN echo $V $E > /one\nCOPY b.txt /b.txt\n\
             USER {user}\nWORKDIR {wd}\nSHELL [\"{shell}\", \"-c\"]\nRUN echo two > /tmp/two\n"
        )
    };
    e.remfile(&rem("1", "root", "/", "/bin/sh"));
    let first = cached_steps(&e, &[]);
    assert_eq!(first.0, 0);
    let n = first.1;
    assert_eq!(
        cached_steps(&e, &[]),
        (n, n),
        "a second build is fully cached"
    );
    // touching a file without changing it keeps COPY cached
    filetime::set_file_mtime(
        e.ctx.join("a.txt"),
        filetime::FileTime::from_unix_time(12345, 0),
    )
    .unwrap();
    assert_eq!(cached_steps(&e, &[]), (n, n));
    // changing one file re-runs from that COPY on
    e.write("b.txt", "b2");
    assert_eq!(
        cached_steps(&e, &[]).0,
        2,
        "COPY a.txt and RUN one stay cached"
    );
    assert_eq!(
        cached_steps(&e, &[]),
        (n, n),
        "lookups and stores continued after the miss"
    );
    // ARG value in scope, ENV, USER, WORKDIR, SHELL each invalidate the following RUN
    assert!(cached_steps(&e, &["--build-arg", "V=2"]).0 < n);
    assert_eq!(cached_steps(&e, &["--build-arg", "V=2"]), (n, n));
    for (env, user, wd, shell) in [
        ("2", "root", "/", "/bin/sh"),
        ("2", "app", "/", "/bin/sh"),
        ("2", "app", "/tmp", "/bin/sh"),
        ("2", "app", "/tmp", "/bin/ash"),
    ] {
        e.remfile(&rem(env, user, wd, shell));
        let (c, total) = cached_steps(&e, &["--build-arg", "V=2"]);
        assert!(
            c < total,
            "changing to {env} {user} {wd} {shell} re-ran the RUN"
        );
    }
    // --no-cache rebuilds everything
    assert_eq!(cached_steps(&e, &["--build-arg", "V=2", "--no-cache"]).0, 0);
    // a hit whose layer blob is missing or corrupt is a miss
    let s = e.store();
    let recs = s.cache_entries().unwrap();
    let mut broke = 0;
    for (_, r) in recs {
        if let Some(l) = r.layer {
            let p = s.blob_path(&l.descriptor.digest);
            if p.exists() {
                std::fs::write(&p, b"corrupt").unwrap();
                broke += 1;
            }
        }
    }
    assert!(broke > 0);
    let (c, _) = cached_steps(&e, &["--build-arg", "V=2", "-t", "after-corruption"]);
    // only WORKDIR /tmp (an existing dir: an empty step, no layer to corrupt) may hit
    assert!(c <= 1, "corrupt cached layers are misses ({c} hits)");
    let r = e.rootfs("after-corruption");
    assert_eq!(
        std::fs::read_to_string(r.path().join("one"))
            .unwrap()
            .trim(),
        "2 2"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn base_image_change_invalidates_and_four_concurrent_builds_share_a_store() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nRUN echo one > /one\n");
    e.build_ok(&[]);
    // another base under the same name: a different image
    e.remfile("FROM busybox:local\nLABEL v=2\n");
    e.build_ok(&["-t", "busybox:local"]);
    e.remfile("FROM busybox:local\nRUN echo one > /one\n");
    assert_eq!(
        cached_steps(&e, &[]).0,
        0,
        "a new base image invalidates the RUN"
    );
    // 4 builds at once, different contexts sharing steps, one store
    let mut kids = Vec::new();
    for i in 0..4 {
        let ctx = e.dir.path().join(format!("c{i}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Remfile"), format!("FROM busybox:local\nRUN echo shared > /shared\nRUN echo {i} > /mine\nCOPY Remfile /R\n")).unwrap();
        kids.push(
            Command::new(BIN)
                .args([
                    "--store",
                    e.store.to_str().unwrap(),
                    "-q",
                    "-t",
                    &format!("c:{i}"),
                ])
                .arg(&ctx)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for i in 0..4 {
        let r = e.rootfs(&format!("c:{i}"));
        assert_eq!(
            std::fs::read_to_string(r.path().join("mine"))
                .unwrap()
                .trim(),
            i.to_string()
        );
        assert_eq!(
            std::fs::read_to_string(r.path().join("shared"))
                .unwrap()
                .trim(),
            "shared"
        );
    }
    // the store (blobs, images, snapshots adopted from RUN upper dirs, cache) is consistent
    let report = e.store().fsck(false).unwrap();
    assert!(report.ok && report.problems.is_empty(), "{report:?}");
    assert!(report.snapshots_checked >= 5);
}

#[test]
fn every_config_instruction_lands_in_the_config() {
    let e = Env::new();
    e.remfile(
        "FROM busybox:local\nMAINTAINER someone\nLABEL a=1 b=\"two words\"\nENV X=1 Y=2\nEXPOSE 80 443/udp 8000-8001\n\
         VOLUME [\"/data\", \"/logs\"]\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\n\
         SHELL [\"/bin/ash\", \"-c\"]\nONBUILD RUN echo triggered\nUSER 1000:1000\nCMD [\"sh\"]\nENTRYPOINT [\"/bin/env\"]\n",
    );
    e.build_ok(&["-t", "t", "--label", "cli=yes"]);
    let cfg = e.config("t");
    assert_eq!(cfg.author.as_deref(), Some("someone"));
    assert_eq!(cfg.os, "linux");
    assert!(!cfg.architecture.is_empty());
    let c = cfg.config.clone().unwrap();
    let labels = c.labels.unwrap();
    assert_eq!(labels["b"], "two words");
    assert_eq!(labels["cli"], "yes");
    assert!(c.env.unwrap().contains(&"Y=2".to_string()));
    let ports: Vec<String> = c.exposed_ports.unwrap().keys().cloned().collect();
    assert_eq!(ports, ["443/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
    let vols: Vec<String> = c.volumes.unwrap().keys().cloned().collect();
    assert_eq!(vols, ["/data", "/logs"]);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    let hc = c.healthcheck.unwrap();
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost"])
    );
    assert_eq!(hc["Interval"], 5_000_000_000u64);
    assert_eq!(c.shell.unwrap(), ["/bin/ash", "-c"]);
    assert_eq!(c.on_build.unwrap(), ["RUN echo triggered"]);
    assert_eq!(c.user.as_deref(), Some("1000:1000"));
    assert_eq!(c.entrypoint.unwrap(), ["/bin/env"]);
    assert_eq!(
        c.cmd.unwrap(),
        ["sh"],
        "CMD set in the same stage survives ENTRYPOINT"
    );
    // the base's history comes first, then one entry per instruction (none for ONBUILD, as in
    // BuildKit)
    assert!(cfg.history.len() >= 12);
    assert!(
        !cfg.history.iter().any(|h| h
            .created_by
            .as_deref()
            .is_none_or(|c| c.is_empty() || c.starts_with("ONBUILD"))),
        "{:?}",
        cfg.history
    );
    // ENTRYPOINT clears the base's CMD
    e.remfile("FROM busybox:local\nENTRYPOINT [\"/bin/echo\"]\n");
    e.build_ok(&["-t", "t2"]);
    let c = e.config("t2").config.unwrap();
    assert_eq!(c.cmd, None, "ENTRYPOINT clears the inherited CMD");
}

/// Creates (once) an unprivileged user with sub-id ranges for rootless tests.
pub(crate) fn rootless_user() -> &'static str {
    const USER: &str = "pelagos-rl";
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let _ = Command::new("useradd").args(["-m", USER]).status();
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            std::fs::write(f, format!("{text}{USER}:400000:65536\n")).unwrap();
        }
    }
    USER
}

#[test]
#[ignore = "needs root: creates an unprivileged user and runs the build as that user"]
fn rootless_build_as_an_unprivileged_user() {
    let user = rootless_user();
    let e = Env::new();
    e.write("f.txt", "from a rootless build");
    e.remfile("FROM busybox:local\nCOPY f.txt /f.txt\nCOPY --chown=app:staff f.txt /owned\nWORKDIR /made/here\nLABEL rootless=yes\nRUN echo ran > /ran && mkdir /byapp && chown app:staff /byapp && rm /etc/group\n");
    let st = Command::new("chown")
        .args(["-R", user])
        .arg(e.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let home = format!("/home/{user}");
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            user,
            "--regid",
            user,
            "--init-groups",
            "env",
            &format!("HOME={home}"),
            BIN,
        ])
        .args([
            "--store",
            e.store.to_str().unwrap(),
            "--progress",
            "plain",
            "-t",
            "rl",
        ])
        .arg("--output")
        .arg(format!("type=oci,dest={}/rl.tar", e.dir.path().display()))
        .arg(&e.ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the layer records container ids, not the builder's host ids
    let r = e.rootfs("rl");
    assert_eq!(
        std::fs::read_to_string(r.path().join("f.txt")).unwrap(),
        "from a rootless build"
    );
    let m = std::fs::metadata(r.path().join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 50));
    assert_eq!(std::fs::metadata(r.path().join("f.txt")).unwrap().uid(), 0);
    assert!(r.path().join("made/here").is_dir());
    // RUN works rootless: files written by the step belong to container ids, deletions are
    // whiteouts that hide the base's file
    assert_eq!(
        std::fs::read_to_string(r.path().join("ran")).unwrap(),
        "ran\n"
    );
    assert_eq!(std::fs::metadata(r.path().join("ran")).unwrap().uid(), 0);
    let m = std::fs::metadata(r.path().join("byapp")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 50));
    assert!(!r.path().join("etc/group").exists());
    let out = run_tool(
        Command::new("skopeo")
            .args(["inspect"])
            .arg(format!("oci-archive:{}/rl.tar", e.dir.path().display())),
    );
    assert!(out.contains("\"rootless\": \"yes\""), "{out}");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn store_repair_during_a_run_step_leaves_its_scratch_alone() {
    // RUN scratch dirs live in STORE/runs, which `fsck --repair` / gc do not wipe (they clean
    // STORE/tmp entries without a live lease)
    let e = Env::new();
    e.remfile("FROM busybox:local\nRUN sleep 2 && echo made > /made\n");
    let kid = Command::new(BIN)
        .args(["--store", e.store.to_str().unwrap(), "-t", "repaired"])
        .arg(&e.ctx)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runs = e.store.join("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_dir(&runs).is_ok_and(|d| {
        d.flatten()
            .any(|x| x.file_name().to_string_lossy().starts_with("run-"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no run dir appeared in STORE/runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    e.store().fsck(true).unwrap();
    let o = kid.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = e.rootfs("repaired");
    assert_eq!(
        std::fs::read_to_string(r.path().join("made"))
            .unwrap()
            .trim(),
        "made"
    );
}
