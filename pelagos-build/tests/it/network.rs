//! RUN networking: BuildKit's `default` (the host's network namespace), `--network none`, and
//! `RUN --network=none|host|default` per step. Only 127.0.0.1 is ever contacted.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::*;

/// A tiny HTTP server on 127.0.0.1 answering every request (or half-closed connection) with
/// `pong`; counts requests.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let mut req = Vec::new();
                        let mut buf = [0u8; 512];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match c.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        h.fetch_add(1, Ordering::SeqCst);
                        let _ = c.write_all(
                            b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\npong\n",
                        );
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Server { port, hits, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn run_reaches_loopback_by_default_but_not_with_network_none() {
    let srv = Server::start();
    let e = Env::new();
    // busybox nc (its static wget crashes looking up the `http` service without NSS files)
    let get = format!(
        "echo | nc -w 5 127.0.0.1 {} > /got && grep -q pong /got",
        srv.port
    );
    // default: BuildKit's, the host's network namespace
    e.remfile(&format!("FROM busybox:local\nRUN {get}\n"));
    e.build_ok(&["-t", "net:default"]);
    let r = e.rootfs("net:default");
    assert!(
        std::fs::read_to_string(r.path().join("got"))
            .unwrap()
            .ends_with("\r\n\r\npong\n")
    );
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    // --network host is the same network
    e.build_ok(&["--network", "host", "--no-cache", "-t", "net:host"]);
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);

    // --network none: only the step's own loopback (nothing listens there)
    let o = e.build(&["--network", "none", "-t", "net:none"]);
    assert!(
        !o.status.success(),
        "a RUN reached the host with --network none"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did not complete successfully"), "{err}");

    // RUN --network=none wins over the default
    e.remfile(&format!("FROM busybox:local\nRUN --network=none {get}\n"));
    let o = e.build(&[]);
    assert!(!o.status.success(), "RUN --network=none reached the host");
    // RUN --network=default follows the flag: none here
    e.remfile(&format!(
        "FROM busybox:local\nRUN --network=default {get}\n"
    ));
    assert!(!e.build(&["--network", "none"]).status.success());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);
    // RUN --network=host wins over --network none
    e.remfile(&format!("FROM busybox:local\nRUN --network=host {get}\n"));
    e.build_ok(&["--network", "none", "-t", "net:step-host"]);
    assert_eq!(srv.hits.load(Ordering::SeqCst), 3);
}
