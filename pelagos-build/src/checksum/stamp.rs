//! What identifies an unchanged file (its stamp), a fast map keyed by path, and the stamps
//! noted by the walk of the build context.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fast hasher for path keys (Fx-style word mixing with a final avalanche; the keys are local
/// paths, not attacker-chosen).
#[derive(Default, Clone, Copy)]
pub(super) struct PathHasher(u64);

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(dst) = w.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }

    fn finish(&self) -> u64 {
        // murmur3 fmix64: spreads every input bit over the low bits hashbrown indexes with
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(super) type PathMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<PathHasher>>;

/// What identifies an unchanged file: if all of these are equal, the content is assumed equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) size: u64,
    pub(super) mtime: (i64, u32),
    pub(super) ctime: (i64, u32),
}

impl Stamp {
    /// The stamp of `lstat`/`stat` metadata.
    pub(crate) fn of(m: &std::fs::Metadata) -> Stamp {
        let ns = |n: i64| u32::try_from(n).unwrap_or(0);
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), ns(m.mtime_nsec())),
            ctime: (m.ctime(), ns(m.ctime_nsec())),
        }
    }

    fn ctime_ns(&self) -> i128 {
        i128::from(self.ctime.0) * 1_000_000_000 + i128::from(self.ctime.1)
    }

    /// How close to the present a ctime must be for a later write to possibly keep it: the
    /// kernel stamps files from a coarse clock (one tick, at most 10 ms), and some file systems
    /// keep whole seconds only (seen as zero nanoseconds in both times): 100 ms, or 2 s there.
    fn racy_window_ns(&self) -> i128 {
        if self.ctime.1 == 0 && self.mtime.1 == 0 {
            2_000_000_000
        } else {
            100_000_000
        }
    }

    /// True when a write after `now_ns` could leave the stamp unchanged: the ctime is less than
    /// the racy window (`window_ns`, else [`Stamp::racy_window_ns`]) before it.
    pub(super) fn is_racy(&self, now_ns: i128, window_ns: Option<i128>) -> bool {
        self.ctime_ns() + window_ns.unwrap_or_else(|| self.racy_window_ns()) > now_ns
    }
}

/// How long stamps noted by a walk are trusted by [`StatCache::hash_files`]; older ones are
/// taken again with `statx`.
pub(super) const WALK_STAMP_TTL: Duration = Duration::from_secs(10);

/// Stamps of regular files noted by the context walk and not yet used, with when they were taken.
static WALKED: Mutex<Option<PathMap<(Stamp, Instant)>>> = Mutex::new(None);

/// Records the stamps of regular files just read by a walk of the build context (`lstat` of the
/// host path), so that [`StatCache::hash_files`] need not stat them again. Every call of
/// `hash_files` takes (and clears) the noted stamps; stamps older than a few seconds are ignored.
pub(crate) fn note_walked(batch: Vec<(Box<[u8]>, Stamp)>) {
    if batch.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut g = WALKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let map = g.get_or_insert_with(PathMap::default);
    map.reserve(batch.len());
    for (k, s) in batch {
        map.insert(k, (s, now));
    }
}

pub(super) fn take_walked() -> PathMap<(Stamp, Instant)> {
    WALKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racy_window_is_wide_for_whole_second_file_systems() {
        let s = |mtime_ns, ctime_ns| Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (100, mtime_ns),
            ctime: (100, ctime_ns),
        };
        assert_eq!(s(0, 0).racy_window_ns(), 2_000_000_000);
        assert_eq!(s(0, 5).racy_window_ns(), 100_000_000);
        let now = 101_000_000_000;
        assert!(s(0, 0).is_racy(now, None), "1 s ago on a whole-second fs");
        assert!(!s(0, 5).is_racy(now, None), "1 s ago with ns timestamps");
        assert!(s(0, 950_000_000).is_racy(now, None), "50 ms ago");
        assert!(!s(0, 0).is_racy(now, Some(0)));
    }
}
