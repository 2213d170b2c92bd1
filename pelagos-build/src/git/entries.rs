//! The layer entries of a checkout: directories 0755, files 0644 or 0755, symlinks as links.

use std::collections::BTreeMap;
use std::path::Path;

use layer_pack::{Entry, EntrySource};

use super::GitError;
use super::url::GitSource;
use crate::perms::Chmod;

/// How the checked-out files become layer entries.
#[derive(Debug, Clone)]
pub struct EntryOptions<'a> {
    /// The destination directory in the layer ("" for the root), resolved.
    pub dest: &'a str,
    /// `--chown`, resolved.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<&'a Chmod>,
    /// The mtime of every entry.
    pub mtime: i64,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// The entries for the checkout at `root` (its `subdir`) placed under `opts.dest`: directories
/// 0755, files 0644 or 0755 (any execute bit), symlinks as links, all at `opts.mtime`.
pub fn entries(
    root: &Path,
    src: &GitSource,
    opts: &EntryOptions<'_>,
) -> Result<BTreeMap<String, Entry>, GitError> {
    // the subdir must be a directory of the checkout reached without symlinks (a repository's
    // link to /etc must not copy the builder's files)
    let mut base = root.to_path_buf();
    let mut inside = true;
    for comp in src.subdir.split('/').filter(|c| !c.is_empty()) {
        base.push(comp);
        inside &= std::fs::symlink_metadata(&base).is_ok_and(|m| m.is_dir());
    }
    if !inside {
        return Err(GitError::Git {
            url: src.shown.clone(),
            message: format!(
                "subdir {:?} is not a directory of the repository",
                src.subdir
            ),
        });
    }
    let (uid, gid) = opts.chown.unwrap_or((0, 0));
    let mut out = BTreeMap::new();
    let io = |path: &Path, source| GitError::Io {
        path: path.to_path_buf(),
        source,
    };
    for e in walkdir::WalkDir::new(&base)
        .min_depth(1)
        .sort_by_file_name()
    {
        let e = e.map_err(|e| io(&base, e.into()))?;
        let rel = e
            .path()
            .strip_prefix(&base)
            .map_err(|_| io(e.path(), std::io::ErrorKind::InvalidData.into()))?;
        let rel = rel.to_string_lossy().into_owned();
        let ft = e.file_type();
        let (source, mode) = if ft.is_dir() {
            (EntrySource::Dir, 0o755)
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).map_err(|x| io(e.path(), x))?;
            (EntrySource::Symlink(t.into_os_string()), 0o777)
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let m = e.metadata().map_err(|x| io(e.path(), x.into()))?;
            let exec = m.permissions().mode() & 0o111 != 0;
            (
                EntrySource::File(e.path().to_path_buf()),
                if exec { 0o755 } else { 0o644 },
            )
        } else {
            continue;
        };
        let mode = match (opts.chmod, &source) {
            (Some(c), s) if !matches!(s, EntrySource::Symlink(_)) => {
                c.apply(mode, matches!(s, EntrySource::Dir))
            }
            _ => mode,
        };
        let p = join(opts.dest, &rel);
        out.insert(
            p.clone(),
            Entry {
                path_in_layer: p,
                source,
                mode,
                uid,
                gid,
                mtime: opts.mtime,
                xattrs: Vec::new(),
            },
        );
    }
    Ok(out)
}
