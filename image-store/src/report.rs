//! The documents the CLI prints (`ls`, `inspect`, `df`, ...) and their human forms.

use std::fmt::Write as _;
use std::fs;

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::gc::{reachable, scan_leases, tree_size};
use crate::images::ImageRecord;
use crate::oci::{Descriptor, ImageConfig, Manifest};
use crate::store::Store;

/// One row of `ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListEntry {
    /// Full normalised reference.
    pub reference: String,
    /// Image ID (config digest).
    pub image_id: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Creation time from the config.
    pub created: Option<String>,
    /// Manifest + config + layers, in bytes.
    pub size: u64,
}

/// The `ls` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListReport {
    /// Always 1.
    pub version: u32,
    /// The images, sorted by reference.
    pub images: Vec<ListEntry>,
}

/// The `inspect` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    /// Always 1.
    pub version: u32,
    /// The reference it was found under.
    pub reference: Option<String>,
    /// Image ID.
    pub image_id: String,
    /// Manifest descriptor.
    pub manifest_descriptor: Descriptor,
    /// Total size in bytes.
    pub size: u64,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl From<ImageRecord> for InspectReport {
    fn from(r: ImageRecord) -> Self {
        InspectReport {
            version: 1,
            size: r.size(),
            reference: r.reference,
            image_id: r.config_digest.to_string(),
            manifest_descriptor: r.manifest_descriptor,
            manifest: r.manifest,
            config: r.config,
        }
    }
}

/// Count and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// How many.
    pub count: u64,
    /// Bytes (apparent sizes).
    pub bytes: u64,
    /// Of which not reachable from any tag, cache record or live lease (what `gc` would free).
    pub reclaimable_bytes: u64,
}

/// The `df` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DfReport {
    /// Always 1.
    pub version: u32,
    /// Tags.
    pub images: u64,
    /// Blobs.
    pub blobs: Usage,
    /// Snapshots.
    pub snapshots: Usage,
    /// Cache records.
    pub cache_records: u64,
    /// Temp files.
    pub temp: Usage,
}

impl Store {
    /// The `ls` document.
    pub fn list(&self) -> Result<ListReport> {
        let mut images = Vec::new();
        for t in self.list_tags()? {
            let rec = {
                let _g = self.gc_shared()?;
                self.load_image_locked(Some(t.reference.clone()), &t.manifest)
            };
            let (image_id, created, size) = match rec {
                Ok(r) => (
                    r.config_digest.to_string(),
                    r.config.created.clone(),
                    r.size(),
                ),
                Err(_) => ("<broken>".into(), None, 0),
            };
            images.push(ListEntry {
                reference: t.reference,
                image_id,
                manifest_digest: t.manifest.digest.to_string(),
                created,
                size,
            });
        }
        Ok(ListReport { version: 1, images })
    }

    /// The `df` document.
    pub fn df(&self) -> Result<DfReport> {
        let index = self.read_index()?;
        let (_, leased) = scan_leases(self, false)?;
        let (blobs_live, snaps_live) = reachable(self, &index, &leased);
        let mut rep = DfReport {
            version: 1,
            images: index.manifests.len() as u64,
            blobs: Usage::default(),
            snapshots: Usage::default(),
            cache_records: 0,
            temp: Usage::default(),
        };
        let bdir = self.blobs_dir().join("sha256");
        for e in fs::read_dir(&bdir).ctx("read dir", &bdir)? {
            let e = e.ctx("read dir", &bdir)?;
            let size = e.metadata().map_or(0, |m| m.len());
            rep.blobs.count += 1;
            rep.blobs.bytes += size;
            if !blobs_live.contains(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                rep.blobs.reclaimable_bytes += size;
            }
        }
        let sdir = self.snapshots_dir();
        for e in fs::read_dir(&sdir).ctx("read dir", &sdir)? {
            let e = e.ctx("read dir", &sdir)?;
            let size = tree_size(&e.path());
            rep.snapshots.count += 1;
            rep.snapshots.bytes += size;
            if !snaps_live.contains(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                rep.snapshots.reclaimable_bytes += size;
            }
        }
        rep.cache_records = fs::read_dir(self.cache_dir())
            .ctx("read dir", &self.cache_dir())?
            .count() as u64;
        for e in fs::read_dir(self.tmp_dir()).ctx("read dir", &self.tmp_dir())? {
            let e = e.ctx("read dir", &self.tmp_dir())?;
            rep.temp.count += 1;
            rep.temp.bytes += tree_size(&e.path());
        }
        Ok(rep)
    }
}

/// Human-readable size (`1.2 MB`).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}

impl ListReport {
    /// A table like `docker images`.
    pub fn to_text(&self) -> String {
        let mut s = String::from("REFERENCE\tIMAGE ID\tCREATED\tSIZE\n");
        for i in &self.images {
            let id = i.image_id.strip_prefix("sha256:").unwrap_or(&i.image_id);
            let _ = writeln!(
                s,
                "{}\t{}\t{}\t{}",
                i.reference,
                id.get(..12).unwrap_or(id),
                i.created.as_deref().unwrap_or("-"),
                human_size(i.size)
            );
        }
        s
    }
}

impl DfReport {
    /// A small table.
    pub fn to_text(&self) -> String {
        format!(
            "TYPE\tCOUNT\tSIZE\tRECLAIMABLE\nimages\t{}\t-\t-\nblobs\t{}\t{}\t{}\nsnapshots\t{}\t{}\t{}\ncache\t{}\t-\t-\ntemp\t{}\t{}\t-\n",
            self.images,
            self.blobs.count,
            human_size(self.blobs.bytes),
            human_size(self.blobs.reclaimable_bytes),
            self.snapshots.count,
            human_size(self.snapshots.bytes),
            human_size(self.snapshots.reclaimable_bytes),
            self.cache_records,
            self.temp.count,
            human_size(self.temp.bytes),
        )
    }
}
