//! The stat cache file: binary records (path, stamp, sha256) and a trailing sha256 of the whole,
//! so that a truncated or corrupt file is a miss.

use sha2::{Digest, Sha256};

use super::stamp::{PathMap, Stamp};

/// One stat cache record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rec {
    pub(super) stamp: Stamp,
    pub(super) digest: [u8; 32],
}

/// First bytes of a stat cache file (format version 2: binary records, trailing sha256).
const MAGIC: &[u8; 8] = b"PBSTAT2\n";

/// A cursor over the bytes of a cache file; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.arr().map(i64::from_le_bytes)
    }
}

/// Parses a whole cache file; `None` when anything is off (wrong magic, bad checksum, truncated
/// record, trailing bytes).
pub(super) fn parse(data: &[u8]) -> Option<PathMap<Rec>> {
    let body_len = data.len().checked_sub(32)?;
    let (body, sum) = data.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut c = Cursor(body);
    if c.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let count = usize::try_from(c.u64()?).ok()?;
    // each record is at least 84 bytes: a bogus count cannot make us reserve much
    let mut map = PathMap::default();
    map.reserve(count.min(body.len() / 84));
    for _ in 0..count {
        let n = usize::try_from(c.u32()?).ok()?;
        let path = c.take(n)?;
        let stamp = Stamp {
            dev: c.u64()?,
            ino: c.u64()?,
            size: c.u64()?,
            mtime: (c.i64()?, c.u32()?),
            ctime: (c.i64()?, c.u32()?),
        };
        let digest = c.arr::<32>()?;
        map.insert(path.into(), Rec { stamp, digest });
    }
    c.0.is_empty().then_some(map)
}

pub(super) fn serialize(map: &PathMap<Rec>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + map.len() * 160);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    for (path, r) in map {
        let s = &r.stamp;
        // paths are below PATH_MAX; a longer one could not have been stat'ed
        let n = u32::try_from(path.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(path);
        for v in [s.dev, s.ino, s.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&s.mtime.0.to_le_bytes());
        out.extend_from_slice(&s.mtime.1.to_le_bytes());
        out.extend_from_slice(&s.ctime.0.to_le_bytes());
        out.extend_from_slice(&s.ctime.1.to_le_bytes());
        out.extend_from_slice(&r.digest);
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}
