//! `--ssh ID=KEY[,KEY...]`: Docker's key-file form. For each such flag the build starts a private
//! `ssh-agent -D -a SOCKET` (its socket in a fresh 0700 directory), loads the keys with
//! `ssh-add` (through a pipe, never a copy on disk), and hands the socket to
//! `RUN --mount=type=ssh,id=ID` and to git sources over ssh. The agents are killed when the
//! build ends, successfully or not (and by the kernel if the builder dies: parent-death signal).
//! Passphrase-protected keys are refused up front with a clear error: they need a terminal.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::secrets::{SecretError, SshSpec};

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An unencrypted private key (OpenSSH or PEM).
    Plain,
    /// A passphrase-protected private key.
    Encrypted,
    /// Not a private key.
    NotAKey,
}

/// Classifies private key text (OpenSSH `openssh-key-v1` or PEM / PKCS#8).
pub fn key_kind(text: &[u8]) -> KeyKind {
    const OPENSSH: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    let text = String::from_utf8_lossy(text);
    if let Some(start) = text.find(OPENSSH) {
        let body = &text[start + OPENSSH.len()..];
        let body = body.split("-----END").next().unwrap_or("");
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return KeyKind::NotAKey;
        };
        let magic = b"openssh-key-v1\0";
        let Some(rest) = raw.strip_prefix(magic) else {
            return KeyKind::NotAKey;
        };
        let Some(len) = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            return KeyKind::NotAKey;
        };
        return match rest.get(4..4 + len as usize) {
            Some(b"none") => KeyKind::Plain,
            Some(_) => KeyKind::Encrypted,
            None => KeyKind::NotAKey,
        };
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return KeyKind::Encrypted;
    }
    if text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----") {
        if text.contains("Proc-Type: 4,ENCRYPTED") {
            return KeyKind::Encrypted;
        }
        return KeyKind::Plain;
    }
    KeyKind::NotAKey
}

/// Reads a key file (bounded) and checks it can be loaded without a passphrase; the error is
/// the reason (naming the path, never the content).
pub fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v = Vec::new();
    f.take(crate::secrets::MAX_SECRET_SIZE + 1)
        .read_to_end(&mut v)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match key_kind(&v) {
        KeyKind::Plain => Ok(v),
        KeyKind::Encrypted => Err(format!(
            "{} is passphrase-protected: only unencrypted keys can be loaded (add it to your own ssh-agent and give --ssh ID=$SSH_AUTH_SOCK)",
            path.display()
        )),
        KeyKind::NotAKey => Err(format!("{} is not a private key", path.display())),
    }
}

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

/// The agents started for key-file `--ssh` flags; dropping it kills them and removes their
/// sockets.
#[derive(Default)]
pub struct Agents {
    agents: Vec<Agent>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("pids", &self.pids())
            .finish()
    }
}

impl Agents {
    /// Starts one agent per spec that has key files and points the spec's socket at it.
    pub fn start(specs: &mut [SshSpec]) -> Result<Agents, SecretError> {
        let mut agents = Agents::default();
        for spec in specs.iter_mut().filter(|s| !s.keys.is_empty()) {
            let err = |reason: String| SecretError::Ssh {
                spec: format!(
                    "{}={}",
                    spec.id,
                    spec.keys
                        .iter()
                        .map(|k| k.display().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                reason,
            };
            let dir = tempfile::Builder::new()
                .prefix("pelagos-ssh-")
                .tempdir()
                .map_err(|e| err(format!("agent directory: {e}")))?;
            let sock = dir.path().join("agent.sock");
            let mut c = Command::new("ssh-agent");
            c.arg("-D")
                .arg("-a")
                .arg(&sock)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec
            unsafe {
                c.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::TERM,
                    ))
                    .map_err(std::io::Error::from)
                });
            }
            let child = c
                .spawn()
                .map_err(|e| err(format!("cannot start ssh-agent: {e}")))?;
            agents.agents.push(Agent { child, _dir: dir });
            let agent = agents.agents.last_mut().map(|a| &mut a.child);
            wait_for_socket(&sock, agent).map_err(&err)?;
            for key in &spec.keys {
                let bytes = read_key(key).map_err(&err)?;
                add_key(&sock, &bytes).map_err(|e| err(format!("{}: {e}", key.display())))?;
            }
            spec.socket = sock;
        }
        Ok(agents)
    }

    /// The agents' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.agents.iter().map(|a| a.child.id()).collect()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for a in &mut self.agents {
            let _ = a.child.kill();
            let _ = a.child.wait();
        }
    }
}

fn wait_for_socket(sock: &Path, mut child: Option<&mut Child>) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if sock.exists() {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            return Err(format!("ssh-agent exited ({st})"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("ssh-agent did not create its socket".into())
}

/// `ssh-add -` with the key on stdin, no terminal and no askpass (a passphrase prompt fails).
fn add_key(sock: &Path, key: &[u8]) -> Result<(), String> {
    let mut c = Command::new("ssh-add");
    c.arg("-q")
        .arg("-")
        .env("SSH_AUTH_SOCK", sock)
        .env("SSH_ASKPASS_REQUIRE", "never")
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; a new session has no controlling terminal
    unsafe {
        c.pre_exec(|| {
            rustix::process::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = c.spawn().map_err(|e| format!("cannot run ssh-add: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(key).map_err(|e| format!("ssh-add: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ssh-add: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh-add failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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

    fn listing(sock: &Path) -> String {
        let o = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", sock)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    #[test]
    fn key_kinds() {
        let d = tempfile::tempdir().unwrap();
        let plain = keygen(d.path(), "plain", "");
        let enc = keygen(d.path(), "enc", "s3cret-pass");
        assert_eq!(key_kind(&std::fs::read(&plain).unwrap()), KeyKind::Plain);
        assert_eq!(key_kind(&std::fs::read(&enc).unwrap()), KeyKind::Encrypted);
        assert_eq!(key_kind(b"hello"), KeyKind::NotAKey);
        assert_eq!(
            key_kind(b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"),
            KeyKind::Encrypted
        );
        assert_eq!(
            key_kind(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            KeyKind::Encrypted
        );
        let e = read_key(&enc).unwrap_err();
        assert!(e.contains("passphrase-protected"), "{e}");
        assert!(read_key(&d.path().join("missing")).is_err());
    }

    #[test]
    fn agent_holds_the_keys_and_dies_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let k1 = keygen(d.path(), "k1", "");
        let k2 = keygen(d.path(), "k2", "");
        let mut specs = vec![SshSpec {
            id: "default".into(),
            socket: PathBuf::new(),
            keys: vec![k1, k2],
        }];
        let agents = Agents::start(&mut specs).unwrap();
        let sock = specs[0].socket.clone();
        let l = listing(&sock);
        assert!(l.contains(" k1 ") && l.contains(" k2 "), "{l}");
        let pids = agents.pids();
        assert_eq!(pids.len(), 1);
        let proc_dir = PathBuf::from(format!("/proc/{}", pids[0]));
        assert!(proc_dir.exists());
        drop(agents);
        assert!(!sock.exists(), "socket removed");
        assert!(!proc_dir.exists(), "agent killed and reaped");
    }
}
