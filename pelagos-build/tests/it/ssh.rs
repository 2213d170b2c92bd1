//! `--ssh ID=KEYFILE[,KEYFILE]`: the keys are loaded into a private ssh-agent for the build, a
//! `RUN --mount=type=ssh` step lists them with the real `ssh-add -l`, the key material lands in
//! no blob, and the agent is gone when the build ends (also when it fails).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

fn keygen(dir: &Path, name: &str, pass: &str) -> PathBuf {
    let p = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", pass, "-C", name, "-f"])
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    p
}

/// `SHA256:…` of a public key.
fn fingerprint(key: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.split_whitespace().nth(1).unwrap().to_string()
}

/// The host's `ssh-add` with its libraries and loader, copied into `dir` (the busybox base has
/// no ssh client): run as `/tools/ld.so --library-path /tools/lib /tools/ssh-add`.
fn host_ssh_add(dir: &Path) {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).unwrap();
    let o = Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        let Some(p) = path else { continue };
        if line.contains("ld-linux") {
            std::fs::copy(&p, dir.join("ld.so")).unwrap();
        } else {
            std::fs::copy(&p, dir.join("lib").join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Builds with TMPDIR set to `tmp` (where the private agents put their sockets).
fn build_in(e: &Env, tmp: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--store")
        .arg(&e.store)
        .arg("--progress")
        .arg("plain")
        .args(args)
        .arg(&e.ctx)
        .env("TMPDIR", tmp)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
}

/// Processes whose command line mentions `needle` (the agents of one build).
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && cmd.contains("ssh-agent") {
            out.push(cmd);
        }
    }
    out
}

/// Every file under `dir`, gunzipped when it is gzip.
fn blobs(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for ent in walkdir::WalkDir::new(dir) {
        let ent = ent.unwrap();
        if !ent.file_type().is_file() {
            continue;
        }
        let raw = std::fs::read(ent.path()).unwrap();
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut v = Vec::new();
            let _ = flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut v);
            out.push(v);
        }
        out.push(raw);
    }
    out
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn ssh_key_files_are_served_by_a_private_agent_for_the_build_only() {
    let e = Env::new();
    let keys = e.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let k1 = keygen(&keys, "first-key", "");
    let k2 = keygen(&keys, "second-key", "");
    let tmp = e.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    host_ssh_add(&e.ctx.join("tools"));
    e.remfile(
        "FROM busybox:local\n\
         RUN --mount=type=ssh --mount=type=bind,source=tools,target=/tools \
         test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock.txt && \
         /tools/ld.so --library-path /tools/lib /tools/ssh-add -l > /keys.txt\n",
    );
    let spec1 = format!("default={},{}", k1.display(), k2.display());
    let o = build_in(&e, &tmp, &["-t", "s:1", "--ssh", &spec1]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let r = e.rootfs("s:1");
    let listed = std::fs::read_to_string(r.path().join("keys.txt")).unwrap();
    assert!(listed.contains(&fingerprint(&k1)), "{listed}");
    assert!(listed.contains(&fingerprint(&k2)), "{listed}");
    assert_eq!(
        std::fs::read_to_string(r.path().join("sock.txt")).unwrap(),
        "/run/buildkit/ssh_agent.0\n"
    );
    // the key material is in no blob of the store (layers, configs, cache records)
    let secret = std::fs::read_to_string(&k1).unwrap();
    let body = secret.lines().nth(2).unwrap().to_string();
    assert!(body.len() > 40);
    for b in blobs(&e.store) {
        assert!(!b.windows(body.len()).any(|w| w == body.as_bytes()));
    }
    // the agent is gone, its socket directory too
    assert!(
        processes_with(&tmp.display().to_string()).is_empty(),
        "{:?}",
        processes_with(&tmp.display().to_string())
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // also when the build fails
    e.remfile("FROM busybox:local\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && exit 3\n");
    let o = build_in(&e, &tmp, &["--ssh", &format!("default={}", k1.display())]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(processes_with(&tmp.display().to_string()).is_empty());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // a passphrase-protected key: a usage error that says so, no agent started
    let locked = keygen(&keys, "locked-key", "pass phrase");
    let o = build_in(
        &e,
        &tmp,
        &["--ssh", &format!("default={}", locked.display())],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("passphrase-protected"), "{err}");
    assert!(err.contains(&locked.display().to_string()), "{err}");
}
