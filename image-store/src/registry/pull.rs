//! Pull: resolve a reference to one image manifest (platform selection through indexes), then
//! fetch the config and layers into the store, verified, in parallel, resuming broken downloads.

use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use super::RegistryOptions;
use super::client::{Client, Req, Scope, header};
use super::error::{RegistryError, Result};
use super::fetch::{fetch_blob, for_each_parallel};
use super::platform::{platform_matches, platform_string, select_manifest};
use super::progress::Progress;
use super::push::record_source;
use crate::blobs::MAX_DOCUMENT_SIZE;
use crate::digest::Digest;
use crate::oci::{
    Descriptor, ImageConfig, Index, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST, Manifest, Platform, is_index_media_type, is_manifest_media_type,
};
use crate::reference::Reference;
use crate::store::Store;

/// The `Accept` header for manifests: OCI and Docker, images and indexes.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What a pull did (the JSON document printed by `image-store pull`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullReport {
    /// Always 1.
    pub version: u32,
    /// The normalised reference pulled.
    pub reference: String,
    /// The image manifest's digest (of the selected platform).
    pub manifest_digest: Digest,
    /// The manifest media type (OCI or Docker).
    pub media_type: String,
    /// The digest the reference resolved to first (an index's, or the manifest's).
    pub resolved_digest: Digest,
    /// The image ID (config digest).
    pub image_id: Digest,
    /// `os/arch[/variant]` of the image.
    pub platform: String,
    /// Layers in the image.
    pub layers: usize,
    /// Blobs downloaded (config and layers not already present).
    pub blobs_downloaded: usize,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// Whether the reference was tagged in the store (digest references are not).
    pub tagged: bool,
}

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

/// The media type of a document: its `mediaType` field, else the Content-Type, else its shape.
fn document_media_type(bytes: &[u8], content_type: Option<&str>) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if let Some(ct) = content_type.map(|c| c.split(';').next().unwrap_or(c).trim())
        && (is_manifest_media_type(ct) || is_index_media_type(ct))
    {
        return ct.to_string();
    }
    if v.get("manifests").is_some() {
        MEDIA_TYPE_INDEX.to_string()
    } else {
        MEDIA_TYPE_MANIFEST.to_string()
    }
}

/// GET a manifest by tag or digest, verified against `expected` (and the registry's
/// `Docker-Content-Digest`).
pub(crate) fn fetch_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    expected: Option<&Digest>,
    scopes: &[Scope],
) -> Result<Fetched> {
    let req = Req::new(
        "GET",
        format!("/v2/{repository}/manifests/{reference}"),
        scopes,
    )
    .header("accept", MANIFEST_ACCEPT);
    let resp = client.send(&req)?;
    let what = format!("{}/{repository}:{reference}", client.endpoint().registry);
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(RegistryError::NotFound { what }),
        _ => return Err(client.status_error(&req, resp)),
    }
    let content_type = header(&resp, "content-type").map(str::to_string);
    let header_digest = header(&resp, "docker-content-digest").map(str::to_string);
    let mut bytes = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::Transport {
            method: "GET".into(),
            url: client.absolute(&req.url),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err(RegistryError::invalid(
            what,
            format!("manifest larger than {MAX_DOCUMENT_SIZE} bytes"),
        ));
    }
    let digest = Digest::of(&bytes);
    if let Some(want) = expected
        && *want != digest
    {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: want.clone(),
            actual: digest,
        });
    }
    if let Some(h) = header_digest
        && h.starts_with("sha256:")
        && h != digest.as_str()
    {
        return Err(RegistryError::invalid(
            what,
            format!("Docker-Content-Digest {h} does not match the content ({digest})"),
        ));
    }
    let media_type = document_media_type(&bytes, content_type.as_deref());
    Ok(Fetched {
        bytes,
        digest,
        media_type,
    })
}

/// Follows indexes (nested ones too) down to the image manifest for `platform`.
pub(crate) fn resolve_image_manifest(
    client: &Client,
    repository: &str,
    reference: &Reference,
    platform: &Platform,
    scopes: &[Scope],
) -> Result<(Fetched, Digest)> {
    let (first_ref, expected) = match (reference.digest(), reference.tag()) {
        (Some(d), _) => (d.to_string(), Some(d.clone())),
        (None, Some(t)) => (t.to_string(), None),
        (None, None) => ("latest".to_string(), None),
    };
    let mut doc = fetch_manifest(client, repository, &first_ref, expected.as_ref(), scopes)?;
    let resolved = doc.digest.clone();
    for _depth in 0..4 {
        if is_manifest_media_type(&doc.media_type) {
            return Ok((doc, resolved));
        }
        if !is_index_media_type(&doc.media_type) {
            return Err(RegistryError::UnsupportedMediaType {
                what: format!("{reference} ({})", doc.digest),
                media_type: doc.media_type.clone(),
            });
        }
        let index: Index = serde_json::from_slice(&doc.bytes)
            .map_err(|e| RegistryError::invalid(format!("index {}", doc.digest), e.to_string()))?;
        let Some(child) = select_manifest(&index, platform) else {
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .filter(|d| !super::platform::is_attestation(d))
                .filter_map(|d| d.platform.as_ref().map(platform_string))
                .collect();
            available.dedup();
            return Err(RegistryError::NoPlatform {
                reference: reference.to_string(),
                platform: platform_string(platform),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            });
        };
        let child = child.clone();
        doc = fetch_manifest(
            client,
            repository,
            child.digest.as_str(),
            Some(&child.digest),
            scopes,
        )?;
        if doc.bytes.len() as u64 != child.size {
            return Err(RegistryError::invalid(
                format!("manifest {}", child.digest),
                format!(
                    "size {} differs from the index's {}",
                    doc.bytes.len(),
                    child.size
                ),
            ));
        }
    }
    Err(RegistryError::invalid(
        reference.to_string(),
        "indexes nested more than 4 deep",
    ))
}

/// Whether a layer media type is pullable; foreign and unknown types are refused.
pub(crate) fn check_layer_media_type(d: &Descriptor) -> Result<()> {
    let mt = d.media_type.as_str();
    if mt.contains("foreign") || mt.contains("nondistributable") {
        return Err(RegistryError::ForeignLayer {
            digest: d.digest.clone(),
            media_type: mt.to_string(),
        });
    }
    if super::compress::LayerCompression::of_media_type(mt).is_none() {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("layer {}", d.digest),
            media_type: mt.to_string(),
        });
    }
    Ok(())
}

/// Pulls `reference` into `store` and tags it (unless it is a digest reference). Layers are
/// downloaded `opts.concurrency` at a time; blobs already present are skipped.
pub fn pull(store: &Store, reference: &Reference, opts: &RegistryOptions) -> Result<PullReport> {
    let client = Client::new(reference.domain(), opts)?;
    let repository = reference.path();
    let scopes = [Scope::pull(repository)];
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let (doc, resolved) = resolve_image_manifest(&client, repository, reference, &wanted, &scopes)?;
    let manifest: Manifest = serde_json::from_slice(&doc.bytes)
        .map_err(|e| RegistryError::invalid(format!("manifest {}", doc.digest), e.to_string()))?;
    if manifest.schema_version != 2 {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("manifest {}", doc.digest),
            media_type: format!("schemaVersion {}", manifest.schema_version),
        });
    }
    let config_mt = manifest.config.media_type.as_str();
    if config_mt != MEDIA_TYPE_CONFIG && config_mt != MEDIA_TYPE_DOCKER_CONFIG {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("config of {reference} (not a container image)"),
            media_type: config_mt.to_string(),
        });
    }
    for l in &manifest.layers {
        check_layer_media_type(l)?;
    }
    let progress = Progress::new(opts.progress);
    let bytes = AtomicU64::new(0);
    let count = AtomicUsize::new(0);
    let fetch = |d: &Descriptor| -> Result<()> {
        let bar = progress.bar(d.digest.short().to_string(), d.size);
        if let Some(n) = fetch_blob(&client, store, repository, d, &scopes, &bar)? {
            count.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    };
    // the config first: it must describe as many diff_ids as there are layers
    fetch(&manifest.config)?;
    let config_bytes = store.read_blob(&manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
        RegistryError::invalid(format!("config {}", manifest.config.digest), e.to_string())
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::invalid(
            format!("image {reference}"),
            format!(
                "{} layers but {} diff_ids in the config",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let have = Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: config.variant.clone(),
        extra: std::collections::BTreeMap::new(),
    };
    if let Some(want) = &opts.platform
        && !platform_matches(want, &have)
    {
        return Err(RegistryError::NoPlatform {
            reference: reference.to_string(),
            platform: platform_string(want),
            available: platform_string(&have),
        });
    }
    for_each_parallel(&manifest.layers, opts.concurrency, |d| fetch(d))?;
    // the manifest last, so a tag never points at missing content
    store.put_blob(&doc.bytes[..], Some((&doc.digest, doc.bytes.len() as u64)))?;
    let mut desc = Descriptor::new(&doc.media_type, doc.digest.clone(), doc.bytes.len() as u64);
    desc.platform = Some(have);
    let tagged = reference.digest().is_none();
    if tagged {
        store.tag(reference, &desc)?;
    } else {
        store.pin(reference, &desc)?;
    }
    for l in &manifest.layers {
        record_source(store, &l.digest, reference.domain(), repository);
    }
    Ok(PullReport {
        version: 1,
        reference: reference.to_string(),
        manifest_digest: doc.digest,
        media_type: doc.media_type,
        resolved_digest: resolved,
        image_id: manifest.config.digest.clone(),
        platform: desc
            .platform
            .as_ref()
            .map_or_else(String::new, platform_string),
        layers: manifest.layers.len(),
        blobs_downloaded: count.into_inner(),
        bytes_downloaded: bytes.into_inner(),
        tagged,
    })
}

/// The image `reference` names, for a builder's `FROM`: from the store when present (and of the
/// wanted platform, when `opts.platform` is set), else pulled; always pulled with `always_pull`
/// (`--pull`). Returns the image and the pull report when it pulled.
pub fn ensure_image(
    store: &Store,
    reference: &Reference,
    always_pull: bool,
    opts: &RegistryOptions,
) -> Result<(crate::images::ImageRecord, Option<PullReport>)> {
    if !always_pull && let Some(img) = store.resolve(reference)? {
        let have = Platform {
            architecture: img.config.architecture.clone(),
            os: img.config.os.clone(),
            variant: img.config.variant.clone(),
            extra: std::collections::BTreeMap::new(),
        };
        if opts
            .platform
            .as_ref()
            .is_none_or(|want| platform_matches(want, &have))
        {
            return Ok((img, None));
        }
    }
    let report = pull(store, reference, opts)?;
    let img = store.image(&reference.with_digest(report.manifest_digest.clone()))?;
    Ok((img, Some(report)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST};

    #[test]
    fn media_type_from_field_header_or_shape() {
        assert_eq!(
            document_media_type(br#"{"mediaType":"x","manifests":[]}"#, None),
            "x"
        );
        assert_eq!(
            document_media_type(
                br#"{"schemaVersion":2,"config":{}}"#,
                Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8")
            ),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        assert_eq!(
            document_media_type(br#"{"schemaVersion":2,"manifests":[]}"#, None),
            MEDIA_TYPE_INDEX
        );
        assert_eq!(
            document_media_type(br#"{"schemaVersion":2,"config":{}}"#, Some("text/plain")),
            MEDIA_TYPE_MANIFEST
        );
        for t in [
            MEDIA_TYPE_MANIFEST,
            MEDIA_TYPE_INDEX,
            MEDIA_TYPE_DOCKER_MANIFEST,
            MEDIA_TYPE_DOCKER_LIST,
        ] {
            assert!(MANIFEST_ACCEPT.contains(t));
        }
    }

    #[test]
    fn foreign_and_unknown_layers_refused() {
        let d = |mt: &str| Descriptor::new(mt, Digest::of(b"x"), 1);
        assert!(matches!(
            check_layer_media_type(&d(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            )),
            Err(RegistryError::ForeignLayer { .. })
        ));
        assert!(matches!(
            check_layer_media_type(&d(
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            )),
            Err(RegistryError::ForeignLayer { .. })
        ));
        assert!(matches!(
            check_layer_media_type(&d("application/x-helm")),
            Err(RegistryError::UnsupportedMediaType { .. })
        ));
        for ok in [
            crate::MEDIA_TYPE_LAYER_GZIP,
            crate::MEDIA_TYPE_LAYER_ZSTD,
            crate::MEDIA_TYPE_LAYER_TAR,
            crate::MEDIA_TYPE_DOCKER_LAYER_GZIP,
        ] {
            check_layer_media_type(&d(ok)).unwrap();
        }
    }
}
