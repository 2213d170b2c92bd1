//! Build secrets (`--secret`) and SSH agent forwarding (`--ssh`), BuildKit's way: a secret's
//! value is only ever handed to `RUN --mount=type=secret` (a file on a private tmpfs, or an
//! environment variable of that one step); it is never part of a cache key, a layer, a log line,
//! an error message or a document. Values are read when a step mounts them.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// BuildKit's limit on a secret's size (500 KiB).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// An invalid `--secret` / `--ssh` flag (a usage error) or an unreadable secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A bad `--secret` spec.
    #[error("invalid --secret {spec:?}: {reason}")]
    Secret {
        /// The spec (holds no value: only ids, paths and variable names).
        spec: String,
        /// Why.
        reason: String,
    },
    /// A bad `--ssh` spec.
    #[error("invalid --ssh {spec:?}: {reason}")]
    Ssh {
        /// The spec.
        spec: String,
        /// Why.
        reason: String,
    },
    /// The secret could not be read (its source, never its value, is named).
    #[error("secret {id:?}: {source_name}: {reason}")]
    Read {
        /// The secret id.
        id: String,
        /// `file PATH` or `env VAR`.
        source_name: String,
        /// Why.
        reason: String,
    },
}

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file (`type=file`, `src=PATH`).
    File(PathBuf),
    /// An environment variable of the build (`type=env`, `env=VAR`): its name and the value read
    /// when the flags were validated (`None`: unset).
    Env(String, Option<Vec<u8>>),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(p) => f.debug_tuple("File").field(p).finish(),
            // never the value
            SecretSource::Env(v, _) => f.debug_tuple("Env").field(v).finish(),
        }
    }
}

/// One `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The id a `RUN --mount=type=secret,id=ID` names.
    pub id: String,
    /// Its source.
    pub source: SecretSource,
}

impl SecretSpec {
    /// Parses Docker's `[type=file|env,]id=ID[,src|source=PATH][,env=VAR]`: `type` defaults to
    /// `env` when `env=` is given, else `file`; `id` defaults to the base name of `src` (the
    /// variable's name for `type=env`); with
    /// `type=env`, `src=` names the variable; a lone `id=ID` reads the variable `ID` when it is
    /// set, else the file `ID` (BuildKit's rule). `env` reads the build's environment.
    pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let err = |reason: &str| SecretError::Secret {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (mut typ, mut id, mut src, mut var) = (None, None, None, None);
        for field in spec.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| err("expected KEY=VALUE fields"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "type" => match v {
                    "file" | "env" => typ = Some(v.to_string()),
                    _ => return Err(err("type must be file or env")),
                },
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => var = Some(v.to_string()),
                _ => return Err(err(&format!("unknown key {k:?}"))),
            }
        }
        let src = src.filter(|s| !s.is_empty());
        let var = var.filter(|s| !s.is_empty());
        let id = id
            .filter(|s| !s.is_empty())
            .or_else(|| match (typ.as_deref(), &var) {
                // type=env: the variable's name (env= or src=)
                (_, Some(v)) => Some(v.clone()),
                (Some("env"), None) => src.clone(),
                _ => src
                    .as_deref()
                    .and_then(|s| Path::new(s).file_name())
                    .map(|n| n.to_string_lossy().into_owned()),
            });
        let Some(id) = id else {
            return Err(err("missing id (give id= or src=)"));
        };
        let read = |name: &str| env(name).map(String::into_bytes);
        let source = match (typ.as_deref(), src, var) {
            (Some("file") | None, Some(p), None) => SecretSource::File(p.into()),
            (Some("file"), None, None) => SecretSource::File(id.clone().into()),
            (Some("file"), _, Some(_)) => return Err(err("type=file takes src=, not env=")),
            (Some("env"), Some(v), None) | (_, None, Some(v)) => {
                let value = read(&v);
                SecretSource::Env(v, value)
            }
            (Some("env"), None, None) => SecretSource::Env(id.clone(), read(&id)),
            (_, Some(_), Some(_)) => return Err(err("give either src= or env=, not both")),
            (None, None, None) => match read(&id) {
                Some(v) => SecretSource::Env(id.clone(), Some(v)),
                None => SecretSource::File(id.clone().into()),
            },
            (Some(_), _, _) => return Err(err("type must be file or env")),
        };
        Ok(SecretSpec { id, source })
    }

    /// Reads the value (bounded by [`MAX_SECRET_SIZE`]); errors name the source, not the value.
    pub fn value(&self) -> Result<Vec<u8>, SecretError> {
        let fail = |reason: String| SecretError::Read {
            id: self.id.clone(),
            source_name: match &self.source {
                SecretSource::File(p) => format!("file {}", p.display()),
                SecretSource::Env(v, _) => format!("env {v}"),
            },
            reason,
        };
        let v = match &self.source {
            SecretSource::Env(_, Some(v)) => v.clone(),
            SecretSource::Env(_, None) => return Err(fail("the variable is not set".into())),
            SecretSource::File(p) => {
                let f = std::fs::File::open(p).map_err(|e| fail(e.to_string()))?;
                let mut v = Vec::new();
                f.take(MAX_SECRET_SIZE + 1)
                    .read_to_end(&mut v)
                    .map_err(|e| fail(e.to_string()))?;
                v
            }
        };
        if v.len() as u64 > MAX_SECRET_SIZE {
            return Err(fail(format!("larger than {MAX_SECRET_SIZE} bytes")));
        }
        Ok(v)
    }
}

/// One `--ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// The id a `RUN --mount=type=ssh,id=ID` names (`default` when omitted there).
    pub id: String,
    /// The agent socket (for key files: the private agent's, set when the build starts it).
    pub socket: PathBuf,
    /// Key files to load into a private agent (Docker's `--ssh ID=KEY[,KEY...]`; see
    /// [`crate::ssh`]); empty for a socket.
    pub keys: Vec<PathBuf>,
}

impl SshSpec {
    /// Parses `default|ID[=SOCKET|KEY[,KEY...]]`: without a path the agent is `$SSH_AUTH_SOCK`
    /// (read through `env`); a path is either one agent socket or unencrypted private key files,
    /// which the build loads into a private agent ([`crate::ssh::Agents`]).
    pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let err = |reason: &str| SecretError::Ssh {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (id, paths) = match spec.split_once('=') {
            Some((i, p)) => (i, p),
            None => (spec, ""),
        };
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(err("expected default|ID[=SOCKET|KEY[,KEY...]]"));
        }
        let is_socket = |p: &str| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket());
        let paths: Vec<&str> = paths.split(',').filter(|p| !p.is_empty()).collect();
        let (socket, keys) = match paths.as_slice() {
            [] => {
                let s = env("SSH_AUTH_SOCK")
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err("no path given and SSH_AUTH_SOCK is not set"))?;
                if !is_socket(&s) {
                    return Err(err(&format!("{s} is not a unix socket")));
                }
                (PathBuf::from(s), Vec::new())
            }
            [one] if is_socket(one) => (PathBuf::from(one), Vec::new()),
            many => {
                let mut keys = Vec::new();
                for p in many {
                    if is_socket(p) {
                        return Err(err("give one agent socket or key files, not both"));
                    }
                    crate::ssh::read_key(Path::new(p)).map_err(|r| err(&r))?;
                    keys.push(PathBuf::from(p));
                }
                (PathBuf::new(), keys)
            }
        };
        Ok(SshSpec {
            id: id.to_string(),
            socket,
            keys,
        })
    }
}

/// A secret's content in a private file on a memory file system (`/dev/shm` when it is a tmpfs,
/// else a 0700 dir under `fallback`), removed on drop.
pub(crate) struct SecretFile {
    dir: PathBuf,
    pub(crate) path: PathBuf,
}

impl SecretFile {
    /// Writes `value` into a new 0600 file.
    pub(crate) fn new(value: &[u8], fallback: &Path) -> std::io::Result<SecretFile> {
        use std::io::Write;
        let shm = Path::new("/dev/shm");
        let base = if rustix::fs::statfs(shm).is_ok_and(|s| s.f_type == libc::TMPFS_MAGIC) {
            shm.to_path_buf()
        } else {
            std::fs::create_dir_all(fallback)?;
            fallback.to_path_buf()
        };
        let dir = tempfile::Builder::new()
            .prefix("pelagos-secret-")
            .tempdir_in(base)?
            .keep();
        let path = dir.join("s");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(value)?;
        Ok(SecretFile { dir, path })
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn secret_forms() {
        let e = env(&[("TOKEN", "t0k"), ("X", "x")]);
        let p = |s: &str| SecretSpec::parse(s, &e).unwrap();
        assert_eq!(
            p("id=a,src=/x/b"),
            SecretSpec {
                id: "a".into(),
                source: SecretSource::File("/x/b".into())
            }
        );
        assert_eq!(p("src=/x/b.txt").id, "b.txt");
        assert_eq!(
            p("source=/x/b,type=file").source,
            SecretSource::File("/x/b".into())
        );
        assert_eq!(
            p("id=k,env=TOKEN").source,
            SecretSource::Env("TOKEN".into(), Some(b"t0k".to_vec()))
        );
        assert_eq!(
            p("type=env,id=k,src=TOKEN").source,
            SecretSource::Env("TOKEN".into(), Some(b"t0k".to_vec()))
        );
        assert_eq!(
            p("type=env,id=TOKEN").source,
            SecretSource::Env("TOKEN".into(), Some(b"t0k".to_vec()))
        );
        assert_eq!(p("env=TOKEN").id, "TOKEN");
        assert_eq!(p("type=env,src=TOKEN").id, "TOKEN");
        // a lone id: the variable when set, else the file
        assert_eq!(
            p("id=X").source,
            SecretSource::Env("X".into(), Some(b"x".to_vec()))
        );
        assert_eq!(p("id=f").source, SecretSource::File("f".into()));
        assert_eq!(
            p("id=UNSET,env=NOPE").source,
            SecretSource::Env("NOPE".into(), None)
        );
        for bad in [
            "",
            "id",
            "type=ssh,id=a",
            "id=a,foo=b",
            "type=file",
            "id=a,src=x,env=Y",
            "type=file,id=a,env=Y",
        ] {
            assert!(SecretSpec::parse(bad, &e).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_value() {
        let e = env(&[("TOKEN", "sup3r-s3cret")]);
        let s = SecretSpec::parse("id=k,env=TOKEN", &e).unwrap();
        assert!(!format!("{s:?}").contains("sup3r"));
        assert_eq!(s.value().unwrap(), b"sup3r-s3cret");
        let missing = SecretSpec::parse("id=k,env=NOPE", &e).unwrap();
        let msg = missing.value().unwrap_err().to_string();
        assert_eq!(msg, "secret \"k\": env NOPE: the variable is not set");
    }

    #[test]
    fn file_values_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
        let e = env(&[]);
        let s = SecretSpec::parse(&format!("src={}", small.display()), &e).unwrap();
        assert_eq!(s.value().unwrap(), b"abc");
        let b = SecretSpec::parse(&format!("src={}", big.display()), &e).unwrap();
        assert!(b.value().unwrap_err().to_string().contains("larger than"));
        let m = SecretSpec::parse("id=m,src=/nonexistent/x", &e).unwrap();
        assert!(m.value().is_err());
    }

    #[test]
    fn secret_file_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = SecretFile::new(b"v", dir.path()).unwrap();
        let p = f.path.clone();
        assert_eq!(std::fs::read(&p).unwrap(), b"v");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(f);
        assert!(!p.exists());
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn ssh_forms() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let file = dir.path().join("id_ed25519");
        std::fs::write(&file, "key").unwrap();
        let s = sock.display().to_string();
        let e = env(&[("SSH_AUTH_SOCK", &s)]);
        let d = SshSpec::parse("default", &e).unwrap();
        assert_eq!(
            (d.id.as_str(), d.socket.as_path()),
            ("default", sock.as_path())
        );
        let g = SshSpec::parse(&format!("git={s}"), &env(&[])).unwrap();
        assert_eq!(g.id, "git");
        assert!(SshSpec::parse("default", &env(&[])).is_err());
        // a file that is not a private key
        let m = SshSpec::parse(&format!("k={}", file.display()), &e).unwrap_err();
        assert!(m.to_string().contains("is not a private key"), "{m}");
        assert!(SshSpec::parse(&format!("k={s},{s}"), &e).is_err());
        // key files: Docker's form
        let key = dir.path().join("id");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let k =
            SshSpec::parse(&format!("default={},{}", key.display(), key.display()), &e).unwrap();
        assert_eq!(k.keys, vec![key.clone(), key.clone()]);
        assert!(SshSpec::parse(&format!("k={},{s}", key.display()), &e).is_err());
        assert!(SshSpec::parse("k=/nonexistent/key", &e).is_err());
        assert!(SshSpec::parse("=x", &e).is_err());
    }
}
