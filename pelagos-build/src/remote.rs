//! Remote build contexts, as `docker build URL` and `--build-context NAME=URL` take them.
//!
//! - A git repository (`https://host/repo.git#ref:subdir`, `git://…`, `ssh://…`,
//!   `git@host:repo`; the ADD rules of [`crate::git`]): the checkout of the commit (submodules
//!   included, no `.git`), or its `subdir`, is the context.
//! - Another `http(s)://` URL, downloaded ([`crate::fetch`]): as the build's context, an
//!   archive (tar, plain or gzip/bzip2/xz/zstd, detected by content) is unpacked safely
//!   (layer-pack's unpack: no path leaves the directory, no device nodes) and is the context;
//!   anything else is the Remfile, with an empty context (Docker's "text file" context). As a
//!   named context, the download is one file named `context` (mode 0600, mtime from
//!   `Last-Modified`), as BuildKit's `llb.HTTP(url, Filename("context"))` makes it.
//!
//! The files are fetched into a temporary directory of the store, removed when the
//! [`RemoteContext`] is dropped. Credentials in URLs reach git or the server only.

use std::path::{Path, PathBuf};

use image_store::Store;

use crate::error::BuildError;

/// A remote context fetched into a temporary directory.
#[derive(Debug)]
pub struct RemoteContext {
    /// The temporary directory (removed on drop).
    tmp: PathBuf,
    /// The context root (the temporary directory, or a subdirectory of a git checkout).
    pub root: PathBuf,
    /// The Remfile, when the URL was a text file.
    pub remfile: Option<String>,
}

impl Drop for RemoteContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Whether a context argument or `--build-context` value is remote: a git repository or an
/// `http(s)://` URL.
pub fn is_remote(s: &str) -> bool {
    crate::git::is_git_source(s) || crate::fetch::is_url(s)
}

/// How the download of an http context is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpUse {
    /// The build's context: an archive is unpacked, other content is the Remfile.
    Main,
    /// A named context: the file `context`.
    Named,
}

fn failed(url: &str, message: impl std::fmt::Display) -> BuildError {
    BuildError::RemoteContext {
        url: crate::git::redact(url),
        message: crate::git::redact(&message.to_string()),
    }
}

/// Fetches `url` into a new temporary directory of `store` (git with the agent socket
/// `ssh_auth_sock` for ssh URLs, and the time limit of `$PELAGOS_GIT_TIMEOUT`).
pub fn fetch(
    store: &Store,
    url: &str,
    http: HttpUse,
    ssh_auth_sock: Option<PathBuf>,
) -> Result<RemoteContext, BuildError> {
    let git_env = &crate::git::GitEnv::from_env(ssh_auth_sock).map_err(|e| failed(url, e))?;
    let tmp = store.temp_path("remote-context")?;
    let mut ctx = RemoteContext {
        tmp: tmp.clone(),
        root: tmp.join("ctx"),
        remfile: None,
    };
    std::fs::create_dir_all(&ctx.root).map_err(|e| failed(url, e))?;
    if crate::git::is_git_source(url) {
        ctx.root = git_context(url, &ctx.root, git_env)?;
        return Ok(ctx);
    }
    if !crate::fetch::is_url(url) {
        return Err(failed(url, "not a git or http(s) URL"));
    }
    let file = match http {
        HttpUse::Named => ctx.root.join("context"),
        HttpUse::Main => tmp.join("download"),
    };
    let d = crate::fetch::download(url, &file, None).map_err(|e| failed(url, e))?;
    if http == HttpUse::Named {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(url, e))?;
        if let Some(t) = d.mtime.and_then(|t| u64::try_from(t).ok()) {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_modified(when))
                .map_err(|e| failed(url, e))?;
        }
        return Ok(ctx);
    }
    if let Some(codec) = crate::archive::detect(&file).map_err(|e| failed(url, e))? {
        let f = std::fs::File::open(&file).map_err(|e| failed(url, e))?;
        let dec = crate::archive::decoder(codec, std::io::BufReader::new(f))
            .map_err(|e| failed(url, e))?;
        let opts = layer_pack::UnpackOptions {
            format: layer_pack::UnpackFormat::Plain,
            expect_diff_id: None,
            expect_digest: None,
            allow_devices: false,
            preserve_owners: false,
        };
        layer_pack::unpack(dec, &ctx.root, &opts).map_err(|e| failed(url, e))?;
    } else {
        let bytes = std::fs::read(&file).map_err(|e| failed(url, e))?;
        ctx.remfile = Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let _ = std::fs::remove_file(&file);
    Ok(ctx)
}

/// Checks the repository out into `dir`; returns the context root (the `subdir`, which must
/// be a directory inside the checkout, never reached through a symlink out of it).
fn git_context(url: &str, dir: &Path, env: &crate::git::GitEnv) -> Result<PathBuf, BuildError> {
    let src = crate::git::parse(url).map_err(|e| failed(url, e))?;
    let resolved = crate::git::resolve(&src, None, false, env).map_err(|e| failed(url, e))?;
    resolved.checkout(dir, env).map_err(|e| failed(url, e))?;
    if src.subdir.is_empty() {
        return Ok(dir.to_path_buf());
    }
    let top = std::fs::canonicalize(dir).map_err(|e| failed(url, e))?;
    let sub = std::fs::canonicalize(dir.join(&src.subdir))
        .ok()
        .filter(|p| p.starts_with(&top) && p.is_dir())
        .ok_or_else(|| {
            failed(
                url,
                format!("{:?} is not a directory of the repository", src.subdir),
            )
        })?;
    Ok(sub)
}
