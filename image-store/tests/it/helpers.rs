//! Temp stores, running the binary, fixture tars.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_image-store"));
    c.env_remove("PELAGOS_STORE")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Run the binary as this uid/gid (via setpriv), for rootless tests.
    pub user: Option<u32>,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        TestStore {
            dir,
            root,
            user: None,
        }
    }

    pub fn at(root: &Path) -> TestStore {
        TestStore {
            dir: tempfile::tempdir().unwrap(),
            root: root.to_path_buf(),
            user: None,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match self.user {
            None => bin(),
            Some(id) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={id}"))
                    .arg(format!("--regid={id}"))
                    .arg("--clear-groups")
                    .arg(env!("CARGO_BIN_EXE_image-store"))
                    .env_remove("PELAGOS_STORE")
                    .env_remove("SOURCE_DATE_EPOCH");
                c
            }
        };
        c.arg("--store").arg(&self.root).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the child may fail (and close stdin) before reading everything
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn fsck_clean(&self) {
        let v = self.json(&["fsck"]);
        assert_eq!(v["ok"], true, "{v:#}");
        assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v:#}");
    }
}

/// The deterministic busybox rootfs tar from `scripts/make-base`, built once per test run.
pub fn busybox_tar() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = dir.join("busybox.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-base");
        let st = Command::new(script).arg(&out).status().unwrap();
        assert!(st.success(), "scripts/make-base failed");
        out
    })
}

/// A tar of (path, content) regular files (mode 0644, mtime 0), dirs for paths ending in `/`.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if p.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, p, std::io::empty()).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // raw name: lets tests build hostile archives (`..`) the builder API refuses
            let name = &mut h.as_old_mut().name;
            name[..p.len()].copy_from_slice(p.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Imports busybox as `busybox:latest` with `CMD ["sh"]`.
pub fn import_busybox(s: &TestStore) -> Value {
    s.json(&[
        "import",
        busybox_tar().to_str().unwrap(),
        "-t",
        "busybox",
        "--change",
        r#"CMD ["sh"]"#,
    ])
}

pub fn run_tool(cmd: &str, args: &[&str]) -> Output {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}
