//! The remote build cache: cache records and their layers exported to a registry as an OCI
//! artifact, and imported into another store.
//!
//! The artifact is an OCI image manifest with `artifactType` [`CACHE_ARTIFACT_TYPE`]; its config
//! blob ([`CACHE_CONFIG_MEDIA_TYPE`]) is the canonical JSON
//! `{"records":[{"key":K,"record":CacheRecord}, ...],"version":1}` sorted by key, and its layers
//! are the distinct layer blobs of the records. Which records to export (`mode=min`: those of
//! the final image's steps; `mode=max`: every step of every stage) is the builder's choice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::RegistryOptions;
use super::client::{Client, Scope};
use super::error::{RegistryError, Result};
use super::fetch::{fetch_blob, for_each_parallel};
use super::progress::Progress;
use super::pull::fetch_manifest;
use super::push::{put_manifest, upload_blobs};
use crate::cache::CacheRecord;
use crate::digest::Digest;
use crate::oci::{Descriptor, MEDIA_TYPE_MANIFEST, Manifest, canonical_json};
use crate::reference::Reference;
use crate::store::Store;

/// `artifactType` of a pelagos build-cache manifest.
pub const CACHE_ARTIFACT_TYPE: &str = "application/vnd.pelagos.build.cache.v1";
/// Media type of its config blob (the records).
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.pelagos.build.cache.config.v1+json";

#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    key: String,
    record: CacheRecord,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheDocument {
    version: u32,
    records: Vec<CacheEntry>,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheExportReport {
    /// Always 1.
    pub version: u32,
    /// The cache reference.
    pub reference: String,
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// Records exported.
    pub records: usize,
    /// Distinct layers referenced.
    pub layers: usize,
    /// Blobs uploaded (others were present or mounted).
    pub blobs_uploaded: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheImportReport {
    /// Always 1.
    pub version: u32,
    /// The cache reference.
    pub reference: String,
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// Records written into the store's cache index.
    pub records: usize,
    /// Blobs downloaded (the records and the layers not present).
    pub blobs_downloaded: usize,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
}

/// Exports `records` (key, record) and their layer blobs to `dest` (replacing what the tag
/// pointed at). Every record's layer must be in `store`.
pub fn export_cache(
    store: &Store,
    records: &[(String, CacheRecord)],
    dest: &Reference,
    opts: &RegistryOptions,
) -> Result<CacheExportReport> {
    let mut by_key: BTreeMap<&str, &CacheRecord> = BTreeMap::new();
    for (k, r) in records {
        by_key.insert(k.as_str(), r);
    }
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in by_key.values() {
        if let Some(l) = &r.layer {
            if !store.has_blob(&l.descriptor.digest) {
                return Err(RegistryError::Store(crate::StoreError::BlobNotFound {
                    digest: l.descriptor.digest.clone(),
                }));
            }
            if seen.insert(l.descriptor.digest.clone()) {
                let mut d = Descriptor::new(
                    &l.descriptor.media_type,
                    l.descriptor.digest.clone(),
                    l.descriptor.size,
                );
                d.annotations.insert(
                    "org.opencontainers.image.title".into(),
                    l.diff_id.to_string(),
                );
                layers.push(d);
            }
        }
    }
    let doc = CacheDocument {
        version: 1,
        records: by_key
            .into_iter()
            .map(|(k, r)| CacheEntry {
                key: k.to_string(),
                record: r.clone(),
            })
            .collect(),
    };
    let config_bytes = canonical_json(&doc)?;
    let c = store.put_blob_bytes(&config_bytes)?;
    let config = Descriptor::new(CACHE_CONFIG_MEDIA_TYPE, c.digest, c.size);
    let mut extra = BTreeMap::new();
    extra.insert(
        "artifactType".to_string(),
        serde_json::Value::String(CACHE_ARTIFACT_TYPE.into()),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: config.clone(),
        layers: layers.clone(),
        annotations: BTreeMap::new(),
        extra,
    };
    let bytes = canonical_json(&manifest)?;
    let client = Client::new(dest.domain(), opts)?;
    let mut blobs = layers;
    blobs.push(config);
    let progress = Progress::new(opts.progress);
    let (uploaded, _, _, sent) = upload_blobs(&client, store, dest.path(), &blobs, &progress)?;
    let digest = put_manifest(&client, dest, &bytes, MEDIA_TYPE_MANIFEST)?;
    Ok(CacheExportReport {
        version: 1,
        reference: dest.to_string(),
        digest,
        records: doc.records.len(),
        layers: blobs.len() - 1,
        blobs_uploaded: uploaded,
        bytes_uploaded: sent,
    })
}

/// Imports the cache at `src` into `store`: downloads (verified) the layers not present and
/// writes every record into the store's cache index. A missing `src` is
/// [`RegistryError::NotFound`] (a builder treats it as an empty cache).
pub fn import_cache(
    store: &Store,
    src: &Reference,
    opts: &RegistryOptions,
) -> Result<CacheImportReport> {
    let client = Client::new(src.domain(), opts)?;
    let repository = src.path();
    let scopes = [Scope::pull(repository)];
    let (target, expected) = match (src.digest(), src.tag()) {
        (Some(d), _) => (d.to_string(), Some(d.clone())),
        (None, Some(t)) => (t.to_string(), None),
        (None, None) => ("latest".into(), None),
    };
    let doc = fetch_manifest(&client, repository, &target, expected.as_ref(), &scopes)?;
    let manifest: Manifest = serde_json::from_slice(&doc.bytes).map_err(|e| {
        RegistryError::invalid(format!("cache manifest {}", doc.digest), e.to_string())
    })?;
    if manifest.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("{src} (not a pelagos build cache)"),
            media_type: manifest.config.media_type.clone(),
        });
    }
    if manifest.config.size > crate::blobs::MAX_DOCUMENT_SIZE {
        return Err(RegistryError::invalid(
            format!("cache config {}", manifest.config.digest),
            "too large",
        ));
    }
    let progress = Progress::new(opts.progress);
    let bar = progress.bar("cache".into(), manifest.config.size);
    let config_fetched = fetch_blob(&client, store, repository, &manifest.config, &scopes, &bar)?;
    let bytes = store.read_blob(&manifest.config.digest)?;
    let cache: CacheDocument = serde_json::from_slice(&bytes).map_err(|e| {
        RegistryError::invalid(
            format!("cache config {}", manifest.config.digest),
            e.to_string(),
        )
    })?;
    let listed: BTreeSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    for e in &cache.records {
        if let Some(l) = &e.record.layer
            && !listed.contains(&l.descriptor.digest)
        {
            return Err(RegistryError::invalid(
                format!("cache {src}"),
                format!(
                    "record {} names layer {} that the manifest does not list",
                    e.key, l.descriptor.digest
                ),
            ));
        }
    }
    let mut downloaded = for_each_parallel(&manifest.layers, opts.concurrency, |d| {
        let bar = progress.bar(d.digest.short().to_string(), d.size);
        fetch_blob(&client, store, repository, d, &scopes, &bar)
    })?;
    for e in &cache.records {
        store.cache_put(&e.key, &e.record)?;
    }
    downloaded.push(config_fetched);
    Ok(CacheImportReport {
        version: 1,
        reference: src.to_string(),
        digest: doc.digest,
        records: cache.records.len(),
        blobs_downloaded: downloaded.iter().flatten().count(),
        bytes_downloaded: downloaded.iter().flatten().sum(),
    })
}
