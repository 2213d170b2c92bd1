//! Push: blobs (HEAD skip, cross-repository mount, monolithic or chunked upload, resumed after a
//! broken connection), then the manifest, in OCI or Docker v2s2 form, with optional
//! recompression.

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use super::RegistryOptions;
use super::client::{Client, Req, ReqBody, Scope, header};
use super::compress::{LayerCompression, recompress_layer};
use super::error::{RegistryError, Result};
use super::fetch::for_each_parallel;
use super::progress::{Bar, Progress};
use crate::digest::Digest;
use crate::images::ImageRecord;
use crate::oci::{
    Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_MANIFEST, Manifest, canonical_json,
};
use crate::reference::Reference;
use crate::store::Store;

/// The manifest format of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFormat {
    /// OCI image manifest and media types (the default).
    #[default]
    Oci,
    /// Docker v2 schema 2 (gzip or uncompressed layers only).
    Docker,
}

impl PushFormat {
    /// Parses `oci` or `docker`.
    pub fn parse(s: &str) -> Option<PushFormat> {
        match s {
            "oci" => Some(PushFormat::Oci),
            "docker" | "v2s2" => Some(PushFormat::Docker),
            _ => None,
        }
    }
}

/// What to push and how.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Manifest format.
    pub format: PushFormat,
    /// Layer compression; `None` keeps each layer as stored.
    pub compression: Option<LayerCompression>,
}

/// What a push did (the JSON document printed by `image-store push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Always 1.
    pub version: u32,
    /// The destination reference.
    pub reference: String,
    /// The pushed manifest's digest.
    pub digest: Digest,
    /// The manifest media type.
    pub media_type: String,
    /// The manifest size.
    pub size: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had (HEAD).
    pub blobs_existing: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Layers recompressed by this push (0 when the mapping was remembered).
    pub layers_recompressed: usize,
}

/// How one blob got to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobOutcome {
    Existing,
    Mounted,
    Uploaded(u64),
}

fn sources_path(store: &Store, digest: &Digest) -> std::path::PathBuf {
    store.root().join("registry/sources").join(digest.hex())
}

/// Remembers that `digest` exists in `registry/repository` (for cross-repository mounts).
/// Best effort: failures are ignored.
pub(crate) fn record_source(store: &Store, digest: &Digest, registry: &str, repository: &str) {
    let path = sources_path(store, digest);
    let entry = format!("{registry}/{repository}");
    let mut lines: Vec<String> = fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty() && *l != entry)
        .map(str::to_string)
        .collect();
    lines.insert(0, entry);
    lines.truncate(8);
    let Some(dir) = path.parent() else {
        return;
    };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
    if fs::write(&tmp, lines.join("\n") + "\n").is_ok() && fs::rename(&tmp, &path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Repositories of `registry` known to hold `digest`.
pub(crate) fn sources_of(store: &Store, digest: &Digest, registry: &str) -> Vec<String> {
    let prefix = format!("{registry}/");
    fs::read_to_string(sources_path(store, digest))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn with_query(location: &str, query: &str) -> String {
    if location.contains('?') {
        format!("{location}&{query}")
    } else {
        format!("{location}?{query}")
    }
}

fn location(
    client: &Client,
    req: &Req<'_>,
    resp: &ureq::http::Response<ureq::Body>,
) -> Result<String> {
    header(resp, "location")
        .map(|l| client.absolute(l))
        .ok_or_else(|| {
            RegistryError::invalid(
                format!("{} {}", req.method, client.absolute(&req.url)),
                "upload answer without a Location header",
            )
        })
}

/// Parses an upload's `Range: 0-N` header into the next offset (N+1).
fn next_offset(range: Option<&str>) -> Option<u64> {
    let r = range?.trim();
    let r = r.strip_prefix("bytes=").unwrap_or(r);
    let (_, end) = r.split_once('-')?;
    end.trim().parse::<u64>().ok().map(|e| e + 1)
}

/// Uploads one stored blob to `repository` unless the registry has it; tries a cross-repository
/// mount from repositories known to hold it first.
pub(crate) fn upload_blob(
    client: &Client,
    store: &Store,
    repository: &str,
    desc: &Descriptor,
    bar: &Bar,
) -> Result<BlobOutcome> {
    let scopes = [Scope::push(repository)];
    let head = Req::new(
        "HEAD",
        format!("/v2/{repository}/blobs/{}", desc.digest),
        &scopes,
    );
    let resp = client.send(&head)?;
    match resp.status().as_u16() {
        200 => {
            bar.set(desc.size);
            bar.finish("exists");
            return Ok(BlobOutcome::Existing);
        }
        404 => {}
        _ => return Err(client.status_error(&head, resp)),
    }
    drop(resp);
    let registry = client.endpoint().registry.clone();
    let mut upload_at: Option<String> = None;
    if let Some(from) = sources_of(store, &desc.digest, &registry)
        .into_iter()
        .find(|r| r != repository)
    {
        let mscopes = [Scope::push(repository), Scope::pull(&from)];
        let req = Req::new(
            "POST",
            format!(
                "/v2/{repository}/blobs/uploads/?mount={}&from={from}",
                desc.digest
            ),
            &mscopes,
        );
        match client.send(&req) {
            Ok(resp) => match resp.status().as_u16() {
                201 => {
                    bar.set(desc.size);
                    bar.finish("mounted");
                    return Ok(BlobOutcome::Mounted);
                }
                202 => upload_at = Some(location(client, &req, &resp)?),
                _ => {} // mount refused: upload normally
            },
            // no read access to the source repository: upload normally
            Err(RegistryError::Auth { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // an upload session left by an interrupted run: continue where the registry stopped
    let session = session_path(store, &registry, repository, &desc.digest);
    let mut resumed: Option<(String, u64)> = None;
    if let Some(saved) = load_session(&session) {
        match upload_status(client, &saved, &scopes) {
            Ok((off, l)) if off <= desc.size => resumed = Some((l.unwrap_or(saved), off)),
            _ => {
                let _ = fs::remove_file(&session);
            }
        }
    }
    let new_session = || -> Result<String> {
        let req = Req::new("POST", format!("/v2/{repository}/blobs/uploads/"), &scopes);
        let resp = client.send(&req)?;
        if resp.status().as_u16() != 202 {
            return Err(client.status_error(&req, resp));
        }
        let loc = location(client, &req, &resp)?;
        save_session(&session, &loc);
        Ok(loc)
    };
    let (mut loc, mut offset) = if let Some(r) = resumed {
        r
    } else if let Some(l) = upload_at {
        save_session(&session, &l);
        (l, 0)
    } else {
        (new_session()?, 0)
    };
    let path = store.blob_path(&desc.digest);
    let actual = fs::metadata(&path)
        .map_err(|e| crate::StoreError::io("stat", &path, e))?
        .len();
    if actual != desc.size {
        return Err(RegistryError::Store(crate::StoreError::SizeMismatch {
            name: desc.digest.to_string(),
            expected: desc.size,
            actual,
        }));
    }
    let chunk = client
        .options()
        .chunk_size
        .filter(|c| *c > 0 && *c < desc.size);
    let digest_q = format!("digest={}", desc.digest);
    if offset == 0 && chunk.is_none() {
        // monolithic: one PUT with the whole blob
        let req = Req::new("PUT", with_query(&loc, &digest_q), &scopes)
            .header("content-type", "application/octet-stream")
            .body(ReqBody::File {
                path: path.clone(),
                offset: 0,
                len: desc.size,
            });
        let resp = client.send(&req)?;
        if resp.status().as_u16() != 201 {
            return Err(client.status_error(&req, resp));
        }
        let _ = fs::remove_file(&session);
        bar.set(desc.size);
        bar.finish("pushed");
        return Ok(BlobOutcome::Uploaded(desc.size));
    }
    // chunked (or the rest of a resumed upload): PATCH each chunk, then PUT to close; on a
    // failure ask the registry how much it has and continue from there
    let chunk = chunk.unwrap_or(desc.size).max(1);
    let mut sent = 0u64;
    let mut failures = 0u32;
    bar.set(offset);
    while offset < desc.size {
        let len = chunk.min(desc.size - offset);
        let req = Req::new("PATCH", loc.clone(), &scopes)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{}", offset + len - 1))
            .body(ReqBody::File {
                path: path.clone(),
                offset,
                len,
            });
        let retry = match client.send(&req) {
            Ok(resp) if resp.status().as_u16() == 202 => {
                loc = location(client, &req, &resp)?;
                offset = next_offset(header(&resp, "range")).unwrap_or(offset + len);
                sent += len;
                save_session(&session, &loc);
                bar.set(offset);
                None
            }
            Ok(resp) if resp.status().as_u16() == 416 || resp.status().is_server_error() => {
                Some(client.status_error(&req, resp))
            }
            Ok(resp) => return Err(client.status_error(&req, resp)),
            Err(e @ RegistryError::Transport { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        if let Some(e) = retry {
            failures += 1;
            if failures > client.options().retries {
                return Err(e);
            }
            std::thread::sleep(client.options().backoff);
            // registries that keep partial chunks say how far they got; others (distribution
            // invalidates a session after a broken chunk) need a new session from the start
            if let Ok((off, l)) = upload_status(client, &loc, &scopes) {
                offset = off;
                if let Some(l) = l {
                    loc = l;
                }
            } else {
                loc = new_session()?;
                offset = 0;
            }
        }
    }
    let req = Req::new("PUT", with_query(&loc, &digest_q), &scopes);
    let resp = client.send(&req)?;
    if resp.status().as_u16() != 201 {
        return Err(client.status_error(&req, resp));
    }
    let _ = fs::remove_file(&session);
    bar.finish("pushed");
    Ok(BlobOutcome::Uploaded(sent))
}

/// GET on an upload location: the bytes the registry has received so far, and the location to
/// continue with.
fn upload_status(client: &Client, loc: &str, scopes: &[Scope]) -> Result<(u64, Option<String>)> {
    let req = Req::new("GET", loc.to_string(), scopes);
    let resp = client.send(&req)?;
    if resp.status().as_u16() != 204 {
        return Err(client.status_error(&req, resp));
    }
    let next = header(&resp, "location").map(|l| client.absolute(l));
    Ok((next_offset(header(&resp, "range")).unwrap_or(0), next))
}

/// Where an unfinished upload session of `digest` to `registry/repository` is remembered.
fn session_path(
    store: &Store,
    registry: &str,
    repository: &str,
    digest: &Digest,
) -> std::path::PathBuf {
    let repo = Digest::of(format!("{registry}/{repository}").as_bytes());
    store
        .root()
        .join("registry/uploads")
        .join(repo.hex())
        .join(digest.hex())
}

fn load_session(path: &std::path::Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (s.starts_with("http://") || s.starts_with("https://")).then(|| s.to_string())
}

/// Best effort: a lost session only means the next run uploads from the start.
fn save_session(path: &std::path::Path, location: &str) {
    let Some(dir) = path.parent() else {
        return;
    };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    if fs::write(&tmp, location).is_ok() && fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// The layers, config and manifest bytes to push for `image` in the wanted form. Returns
/// (manifest bytes, media type, blobs, recompressed count).
pub(crate) fn prepare_manifest(
    store: &Store,
    image: &ImageRecord,
    popts: &PushOptions,
) -> Result<(Vec<u8>, String, Vec<Descriptor>, usize)> {
    let mut layers = Vec::new();
    let mut recompressed = 0;
    let mut checked = Vec::new();
    for (layer, diff_id) in image.layers()? {
        super::pull::check_layer_media_type(&layer)?;
        let current = LayerCompression::of_media_type(&layer.media_type).ok_or_else(|| {
            RegistryError::UnsupportedMediaType {
                what: format!("layer {}", layer.digest),
                media_type: layer.media_type.clone(),
            }
        })?;
        let want = popts.compression.unwrap_or(current);
        // check the format can carry it before doing any work
        let media_type = match popts.format {
            PushFormat::Oci => want.oci_media_type(),
            PushFormat::Docker => want.docker_media_type().ok_or_else(|| {
                RegistryError::Usage(
                    "--format docker cannot carry zstd layers (use --compression gzip)".into(),
                )
            })?,
        };
        checked.push((layer, diff_id, want, current, media_type));
    }
    for (layer, diff_id, want, current, media_type) in checked {
        let (mut d, fresh) = if want == current {
            (layer.clone(), false)
        } else {
            recompress_layer(store, &layer, &diff_id, want)?
        };
        recompressed += usize::from(fresh);
        d.media_type = media_type.to_string();
        d.platform = None;
        layers.push(d);
    }
    let (manifest_mt, config_mt) = match popts.format {
        PushFormat::Oci => (MEDIA_TYPE_MANIFEST, MEDIA_TYPE_CONFIG),
        PushFormat::Docker => (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG),
    };
    let mut config = image.manifest.config.clone();
    config.media_type = config_mt.to_string();
    let stored_mt = image
        .manifest
        .media_type
        .as_deref()
        .unwrap_or(MEDIA_TYPE_MANIFEST);
    let unchanged = stored_mt == manifest_mt
        && image.manifest.config == config
        && image.manifest.layers == layers;
    let bytes = if unchanged {
        // the stored manifest as is: the digest stays the same
        store.read_blob(image.manifest_digest())?
    } else {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest_mt.to_string()),
            config: config.clone(),
            layers: layers.clone(),
            annotations: if popts.format == PushFormat::Oci {
                image.manifest.annotations.clone()
            } else {
                BTreeMap::new()
            },
            extra: BTreeMap::new(),
        };
        canonical_json(&m)?
    };
    let mut blobs = layers;
    blobs.push(config);
    Ok((bytes, manifest_mt.to_string(), blobs, recompressed))
}

/// Uploads `blobs` (in parallel, the last one after the others) to `repository`.
pub(crate) fn upload_blobs(
    client: &Client,
    store: &Store,
    repository: &str,
    blobs: &[Descriptor],
    progress: &Progress,
) -> Result<(usize, usize, usize, u64)> {
    let uploaded = AtomicUsize::new(0);
    let existing = AtomicUsize::new(0);
    let mounted = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let one = |d: &Descriptor| -> Result<()> {
        let bar = progress.bar(d.digest.short().to_string(), d.size);
        match upload_blob(client, store, repository, d, &bar)? {
            BlobOutcome::Existing => existing.fetch_add(1, Ordering::Relaxed),
            BlobOutcome::Mounted => mounted.fetch_add(1, Ordering::Relaxed),
            BlobOutcome::Uploaded(n) => {
                bytes.fetch_add(n, Ordering::Relaxed);
                uploaded.fetch_add(1, Ordering::Relaxed)
            }
        };
        Ok(())
    };
    for_each_parallel(blobs, client.options().concurrency, one)?;
    Ok((
        uploaded.into_inner(),
        existing.into_inner(),
        mounted.into_inner(),
        bytes.into_inner(),
    ))
}

/// PUTs a manifest (by tag, or by digest when `dest` has one); returns its digest.
pub(crate) fn put_manifest(
    client: &Client,
    dest: &Reference,
    bytes: &[u8],
    media_type: &str,
) -> Result<Digest> {
    let repository = dest.path();
    let digest = Digest::of(bytes);
    let target = match (dest.digest(), dest.tag()) {
        (Some(d), _) => {
            if *d != digest {
                return Err(RegistryError::Usage(format!(
                    "{dest}: the manifest to push has digest {digest}"
                )));
            }
            d.to_string()
        }
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let scopes = [Scope::push(repository)];
    let req = Req::new(
        "PUT",
        format!("/v2/{repository}/manifests/{target}"),
        &scopes,
    )
    .header("content-type", media_type)
    .body(ReqBody::Bytes(bytes.to_vec()));
    let resp = client.send(&req)?;
    if resp.status().as_u16() != 201 {
        return Err(client.status_error(&req, resp));
    }
    if let Some(h) = header(&resp, "docker-content-digest")
        && h.starts_with("sha256:")
        && h != digest.as_str()
    {
        return Err(RegistryError::invalid(
            format!("manifest {dest}"),
            format!("the registry stored it as {h}, not {digest}"),
        ));
    }
    Ok(digest)
}

/// Pushes `image` to `dest`: blobs first (skipped, mounted or uploaded), the manifest last.
pub fn push(
    store: &Store,
    image: &ImageRecord,
    dest: &Reference,
    popts: &PushOptions,
    opts: &RegistryOptions,
) -> Result<PushReport> {
    let (bytes, media_type, blobs, recompressed) = prepare_manifest(store, image, popts)?;
    let client = Client::new(dest.domain(), opts)?;
    let progress = Progress::new(opts.progress);
    let repository = dest.path();
    let (uploaded, existing, mounted, sent) =
        upload_blobs(&client, store, repository, &blobs, &progress)?;
    let digest = put_manifest(&client, dest, &bytes, &media_type)?;
    for b in &blobs {
        record_source(store, &b.digest, dest.domain(), repository);
    }
    Ok(PushReport {
        version: 1,
        reference: dest.to_string(),
        digest,
        media_type,
        size: bytes.len() as u64,
        blobs_uploaded: uploaded,
        blobs_existing: existing,
        blobs_mounted: mounted,
        bytes_uploaded: sent,
        layers_recompressed: recompressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_query_helpers() {
        assert_eq!(next_offset(Some("0-99")), Some(100));
        assert_eq!(next_offset(Some("bytes=0-0")), Some(1));
        assert_eq!(next_offset(Some("garbage")), None);
        assert_eq!(next_offset(None), None);
        assert_eq!(
            with_query("http://h/u?_state=x", "digest=d"),
            "http://h/u?_state=x&digest=d"
        );
        assert_eq!(with_query("http://h/u", "digest=d"), "http://h/u?digest=d");
    }

    #[test]
    fn sources_are_remembered_per_registry() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let dg = Digest::of(b"x");
        assert!(sources_of(&s, &dg, "r:5000").is_empty());
        record_source(&s, &dg, "r:5000", "a/b");
        record_source(&s, &dg, "other", "c");
        record_source(&s, &dg, "r:5000", "d");
        assert_eq!(sources_of(&s, &dg, "r:5000"), vec!["d", "a/b"]);
        assert_eq!(sources_of(&s, &dg, "other"), vec!["c"]);
    }
}
