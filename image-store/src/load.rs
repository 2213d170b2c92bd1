//! `load`: OCI layouts (directory or tar) and docker archives. Every blob is verified against its
//! digest and size before it becomes visible; a mismatch names the blob and tags nothing.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, ImageConfig, Index,
    MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST, Manifest, Platform,
    canonical_json, from_json, is_index_media_type, is_manifest_media_type,
};
use crate::reference::Reference;
use crate::store::Store;

/// One image loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedImage {
    /// The tag given to it (`None`: loaded untagged).
    pub reference: Option<String>,
    /// Its manifest digest.
    pub manifest_digest: Digest,
    /// Its image ID.
    pub image_id: Digest,
}

/// Options of [`Store::load_path`] and [`Store::load_tar`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Tag for the (single) image, overriding any name in the input.
    pub reference: Option<Reference>,
    /// Platform to pick from multi-platform indexes (default: the host's).
    pub platform: Option<Platform>,
    /// Repository used for tag-only names (`latest`) in an OCI layout (default `localhost/<stem>`).
    pub default_repo: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Where the input's files are: a directory, or small files kept from a tar plus ingested blobs.
enum Source {
    Dir(PathBuf),
    Tar {
        files: HashMap<String, Vec<u8>>,
        blobs: HashMap<String, (Digest, u64)>,
        links: HashMap<String, String>,
    },
}

fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn invalid(what: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        what: what.to_string(),
        reason: reason.into(),
    }
}

impl Source {
    fn small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Dir(d) => {
                let p = d.join(name);
                match fs::metadata(&p) {
                    Ok(m) if m.len() > crate::MAX_DOCUMENT_SIZE => {
                        Err(invalid(name, "file too large"))
                    }
                    Ok(_) => fs::read(&p).ctx("read", &p).map(Some),
                    Err(_) => Ok(None),
                }
            }
            Source::Tar { files, .. } => Ok(files.get(&clean(name)).cloned()),
        }
    }
}

/// Names the input file in an error about the input as a whole (`input`, `input archive`).
fn name_input(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Invalid { what, reason } if what == "input" || what == "input archive" => {
            StoreError::Invalid {
                what: path.display().to_string(),
                reason,
            }
        }
        StoreError::Invalid { what, reason } if what.starts_with("input: ") => {
            StoreError::Invalid {
                what: format!("{}{}", path.display(), what.trim_start_matches("input")),
                reason,
            }
        }
        StoreError::Io {
            op,
            path: p,
            source,
        } if p.as_os_str() == "input" => StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        },
        // a document of the input: an input error, named inside the input
        StoreError::Json { path: doc, source } => StoreError::Invalid {
            what: format!("{}: {doc}", path.display()),
            reason: format!("invalid JSON: {source}"),
        },
        e => e,
    }
}

impl Store {
    /// Loads an OCI layout directory, an OCI layout tar, or a docker archive tar (plain or
    /// compressed). Returns the images loaded, tagged as named in the input (or `opts.reference`).
    pub fn load_path(&self, path: &Path, opts: &LoadOptions) -> Result<Vec<LoadedImage>> {
        if path.is_dir() {
            let mut o = opts.clone();
            if o.default_repo.is_none() {
                o.default_repo = Some(default_repo(path));
            }
            return self.load_source(&Source::Dir(path.to_path_buf()), &o);
        }
        let f = match fs::File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid(
                    &path.display().to_string(),
                    "no such file or directory",
                ));
            }
            f => f.ctx("open", path)?,
        };
        let mut o = opts.clone();
        if o.default_repo.is_none() {
            o.default_repo = Some(default_repo(path));
        }
        self.load_tar(f, &o).map_err(|e| name_input(e, path))
    }

    /// Loads a tar stream (OCI layout or docker archive).
    pub fn load_tar(&self, reader: impl Read, opts: &LoadOptions) -> Result<Vec<LoadedImage>> {
        let input =
            crate::import::decompress(reader).map_err(|e| StoreError::io("read", "input", e))?;
        let mut ar = tar::Archive::new(input);
        let mut files = HashMap::new();
        let mut blobs = HashMap::new();
        let mut links = HashMap::new();
        let terr =
            |e: io::Error| invalid("input archive", format!("not a readable tar archive: {e}"));
        for e in ar.entries().map_err(terr)? {
            let mut e = e.map_err(terr)?;
            let name = clean(&String::from_utf8_lossy(&e.path_bytes()));
            let kind = e.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(t)) = e.link_name() {
                    let t = t.to_string_lossy().into_owned();
                    let target = if kind.is_symlink() {
                        let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                        clean(&format!("{parent}/{t}"))
                    } else {
                        clean(&t)
                    };
                    links.insert(name, target);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = e.size();
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                let d = Digest::parse(&format!("sha256:{hex}"))?;
                self.put_blob(&mut e, Some((&d, size)))?;
                blobs.insert(name, (d, size));
            } else if Path::new(&name)
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("json"))
                || name == "oci-layout"
                || name == "repositories"
            {
                if size > crate::MAX_DOCUMENT_SIZE {
                    return Err(invalid(&name, "file too large"));
                }
                let mut v = Vec::with_capacity(size as usize);
                e.read_to_end(&mut v).map_err(terr)?;
                files.insert(name, v);
            } else {
                // docker archive layer.tar (digest checked against the config's diff_ids later)
                let info = self.put_blob(&mut e, None)?;
                blobs.insert(name, (info.digest, info.size));
            }
        }
        self.load_source(
            &Source::Tar {
                files,
                blobs,
                links,
            },
            opts,
        )
    }

    fn load_source(&self, src: &Source, opts: &LoadOptions) -> Result<Vec<LoadedImage>> {
        let r = self.load_source_inner(src, opts);
        match src {
            Source::Dir(dir) => r.map_err(|e| name_input(e, dir)),
            // a tar from a file is named by load_path; a stream is `input`
            Source::Tar { .. } => r.map_err(|e| match e {
                StoreError::Json { path, source } => StoreError::Invalid {
                    what: format!("input: {path}"),
                    reason: format!("invalid JSON: {source}"),
                },
                e => e,
            }),
        }
    }

    fn load_source_inner(&self, src: &Source, opts: &LoadOptions) -> Result<Vec<LoadedImage>> {
        if let Some(m) = src.small("manifest.json")? {
            return self.load_docker(src, &m, opts);
        }
        let Some(idx) = src.small("index.json")? else {
            return Err(invalid(
                "input",
                "neither an OCI layout (index.json) nor a docker archive (manifest.json)",
            ));
        };
        match src.small("oci-layout")? {
            Some(l) if String::from_utf8_lossy(&l).contains("1.0.0") => {}
            _ => return Err(invalid("input", "missing or unsupported oci-layout")),
        }
        let index: Index = from_json(&idx, "index.json")?;
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let mut out = Vec::new();
        for d in &index.manifests {
            let name = d.annotations.get(ANNOTATION_REF_NAME).cloned();
            // BuildKit, containerd and `docker save` put the full name in
            // io.containerd.image.name and only the tag in ref.name
            let full = d
                .annotations
                .get(ANNOTATION_CONTAINERD_NAME)
                .and_then(|n| Reference::parse(n).ok())
                .filter(|r| r.digest().is_none());
            let manifest = self.pick_manifest(src, d, &platform, 0)?;
            let reference = match (&opts.reference, name) {
                (Some(r), _) => Some(r.clone()),
                (None, _) if full.is_some() => full,
                (None, Some(n)) if n.contains('/') => Some(Reference::parse(&n)?),
                (None, Some(tag)) => {
                    let repo = opts
                        .default_repo
                        .clone()
                        .unwrap_or_else(|| "localhost/image".into());
                    Some(Reference::parse(&format!("{repo}:{tag}"))?)
                }
                (None, None) => None,
            };
            out.push(self.finish_load(src, &manifest, reference.as_ref())?);
        }
        if opts.reference.is_some() && out.len() > 1 {
            return Err(invalid(
                "input",
                "a tag was given but the input holds several images",
            ));
        }
        Ok(out)
    }

    /// Ingests one blob of the input, verified against its descriptor.
    fn ingest(&self, src: &Source, d: &Descriptor) -> Result<()> {
        match src {
            Source::Dir(dir) => {
                let p = dir
                    .join("blobs")
                    .join(d.digest.algorithm())
                    .join(d.digest.hex());
                let f = match fs::File::open(&p) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(invalid(
                            &format!("blob {}", d.digest),
                            format!("missing from the layout ({} not found)", p.display()),
                        ));
                    }
                    f => f.ctx("open", &p)?,
                };
                self.put_blob(f, Some((&d.digest, d.size)))?;
                Ok(())
            }
            Source::Tar { blobs, .. } => {
                let name = format!("blobs/sha256/{}", d.digest.hex());
                match blobs.get(&name) {
                    Some((_, size)) if *size == d.size => {
                        // ingested (and verified) while streaming; protect it
                        self.protected(&[&d.digest], || Ok(()))
                    }
                    Some((_, size)) => Err(StoreError::SizeMismatch {
                        name: d.digest.to_string(),
                        expected: d.size,
                        actual: *size,
                    }),
                    None => Err(invalid(
                        &format!("blob {}", d.digest),
                        format!("missing from the archive ({name} not found)"),
                    )),
                }
            }
        }
    }

    /// Resolves a descriptor to an image manifest, descending into indexes for `platform`.
    fn pick_manifest(
        &self,
        src: &Source,
        d: &Descriptor,
        platform: &Platform,
        depth: u32,
    ) -> Result<Descriptor> {
        if depth > 4 {
            return Err(invalid(d.digest.as_str(), "indexes nested too deeply"));
        }
        self.ingest(src, d)?;
        if is_manifest_media_type(&d.media_type) {
            return Ok(d.clone());
        }
        if !is_index_media_type(&d.media_type) {
            return Err(invalid(
                d.digest.as_str(),
                format!("unsupported media type {}", d.media_type),
            ));
        }
        let idx: Index = from_json(&self.read_blob(&d.digest)?, d.digest.as_str())?;
        let pick = idx
            .manifests
            .iter()
            .find(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os == platform.os
                        && p.architecture == platform.architecture
                        && (platform.variant.is_none() || p.variant == platform.variant)
                })
            })
            .or_else(|| {
                (idx.manifests.len() == 1)
                    .then(|| idx.manifests.first())
                    .flatten()
            })
            .ok_or_else(|| {
                invalid(
                    d.digest.as_str(),
                    format!("no manifest for {}/{}", platform.os, platform.architecture),
                )
            })?;
        self.pick_manifest(src, pick, platform, depth + 1)
    }

    fn finish_load(
        &self,
        src: &Source,
        d: &Descriptor,
        reference: Option<&Reference>,
    ) -> Result<LoadedImage> {
        let m: Manifest = from_json(&self.read_blob(&d.digest)?, d.digest.as_str())?;
        self.ingest(src, &m.config)?;
        for l in &m.layers {
            self.ingest(src, l)?;
        }
        let cfg: ImageConfig =
            from_json(&self.read_blob(&m.config.digest)?, m.config.digest.as_str())?;
        if cfg.rootfs.diff_ids.len() != m.layers.len() {
            return Err(invalid(
                d.digest.as_str(),
                "layer count differs from diff_ids",
            ));
        }
        if let Some(r) = reference {
            let mut td = Descriptor::new(&d.media_type, d.digest.clone(), d.size);
            td.platform.clone_from(&d.platform);
            self.tag(r, &td)?;
        }
        Ok(LoadedImage {
            reference: reference.map(ToString::to_string),
            manifest_digest: d.digest.clone(),
            image_id: m.config.digest,
        })
    }

    fn load_docker(
        &self,
        src: &Source,
        manifest: &[u8],
        opts: &LoadOptions,
    ) -> Result<Vec<LoadedImage>> {
        let entries: Vec<DockerManifestEntry> = from_json(manifest, "manifest.json")?;
        if opts.reference.is_some() && entries.len() > 1 {
            return Err(invalid(
                "input",
                "a tag was given but the input holds several images",
            ));
        }
        let mut out = Vec::new();
        for e in entries {
            let cfg_bytes = self.docker_file(src, &e.config)?;
            let cfg_info = self.put_blob_bytes(&cfg_bytes)?;
            // a config named by its digest must hash to it
            if let Some(hex) = e.config.trim_end_matches(".json").rsplit('/').next()
                && hex.len() == 64
                && hex != cfg_info.digest.hex()
            {
                return Err(StoreError::DigestMismatch {
                    name: e.config.clone(),
                    expected: Digest::parse(&format!("sha256:{hex}"))?,
                    actual: cfg_info.digest,
                });
            }
            let cfg: ImageConfig = from_json(&cfg_bytes, &e.config)?;
            if cfg.rootfs.diff_ids.len() != e.layers.len() {
                return Err(invalid(&e.config, "layer count differs from diff_ids"));
            }
            let mut layers = Vec::new();
            for (path, diff_id) in e.layers.iter().zip(&cfg.rootfs.diff_ids) {
                let (digest, size) = self.docker_layer(src, path)?;
                // layers in a docker archive are uncompressed: their digest is the diff_id
                let (digest, size, media) = if &digest == diff_id {
                    (digest, size, MEDIA_TYPE_LAYER_TAR)
                } else {
                    let blob = self.open_blob(&digest)?;
                    let actual = layer_pack::diff_id_of(blob)
                        .map_err(|e| crate::blobs::blob_read_error(&digest, e))?;
                    if actual != diff_id.as_str() {
                        return Err(StoreError::DigestMismatch {
                            name: path.clone(),
                            expected: diff_id.clone(),
                            actual: Digest::parse(&actual)?,
                        });
                    }
                    (digest, size, crate::MEDIA_TYPE_LAYER_GZIP)
                };
                layers.push(Descriptor::new(media, digest, size));
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_MANIFEST.into()),
                config: Descriptor::new(MEDIA_TYPE_CONFIG, cfg_info.digest.clone(), cfg_info.size),
                layers,
                annotations: std::collections::BTreeMap::new(),
                extra: std::collections::BTreeMap::new(),
            };
            let mi = self.put_blob_bytes(&canonical_json(&manifest)?)?;
            let md = Descriptor::new(MEDIA_TYPE_MANIFEST, mi.digest.clone(), mi.size);
            let mut refs: Vec<Reference> = match &opts.reference {
                Some(r) => vec![r.clone()],
                None => e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse(t))
                    .collect::<std::result::Result<_, _>>()?,
            };
            if refs.is_empty() {
                out.push(LoadedImage {
                    reference: None,
                    manifest_digest: mi.digest.clone(),
                    image_id: cfg_info.digest.clone(),
                });
            }
            for r in refs.drain(..) {
                self.tag(&r, &md)?;
                out.push(LoadedImage {
                    reference: Some(r.to_string()),
                    manifest_digest: mi.digest.clone(),
                    image_id: cfg_info.digest.clone(),
                });
            }
        }
        Ok(out)
    }

    fn docker_file(&self, src: &Source, name: &str) -> Result<Vec<u8>> {
        if let Some(b) = src.small(name)? {
            return Ok(b);
        }
        // newer docker archives keep the config under blobs/sha256/<hex>
        let (d, _) = self.docker_layer(src, name)?;
        self.read_blob(&d)
    }

    fn docker_layer(&self, src: &Source, path: &str) -> Result<(Digest, u64)> {
        match src {
            Source::Dir(dir) => {
                let p = dir.join(path);
                if !p.starts_with(dir) || path.split('/').any(|c| c == "..") {
                    return Err(invalid(path, "path escapes the archive"));
                }
                let f = fs::File::open(&p).ctx("open", &p)?;
                let info = self.put_blob(f, None)?;
                Ok((info.digest, info.size))
            }
            Source::Tar { blobs, links, .. } => {
                let mut name = clean(path);
                for _ in 0..8 {
                    if let Some(t) = links.get(&name) {
                        name.clone_from(t);
                    }
                }
                let (d, size) = blobs
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| invalid(path, "missing from the archive"))?;
                self.protected(&[&d], || Ok(()))?;
                Ok((d, size))
            }
        }
    }
}

fn default_repo(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default();
    let cleaned: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "localhost/image".into()
    } else {
        format!("localhost/{cleaned}")
    }
}
