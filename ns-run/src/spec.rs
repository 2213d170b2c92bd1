//! The public description of one run ([`RunSpec`]) and its outcome ([`RunResult`]).
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Everything [`crate::run`] needs to run one command.
///
/// Build it with struct-update syntax so new fields never break callers:
/// `RunSpec { lowers, argv, ..RunSpec::default() }`.
#[derive(Debug, Default)]
pub struct RunSpec {
    /// Read-only lower directories of the overlay, top-most first. May be empty (`FROM scratch`).
    pub lowers: Vec<PathBuf>,
    /// Upper dir to keep the command's changes in. `None`: a fresh one under the work root,
    /// reported in [`RunResult::upper`] and left for the caller to remove. A given dir must be on
    /// the same file system as the work root (overlayfs needs upper and work dir together).
    pub upper: Option<PathBuf>,
    /// Where per-run dirs go (`run-*`). `None`: [`default_work_root`](crate::default_work_root).
    /// Must be on the upper dir's file system when `upper` is given.
    pub work_root: Option<PathBuf>,
    /// The command and its arguments (`argv[0]` is looked up in the command's `PATH` when it
    /// has no `/`). Must not be empty.
    pub argv: Vec<String>,
    /// The command's environment, exactly as given (`K=V`); `PATH` is added when absent, and
    /// `HOME` from the user's passwd entry when absent (as runc does).
    pub env: Vec<String>,
    /// Working directory inside the container (absolute); created (root-owned, 0755) if missing.
    /// `None`: `/`.
    pub workdir: Option<String>,
    /// `UID[:GID]` or `NAME[:GROUP]`, resolved through the rootfs' `/etc/passwd` and
    /// `/etc/group`. `None`: root.
    pub user: Option<String>,
    /// Host name inside the UTS namespace. `None`: `pelagos`.
    pub hostname: Option<String>,
    /// Network mode.
    pub network: Network,
    /// Extra mounts (`RUN --mount`). They never leave a trace in the upper dir.
    pub mounts: Vec<MountSpec>,
    /// Disable the default seccomp profile (`--no-seccomp`).
    pub no_seccomp: bool,
    /// `RUN --security`: the default sandbox, or `insecure` (every capability, no seccomp,
    /// no masked or read-only `/proc` paths, `/sys` writable), BuildKit's
    /// `security.insecure` entitlement.
    pub security: Security,
    /// Resource limits of the command (`--ulimit`), applied before it is executed; later
    /// entries of a kind win. Without a `nofile` entry the soft `RLIMIT_NOFILE` is raised to
    /// the hard one (what a RUN step inherits from buildkitd).
    pub rlimits: Vec<crate::Rlimit>,
    /// Give the command the caller's stdin; otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// Where the command's stdout goes.
    pub stdout: Output,
    /// Where the command's stderr goes.
    pub stderr: Output,
    /// Overlay implementation (native overlayfs, or fuse-overlayfs).
    pub overlay: OverlayDriver,
    /// Remove the run's scratch (overlay work dir) in the background once the command has
    /// ended, instead of before [`crate::run`] returns: a detached process when the caller is
    /// single-threaded (the CLI: disk deletes are slow on some file systems), a thread
    /// otherwise. The run dir stays locked until the removal is done; a removal cut short is
    /// finished by the next [`crate::sweep`].
    pub background_cleanup: bool,
    /// Binary that is re-executed as the container init; it must call
    /// [`init_if_requested`](crate::init_if_requested) first thing in `main`.
    /// `None`: the current executable (`/proc/self/exe`).
    pub helper: Option<PathBuf>,
}

/// Where one of the command's output streams goes.
#[derive(Debug, Default)]
pub enum Output {
    /// The caller's own stream (fd 1 for stdout, fd 2 for stderr).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// The caller's stderr (fd 2); the `ns-run` CLI sends the command's stdout here.
    Stderr,
    /// This file descriptor (a pipe's write end to capture or stream output, a log file…).
    Fd(OwnedFd),
}

/// Network mode of the run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A private network namespace with only loopback (up).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A private namespace with user-mode NAT by `slirp4netns`; the host's 127.0.0.1 is 10.0.2.2.
    Slirp,
    /// A private namespace with user-mode networking by `pasta` (passt); the host's 127.0.0.1 is
    /// the namespace's default gateway.
    Pasta,
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "host" => Ok(Self::Host),
            "slirp" | "slirp4netns" => Ok(Self::Slirp),
            "pasta" => Ok(Self::Pasta),
            other => Err(format!(
                "unknown network mode {other:?} (none, host, slirp, pasta)"
            )),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Host => "host",
            Self::Slirp => "slirp",
            Self::Pasta => "pasta",
        })
    }
}

/// The security mode of a run (`RUN --security`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Docker's default capabilities, seccomp profile, masked and read-only paths.
    #[default]
    Sandbox,
    /// BuildKit's `security.insecure`: every capability the runtime has (bounding, permitted,
    /// effective, inheritable and ambient), no seccomp filter, no masked or read-only paths,
    /// `/sys` mounted read-write.
    Insecure,
}

impl FromStr for Security {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandbox" => Ok(Self::Sandbox),
            "insecure" => Ok(Self::Insecure),
            other => Err(format!(
                "unknown security mode {other:?} (sandbox, insecure)"
            )),
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sandbox => "sandbox",
            Self::Insecure => "insecure",
        })
    }
}

/// Which overlay implementation mounts the root file system.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlayDriver {
    /// Native overlayfs; when rootless and it fails, fuse-overlayfs.
    #[default]
    Auto,
    /// Native overlayfs only.
    Native,
    /// fuse-overlayfs only.
    Fuse,
}

/// One `RUN --mount`. Targets are absolute container paths; missing targets are created in a
/// private layer above the lowers, never in the upper dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    /// Bind a host file or directory (`type=bind`, also `from=` a stage/image the caller
    /// materialised). Read-only unless `readonly` is false (`rw`: writes go to the source).
    Bind {
        /// Host path.
        source: PathBuf,
        /// Container path.
        target: String,
        /// Mount read-only.
        readonly: bool,
    },
    /// A persistent cache directory the caller provides (`type=cache`), bound read-write.
    Cache {
        /// Host directory.
        source: PathBuf,
        /// Container path.
        target: String,
    },
    /// A fresh tmpfs (`type=tmpfs`).
    Tmpfs {
        /// Container path.
        target: String,
        /// Size limit in bytes (`None`: the kernel default, half of RAM).
        size: Option<u64>,
    },
    /// A secret file (`type=secret`): its content is copied to a private tmpfs (never to disk
    /// inside the run) and bound read-only at `target` with this mode and owner.
    Secret {
        /// Host file with the secret's content.
        source: PathBuf,
        /// Container path (BuildKit's default is `/run/secrets/<id>`).
        target: String,
        /// File mode (BuildKit's default 0400).
        mode: u32,
        /// Owner uid inside the container.
        uid: u32,
        /// Owner gid inside the container.
        gid: u32,
    },
}

impl MountSpec {
    /// The container path this mount covers.
    pub fn target(&self) -> &str {
        match self {
            Self::Bind { target, .. }
            | Self::Cache { target, .. }
            | Self::Tmpfs { target, .. }
            | Self::Secret { target, .. } => target,
        }
    }
}

/// One line of a user-namespace id map: container ids `container_id..container_id+size` are
/// host ids `host_id..host_id+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the container.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// Number of ids.
    pub size: u32,
}

impl IdMapping {
    /// The container id of host id `host` under `map` (a run's `uid_map` or `gid_map`), or
    /// `None` when unmapped. With an empty map (run as root) ids are the same.
    pub fn to_container(map: &[IdMapping], host: u32) -> Option<u32> {
        if map.is_empty() {
            return Some(host);
        }
        map.iter().find_map(|m| {
            let off = host.checked_sub(m.host_id)?;
            (off < m.size).then(|| m.container_id + off)
        })
    }
}

/// The outcome of a run whose command was started. Printed by the CLI as
/// `{"version":1,"exit_code":0,"upper":"/var/lib/pelagos/tmp/run-1234-0/upper"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Document version, 1.
    pub version: u32,
    /// The command's exit status; 128+N when it was killed by signal N.
    pub exit_code: i32,
    /// The upper dir holding the command's changes (overlayfs format: whiteouts are 0/0 char
    /// devices or, rootless, `user.overlay.*` xattrs).
    pub upper: PathBuf,
    /// Rootless runs: the uid map used, so the caller can turn host owners of files in the
    /// upper dir back into container ids. Empty when run as root (no user namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMapping>,
    /// Rootless runs: the gid map used (see `uid_map`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMapping>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_map_back_to_container_ids() {
        let map = [
            IdMapping {
                container_id: 0,
                host_id: 1000,
                size: 1,
            },
            IdMapping {
                container_id: 1,
                host_id: 100_000,
                size: 65536,
            },
        ];
        assert_eq!(IdMapping::to_container(&map, 1000), Some(0));
        assert_eq!(IdMapping::to_container(&map, 100_999), Some(1000));
        assert_eq!(IdMapping::to_container(&map, 999), None);
        assert_eq!(IdMapping::to_container(&map, 165_536), None);
        assert_eq!(IdMapping::to_container(&[], 42), Some(42));
    }

    #[test]
    fn network_names_round_trip() {
        for n in [Network::None, Network::Host, Network::Slirp, Network::Pasta] {
            assert_eq!(n.to_string().parse::<Network>(), Ok(n));
        }
        assert!("bridge".parse::<Network>().is_err());
    }
}
