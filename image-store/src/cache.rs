//! The build cache index: `cache/<sha256(key)>.json`, one record per cache key.
//!
//! Records are written atomically (temp, fsync, rename), so concurrent builders can share a
//! store: the last writer of a key wins and every reader sees a whole record. A record's layer is
//! a gc root.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::oci::{Descriptor, History, canonical_json, from_json};
use crate::store::Store;

/// A layer produced by a cached step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The (compressed) layer blob.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// The result of one build step, as the builder stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Always 1.
    #[serde(default = "one")]
    pub version: u32,
    /// The layer the step added; `None` for a step that changed nothing (empty layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<CachedLayer>,
    /// The history entry of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// Builder-defined config change (opaque to the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

fn one() -> u32 {
    1
}

impl CacheRecord {
    /// A record for a step that produced a layer.
    pub fn with_layer(descriptor: Descriptor, diff_id: Digest) -> CacheRecord {
        CacheRecord {
            version: 1,
            layer: Some(CachedLayer {
                descriptor,
                diff_id,
            }),
            history: None,
            config: None,
        }
    }

    /// A record for a step that changed nothing.
    pub fn empty() -> CacheRecord {
        CacheRecord {
            version: 1,
            layer: None,
            history: None,
            config: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    version: u32,
    key: String,
    record: CacheRecord,
}

impl Store {
    fn cache_path(&self, key: &str) -> std::path::PathBuf {
        self.cache_dir()
            .join(format!("{}.json", Digest::of(key.as_bytes()).hex()))
    }

    /// Looks up a cache key. A record whose layer blob is missing or corrupt is a miss (the blob
    /// is re-hashed unless unchanged since its last verification, see
    /// [`Store::verify_blob_fast`]). A hit's layer is protected from gc while this handle lives.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>> {
        let path = self.cache_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let Ok(stored) = from_json::<StoredRecord>(&bytes, &path.display().to_string()) else {
            return Ok(None);
        };
        if stored.key != key {
            return Ok(None);
        }
        if let Some(layer) = &stored.record.layer {
            let d = &layer.descriptor;
            let ok = self.protected(&[&d.digest, &layer.diff_id], || {
                Ok(self.verify_blob_fast(&d.digest, Some(d.size)).is_ok())
            })?;
            if !ok {
                return Ok(None);
            }
        }
        Ok(Some(stored.record))
    }

    /// Stores a cache record (replacing any record for that key). The layer blob must be present.
    pub fn cache_put(&self, key: &str, record: &CacheRecord) -> Result<()> {
        if let Some(layer) = &record.layer {
            let d = &layer.descriptor;
            self.protected(&[&d.digest, &layer.diff_id], || {
                if self.has_blob(&d.digest) {
                    Ok(())
                } else {
                    Err(StoreError::BlobNotFound {
                        digest: d.digest.clone(),
                    })
                }
            })?;
        }
        let stored = StoredRecord {
            version: 1,
            key: key.to_string(),
            record: record.clone(),
        };
        self.write_atomic(&self.cache_path(key), &canonical_json(&stored)?)
    }

    /// Removes every cache record; returns how many there were.
    pub fn cache_clear(&self) -> Result<usize> {
        let dir = self.cache_dir();
        let mut n = 0;
        for e in fs::read_dir(&dir).ctx("read dir", &dir)? {
            let e = e.ctx("read dir", &dir)?;
            fs::remove_file(e.path()).ctx("remove", &e.path())?;
            n += 1;
        }
        Ok(n)
    }

    /// All cache records (key, record), unordered. Unreadable files are skipped.
    pub fn cache_entries(&self) -> Result<Vec<(String, CacheRecord)>> {
        let dir = self.cache_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("read dir", &dir)? {
            let e = e.ctx("read dir", &dir)?;
            let Ok(bytes) = fs::read(e.path()) else {
                continue;
            };
            if let Ok(s) = serde_json::from_slice::<StoredRecord>(&bytes) {
                out.push((s.key, s.record));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_LAYER_TAR;

    #[test]
    fn put_get_and_miss_on_corrupt_layer() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.cache_get("k").unwrap(), None);
        s.cache_put("empty", &CacheRecord::empty()).unwrap();
        assert_eq!(s.cache_get("empty").unwrap(), Some(CacheRecord::empty()));
        let b = s.put_blob_bytes(b"layer").unwrap();
        // a blob written through the store is stamped as verified at once: no re-hash on a hit
        assert!(s.root().join("verified").join(b.digest.hex()).is_file());
        let rec = CacheRecord::with_layer(
            Descriptor::new(MEDIA_TYPE_LAYER_TAR, b.digest.clone(), b.size),
            b.digest.clone(),
        );
        s.cache_put("k", &rec).unwrap();
        assert_eq!(s.cache_get("k").unwrap(), Some(rec.clone()));
        assert!(s.root().join("verified").join(b.digest.hex()).is_file());
        assert_eq!(s.cache_get("k").unwrap(), Some(rec.clone()));
        fs::write(s.blob_path(&b.digest), b"lay3r").unwrap();
        assert_eq!(s.cache_get("k").unwrap(), None);
        fs::remove_file(s.blob_path(&b.digest)).unwrap();
        assert_eq!(s.cache_get("k").unwrap(), None);
        assert!(s.cache_put("k2", &rec).is_err());
    }
}
