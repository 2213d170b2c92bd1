//! Helpers shared by the integration tests of several workspace crates (a dev-dependency only,
//! never published): a free 127.0.0.1 port, and a real `docker-registry` per test on
//! 127.0.0.1 (random port, temp storage, optional htpasswd basic auth, killed on drop).
//!
//! Everything here panics on failure: it is test scaffolding, not library code.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user of a registry started with auth.
pub const USER: &str = "tester";
/// The password of [`USER`].
pub const PASSWORD: &str = "pa55-w0rd";

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `docker-registry serve` (deletes enabled); killed, and its storage removed, on drop.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Registry {
    /// Starts a registry; with `auth`, htpasswd basic auth for [`USER`]/[`PASSWORD`]. Needs
    /// `docker-registry` (and `htpasswd` for auth) on the PATH.
    pub fn start(auth: bool) -> Registry {
        for _ in 0..5 {
            if let Some(r) = Self::try_start(auth) {
                return r;
            }
        }
        panic!("docker-registry did not start");
    }

    fn try_start(auth: bool) -> Option<Registry> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut auth_cfg = String::new();
        if auth {
            let ht = dir.path().join("htpasswd");
            let st = Command::new("htpasswd")
                .args(["-Bbc", ht.to_str().unwrap(), USER, PASSWORD])
                .stderr(Stdio::null())
                .status()
                .expect("htpasswd (apache2-utils) is needed");
            assert!(st.success());
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                ht.display()
            );
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth_cfg}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is needed");
        let mut r = Registry {
            child,
            _dir: dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = r.child.try_wait() {
                return None; // port taken meanwhile: try another
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/name`: a reference to `name` in this registry.
    pub fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.addr())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
