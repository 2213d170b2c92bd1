//! Options and result types shared by packing and unpacking.

use serde::{Deserialize, Serialize};

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (deflate), parallel and deterministic; the OCI default.
    #[default]
    Gzip,
    /// zstd, multithreaded and deterministic.
    Zstd,
    /// Plain tar: digest equals diff_id.
    None,
}

impl Compression {
    /// OCI media type of a layer with this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// Compression of an OCI or Docker layer media type, `None` when not a known layer type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            _ => None,
        }
    }

    /// Parses `gzip`, `zstd` or `none`.
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// One contiguous id range: host ids `host..host+len` map to container ids
/// `container..container+len` (the `/proc/PID/uid_map` triple, read from the container side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First container id.
    pub container: u32,
    /// First host id.
    pub host: u32,
    /// Number of ids.
    pub len: u32,
}

/// Host → container id mapping used when packing a tree written by a rootless container.
/// An id outside every range is an error ([`crate::PackError::UnmappedId`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMap {
    /// uid ranges.
    pub uids: Vec<IdRange>,
    /// gid ranges.
    pub gids: Vec<IdRange>,
}

impl IdMap {
    fn map(ranges: &[IdRange], host: u32) -> Option<u32> {
        ranges.iter().find_map(|r| {
            let off = host.checked_sub(r.host)?;
            (off < r.len)
                .then(|| r.container.checked_add(off))
                .flatten()
        })
    }

    /// Container uid of a host uid.
    pub fn map_uid(&self, host: u32) -> Option<u32> {
        Self::map(&self.uids, host)
    }

    /// Container gid of a host gid.
    pub fn map_gid(&self, host: u32) -> Option<u32> {
        Self::map(&self.gids, host)
    }
}

/// Packing options. `PackOptions::default()` is gzip at level 6 (Docker's default), plain tree,
/// no SOURCE_DATE_EPOCH, ids as on disk, all cores.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Output compression.
    pub compression: Compression,
    /// Compression level: gzip 0..=9 (default 6), zstd 1..=19 (default 3); ignored for `None`.
    pub level: Option<i32>,
    /// The directory is an overlayfs upper dir: convert its whiteouts to OCI whiteouts.
    pub overlay_upper: bool,
    /// The upper dir was written with `userxattr`: opaque/whiteout markers are `user.overlay.*`
    /// (otherwise `trusted.overlay.*`).
    pub userxattr: bool,
    /// Clamp mtimes to this many seconds since the epoch (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    /// Map host uids/gids to container ids (rootless).
    pub id_map: Option<IdMap>,
    /// Compression threads; `None` = all cores. The output never depends on it.
    pub threads: Option<usize>,
}

/// The result of packing: a layer blob's identity, printed as the JSON document of `pack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDescriptor {
    /// Document version, always 1.
    pub version: u32,
    /// OCI media type of the blob.
    pub media_type: String,
    /// `sha256:<hex>` of the (compressed) blob.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// Size of the blob in bytes.
    pub size: u64,
}
