//! BuildKit's mount stubs: a RUN `--mount` (or secret, ssh socket) whose target does not
//! exist in the image makes the runtime create it, and BuildKit's layer keeps the directories
//! it created (the target of a directory mount and the missing parents of any target; an empty
//! file made for a file mount is removed again). ns-run keeps mount points out of the upper dir,
//! so the same directories are added to the upper dir after the step ran.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::copy::resolve_for_create;
use crate::tree::{Tree, TreeError};

/// One mount of a RUN step, as the stubs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// The absolute container path.
    pub target: String,
    /// Whether a directory is mounted there (else a file or socket).
    pub dir: bool,
}

impl MountPoint {
    /// The mount point of an ns-run mount (a bind is a directory mount when its source is one).
    pub fn of(m: &ns_run::MountSpec) -> MountPoint {
        match m {
            ns_run::MountSpec::Bind { source, target, .. } => MountPoint {
                target: target.clone(),
                dir: source.is_dir(),
            },
            ns_run::MountSpec::Cache { target, .. } | ns_run::MountSpec::Tmpfs { target, .. } => {
                MountPoint {
                    target: target.clone(),
                    dir: true,
                }
            }
            ns_run::MountSpec::Secret { target, .. } => MountPoint {
                target: target.clone(),
                dir: false,
            },
        }
    }
}

/// The mount points of a RUN step: those of its `mounts`, and the runtime's own (`/dev`,
/// `/proc`, `/sys` directories, `/etc/hosts` and `/etc/resolv.conf` files) where the image
/// lacks their top directory (`FROM scratch`): BuildKit's runc makes them and its layer keeps
/// them (an image that has them gets nothing, so a RUN that changes nothing stays empty).
pub fn step_points(
    lowers: &[PathBuf],
    mounts: &[ns_run::MountSpec],
) -> Result<Vec<MountPoint>, StubError> {
    let mut out: Vec<MountPoint> = mounts.iter().map(MountPoint::of).collect();
    let image = Tree::Layers(lowers.to_vec());
    for (top, targets, dir) in [
        ("dev", &["/dev"][..], true),
        ("proc", &["/proc"][..], true),
        ("sys", &["/sys"][..], true),
        ("etc", &["/etc/hosts", "/etc/resolv.conf"][..], false),
    ] {
        if image.lstat(top)?.is_none() {
            out.extend(targets.iter().map(|t| MountPoint {
                target: (*t).to_string(),
                dir,
            }));
        }
    }
    Ok(out)
}

/// Errors adding stubs.
#[derive(Debug, thiserror::Error)]
pub enum StubError {
    /// Reading the image's layers failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Creating a directory in the upper dir failed.
    #[error("mount stub {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Creates in `upper` (the step's overlay upper dir over `lowers`, top first) every directory
/// BuildKit's runtime would have left for `mounts`: 0755, owned by the running user (root, or
/// the mapped root when rootless). Targets under `/dev`, `/proc` and `/sys` are skipped (fresh
/// file systems at run time).
pub fn add_mount_stubs(
    lowers: &[PathBuf],
    upper: &Path,
    mounts: &[MountPoint],
) -> Result<(), StubError> {
    let image = Tree::Layers(lowers.to_vec());
    for m in mounts {
        let rel = crate::ignore::clean(&m.target)
            .trim_start_matches('/')
            .to_string();
        let top = rel.split('/').next().unwrap_or("");
        if rel.is_empty() || (rel != top && ["dev", "proc", "sys"].contains(&top)) {
            continue;
        }
        // through the image's symlinks, as the runtime follows them
        let resolved = resolve_for_create(&image, &rel)?;
        let comps: Vec<&str> = resolved.split('/').collect();
        let upto = if m.dir { comps.len() } else { comps.len() - 1 };
        let mut cur = String::new();
        for c in comps.iter().take(upto) {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            let p = upper.join(&cur);
            if std::fs::symlink_metadata(&p).is_ok() {
                continue;
            }
            let io = |source| StubError::Io {
                path: p.clone(),
                source,
            };
            match image.lstat(&cur)? {
                // a directory of the image gets a child: copied up with its metadata, as
                // overlayfs does
                Some(n) if n.is_dir() => {
                    std::fs::DirBuilder::new()
                        .mode(n.mode & 0o7777)
                        .create(&p)
                        .map_err(io)?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(n.mode & 0o7777))
                        .map_err(io)?;
                    // best effort: unprivileged, the runner's own ids map to the container's root
                    let _ = std::os::unix::fs::lchown(&p, Some(n.uid), Some(n.gid));
                    let t = filetime::FileTime::from_unix_time(n.mtime, 0);
                    let _ = filetime::set_symlink_file_times(&p, t, t);
                }
                // something else in the way: the runtime would have failed the mount
                Some(_) => break,
                None => {
                    std::fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&p)
                        .map_err(io)?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                        .map_err(io)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mp(target: &str, dir: bool) -> MountPoint {
        MountPoint {
            target: target.into(),
            dir,
        }
    }

    #[test]
    fn missing_dirs_of_mount_targets_are_added() {
        let lower = tempfile::tempdir().unwrap();
        fs::create_dir_all(lower.path().join("root")).unwrap();
        fs::create_dir_all(lower.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", lower.path().join("link")).unwrap();
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir_all(upper.path().join("already")).unwrap();
        let mounts = [
            mp("/root/.cache/pip", true),
            mp("/run/secrets/token", false),
            mp("/link/sub", true),
            mp("/already/x", true),
            mp("/dev/pipes/h0", false),
            mp("/root", true),
        ];
        add_mount_stubs(&[lower.path().to_path_buf()], upper.path(), &mounts).unwrap();
        let mut made = Vec::new();
        for e in walkdir(upper.path()) {
            made.push(e);
        }
        made.sort();
        assert_eq!(
            made,
            [
                "already",
                "already/x",
                "real",
                "real/sub",
                "root",
                "root/.cache",
                "root/.cache/pip",
                "run",
                "run/secrets",
            ]
        );
        let m = fs::metadata(upper.path().join("run/secrets")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        assert!(
            !upper.path().join("run/secrets/token").exists(),
            "no file stub"
        );
        // "real" and "root" exist in the image: copied up with their metadata
        fs::set_permissions(lower.path().join("root"), fs::Permissions::from_mode(0o700)).unwrap();
        let upper2 = tempfile::tempdir().unwrap();
        add_mount_stubs(&[lower.path().to_path_buf()], upper2.path(), &mounts[..1]).unwrap();
        let m = fs::metadata(upper2.path().join("root")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o700);
        // a file in the way: nothing below it
        fs::write(lower.path().join("file"), "x").unwrap();
        let upper3 = tempfile::tempdir().unwrap();
        add_mount_stubs(
            &[lower.path().to_path_buf()],
            upper3.path(),
            &[mp("/file/x", true)],
        )
        .unwrap();
        assert_eq!(walkdir(upper3.path()), Vec::<String>::new());
    }

    #[test]
    fn runtime_mount_points_only_where_the_image_lacks_them() {
        let lower = tempfile::tempdir().unwrap();
        let lowers = [lower.path().to_path_buf()];
        // an empty image (FROM scratch): /dev, /proc, /sys and /etc come with the layer
        let points = step_points(&lowers, &[]).unwrap();
        let upper = tempfile::tempdir().unwrap();
        add_mount_stubs(&lowers, upper.path(), &points).unwrap();
        let mut made = walkdir(upper.path());
        made.sort();
        assert_eq!(made, ["dev", "etc", "proc", "sys"]);
        let m = fs::metadata(upper.path().join("etc")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        // an image that has them (and an /etc without hosts): nothing
        for d in ["dev", "proc", "sys", "etc"] {
            fs::create_dir(lower.path().join(d)).unwrap();
        }
        assert_eq!(step_points(&lowers, &[]).unwrap(), Vec::<MountPoint>::new());
    }

    fn walkdir(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out
    }
}
