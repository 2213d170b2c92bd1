//! A real `docker-registry` per test (from `test-support`: 127.0.0.1, random port, temp storage,
//! killed on drop), a TCP proxy that cuts a connection once, and skopeo helpers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use test_support::{PASSWORD, Registry, USER, free_port};

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

/// A `docker-registry` serving HTTPS only, with a self-signed certificate (made by `openssl`)
/// for `host`, on `host` and a random port; killed on drop.
pub struct TlsRegistry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub addr: String,
}

impl TlsRegistry {
    pub fn start(host: &str) -> TlsRegistry {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={host}")])
            .args(["-addext", &format!("subjectAltName=IP:{host}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is needed");
        assert!(st.success());
        for _ in 0..5 {
            let port = TcpListener::bind((host, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let cfg = dir.path().join("config.yml");
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: {host}:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("data").display(),
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("docker-registry is needed");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if TcpStream::connect((host, port)).is_ok() {
                    return TlsRegistry {
                        child,
                        _dir: dir,
                        addr: format!("{host}:{port}"),
                    };
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry with TLS did not start");
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
