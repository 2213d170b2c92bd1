//! The overlay mount of a run: native overlayfs (mount(2), or the new mount API with one
//! `lowerdir+` per layer for long lower lists) or fuse-overlayfs, the rootless fallback.
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::init::{ChildError, Ctx, InitConfig};
use crate::rootfs::{bind, mnt};
use crate::spec::OverlayDriver;

/// Mounts the overlay of the extra `layer` over `cfg.lowers` at `root` with the configured
/// driver: native overlayfs (the new mount API when the option string would be too long), or
/// fuse-overlayfs (the rootless fallback).
pub(crate) fn mount_overlay(cfg: &InitConfig, layer: &Path, root: &Path) -> Result<(), ChildError> {
    let mut lowers = vec![layer.to_path_buf()];
    lowers.extend(cfg.lowers.iter().cloned());
    let native = |lowers: &[PathBuf]| -> Result<(), ChildError> {
        let mut data = String::from("lowerdir=");
        for (i, l) in lowers.iter().enumerate() {
            let s = l.to_str().ok_or_else(|| {
                ChildError::msg("mount overlay", l.display(), "path is not UTF-8".into())
            })?;
            if s.contains([':', ',', '\\']) {
                return Err(ChildError::msg(
                    "mount overlay",
                    s,
                    "lower path contains ':', ',' or '\\'".into(),
                ));
            }
            if i > 0 {
                data.push(':');
            }
            data.push_str(s);
        }
        let _ = write!(
            data,
            ",upperdir={},workdir={},volatile",
            cfg.upper.display(),
            cfg.work.display()
        );
        if cfg.rootless {
            data.push_str(",userxattr");
        }
        if data.len() < 4000 {
            return mnt(
                Some(Path::new("overlay")),
                root,
                Some("overlay"),
                MsFlags::empty(),
                Some(&data),
                "mount overlay",
            );
        }
        overlay_fsconfig(cfg, lowers, root)
    };
    match cfg.overlay {
        OverlayDriver::Native => native(&lowers),
        OverlayDriver::Fuse => fuse_overlay(cfg, &lowers, root),
        OverlayDriver::Auto => match native(&lowers) {
            Ok(()) => Ok(()),
            Err(e) if cfg.rootless => fuse_overlay(cfg, &lowers, root).map_err(|f| ChildError {
                message: format!("{} (native overlay failed too: {})", f.message, e.message),
                ..f
            }),
            Err(e) => Err(e),
        },
    }
}

/// Overlay through the new mount API, one `lowerdir+` per layer (no option-length limit).
fn overlay_fsconfig(cfg: &InitConfig, lowers: &[PathBuf], root: &Path) -> Result<(), ChildError> {
    use rustix::mount as rm;
    let st = "mount overlay";
    let e = |x: rustix::io::Errno| io::Error::from_raw_os_error(x.raw_os_error());
    let fs_fd = rm::fsopen("overlay", rm::FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(e)
        .ctx(st, root.display())?;
    for l in lowers {
        rm::fsconfig_set_string(&fs_fd, "lowerdir+", l)
            .map_err(e)
            .ctx(st, l.display())?;
    }
    rm::fsconfig_set_string(&fs_fd, "upperdir", &cfg.upper)
        .map_err(e)
        .ctx(st, cfg.upper.display())?;
    rm::fsconfig_set_string(&fs_fd, "workdir", &cfg.work)
        .map_err(e)
        .ctx(st, cfg.work.display())?;
    rm::fsconfig_set_flag(&fs_fd, "volatile")
        .map_err(e)
        .ctx(st, "volatile")?;
    if cfg.rootless {
        rm::fsconfig_set_flag(&fs_fd, "userxattr")
            .map_err(e)
            .ctx(st, "userxattr")?;
    }
    rm::fsconfig_create(&fs_fd)
        .map_err(e)
        .ctx(st, root.display())?;
    let m = rm::fsmount(
        &fs_fd,
        rm::FsMountFlags::FSMOUNT_CLOEXEC,
        rm::MountAttrFlags::empty(),
    )
    .map_err(e)
    .ctx(st, root.display())?;
    rm::move_mount(
        &m,
        "",
        rustix::fs::CWD,
        root,
        rm::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(e)
    .ctx(st, root.display())
}

fn fuse_overlay(cfg: &InitConfig, lowers: &[PathBuf], root: &Path) -> Result<(), ChildError> {
    let mut opt = String::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            opt.push(':');
        }
        opt.push_str(&l.to_string_lossy());
    }
    let _ = write!(
        opt,
        ",upperdir={},workdir={}",
        cfg.upper.display(),
        cfg.work.display()
    );
    // pivot_root moves every process whose root is the old root into the new one: the FUSE
    // daemon would then serve its own mount and deadlock. Give it a root of its own (a bind
    // of the old root, which outlives the detach) and the mount point through this process's
    // root, so the mount lands in the real tree.
    let host = cfg.scratch.join("fuse-root");
    fs::create_dir(&host).ctx("mkdir", host.display())?;
    bind(Path::new("/"), &host, "bind root for fuse-overlayfs")?;
    // This process's pid as the host's /proc (still mounted here) numbers it.
    let me = fs::read_link("/proc/self").ctx("readlink", "/proc/self")?;
    let target = Path::new("/proc")
        .join(me)
        .join("root")
        .join(root.strip_prefix("/").unwrap_or(root));
    let mut cmd = std::process::Command::new("fuse-overlayfs");
    cmd.arg("-o")
        .arg(&opt)
        .arg(&target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let host_c = std::ffi::CString::new(host.as_os_str().as_encoded_bytes())
        .map_err(|_| ChildError::msg("fuse-overlayfs", host.display(), "NUL in path".into()))?;
    // SAFETY: chroot and chdir are async-signal-safe; the string was built before fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::chroot(host_c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().ctx("fuse-overlayfs", root.display())?;
    if !out.status.success() {
        return Err(ChildError::msg(
            "fuse-overlayfs",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
