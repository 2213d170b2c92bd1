//! `/sys/fs/cgroup` as runc mounts BuildKit's `cgroup` mount without a cgroup namespace: the
//! run's own cgroups (the caller's: ns-run makes none), read-only. cgroup v1 (also hybrid): a
//! tmpfs holding one bind per v1 hierarchy (named after its mount point, with a symlink per
//! controller of a co-mounted one such as `cpu,cpuacct`); v2 only: a bind of the own cgroup.
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

/// One bind under the cgroup tmpfs: `source` (a host cgroup dir) at `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupBind {
    pub source: PathBuf,
    /// The entry name under `/sys/fs/cgroup` (`None`: v2, bound at `/sys/fs/cgroup` itself).
    pub name: Option<String>,
}

/// The binds for this process from its `/proc/self/mountinfo` and `/proc/self/cgroup` texts.
pub(crate) fn plan(mountinfo: &str, cgroup: &str) -> Vec<CgroupBind> {
    // controllers (sorted, comma-joined) -> path; "" for v2
    let paths: Vec<(String, &str)> = cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            let mut ctl: Vec<&str> = f.next()?.split(',').collect();
            ctl.sort_unstable();
            Some((ctl.join(","), f.next()?))
        })
        .collect();
    let path_of = |ctl: &str| paths.iter().find(|(c, _)| c == ctl).map(|(_, p)| *p);
    let mut v1 = Vec::new();
    let mut v2 = None;
    let mut seen = std::collections::HashSet::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype), Some(sopts)) =
            (f.get(3), f.get(4), f.get(sep + 1), f.get(sep + 3))
        else {
            continue;
        };
        let rel = |path: &str| -> PathBuf {
            let p = Path::new(point);
            match Path::new(path).strip_prefix(root) {
                Ok(r) if !r.as_os_str().is_empty() => p.join(r),
                _ => p.to_path_buf(),
            }
        };
        match *fstype {
            "cgroup" => {
                let mut ctl: Vec<&str> = sopts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "noprefix" | "xattr" | "clone_children")
                            && !o.starts_with("release_agent=")
                            && !o.starts_with("cpuset_v2_mode")
                    })
                    .collect();
                ctl.sort_unstable();
                let key = ctl.join(",");
                // a hierarchy mounted twice: the first mount, as runc
                if !seen.insert(key.clone()) {
                    continue;
                }
                let (Some(path), Some(name)) = (
                    path_of(&key),
                    Path::new(point).file_name().and_then(|n| n.to_str()),
                ) else {
                    continue;
                };
                v1.push(CgroupBind {
                    source: rel(path),
                    name: Some(name.to_string()),
                });
            }
            "cgroup2" => {
                if let Some(path) = path_of("") {
                    v2 = Some(CgroupBind {
                        source: rel(path),
                        name: None,
                    });
                }
            }
            _ => {}
        }
    }
    // hybrid hosts: the v1 hierarchies only, as runc
    if v1.is_empty() {
        v2.into_iter().collect()
    } else {
        v1
    }
}

/// Mounts the run's cgroups at `target` (the fresh sysfs's `fs/cgroup`), read-only unless
/// `writable`. Best effort: a hierarchy that cannot be bound is left out.
pub(crate) fn mount(target: &Path, writable: bool) {
    let (Ok(info), Ok(cg)) = (
        std::fs::read_to_string("/proc/self/mountinfo"),
        std::fs::read_to_string("/proc/self/cgroup"),
    ) else {
        return;
    };
    let binds = plan(&info, &cg);
    let nx = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let bind = |src: &Path, dst: &Path| -> nix::Result<()> {
        nix::mount::mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | nx;
        if !writable {
            flags |= MsFlags::MS_RDONLY;
        }
        nix::mount::mount(None::<&str>, dst, None::<&str>, flags, None::<&str>)
    };
    match binds.as_slice() {
        [] => {}
        [CgroupBind { source, name: None }] => {
            let _ = bind(source, target);
        }
        _ => {
            if nix::mount::mount(Some("tmpfs"), target, Some("tmpfs"), nx, Some("mode=755"))
                .is_err()
            {
                return;
            }
            for b in &binds {
                let Some(name) = &b.name else { continue };
                let dst = target.join(name);
                if std::fs::create_dir(&dst).is_err() {
                    continue;
                }
                if bind(&b.source, &dst).is_err() {
                    let _ = std::fs::remove_dir(&dst);
                    continue;
                }
                // co-mounted controllers: `cpu -> cpu,cpuacct`
                for c in name.split(',').filter(|c| *c != name) {
                    let _ = std::os::unix::fs::symlink(name, target.join(c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        36 31 0:33 /outer /sys/fs/cgroup/pids rw,relatime shared:5 - cgroup cgroup rw,pids\n\
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

    #[test]
    fn v1_hierarchies_with_the_own_paths() {
        let cg = "9:name=systemd:/\n8:pids:/outer/in\n4:memory:/api/x\n2:cpuacct,cpu:/\n0::/\n";
        let b = plan(HYBRID, cg);
        let shown: Vec<(String, String)> = b
            .iter()
            .map(|b| (b.name.clone().unwrap(), b.source.display().to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("cpu,cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct".into()),
                ("memory".into(), "/sys/fs/cgroup/memory/api/x".into()),
                ("pids".into(), "/sys/fs/cgroup/pids/in".into()),
                ("systemd".into(), "/sys/fs/cgroup/systemd".into()),
            ]
        );
    }

    #[test]
    fn v2_only_binds_the_own_cgroup() {
        let info = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            plan(info, "0::/user.slice/build\n"),
            [CgroupBind {
                source: PathBuf::from("/sys/fs/cgroup/user.slice/build"),
                name: None
            }]
        );
        assert!(plan("", "0::/\n").is_empty());
    }
}
