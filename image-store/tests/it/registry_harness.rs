//! A real `docker-registry` per test (127.0.0.1, random port, temp storage, killed on drop), a
//! TCP proxy that cuts a connection once, and skopeo helpers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const USER: &str = "tester";
pub const PASSWORD: &str = "pa55-w0rd";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `docker-registry serve`; killed (and its storage removed) on drop.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Registry {
    /// Starts a registry; with `auth`, htpasswd basic auth for [`USER`]/[`PASSWORD`].
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
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to `target` that cuts the first connection whose client→server traffic passes
/// `cut_after` bytes (once); later connections pass untouched.
pub struct CutProxy {
    pub port: u16,
    pub cut_done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// When a [`CutProxy`] cuts.
#[derive(Clone)]
pub enum Cut {
    /// When client→server traffic passes this many bytes (mid-request).
    AfterBytes(u64),
    /// Just before forwarding the Nth (1-based) request that starts with these bytes.
    AtRequest(&'static [u8], usize),
}

impl CutProxy {
    pub fn start(target: u16, cut_after: u64) -> CutProxy {
        Self::start_with(target, Cut::AfterBytes(cut_after))
    }

    pub fn start_with(target: u16, cut: Cut) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut_done = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (cd, st) = (cut_done.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // server → client
                std::thread::spawn(move || pipe(s2, c2, None));
                let (cd, sent, cut) = (cd.clone(), sent.clone(), cut.clone());
                std::thread::spawn(move || pipe(client, server, Some(&(cd, sent, cut))));
            }
        });
        CutProxy {
            port,
            cut_done,
            stop,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Option<&(Arc<AtomicBool>, Arc<AtomicU64>, Cut)>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((done, sent, how)) = cut {
            let hit = match how {
                Cut::AfterBytes(after) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > *after
                }
                Cut::AtRequest(marker, nth) => {
                    buf[..n].starts_with(marker)
                        && sent.fetch_add(1, Ordering::Relaxed) + 1 == *nth as u64
                }
            };
            if hit && !done.swap(true, Ordering::Relaxed) {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Runs skopeo; panics with its output on failure.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is needed");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&skopeo(args)).unwrap()
}
