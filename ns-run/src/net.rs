//! Network plumbing: loopback, the generated `/etc/hosts` and `/etc/resolv.conf`, and the
//! user-mode NAT helpers (slirp4netns, pasta) started from the caller's side.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use crate::spec::Network;

/// Brings `lo` up in the current network namespace.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned here.
    let sock: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq passed.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw const req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `/etc/hosts` for the container.
pub(crate) fn hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// `/etc/resolv.conf` for the container, from the host's.
pub(crate) fn resolv(host: &str, network: Network) -> String {
    match network {
        Network::Host => host.to_string(),
        Network::Slirp => {
            let mut s = String::from("nameserver 10.0.2.3\n");
            for l in host
                .lines()
                .filter(|l| !l.trim_start().starts_with("nameserver"))
            {
                s.push_str(l);
                s.push('\n');
            }
            s
        }
        Network::None | Network::Pasta => {
            let mut s = String::new();
            for l in host.lines() {
                let mut w = l.split_whitespace();
                if w.next() == Some("nameserver")
                    && w.next()
                        .is_some_and(|a| a.starts_with("127.") || a == "::1")
                {
                    continue;
                }
                s.push_str(l);
                s.push('\n');
            }
            // no nameserver left: BuildKit's (libnetwork's) defaults, IPv6 ones included
            if !s
                .lines()
                .any(|l| l.split_whitespace().next() == Some("nameserver"))
            {
                for ns in DEFAULT_NAMESERVERS {
                    s.push_str("nameserver ");
                    s.push_str(ns);
                    s.push('\n');
                }
            }
            s
        }
    }
}

/// The name servers BuildKit writes when none of the host's is left after filtering.
const DEFAULT_NAMESERVERS: [&str; 4] = [
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
];

/// A running user-mode network helper, stopped on drop.
pub(crate) struct NetHelper {
    child: Child,
    tool: &'static str,
}

impl Drop for NetHelper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn net_err(tool: &'static str, message: String) -> crate::RunError {
    crate::RunError::Network { tool, message }
}

/// Starts slirp4netns or pasta for the network namespace of `pid` and waits until it is ready.
pub(crate) fn start(
    network: Network,
    pid: i32,
    rootless: bool,
) -> Result<Option<NetHelper>, crate::RunError> {
    match network {
        Network::None | Network::Host => Ok(None),
        Network::Slirp => {
            let tool = "slirp4netns";
            let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| net_err(tool, format!("pipe: {e}")))?;
            let mut cmd = Command::new(tool);
            cmd.arg("--configure")
                .arg("--mtu=65520")
                .arg(format!("--ready-fd={}", 3));
            if rootless {
                cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
            }
            cmd.arg(pid.to_string()).arg("tap0");
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let w = ready_w.as_raw_fd();
            // SAFETY: only dup2 and prctl (async-signal-safe) between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    // Die with the run (ns-run killed): no orphaned helper.
                    libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    );
                    if libc::dup2(w, 3) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .map_err(|e| net_err(tool, format!("spawn: {e}")))?;
            drop(ready_w);
            let mut helper = NetHelper { child, tool };
            let mut b = [0u8; 1];
            let n = rustix::io::read(&ready_r, &mut b).unwrap_or(0);
            if n == 0 {
                let _ = helper.child.kill();
                let mut msg = String::new();
                if let Some(mut e) = helper.child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut msg);
                }
                return Err(net_err(tool, format!("not ready: {}", msg.trim())));
            }
            Ok(Some(helper))
        }
        Network::Pasta => {
            let tool = "pasta";
            let mut cmd = Command::new(tool);
            cmd.arg("--config-net").arg("--foreground").arg("--quiet");
            // No port forwarding from the host into the namespace or back.
            cmd.args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"]);
            let ns_fd;
            if rootless {
                // pasta joins the namespace's user namespace, which this user owns.
                cmd.arg(pid.to_string());
                // SAFETY: only prctl (async-signal-safe) between fork and exec.
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                        libc::prctl(
                            libc::PR_SET_PDEATHSIG,
                            libc::SIGKILL as libc::c_ulong,
                            0,
                            0,
                            0,
                        );
                        Ok(())
                    });
                }
            } else {
                // As root pasta drops capabilities before joining, so it may not open another
                // root process's /proc/PID/ns/net: hand it an open descriptor instead.
                ns_fd = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                    .map_err(|e| net_err(tool, format!("open netns: {e}")))?;
                let raw = ns_fd.as_raw_fd();
                cmd.args(["--runas", "0", "--netns", "/proc/self/fd/3"]);
                // SAFETY: only dup2 and prctl (async-signal-safe) between fork and exec.
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                        libc::prctl(
                            libc::PR_SET_PDEATHSIG,
                            libc::SIGKILL as libc::c_ulong,
                            0,
                            0,
                            0,
                        );
                        if libc::dup2(raw, 3) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd
                .spawn()
                .map_err(|e| net_err(tool, format!("spawn: {e}")))?;
            let mut helper = NetHelper { child, tool };
            // pasta has no readiness fd in the foreground: wait until the namespace has a
            // default route (pasta configures it before serving).
            wait_pasta(&mut helper, pid)?;
            Ok(Some(helper))
        }
    }
}

fn wait_pasta(helper: &mut NetHelper, pid: i32) -> Result<(), crate::RunError> {
    let path = format!("/proc/{pid}/net/route");
    for _ in 0..2000 {
        if let Ok(Some(st)) = helper.child.try_wait() {
            let mut msg = String::new();
            if let Some(mut e) = helper.child.stderr.take() {
                let _ = io::Read::read_to_string(&mut e, &mut msg);
            }
            return Err(net_err(
                helper.tool,
                format!("exited with {st}: {}", msg.trim()),
            ));
        }
        let routed = std::fs::read_to_string(&path).is_ok_and(|s| {
            s.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
        });
        if routed {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(net_err(
        helper.tool,
        "timed out waiting for the namespace's route".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_drops_loopback_nameservers() {
        let host = "search x\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n";
        assert_eq!(
            resolv(host, Network::None),
            "search x\nnameserver 10.1.1.1\n"
        );
        assert_eq!(resolv(host, Network::Host), host);
        // nothing left: BuildKit's defaults
        assert_eq!(
            resolv(
                "search x\nnameserver 127.0.0.53\nnameserver ::1\n",
                Network::Pasta
            ),
            "search x\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
             nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
        );
        assert_eq!(
            resolv("", Network::None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n\
             nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
        );
        assert_eq!(
            resolv(host, Network::Slirp),
            "nameserver 10.0.2.3\nsearch x\n"
        );
    }

    #[test]
    fn hosts_names_the_host() {
        assert!(hosts("h1").starts_with("127.0.0.1\tlocalhost h1\n"));
    }
}
