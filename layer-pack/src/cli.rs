//! The command-line front end, kept in the library so it is tested like the rest.
//! `main.rs` only parses arguments and prints.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::error::{PackError, UnpackError};
use crate::options::{Compression, IdMap, IdRange, LayerDescriptor, PackOptions};
use crate::unpack::{UnpackFormat, UnpackOptions, UnpackReport, unpack, unpack_path};

/// A CLI failure: the error and the exit code (2 input/usage, 1 work failed).
#[derive(Debug)]
pub struct CliError {
    /// What failed.
    pub error: anyhow::Error,
    /// Process exit code.
    pub code: u8,
}

/// The error chain on one line (`a: b: c`), leaving out a cause whose text the message before
/// it already carries (thiserror messages that include their source), newlines made spaces.
/// The workspace's CLIs print `TOOL: error: {error_line}`.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let text = c.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', " ")
}

fn usage(e: anyhow::Error) -> CliError {
    CliError { error: e, code: 2 }
}

fn failed(e: anyhow::Error) -> CliError {
    CliError { error: e, code: 1 }
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// gzip (parallel deflate)
    Gzip,
    /// zstd (multithreaded)
    Zstd,
    /// plain tar
    None,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// whiteouts delete (flatten into a rootfs)
    Plain,
    /// whiteouts become overlayfs whiteouts (overlay lower dir)
    Overlay,
}

/// Arguments of `layer-pack pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// Directory to pack; without it, an ns-run result document on stdin gives `upper` (and, for rootless runs, `uid_map`/`gid_map`, which also imply --userxattr with --overlay-upper)
    pub dir: Option<PathBuf>,
    /// DIR is an overlayfs upper dir: convert its whiteouts to OCI whiteouts
    #[arg(long)]
    pub overlay_upper: bool,
    /// The upper dir uses `user.overlay.*` xattrs (overlay mounted with userxattr)
    #[arg(long, requires = "overlay_upper")]
    pub userxattr: bool,
    /// Layer compression
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Compression level (gzip 0-9, default 6; zstd 1-19, default 3)
    #[arg(long)]
    pub level: Option<i32>,
    /// Clamp mtimes to this time (seconds since the epoch; default: $SOURCE_DATE_EPOCH when set)
    #[arg(long)]
    pub source_date_epoch: Option<i64>,
    /// Map host uids to container uids: CONTAINER:HOST:LEN (repeatable)
    #[arg(long, value_name = "C:H:L")]
    pub uid_map: Vec<String>,
    /// Map host gids to container gids: CONTAINER:HOST:LEN (repeatable)
    #[arg(long, value_name = "C:H:L")]
    pub gid_map: Vec<String>,
    /// Compression threads (default: all cores; the output does not depend on it)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the blob to FILE
    #[arg(short = 'o', long, conflicts_with = "store")]
    pub output: Option<PathBuf>,
    /// Write the blob into the store's blobs/sha256/ (DIR, else $PELAGOS_STORE, else the default store)
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    pub store: Option<PathBuf>,
}

/// Arguments of `layer-pack unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The layer blob (`-` for stdin)
    pub blob: PathBuf,
    /// Target directory (created when missing)
    pub dir: PathBuf,
    /// Whiteout handling
    #[arg(long, value_enum, default_value = "plain")]
    pub format: FormatArg,
    /// With --format overlay: write `user.overlay.*` xattrs (default: when not root)
    #[arg(long)]
    pub userxattr: bool,
    /// Fail, leaving DIR as it was, unless the tar's sha256 is this
    #[arg(long)]
    pub expect_diff_id: Option<String>,
    /// Fail, leaving DIR as it was, unless the blob's sha256 is this
    #[arg(long)]
    pub expect_digest: Option<String>,
}

/// The parts of an ns-run result document `pack` uses.
#[derive(Debug, Default, serde::Deserialize)]
struct RunDoc {
    upper: PathBuf,
    #[serde(default)]
    uid_map: Vec<RunIdMapping>,
    #[serde(default)]
    gid_map: Vec<RunIdMapping>,
}

#[derive(Debug, serde::Deserialize)]
struct RunIdMapping {
    container_id: u32,
    host_id: u32,
    size: u32,
}

impl RunIdMapping {
    fn range(&self) -> IdRange {
        IdRange {
            container: self.container_id,
            host: self.host_id,
            len: self.size,
        }
    }
}

fn parse_ranges(specs: &[String]) -> anyhow::Result<Vec<IdRange>> {
    specs
        .iter()
        .map(|s| {
            let parts: Vec<&str> = s.split(':').collect();
            let [c, h, l] = parts.as_slice() else {
                anyhow::bail!("id map {s:?} is not CONTAINER:HOST:LEN");
            };
            let num = |x: &str| {
                x.parse::<u32>()
                    .with_context(|| format!("id map {s:?}: bad number {x:?}"))
            };
            Ok(IdRange {
                container: num(c)?,
                host: num(h)?,
                len: num(l)?,
            })
        })
        .collect()
}

/// The store root of `--store [DIR]`: DIR, else `$PELAGOS_STORE`, else `/var/lib/pelagos` for
/// root, else `$XDG_DATA_HOME/pelagos` or `~/.local/share/pelagos`.
pub fn store_root(arg: &Path) -> anyhow::Result<PathBuf> {
    if !arg.as_os_str().is_empty() {
        return Ok(arg.to_path_buf());
    }
    if let Some(s) = std::env::var_os("PELAGOS_STORE").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(s));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/pelagos"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(x).join("pelagos"));
    }
    let home = std::env::var_os("HOME").context("no store: set --store, PELAGOS_STORE or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/pelagos"))
}

fn pack_code(e: &PackError) -> u8 {
    match e {
        PackError::Write { .. } | PackError::Changed { .. } => 1,
        PackError::Read { .. }
        | PackError::ReservedName { .. }
        | PackError::InvalidPath { .. }
        | PackError::Duplicate { .. }
        | PackError::BadHardlink { .. }
        | PackError::UnmappedId { .. }
        | PackError::Options(_) => 2,
    }
}

/// Runs `pack`.
pub fn pack(a: &PackArgs) -> Result<LayerDescriptor, CliError> {
    let mut from_doc = RunDoc::default();
    let dir = if let Some(d) = &a.dir {
        d.clone()
    } else {
        let mut doc = String::new();
        io::stdin()
            .read_to_string(&mut doc)
            .context("reading stdin")
            .map_err(usage)?;
        from_doc = serde_json::from_str(&doc)
            .context("no DIR given and stdin is not an ns-run result document with \"upper\"")
            .map_err(usage)?;
        from_doc.upper.clone()
    };
    let mut uids = parse_ranges(&a.uid_map).map_err(usage)?;
    let mut gids = parse_ranges(&a.gid_map).map_err(usage)?;
    let rootless_run = !from_doc.uid_map.is_empty();
    if uids.is_empty() && gids.is_empty() && rootless_run {
        uids = from_doc.uid_map.iter().map(RunIdMapping::range).collect();
        gids = from_doc.gid_map.iter().map(RunIdMapping::range).collect();
    }
    let opts = PackOptions {
        compression: match a.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
        level: a.level,
        overlay_upper: a.overlay_upper,
        userxattr: a.userxattr || (a.overlay_upper && rootless_run),
        source_date_epoch: match a.source_date_epoch {
            Some(s) => Some(s),
            None => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.is_empty() => Some(
                    v.parse::<i64>()
                        .with_context(|| format!("SOURCE_DATE_EPOCH {v:?} is not a number"))
                        .map_err(usage)?,
                ),
                _ => None,
            },
        },
        id_map: (!uids.is_empty() || !gids.is_empty()).then_some(IdMap { uids, gids }),
        threads: a.threads,
    };
    let wrap = |e: PackError| CliError {
        code: pack_code(&e),
        error: e.into(),
    };
    if let Some(out) = &a.output {
        if out.as_os_str() == "-" {
            return Err(usage(anyhow::anyhow!(
                "-o - is not supported: stdout carries the result document (use -o /dev/stdout \
                 with the document redirected, or -o FILE)"
            )));
        }
        // Devices and pipes (/dev/null, a FIFO) are written in place, never replaced.
        if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(out)
                .with_context(|| format!("cannot open {}", out.display()))
                .map_err(failed)?;
            return crate::pack_dir(&dir, &opts, io::BufWriter::with_capacity(1 << 20, f))
                .map_err(wrap);
        }
        let tmp_dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".layer-pack-")
            .tempfile_in(tmp_dir)
            .with_context(|| format!("cannot create a file in {}", tmp_dir.display()))
            .map_err(failed)?;
        let d = crate::pack_dir(
            &dir,
            &opts,
            io::BufWriter::with_capacity(1 << 20, tmp.as_file()),
        )
        .map_err(wrap)?;
        // an ordinary file (the temp file was made 0600)
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .with_context(|| format!("cannot write {}", out.display()))
            .map_err(failed)?;
        tmp.persist(out)
            .with_context(|| format!("cannot write {}", out.display()))
            .map_err(failed)?;
        Ok(d)
    } else if let Some(s) = &a.store {
        let root = store_root(s).map_err(usage)?;
        crate::pack_to_blob_dir(&dir, &opts, &root.join("blobs/sha256")).map_err(wrap)
    } else {
        Err(usage(anyhow::anyhow!(
            "give -o FILE or --store [DIR] for the blob"
        )))
    }
}

fn unpack_code(e: &UnpackError) -> u8 {
    match e {
        UnpackError::Refused { .. }
        | UnpackError::Malformed { .. }
        | UnpackError::NeedsEmptyDir(_) => 2,
        _ => 1,
    }
}

/// Runs `unpack`; devices and owners are applied when running as root.
pub fn unpack_cmd(a: &UnpackArgs) -> Result<UnpackReport, CliError> {
    let root = rustix::process::geteuid().is_root();
    let opts = UnpackOptions {
        format: match a.format {
            FormatArg::Plain => UnpackFormat::Plain,
            FormatArg::Overlay => UnpackFormat::Overlay {
                userxattr: a.userxattr || !root,
            },
        },
        expect_diff_id: a.expect_diff_id.clone(),
        expect_digest: a.expect_digest.clone(),
        allow_devices: root,
        preserve_owners: root,
    };
    // an error about the layer's content names the blob; one about DIR names its path already
    let blob_name = if a.blob.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        a.blob.display().to_string()
    };
    let wrap = |e: UnpackError| CliError {
        code: unpack_code(&e),
        error: match e {
            e @ (UnpackError::Io { .. } | UnpackError::NeedsEmptyDir(_)) => e.into(),
            e => anyhow::Error::from(e).context(blob_name.clone()),
        },
    };
    if a.blob.as_os_str() == "-" {
        unpack(io::stdin().lock(), &a.dir, &opts).map_err(wrap)
    } else {
        File::open(&a.blob)
            .with_context(|| format!("cannot open {}", a.blob.display()))
            .map_err(usage)?;
        unpack_path(&a.blob, &a.dir, &opts).map_err(wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_drops_causes_the_message_carries() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::from(PackError::Read {
            path: "/x".into(),
            source: io,
        })
        .context("packing");
        assert_eq!(error_line(&e), "packing: cannot read /x: disk on fire");
        let e = anyhow::anyhow!("line one\nline two").context("ctx");
        assert_eq!(error_line(&e), "ctx: line one line two");
    }
}
