//! `image-store`: a crash-safe, concurrent, content-addressed image store that is itself an OCI
//! image layout.
//!
//! The store root holds `oci-layout`, `index.json` (one manifest descriptor per tag, annotated
//! with `org.opencontainers.image.ref.name` = the full normalised reference) and
//! `blobs/sha256/<hex>`, so `skopeo inspect oci:ROOT:REF` and `umoci` read it directly. Next to
//! that: `snapshots/` (unpacked layers keyed by diff_id, overlay lower dirs), `cache/` (the build
//! cache index), `leases/` and `locks/` (the concurrency protocol) and `tmp/`.
//!
//! Entry points: [`Store::open`], [`Reference::parse`], [`Store::put_blob`],
//! [`Store::blob_writer`], [`Store::open_blob`], [`Store::write_image`], [`Store::tag`],
//! [`Store::resolve`], [`Store::find_image`], [`Store::snapshot`], [`Store::adopt_snapshot`],
//! [`Store::lowers`], [`Store::cache_get`],
//! [`Store::cache_put`], [`Store::gc`], [`Store::fsck`], [`Store::import_tar`],
//! [`Store::import_dir`], [`Store::commit`], [`Store::load_path`], [`Store::export`].
//! Registries (the [`registry`] module): [`registry::pull`], [`registry::push`],
//! [`registry::login`], [`registry::export_cache`], [`registry::import_cache`].
//!
//! Guarantees: every write is temp file + fsync + rename (snapshots, derived data rebuilt from
//! their layer blobs, are renamed complete but not fsynced; `fsck` finds one a crash left
//! incomplete); `index.json` changes hold a lock; a
//! [`Store`] handle holds a lease so `gc` never removes what it wrote or resolved; every blob from
//! outside is verified against its digest and size before it becomes visible.

mod blobs;
mod cache;
mod changes;
mod digest;
mod error;
mod export;
mod fsck;
mod gc;
mod gz;
mod images;
mod import;
mod load;
mod oci;
mod reference;
pub mod registry;
mod report;
mod snapshots;
mod store;

pub use blobs::{BlobInfo, BlobWriter, MAX_DOCUMENT_SIZE, VerifiedReader};
pub use cache::{CacheRecord, CachedLayer};
pub use changes::apply_change;
pub use digest::{Digest, HashingReader, HashingWriter};
pub use error::{AtPath, Result, StoreError};
pub use export::ExportFormat;
pub use fsck::{FsckReport, Problem};
pub use gc::{FOREIGN_TEMP_AGE, GcOptions, GcReport};
pub use images::{ImageRecord, TagEntry, WrittenImage};
pub use import::{ImportOptions, LayerDoc, created_now};
pub use load::{LoadOptions, LoadedImage};
pub use oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ContainerConfig, Descriptor, History,
    ImageConfig, Index, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST, Manifest, Platform, RootFs,
    canonical_json, is_index_media_type, is_manifest_media_type,
};
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError};
pub use report::{DfReport, InspectReport, ListEntry, ListReport, Usage, human_size};
pub use snapshots::SnapshotMeta;
pub use store::{OCI_LAYOUT, Store};
