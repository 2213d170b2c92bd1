//! Network modes; only servers on this machine's 127.0.0.1 are contacted.
use super::{sh, work_root};
use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-shot-per-connection HTTP server on 127.0.0.1 answering "pong".
fn server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\npong");
        }
    });
    port
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn none_has_only_loopback_and_cannot_reach_the_host() {
    let w = work_root();
    let port = server();
    let r = sh(
        w.path(),
        &[],
        &format!(
            "wget -q -T 2 -O - http://127.0.0.1:{port}/ 2>/dev/null || echo unreachable; ls /sys/class/net"
        ),
    );
    assert_eq!(r.stderr, "unreachable\nlo\n");
}

#[test]
#[ignore = "needs root: namespaces and overlayfs"]
fn host_network_reaches_host_loopback() {
    let w = work_root();
    let port = server();
    let r = sh(
        w.path(),
        &["--network", "host"],
        &format!("wget -q -O - http://127.0.0.1:{port}/"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "pong");
}

#[test]
#[ignore = "needs root: namespaces, slirp4netns"]
fn slirp_reaches_host_loopback_through_10_0_2_2() {
    let w = work_root();
    let port = server();
    let r = sh(
        w.path(),
        &["--network", "slirp"],
        &format!("wget -q -O - http://10.0.2.2:{port}/"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "pong");
}

#[test]
#[ignore = "needs root: namespaces, pasta"]
fn pasta_reaches_host_loopback_through_the_gateway() {
    let w = work_root();
    let port = server();
    let r = sh(
        w.path(),
        &["--network", "pasta"],
        &format!("gw=$(ip route | awk '/^default/ {{print $3}}'); wget -q -O - http://$gw:{port}/"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "pong");
}
