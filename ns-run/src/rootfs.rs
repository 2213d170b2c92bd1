//! The container's file system: overlay over the lowers plus a private top layer holding the
//! runtime's mount targets, /proc, /dev, /sys, hosts/resolv.conf, `RUN --mount`s, pivot_root.
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::init::{ChildError, Ctx, InitConfig};
use crate::layers::{self, Kind};
use crate::spec::{MountSpec, Network};
use crate::user::{self, ExecUser};

/// What the command child needs after the file system is ready.
pub(crate) struct Prepared {
    pub env: Vec<String>,
    pub user: ExecUser,
    pub workdir: String,
    pub last_cap: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths containerd's default spec (BuildKit's) masks in /proc and /sys (`/dev/null` over
/// files, an empty read-only tmpfs over dirs): (`true` = under /sys, else /proc, path).
const MASKED: &[(bool, &str)] = &[
    (false, "asound"),
    (false, "acpi"),
    (false, "kcore"),
    (false, "keys"),
    (false, "latency_stats"),
    (false, "timer_list"),
    (false, "timer_stats"),
    (false, "sched_debug"),
    (false, "scsi"),
    (true, "firmware"),
    (true, "devices/virtual/powercap"),
];
/// Paths containerd's default spec makes read-only in /proc.
const READONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];

pub(crate) fn mnt(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    stage: &str,
) -> Result<(), ChildError> {
    mount(src, dst, fstype, flags, data).ctx(stage, dst.display())
}

/// Mounts a tmpfs at `dst`.
fn tmpfs(dst: &Path, flags: MsFlags, data: Option<&str>, stage: &str) -> Result<(), ChildError> {
    mnt(
        Some(Path::new("tmpfs")),
        dst,
        Some("tmpfs"),
        flags,
        data,
        stage,
    )
}

/// Binds `src` (recursively) at `dst`.
pub(crate) fn bind(src: &Path, dst: &Path, stage: &str) -> Result<(), ChildError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mnt(Some(src), dst, None, flags, None, stage)
}

/// Remounts the bind mount at `dst` read-only, keeping the flags the kernel may have locked.
fn remount_ro(dst: &Path, stage: &str) -> Result<(), ChildError> {
    remount_ro_with(dst, MsFlags::empty(), stage)
}

/// [`remount_ro`] adding `extra` flags.
fn remount_ro_with(dst: &Path, extra: MsFlags, stage: &str) -> Result<(), ChildError> {
    let st = nix::sys::statvfs::statvfs(dst).ctx(stage, dst.display())?;
    let f = st.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | extra;
    for (sv, ms) in [
        (nix::sys::statvfs::FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (nix::sys::statvfs::FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (nix::sys::statvfs::FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (nix::sys::statvfs::FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (
            nix::sys::statvfs::FsFlags::ST_NODIRATIME,
            MsFlags::MS_NODIRATIME,
        ),
        (
            nix::sys::statvfs::FsFlags::ST_RELATIME,
            MsFlags::MS_RELATIME,
        ),
    ] {
        if f.contains(sv) {
            flags |= ms;
        }
    }
    mnt(None, dst, None, flags, None, stage)
}

/// Sets up the whole file system and pivots into it.
pub(crate) fn setup(cfg: &InitConfig) -> Result<Prepared, ChildError> {
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "make mounts private",
    )?;
    nix::unistd::sethostname(&cfg.hostname).ctx("sethostname", &cfg.hostname)?;
    if cfg.network != Network::Host {
        crate::net::loopback_up().ctx("bring up loopback", "lo")?;
    }
    let last_cap = crate::caps::last_cap();
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();

    // Private scratch tmpfs: the extra layer, the mount point of the root, generated files.
    let scratch = &cfg.scratch;
    tmpfs(
        scratch,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
        "mount scratch tmpfs",
    )?;
    let layer = scratch.join("layer");
    let root = scratch.join("root");
    let files = scratch.join("files");
    for d in [&layer, &root, &files] {
        fs::create_dir(d).ctx("mkdir", d.display())?;
    }
    fs::set_permissions(&files, fs::Permissions::from_mode(0o711)).ctx("chmod", files.display())?;

    // Mount targets, created in the extra layer when the lowers lack them.
    let target = |p: &str, kind: Kind| -> Result<PathBuf, ChildError> {
        layers::ensure_target(&cfg.lowers, &layer, p, kind, cfg.rootless)
            .ctx("create mount target", p)
    };
    let proc_t = target("/proc", Kind::Dir)?;
    let dev_t = target("/dev", Kind::Dir)?;
    let sys_t = target("/sys", Kind::Dir)?;
    let hosts_t = target("/etc/hosts", Kind::File)?;
    let resolv_t = target("/etc/resolv.conf", Kind::File)?;
    let mut user_targets = Vec::new();
    let mut kinds = Vec::new();
    for m in &cfg.mounts {
        let t = m.target();
        if !t.starts_with('/') {
            return Err(ChildError::msg(
                "mount",
                t,
                "target is not an absolute path".into(),
            ));
        }
        let kind = match m {
            MountSpec::Bind { source, .. } | MountSpec::Cache { source, .. } => {
                let md = fs::metadata(source).ctx("mount source", source.display())?;
                if md.is_dir() { Kind::Dir } else { Kind::File }
            }
            MountSpec::Tmpfs { .. } => Kind::Dir,
            MountSpec::Secret { .. } => Kind::File,
        };
        // Under /dev: a fresh tmpfs hides whatever the lowers hold there, so the target is
        // created in that tmpfs once it is mounted, not looked up or created in the layers.
        let rel = match under_dev(t) {
            Some(rest) => dev_t.join(rest),
            None => target(t, kind)?,
        };
        user_targets.push(rel);
        kinds.push(kind);
    }
    if cfg.fresh_upper {
        if let Some(m) = layers::root_meta(&cfg.lowers) {
            layers::copy_meta(&cfg.upper, &m, cfg.rootless);
        }
    }

    crate::overlay::mount_overlay(cfg, &layer, &root)?;
    let at = |rel: &Path| root.join(rel);

    // /proc
    let proc_dir = at(&proc_t);
    mnt(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
        "mount proc",
    )?;
    // /dev
    let dev = at(&dev_t);
    mount_dev(&dev, cfg.rootless, proc_dir.join("kcore").exists())?;
    // /sys, read-only
    let sys = at(&sys_t);
    // (read-write for `security.insecure`, as BuildKit's WithWriteableSysfs)
    let mut ro = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !cfg.insecure {
        ro |= MsFlags::MS_RDONLY;
    }
    if mount(Some("sysfs"), &sys, Some("sysfs"), ro, None::<&str>).is_ok() {
        // the run's cgroups, read-only (read-write for `security.insecure`), as runc
        crate::cgroup::mount(&sys.join("fs/cgroup"), cfg.insecure);
    } else {
        // Not the owner of the network namespace (rootless with the host's network).
        bind(Path::new("/sys"), &sys, "bind sys")?;
        if !cfg.insecure {
            remount_ro(&sys, "remount sys read-only")?;
        }
    }
    // containerd's masked and read-only paths (none for `security.insecure`).
    let (masked, readonly) = if cfg.insecure {
        (&[][..], &[][..])
    } else {
        (MASKED, READONLY)
    };
    for (in_sys, p) in masked {
        let d = if *in_sys {
            sys.join(p)
        } else {
            proc_dir.join(p)
        };
        match fs::symlink_metadata(&d) {
            Ok(m) if m.is_dir() => tmpfs(&d, MsFlags::MS_RDONLY, None, "mask")?,
            Ok(_) => mnt(
                Some(&dev.join("null")),
                &d,
                None,
                MsFlags::MS_BIND,
                None,
                "mask",
            )?,
            Err(_) => {}
        }
    }
    for p in readonly {
        let d = proc_dir.join(p);
        if d.exists() {
            bind(&d, &d, "bind read-only")?;
            remount_ro(&d, "remount read-only")?;
        }
    }
    // hosts and resolv.conf, bound from the scratch tmpfs (never in the upper dir).
    for (name, content, rel) in [
        ("hosts", crate::net::hosts(&cfg.hostname), &hosts_t),
        (
            "resolv.conf",
            crate::net::resolv(&host_resolv, cfg.network),
            &resolv_t,
        ),
    ] {
        let src = files.join(name);
        fs::write(&src, content).ctx("write", src.display())?;
        fs::set_permissions(&src, fs::Permissions::from_mode(0o644)).ctx("chmod", src.display())?;
        let dst = at(rel);
        mnt(Some(&src), &dst, None, MsFlags::MS_BIND, None, "bind")?;
        // as BuildKit's binds: ro, nosuid, nodev, noexec
        let nx = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        remount_ro_with(&dst, nx, "remount read-only")?;
    }
    // RUN --mount, parents before children (as Docker sorts them).
    let mut order: Vec<usize> = (0..cfg.mounts.len()).collect();
    order.sort_by_key(|&i| user_targets.get(i).map_or(0, |p| p.components().count()));
    for i in order {
        let (Some(m), Some((rel, kind))) =
            (cfg.mounts.get(i), user_targets.get(i).zip(kinds.get(i)))
        else {
            continue;
        };
        let dst = at(rel);
        if let Ok(rest) = rel.strip_prefix(&dev_t)
            && under_dev(m.target()).is_some()
        {
            create_in_dev(&dev, rest, *kind)?;
        } else if fs::symlink_metadata(&dst).is_err() {
            // Shadowed by an earlier mount of a parent dir: create it there (never in the upper).
            if *kind == Kind::Dir {
                fs::create_dir_all(&dst).ctx("create mount target", dst.display())?;
            } else {
                if let Some(p) = dst.parent() {
                    fs::create_dir_all(p).ctx("create mount target", p.display())?;
                }
                fs::File::create(&dst).ctx("create mount target", dst.display())?;
            }
        }
        match m {
            MountSpec::Bind {
                source, readonly, ..
            } => {
                bind(source, &dst, "bind mount")?;
                if *readonly {
                    remount_ro(&dst, "remount read-only")?;
                }
            }
            MountSpec::Cache { source, .. } => bind(source, &dst, "cache mount")?,
            MountSpec::Tmpfs { size, .. } => {
                let data = size.map(|s| format!("size={s}"));
                tmpfs(
                    &dst,
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    data.as_deref(),
                    "tmpfs mount",
                )?;
            }
            MountSpec::Secret {
                source,
                mode,
                uid,
                gid,
                ..
            } => {
                let content = fs::read(source).ctx("read secret", source.display())?;
                let src = files.join(format!("secret-{i}"));
                fs::write(&src, content).ctx("write", src.display())?;
                fs::set_permissions(&src, fs::Permissions::from_mode(mode & 0o7777))
                    .ctx("chmod", src.display())?;
                std::os::unix::fs::chown(&src, Some(*uid), Some(*gid))
                    .ctx("chown secret", src.display())?;
                mnt(
                    Some(&src),
                    &dst,
                    None,
                    MsFlags::MS_BIND,
                    None,
                    "secret mount",
                )?;
                remount_ro(&dst, "remount read-only")?;
            }
        }
    }

    // pivot_root into the overlay and detach the old root.
    std::env::set_current_dir(&root).ctx("chdir", root.display())?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root", root.display())?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach old root", "/")?;
    std::env::set_current_dir("/").ctx("chdir", "/")?;

    // USER, from the rootfs' own passwd/group.
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let user = user::resolve(&cfg.user, &passwd, &group)
        .map_err(|m| ChildError::msg("user", &cfg.user, m))?;

    // WORKDIR, created when missing (0755, the created directories owned by the user, as
    // BuildKit's executor does).
    let wd = Path::new(&cfg.workdir);
    match fs::metadata(wd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ChildError::os(
                "workdir",
                &cfg.workdir,
                &io::Error::from_raw_os_error(libc::ENOTDIR),
            ));
        }
        Err(_) => create_workdir(wd, user.uid, user.gid).ctx("create workdir", &cfg.workdir)?,
    }

    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    Ok(Prepared {
        env,
        user,
        workdir: cfg.workdir.clone(),
        last_cap,
    })
}

/// Creates `dir` and its missing parents (0755 under the umask), chowning each directory it
/// made to `uid:gid`. An id the user namespace does not map (rootless with a single mapping)
/// leaves the owner as it is.
fn create_workdir(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while fs::symlink_metadata(cur).is_err() {
        missing.push(cur);
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    for d in missing.into_iter().rev() {
        match nix::unistd::chown(d, Some(uid.into()), Some(gid.into())) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The part of `target` below `/dev` (lexically normalised), when it is strictly below it.
fn under_dev(target: &str) -> Option<PathBuf> {
    use std::path::Component;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    match parts.split_first() {
        Some((first, rest)) if *first == "dev" && !rest.is_empty() => Some(rest.iter().collect()),
        _ => None,
    }
}

/// Creates the mount target `rest` (relative) inside the mounted `/dev` tmpfs: missing dirs
/// 0755, a missing file empty. Symlinks on the way (`/dev/fd`, `/dev/stdin`, …) are refused,
/// never followed out of the container's `/dev`.
fn create_in_dev(dev: &Path, rest: &Path, kind: Kind) -> Result<(), ChildError> {
    let stage = "create mount target";
    let mut cur = dev.to_path_buf();
    let n = rest.components().count();
    for (i, c) in rest.components().enumerate() {
        cur.push(c);
        let last = i + 1 == n;
        let shown = Path::new("/dev").join(cur.strip_prefix(dev).unwrap_or(&cur));
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ChildError::msg(
                    stage,
                    shown.display(),
                    "is a symbolic link in /dev".into(),
                ));
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(ChildError::os(
                    stage,
                    shown.display(),
                    &io::Error::from_raw_os_error(libc::ENOTDIR),
                ));
            }
            Ok(_) => {}
            Err(_) if last && kind == Kind::File => {
                fs::File::create(&cur).ctx(stage, shown.display())?;
            }
            Err(_) => fs::create_dir(&cur).ctx(stage, shown.display())?,
        }
    }
    Ok(())
}

fn mount_dev(dev: &Path, rootless: bool, kcore: bool) -> Result<(), ChildError> {
    tmpfs(
        dev,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "mount /dev",
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        let made = !rootless
            && nix::sys::stat::mknod(
                &p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(major, minor),
            )
            .is_ok();
        if made {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).ctx("chmod", p.display())?;
        } else {
            // No mknod in a user namespace: bind the host's node.
            fs::File::create(&p).ctx("create", p.display())?;
            let host = Path::new("/dev").join(name);
            mnt(Some(&host), &p, None, MsFlags::MS_BIND, None, "bind device")?;
        }
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).ctx("mkdir", pts.display())?;
    let opts = if rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(opts),
        "mount devpts",
    )?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).ctx("mkdir", shm.display())?;
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
        "mount /dev/shm",
    )?;
    let mq = dev.join("mqueue");
    fs::create_dir(&mq).ctx("mkdir", mq.display())?;
    // Best effort, as not every kernel has mqueue.
    let _ = mount(
        Some("mqueue"),
        &mq,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        // as runc: `core` only when the kernel has /proc/kcore
        if link == "core" && !kcore {
            continue;
        }
        std::os::unix::fs::symlink(to, dev.join(link)).ctx("symlink", dev.join(link).display())?;
    }
    let _ = fs::metadata(dev).map(|m| m.mode());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::under_dev;
    use std::path::PathBuf;

    #[test]
    fn under_dev_is_lexical_and_strict() {
        assert_eq!(under_dev("/dev/pipes/x"), Some(PathBuf::from("pipes/x")));
        assert_eq!(under_dev("/dev//shm/./a"), Some(PathBuf::from("shm/a")));
        assert_eq!(under_dev("/etc/../dev/x"), Some(PathBuf::from("x")));
        assert_eq!(under_dev("/dev"), None);
        assert_eq!(under_dev("/dev/.."), None);
        assert_eq!(under_dev("/dev/../etc/x"), None);
        assert_eq!(under_dev("/devices/x"), None);
    }
}
