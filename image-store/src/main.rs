use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use image_store::{
    ExportFormat, ImportOptions, LayerDoc, LoadOptions, Platform, Reference, Store, StoreError,
};

/// A crash-safe, concurrent, content-addressed image store that is an OCI image layout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Store root (default: $PELAGOS_STORE, /var/lib/pelagos for root, else
    /// $XDG_DATA_HOME/pelagos).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print the version-1 JSON document instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List tagged images.
    Ls,
    /// Show an image's manifest, config and size.
    Inspect { image: String },
    /// Point DST at the image SRC names.
    Tag { src: String, dst: String },
    /// Remove tags (content is freed by gc).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove blobs and snapshots nothing references.
    Gc {
        /// Empty the build cache index first.
        #[arg(long)]
        prune_cache: bool,
        /// Keep unreferenced content modified less than SECS seconds ago (protects pipelines
        /// such as `layer-pack pack --store … | image-store commit`, which hold no lease).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        grace: u64,
    },
    /// Disk usage.
    Df,
    /// Verify every blob, image, snapshot and cache record.
    Fsck {
        /// Remove what is broken and dead processes' temp files.
        #[arg(long)]
        repair: bool,
    },
    /// Make a one-layer image from a rootfs tar (plain, gzip, zstd), a directory, or `-`.
    Import {
        /// A rootfs tar (plain, gzip or zstd), a directory, or `-` for stdin.
        source: String,
        /// Tag the new image as this reference.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// Config change (`CMD ["sh"]`, `ENV A=1`, ...); repeatable.
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// os/arch[/variant] (default: the host's).
        #[arg(long)]
        platform: Option<String>,
        /// History comment.
        #[arg(short = 'm', long)]
        message: Option<String>,
    },
    /// Load an OCI layout (dir or tar) or a docker archive; every blob is verified.
    Load {
        /// Path, or `-` for stdin (default).
        #[arg(default_value = "-")]
        source: String,
        /// Tag the (single) image as this.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// Platform to pick from multi-platform images.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Export images as an OCI layout (tar or dir), a docker archive, or a rootfs tar.
    Export {
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(long, default_value = "oci", value_parser = ["oci", "oci-dir", "docker", "rootfs"])]
        format: String,
        /// Output file or directory; `-` = stdout.
        #[arg(short = 'o', long, default_value = "-")]
        output: String,
    },
    /// The snapshot dirs (overlay lower dirs) of an image, top first.
    Lowers { image: String },
    /// Add layers (layer-pack documents on stdin or FILE) and changes on top of a base.
    Commit {
        /// Base image, or `scratch`.
        #[arg(long, default_value = "scratch")]
        base: String,
        /// Tag the new image as this reference.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// Config change (`CMD ["sh"]`, `ENV A=1`, ...); repeatable.
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// History `created_by` of the new layers.
        #[arg(long, default_value = "image-store commit")]
        created_by: String,
        /// File with layer-pack result documents (default: stdin; `-`).
        #[arg(default_value = "-")]
        layers: String,
    },
    /// Print an image's config JSON.
    Config { image: String },
    /// Pull an image from a registry (verified, parallel, resumable).
    Pull(image_store::registry::PullArgs),
    /// Push an image to a registry; prints the manifest digest.
    Push(image_store::registry::PushArgs),
    /// Check and store registry credentials (config.json or its credential helper).
    Login(image_store::registry::LoginArgs),
    /// Remove stored registry credentials.
    Logout(image_store::registry::LogoutArgs),
}

/// Names the imported file in an error about the tar as a whole (`tar input`).
fn name_tar_input(e: StoreError, source: &str) -> StoreError {
    match e {
        StoreError::Invalid { what, reason } if what == "tar input" => StoreError::Invalid {
            what: source.to_string(),
            reason,
        },
        StoreError::Io {
            op,
            path,
            source: s,
        } if path.as_os_str() == "tar input" => StoreError::Io {
            op,
            path: source.into(),
            source: s,
        },
        e => e,
    }
}

fn input_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_input_error)
            || c.is::<image_store::ReferenceError>()
            || c.downcast_ref::<image_store::registry::RegistryError>()
                .is_some_and(image_store::registry::RegistryError::is_input_error)
    })
}

fn out(
    json: bool,
    doc: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<bool> {
    let mut o = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut o, doc)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(o))
    } else {
        write!(o, "{}", text())
    };
    match written {
        // the reader went away (`image-store inspect X | head -3`): the work was done
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        r => r.map(|()| true).map_err(Into::into),
    }
}

/// One line per item.
fn lines<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(&f(i));
        s.push('\n');
    }
    s
}

fn reference(s: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(s)?)
}

fn platform(p: Option<&String>) -> anyhow::Result<Option<Platform>> {
    Ok(p.map(|s| Platform::parse(s)).transpose()?)
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let root = cli.store.unwrap_or_else(Store::default_root);
    let store = Store::open(&root).with_context(|| format!("opening store {}", root.display()))?;
    let json = cli.json;
    match cli.cmd {
        Cmd::Ls => {
            let r = store.list()?;
            out(json, &r, || r.to_text())
        }
        Cmd::Inspect { image } => {
            let r = image_store::InspectReport::from(store.find_image(&image)?);
            out(true, &r, String::new)
        }
        Cmd::Tag { src, dst } => {
            let img = store.find_image(&src)?;
            let dst = reference(&dst)?;
            store.tag(&dst, &img.manifest_descriptor)?;
            let doc = serde_json::json!({"version": 1, "reference": dst.to_string(),
                "manifest_digest": img.manifest_descriptor.digest, "image_id": img.config_digest});
            out(json, &doc, || format!("{dst}\n"))
        }
        Cmd::Rm { images } => {
            let mut removed = Vec::new();
            for i in &images {
                let r = reference(i)?;
                if !store.untag(&r)? {
                    return Err(StoreError::ImageNotFound {
                        reference: r.to_string(),
                    }
                    .into());
                }
                removed.push(r.to_string());
            }
            let doc = serde_json::json!({"version": 1, "removed": removed});
            out(json, &doc, || lines(&removed, |r| format!("untagged {r}")))
        }
        Cmd::Gc { prune_cache, grace } => {
            let r = store.gc_with(&image_store::GcOptions {
                prune_cache,
                grace: std::time::Duration::from_secs(grace),
            })?;
            out(json, &r, || {
                format!(
                    "removed {} blobs, {} snapshots, {} temp entries; freed {}\n",
                    r.blobs_removed,
                    r.snapshots_removed,
                    r.temp_removed,
                    image_store::human_size(r.bytes_freed)
                )
            })
        }
        Cmd::Df => {
            let r = store.df()?;
            out(json, &r, || r.to_text())
        }
        Cmd::Fsck { repair } => {
            let r = store.fsck(repair)?;
            for p in &r.problems {
                eprintln!(
                    "image-store: {} {}: {}{}",
                    p.kind,
                    p.object,
                    p.message,
                    if p.repaired { " (repaired)" } else { "" }
                );
            }
            out(json, &r, || {
                format!(
                    "{}: {} blobs, {} images, {} snapshots, {} cache records checked; {} problems; {} stale temp entries\n",
                    if r.ok { "ok" } else { "FAILED" },
                    r.blobs_checked,
                    r.images_checked,
                    r.snapshots_checked,
                    r.cache_records_checked,
                    r.problems.len(),
                    r.stale_temp
                )
            })?;
            Ok(r.ok)
        }
        Cmd::Import {
            source,
            tag,
            changes,
            platform: p,
            message,
        } => {
            let opts = ImportOptions {
                reference: tag.as_deref().map(reference).transpose()?,
                changes,
                platform: platform(p.as_ref())?,
                message,
            };
            let path = PathBuf::from(&source);
            let img = if source == "-" {
                store.import_tar(std::io::stdin().lock(), &opts)?
            } else if path.is_dir() {
                store.import_dir(&path, &opts)?
            } else {
                let f = match std::fs::File::open(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Invalid {
                            what: source,
                            reason: "no such file or directory".into(),
                        }
                        .into());
                    }
                    f => f.with_context(|| format!("opening {source}"))?,
                };
                store
                    .import_tar(f, &opts)
                    .map_err(|e| name_tar_input(e, &source))?
            };
            let doc = serde_json::json!({"version": 1,
                "reference": opts.reference.as_ref().map(ToString::to_string),
                "image_id": img.config.digest, "manifest_digest": img.manifest.digest});
            out(json, &doc, || format!("{}\n", img.config.digest))
        }
        Cmd::Load {
            source,
            tag,
            platform: p,
        } => {
            let opts = LoadOptions {
                reference: tag.as_deref().map(reference).transpose()?,
                platform: platform(p.as_ref())?,
                default_repo: None,
            };
            let loaded = if source == "-" {
                store.load_tar(std::io::stdin().lock(), &opts)?
            } else {
                store.load_path(std::path::Path::new(&source), &opts)?
            };
            let doc = serde_json::json!({"version": 1, "images": loaded});
            out(json, &doc, || {
                lines(&loaded, |l| {
                    format!(
                        "loaded {} {}",
                        l.reference.as_deref().unwrap_or("<untagged>"),
                        l.image_id
                    )
                })
            })
        }
        Cmd::Export {
            images,
            format,
            output,
        } => {
            let fmt = ExportFormat::parse(&format).context("unknown format")?;
            let recs = images
                .iter()
                .map(|i| store.find_image(i))
                .collect::<Result<Vec<_>, _>>()?;
            let dest = (output != "-").then(|| PathBuf::from(&output));
            {
                let mut stdout = std::io::stdout().lock();
                store.export(&recs, fmt, dest.as_deref(), &mut stdout)?;
            }
            match &dest {
                // written to a file or directory: stdout is free for the document
                Some(path) if json => {
                    let images: Vec<_> = recs
                        .iter()
                        .map(|r| {
                            serde_json::json!({"reference": r.reference,
                                "image_id": r.config_digest,
                                "manifest_digest": r.manifest_digest()})
                        })
                        .collect();
                    let doc = serde_json::json!({"version": 1, "format": format,
                        "output": path, "images": images});
                    out(true, &doc, String::new)
                }
                _ => Ok(true),
            }
        }
        Cmd::Lowers { image } => {
            let img = store.find_image(&image)?;
            let lowers = store.lowers_of(&img)?;
            let doc = serde_json::json!({"version": 1, "lowers": lowers});
            out(json, &doc, || lines(&lowers, |l| l.display().to_string()))
        }
        Cmd::Commit {
            base,
            tag,
            changes,
            created_by,
            layers,
        } => {
            let mut text = String::new();
            if layers == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(&layers)
                    .with_context(|| format!("reading {layers}"))?;
            }
            let docs = serde_json::Deserializer::from_str(&text)
                .into_iter::<LayerDoc>()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Invalid {
                    what: "layer documents".into(),
                    reason: e.to_string(),
                })?;
            let base = (base != "scratch").then(|| reference(&base)).transpose()?;
            let tag = tag.as_deref().map(reference).transpose()?;
            let img = store.commit(base.as_ref(), &docs, &changes, &created_by, tag.as_ref())?;
            let doc = serde_json::json!({"version": 1, "reference": tag.map(|t| t.to_string()),
                "image_id": img.config.digest, "manifest_digest": img.manifest.digest});
            out(json, &doc, || format!("{}\n", img.config.digest))
        }
        Cmd::Config { image } => {
            let img = store.find_image(&image)?;
            let bytes = store.read_blob(&img.config_digest)?;
            let mut o = std::io::stdout().lock();
            o.write_all(&bytes)?;
            writeln!(o)?;
            Ok(true)
        }
        Cmd::Pull(a) => {
            let r = image_store::registry::run_pull(&store, &a)?;
            out(json, &r, || r.to_text())
        }
        Cmd::Push(a) => {
            let r = image_store::registry::run_push(&store, &a)?;
            out(json, &r, || r.to_text())
        }
        Cmd::Login(a) => {
            let r = image_store::registry::run_login(&a)?;
            out(json, &r, || r.to_text())
        }
        Cmd::Logout(a) => {
            let r = image_store::registry::run_logout(&a)?;
            out(json, &r, || r.to_text())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("image-store: error: {}", layer_pack::cli::error_line(&e));
            ExitCode::from(if input_error(&e) { 2 } else { 1 })
        }
    }
}
