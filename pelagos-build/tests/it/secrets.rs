//! `--secret` / `RUN --mount=type=secret` and `--ssh` / `RUN --mount=type=ssh` end to end: the
//! step sees the secret, nothing else does (layers, exported blobs, the store, logs, documents).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

/// Runs the binary like [`Env::build`], with extra environment variables.
fn build_env(e: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--store")
        .arg(&e.store)
        .arg("--progress")
        .arg("plain")
        .args(args)
        .arg(&e.ctx);
    c.env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build failed: {err}");
    err
}

/// Every file under `dir` (recursively), gunzipped when it is gzip.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for ent in walkdir::WalkDir::new(dir) {
        let ent = ent.unwrap();
        if !ent.file_type().is_file() {
            continue;
        }
        let raw = std::fs::read(ent.path()).unwrap();
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut v = Vec::new();
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .read_to_end(&mut v)
                .unwrap();
            v
        } else {
            raw
        };
        out.push((ent.path().display().to_string(), data));
    }
    out
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Paths of every entry of every layer blob of an OCI layout.
fn layer_paths(layout: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, data) in contents(&layout.join("blobs")) {
        let mut a = tar::Archive::new(data.as_slice());
        let Ok(entries) = a.entries() else { continue };
        for en in entries {
            let Ok(en) = en else { break };
            out.push(en.path().unwrap().display().to_string());
        }
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn secrets_are_visible_to_the_step_and_nowhere_else() {
    let e = Env::new();
    let secret = format!("pelagos-FILE-s3cret-{}-q9z", std::process::id());
    let env_secret = format!("pelagos-ENV-s3cret-{}-w7x", std::process::id());
    let src = e.dir.path().join("token.txt");
    std::fs::write(&src, &secret).unwrap();
    e.remfile(
        "FROM busybox:local\n\
         RUN --mount=type=secret,id=tok,required,mode=0440,uid=5 \
         sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok.sha && wc -c < /run/secrets/tok > /tok.len \
         && stat -c '%a %u' /run/secrets/tok > /tok.mode\n\
         RUN --mount=type=secret,id=API,env=MYVAR,required \
         printf %s \"$MYVAR\" | sha256sum | cut -d' ' -f1 > /env.sha && test ! -e /run/secrets/API && echo nofile > /env.nofile\n\
         RUN --mount=type=secret,id=LONE,target=/etc/lone printf %s \"$(cat /etc/lone)\" | wc -c > /lone.len\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent\n",
    );
    let layout = e.dir.path().join("oci");
    let meta = e.dir.path().join("meta.json");
    let args = [
        "-t",
        "sec:test",
        "--secret",
        &format!("id=tok,src={}", src.display()),
        "--secret",
        "id=API,env=API_TOKEN",
        "--secret",
        "id=LONE",
        "--metadata-file",
        meta.to_str().unwrap(),
        "--output",
        &format!("type=oci,dest={},tar=false", layout.display()),
    ];
    let lone = "lone-value-from-env";
    let o = build_env(&e, &args, &[("API_TOKEN", &env_secret), ("LONE", lone)]);
    let err = ok(&o);

    // the step saw the secrets
    let r = e.rootfs("sec:test");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("tok.sha").trim(), sha256_hex(secret.as_bytes()));
    assert_eq!(read("tok.len").trim(), secret.len().to_string());
    assert_eq!(read("tok.mode").trim(), "440 5");
    assert_eq!(read("env.sha").trim(), sha256_hex(env_secret.as_bytes()));
    assert_eq!(read("env.nofile").trim(), "nofile");
    assert_eq!(read("lone.len").trim(), lone.len().to_string());
    assert_eq!(read("absent").trim(), "skipped");

    // and nothing else did
    for s in [secret.as_bytes(), env_secret.as_bytes(), lone.as_bytes()] {
        for (path, data) in contents(&layout)
            .into_iter()
            .chain(contents(&e.store))
            .chain(contents(&meta))
        {
            assert!(!has(&data, s), "secret found in {path}");
        }
        assert!(!has(err.as_bytes(), s), "secret in the log: {err}");
        assert!(!has(&o.stdout, s));
    }
    // (the search does read the layers: the step's hash file is found)
    let digest = sha256_hex(secret.as_bytes());
    assert!(
        contents(&layout.join("blobs"))
            .iter()
            .any(|(_, d)| has(d, digest.as_bytes()))
    );
    let paths = layer_paths(&layout);
    assert!(paths.iter().any(|p| p.ends_with("tok.sha")), "{paths:?}");
    for p in &paths {
        assert!(
            !p.trim_end_matches('/').contains("run/secrets/") && !p.contains("etc/lone"),
            "mount target in a layer: {p}"
        );
    }
    // as in BuildKit, the directories made for the targets stay (empty): /run/secrets
    assert!(
        paths
            .iter()
            .any(|p| p.trim_end_matches('/').ends_with("run/secrets")),
        "{paths:?}"
    );

    // a changed value does not invalidate the cache (BuildKit: only the id is in the key)
    std::fs::write(&src, "another value").unwrap();
    std::fs::remove_dir_all(&layout).unwrap();
    let o = build_env(&e, &args, &[("API_TOKEN", "other"), ("LONE", "x")]);
    let err = ok(&o);
    let cached = err.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert_eq!(cached, 4, "{err}");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn required_secret_missing_fails_with_one_line() {
    let e = Env::new();
    e.remfile("FROM busybox:local\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n");
    let o = build_env(&e, &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("pelagos-build: error: [stage-0 2/2] RUN"),
        "{err}"
    );
    assert!(
        last.ends_with("secret \"tok\" is required but was not given (--secret id=tok,...)"),
        "{err}"
    );
    // an unreadable source is an error naming the file, not a skip
    let o = build_env(&e, &["--secret", "id=tok,src=/nonexistent/tok"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("secret \"tok\": file /nonexistent/tok"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn ssh_agent_socket_is_forwarded() {
    let e = Env::new();
    let sock = e.dir.path().join("agent.sock");
    let other = e.dir.path().join("other.sock");
    let _l1 = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let _l2 = std::os::unix::net::UnixListener::bind(&other).unwrap();
    e.remfile(
        "FROM busybox:local\n\
         RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /ssh.path\n\
         RUN --mount=type=ssh,id=git,target=/tmp/agent.sock,required test -S /tmp/agent.sock \
         && echo \"$SSH_AUTH_SOCK\" > /ssh2\n\
         RUN --mount=type=ssh,id=missing echo \"[$SSH_AUTH_SOCK]\" > /ssh3\n",
    );
    let layout = e.dir.path().join("oci");
    let o = build_env(
        &e,
        &[
            "-t",
            "ssh:test",
            "--ssh",
            "default",
            "--ssh",
            &format!("git={}", other.display()),
            "--output",
            &format!("type=oci,dest={},tar=false", layout.display()),
        ],
        &[("SSH_AUTH_SOCK", sock.to_str().unwrap())],
    );
    ok(&o);
    let r = e.rootfs("ssh:test");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("ssh.path").trim(), "/run/buildkit/ssh_agent.0");
    assert_eq!(read("ssh2").trim(), "/tmp/agent.sock");
    assert_eq!(read("ssh3").trim(), "[]");
    for p in layer_paths(&layout) {
        assert!(
            !p.contains("ssh_agent") && !p.contains("agent.sock"),
            "socket in a layer: {p}"
        );
    }

    // required and not given: exit 1; a non-socket path: usage error (2)
    e.remfile("FROM busybox:local\nRUN --mount=type=ssh,required true\n");
    let o = build_env(&e, &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().last().unwrap().ends_with(
            "ssh agent \"default\" is required but was not given (--ssh default[=SOCKET])"
        ),
        "{err}"
    );
    let key = e.dir.path().join("id_ed25519");
    std::fs::write(&key, "k").unwrap();
    let o = build_env(&e, &["--ssh", &format!("default={}", key.display())], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
#[ignore = "needs root: creates an unprivileged user and runs the build as that user"]
fn rootless_secret_and_ssh() {
    use std::os::unix::fs::PermissionsExt;
    let user = crate::run::rootless_user();
    let e = Env::new();
    let secret = format!("rootless-s3cret-{}", std::process::id());
    let src = e.dir.path().join("tok");
    std::fs::write(&src, &secret).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
    e.remfile(
        "FROM busybox:local\n\
         RUN --mount=type=secret,id=tok,required,uid=5 wc -c < /run/secrets/tok > /len \
         && stat -c %u /run/secrets/tok > /owner\n\
         RUN --mount=type=ssh,required test -S \"$SSH_AUTH_SOCK\" && echo sock > /ssh\n",
    );
    let st = Command::new("chown")
        .args(["-R", user])
        .arg(e.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    // the agent socket belongs to the builder's user, as a real agent's would
    let sock = e.dir.path().join("agent.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(
        Command::new("chown")
            .arg(user)
            .arg(&sock)
            .status()
            .unwrap()
            .success()
    );
    let o = Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--init-groups", "env"])
        .arg(format!("HOME=/home/{user}"))
        .arg(format!("SSH_AUTH_SOCK={}", sock.display()))
        .arg(BIN)
        .args(["--store", e.store.to_str().unwrap(), "--progress", "plain"])
        .args(["-t", "rls", "--ssh", "default", "--secret"])
        .arg(format!("id=tok,src={}", src.display()))
        .arg(&e.ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains(&secret));
    let r = e.rootfs("rls");
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).unwrap();
    assert_eq!(read("len").trim(), secret.len().to_string());
    assert_eq!(read("owner").trim(), "5");
    assert_eq!(read("ssh").trim(), "sock");
    for (path, data) in contents(&e.store) {
        assert!(!has(&data, secret.as_bytes()), "secret found in {path}");
    }
}
