//! Command-line arguments of `image-store pull|push|login|logout` and their runners (the
//! binary only dispatches and prints the returned document).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::RegistryOptions;
use super::compress::LayerCompression;
use super::credentials::{Credential, login, logout};
use super::error::{RegistryError, Result};
use super::pull::{PullReport, pull};
use super::push::{PushFormat, PushOptions, PushReport, push};
use crate::oci::Platform;
use crate::reference::Reference;
use crate::store::Store;

/// Options shared by the registry commands.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Allow plain HTTP / unverified TLS for this registry (`host[:port]`); repeatable.
    /// localhost and 127.0.0.0/8 are always allowed.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub concurrency: usize,
    /// Retries after 429, 5xx or a broken connection.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,
}

impl NetArgs {
    fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure_registries: self.insecure_registry.clone(),
            progress: !self.quiet,
            concurrency: self.concurrency.max(1),
            retries: self.retries,
            ..RegistryOptions::default()
        }
    }
}

/// `image-store pull REF`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The image (`busybox`, `127.0.0.1:5000/app:1`, `name@sha256:…`).
    pub reference: String,
    /// os/arch[/variant] to select from a multi-platform image (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `image-store push SRC [DEST]`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The image in the store (reference or ID).
    pub source: String,
    /// Where to push (default: SRC's reference).
    pub dest: Option<String>,
    /// Manifest format: `oci` (default) or `docker` (v2 schema 2).
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker"])]
    pub format: String,
    /// Layer compression: `gzip`, `zstd` or `none` (default: as stored). Recompression is
    /// deterministic and remembered.
    #[arg(long, value_parser = ["gzip", "zstd", "none"])]
    pub compression: Option<String>,
    /// Upload blobs larger than this many bytes in chunks of this size.
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// Write the result document (with the manifest digest) to this file.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `image-store login [REGISTRY]`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The registry (default: docker.io).
    #[arg(default_value = "docker.io")]
    pub registry: String,
    /// User name.
    #[arg(long, short = 'u')]
    pub username: String,
    /// Password (prefer --password-stdin: this one is visible in the process list).
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `image-store logout [REGISTRY]`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// The registry (default: docker.io).
    #[arg(default_value = "docker.io")]
    pub registry: String,
}

/// The result of login/logout.
#[derive(Debug, Clone, Serialize)]
pub struct LoginReport {
    /// Always 1.
    pub version: u32,
    /// The registry.
    pub registry: String,
    /// `login`: stored; `logout`: whether a credential was removed.
    pub changed: bool,
}

impl PullReport {
    /// One line of text: the reference and the manifest digest.
    pub fn to_text(&self) -> String {
        format!("{} {}\n", self.reference, self.manifest_digest)
    }
}

impl PushReport {
    /// The pushed manifest digest.
    pub fn to_text(&self) -> String {
        format!("{}\n", self.digest)
    }
}

impl LoginReport {
    /// A short message.
    pub fn to_text(&self) -> String {
        if self.changed {
            format!("{}: ok\n", self.registry)
        } else {
            format!("{}: not logged in\n", self.registry)
        }
    }
}

fn registry_name(s: &str) -> Result<String> {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(RegistryError::Usage(format!("invalid registry {s:?}")));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    })
}

/// Runs `pull`.
pub fn run_pull(store: &Store, args: &PullArgs) -> Result<PullReport> {
    let reference = Reference::parse(&args.reference)?;
    let mut opts = args.net.options();
    if let Some(p) = &args.platform {
        opts.platform = Some(Platform::parse(p).map_err(|e| RegistryError::Usage(e.to_string()))?);
    }
    pull(store, &reference, &opts)
}

/// Runs `push`; writes `--metadata-file`.
pub fn run_push(store: &Store, args: &PushArgs) -> Result<PushReport> {
    let image = store.find_image(&args.source)?;
    let dest = match &args.dest {
        Some(d) => Reference::parse(d)?,
        None => match &image.reference {
            Some(r) => Reference::parse(r)?,
            None => {
                return Err(RegistryError::Usage(format!(
                    "{}: no reference to push to (give DEST)",
                    args.source
                )));
            }
        },
    };
    let popts = PushOptions {
        format: PushFormat::parse(&args.format)
            .ok_or_else(|| RegistryError::Usage(format!("unknown format {:?}", args.format)))?,
        compression: args
            .compression
            .as_deref()
            .map(|c| {
                LayerCompression::parse(c)
                    .ok_or_else(|| RegistryError::Usage(format!("unknown compression {c:?}")))
            })
            .transpose()?,
    };
    let mut opts = args.net.options();
    opts.chunk_size = args.chunk_size;
    let report = push(store, &image, &dest, &popts, &opts)?;
    if let Some(path) = &args.metadata_file {
        let mut bytes = serde_json::to_vec_pretty(&report)
            .map_err(|e| RegistryError::invalid(path.display().to_string(), e.to_string()))?;
        bytes.push(b'\n');
        std::fs::write(path, bytes)
            .map_err(|e| RegistryError::Store(crate::StoreError::io("write", path, e)))?;
    }
    Ok(report)
}

/// Runs `login`: the password from `--password` or stdin; verified before it is stored.
pub fn run_login(args: &LoginArgs) -> Result<LoginReport> {
    let registry = registry_name(&args.registry)?;
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(RegistryError::Usage(
                "--password and --password-stdin are exclusive".into(),
            ));
        }
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| RegistryError::Usage(format!("reading the password: {e}")))?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            return Err(RegistryError::Usage(
                "give --password-stdin (or --password)".into(),
            ));
        }
    };
    if password.is_empty() {
        return Err(RegistryError::Usage("empty password".into()));
    }
    login(
        &registry,
        &Credential::new(&args.username, &password),
        &args.net.options(),
    )?;
    Ok(LoginReport {
        version: 1,
        registry,
        changed: true,
    })
}

/// Runs `logout`.
pub fn run_logout(args: &LogoutArgs) -> Result<LoginReport> {
    let registry = registry_name(&args.registry)?;
    let changed = logout(&registry, &RegistryOptions::default())?;
    Ok(LoginReport {
        version: 1,
        registry,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names() {
        assert_eq!(
            registry_name("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert_eq!(registry_name("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert!(registry_name("").is_err());
    }
}
