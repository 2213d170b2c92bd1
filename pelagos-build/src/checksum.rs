//! Content checksums of COPY/ADD sources for cache keys, with a stat cache so unchanged files are
//! not hashed again, and parallel hashing of the rest.
//!
//! The checksum of a COPY covers, for every entry of the planned layer: its path, type, mode,
//! owner, size, link target and content digest — never its mtime, so touching a file without
//! changing it keeps the step cached.
//!
//! The stat cache maps a file's path to its stamp (device, inode, size, mtime and ctime in
//! nanoseconds) and sha256. A file whose stamp is unchanged is not read again. Any write to a
//! file changes its ctime (which cannot be set from user space), so rewriting a file with the
//! same size and a restored mtime is still seen; a file whose ctime is so recent that a later
//! write could fall into the same timestamp tick is hashed but never recorded ("racy" entries, as
//! git does). The walk of the build context ([`crate::tree::Tree::read_dir`]) hands the stamps it
//! already has to `note_walked`, so a cached file costs one `statx` in all. The cache file is
//! binary with a trailing sha256: a truncated or corrupt file is a miss, never a wrong digest.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use layer_pack::{Entry, EntrySource};
use sha2::{Digest, Sha256};

/// A hashing failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash {path}: {source}")]
pub struct HashError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// A fast hasher for path keys (Fx-style word mixing with a final avalanche; the keys are local
/// paths, not attacker-chosen).
#[derive(Default, Clone, Copy)]
struct PathHasher(u64);

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

type PathMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<PathHasher>>;

/// What identifies an unchanged file: if all of these are equal, the content is assumed equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
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
    fn is_racy(&self, now_ns: i128, window_ns: Option<i128>) -> bool {
        self.ctime_ns() + window_ns.unwrap_or_else(|| self.racy_window_ns()) > now_ns
    }
}

/// How long stamps noted by a walk are trusted by [`StatCache::hash_files`]; older ones are
/// taken again with `statx`.
const WALK_STAMP_TTL: Duration = Duration::from_secs(10);

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

fn take_walked() -> PathMap<(Stamp, Instant)> {
    WALKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

/// One stat cache record.
#[derive(Debug, Clone, Copy)]
struct Rec {
    stamp: Stamp,
    digest: [u8; 32],
}

/// A persistent map from a file's stat stamp to its sha256.
#[derive(Debug)]
pub struct StatCache {
    path: Option<PathBuf>,
    map: PathMap<Rec>,
    dirty: bool,
    /// Files hashed (stat cache misses) since loading.
    pub hashed: usize,
    /// A file whose ctime is less than this many nanoseconds before the hashing is not
    /// remembered (`None`: [`Stamp::racy_window_ns`]; see [`Stamp::is_racy`]).
    racy_ns: Option<i128>,
}

impl Default for StatCache {
    /// An empty in-memory cache.
    fn default() -> StatCache {
        StatCache::load(None)
    }
}

/// The content digests (and sizes) of the files of a COPY, by host path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileHashes(PathMap<(u64, [u8; 32])>);

impl FileHashes {
    /// The sha256 of `path`'s content, if it was hashed.
    pub fn get(&self, path: &Path) -> Option<&[u8; 32]> {
        self.size_and_digest(path).map(|(_, d)| d)
    }

    /// The size of `path` (from the stamp taken before hashing) and its content's sha256.
    pub fn size_and_digest(&self, path: &Path) -> Option<(u64, &[u8; 32])> {
        self.0
            .get(path.as_os_str().as_bytes())
            .map(|(s, d)| (*s, d))
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], HashError> {
    let err = |source| HashError {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(h.finalize().into())
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
fn parse(data: &[u8]) -> Option<PathMap<Rec>> {
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

fn serialize(map: &PathMap<Rec>) -> Vec<u8> {
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

impl StatCache {
    /// Loads the cache at `path` (missing, unreadable, truncated or corrupt: empty). `None`: in
    /// memory only.
    pub fn load(path: Option<PathBuf>) -> StatCache {
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|data| parse(&data))
            .unwrap_or_default();
        StatCache {
            path,
            map,
            dirty: false,
            hashed: 0,
            racy_ns: None,
        }
    }

    /// Writes the cache back (temp file and rename) when it changed. Not fsynced: a file torn
    /// by a crash fails its checksum and is a miss.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialize(&self.map))?;
        std::fs::rename(&tmp, p)
    }

    /// The sha256 of each file, from the cache when its stamp is unchanged, else hashed (in
    /// parallel on `threads` threads). A file's stamp comes from the walk that listed it
    /// (`note_walked`) or from a `stat` here; it is always taken before the content is read,
    /// so a write racing with the hashing leaves a stale stamp (a later miss), never a stale
    /// digest.
    pub fn hash_files<P: AsRef<Path>>(
        &mut self,
        files: &[P],
        threads: usize,
    ) -> Result<FileHashes, HashError> {
        let walked = take_walked();
        let fresh_after = Instant::now().checked_sub(WALK_STAMP_TTL);
        let mut out = FileHashes::default();
        out.0.reserve(files.len());
        let mut todo: Vec<(&Path, Stamp)> = Vec::new();
        for f in files {
            let f = f.as_ref();
            let key = f.as_os_str().as_bytes();
            if out.0.contains_key(key) {
                continue;
            }
            let stamp = match walked.get(key) {
                Some((s, at)) if fresh_after.is_none_or(|t| *at >= t) => *s,
                _ => Stamp::of(&std::fs::metadata(f).map_err(|source| HashError {
                    path: f.to_path_buf(),
                    source,
                })?),
            };
            match self.map.get(key) {
                Some(r) if r.stamp == stamp => {
                    out.0.insert(key.into(), (stamp.size, r.digest));
                }
                _ => todo.push((f, stamp)),
            }
        }
        if todo.is_empty() {
            return Ok(out);
        }
        todo.sort_unstable_by(|a, b| a.0.cmp(b.0));
        todo.dedup_by(|a, b| a.0 == b.0);
        self.hashed += todo.len();
        let now_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(i128::MAX, |d| d.as_nanos() as i128);
        let queue = Mutex::new(todo.iter());
        let results = Mutex::new(Vec::with_capacity(todo.len()));
        let first_err: Mutex<Option<HashError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, 16).min(todo.len()) {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some((p, st)) = next else { break };
                        match sha256_file(p) {
                            Ok(d) => {
                                if let Ok(mut r) = results.lock() {
                                    r.push((*p, *st, d));
                                }
                            }
                            Err(e) => {
                                if let Ok(mut fe) = first_err.lock() {
                                    fe.get_or_insert(e);
                                }
                                break;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_err.into_inner().ok().flatten() {
            return Err(e);
        }
        for (p, stamp, digest) in results.into_inner().unwrap_or_default() {
            let key: Box<[u8]> = p.as_os_str().as_bytes().into();
            if stamp.is_racy(now_ns, self.racy_ns) {
                // a write in the same timestamp tick could keep this stamp: do not remember it
                if self.map.remove(&key).is_some() {
                    self.dirty = true;
                }
            } else {
                self.map.insert(key.clone(), Rec { stamp, digest });
                self.dirty = true;
            }
            out.0.insert(key, (stamp.size, digest));
        }
        Ok(out)
    }
}

/// The checksum of planned layer entries: `sha256:<hex>` over every entry's path, type, mode,
/// owner, size, link target and content digest (never the mtime). Each field is fixed-size or
/// length-prefixed, so distinct entry lists never encode alike.
pub fn entries_digest(entries: &BTreeMap<String, Entry>, hashes: &FileHashes) -> String {
    fn var(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    let mut h = Sha256::new();
    h.update(b"pelagos-copy-v2\n");
    for (path, e) in entries {
        var(&mut h, path.as_bytes());
        let tag = match &e.source {
            EntrySource::File(_) | EntrySource::Bytes(_) => b'f',
            EntrySource::Dir => b'd',
            EntrySource::Symlink(_) => b'l',
            EntrySource::Hardlink(_) => b'h',
            EntrySource::CharDevice { .. } => b'c',
            EntrySource::BlockDevice { .. } => b'b',
            EntrySource::Fifo => b'p',
            EntrySource::Whiteout => b'w',
            EntrySource::OpaqueWhiteout => b'o',
        };
        h.update([tag]);
        let file = match &e.source {
            EntrySource::File(p) => hashes.size_and_digest(p),
            _ => None,
        };
        let size = match &e.source {
            EntrySource::File(_) => file.map_or(0, |(s, _)| s),
            EntrySource::Bytes(b) => b.len() as u64,
            _ => 0,
        };
        h.update(e.mode.to_le_bytes());
        h.update(e.uid.to_le_bytes());
        h.update(e.gid.to_le_bytes());
        h.update(size.to_le_bytes());
        match &e.source {
            EntrySource::File(_) => match file {
                Some((_, d)) => {
                    h.update([1]);
                    h.update(d);
                }
                None => h.update([0]),
            },
            EntrySource::Bytes(b) => {
                h.update([1]);
                h.update(Sha256::digest(b));
            }
            EntrySource::Symlink(t) => var(&mut h, t.as_bytes()),
            EntrySource::Hardlink(t) => var(&mut h, t.as_bytes()),
            EntrySource::CharDevice { major, minor }
            | EntrySource::BlockDevice { major, minor } => {
                h.update(major.to_le_bytes());
                h.update(minor.to_le_bytes());
            }
            EntrySource::Dir
            | EntrySource::Fifo
            | EntrySource::Whiteout
            | EntrySource::OpaqueWhiteout => {}
        }
        h.update((e.xattrs.len() as u64).to_le_bytes());
        for (k, v) in &e.xattrs {
            var(&mut h, k.as_bytes());
            var(&mut h, v);
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The host files referenced by entries.
pub fn entry_files(entries: &BTreeMap<String, Entry>) -> Vec<&Path> {
    entries
        .values()
        .filter_map(crate::copy::entry_file)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(path: &str, src: EntrySource, mode: u32, mtime: i64) -> (String, Entry) {
        (
            path.to_string(),
            Entry {
                path_in_layer: path.into(),
                source: src,
                mode,
                uid: 0,
                gid: 0,
                mtime,
                xattrs: vec![],
            },
        )
    }

    /// A cache that trusts stamps of files written just now (the tests cannot wait for ctimes to
    /// age past the racy window).
    fn trusting(path: Option<PathBuf>) -> StatCache {
        let mut c = StatCache::load(path);
        c.racy_ns = Some(0);
        c
    }

    fn set_mtime(p: &Path, secs: i64) {
        filetime::set_file_mtime(p, filetime::FileTime::from_unix_time(secs, 0)).unwrap();
    }

    #[test]
    fn stat_cache_skips_unchanged_and_rehashes_changed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let g = d.path().join("g");
        std::fs::write(&f, "one").unwrap();
        std::fs::write(&g, "two").unwrap();
        let cache_path = d.path().join("cache/stat");
        let mut c = trusting(Some(cache_path.clone()));
        let h1 = c.hash_files(&[f.clone(), g.clone(), f.clone()], 2).unwrap();
        assert_eq!(c.hashed, 2, "a file listed twice is hashed once");
        assert_eq!(h1.len(), 2);
        assert_eq!(
            hex::encode(h1.get(&f).unwrap()),
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        c.save().unwrap();
        let mut c = trusting(Some(cache_path.clone()));
        let h2 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 0, "nothing rehashed after reload");
        assert_eq!(h1, h2);
        // touching without changing the content: rehashed (new ctime), same digest
        set_mtime(&f, 1_000_000);
        let h3 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 1);
        assert_eq!(h3, h2);
        std::fs::write(&g, "changed").unwrap();
        let h4 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 2);
        assert_ne!(h4.get(&g), h2.get(&g));
        assert_eq!(h4.size_and_digest(&g).unwrap().0, 7);
        assert!(c.hash_files(&[d.path().join("missing")], 2).is_err());
    }

    #[test]
    fn same_size_rewrite_with_restored_mtime_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "aaaa").unwrap();
        set_mtime(&f, 1_700_000_000);
        let mut c = trusting(None);
        let before = *c.hash_files(&[&f], 1).unwrap().get(&f).unwrap();
        // the ctime clock is coarse (a tick of a few ms): let it move on
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&f, "bbbb").unwrap();
        set_mtime(&f, 1_700_000_000);
        let after = *c.hash_files(&[&f], 1).unwrap().get(&f).unwrap();
        assert_eq!(
            c.hashed, 2,
            "same size and mtime but a new ctime: hashed again"
        );
        assert_ne!(before, after);
        assert_eq!(after, <[u8; 32]>::from(Sha256::digest(b"bbbb")));
    }

    #[test]
    fn racy_files_are_hashed_but_not_remembered() {
        // written just now: a rewrite within the same timestamp tick could keep the stamp, so
        // the default cache must not trust it, even when size, mtime and ctime all match again
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "1111").unwrap();
        set_mtime(&f, 1_700_000_000);
        let path = d.path().join("stat");
        let mut c = StatCache::load(Some(path.clone()));
        // a wide window, so that a slow machine cannot make the file old enough meanwhile
        c.racy_ns = Some(60_000_000_000);
        c.hash_files(&[&f], 1).unwrap();
        std::fs::write(&f, "2222").unwrap();
        set_mtime(&f, 1_700_000_000);
        let h = c.hash_files(&[&f], 1).unwrap();
        assert_eq!(c.hashed, 2);
        assert_eq!(
            *h.get(&f).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"2222"))
        );
        c.save().unwrap();
        let mut c = StatCache::load(Some(path));
        c.hash_files(&[&f], 1).unwrap();
        assert_eq!(c.hashed, 1, "not remembered across builds either");
    }

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

    #[test]
    fn corrupt_or_truncated_cache_is_a_miss() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "content").unwrap();
        let path = d.path().join("stat");
        let mut c = trusting(Some(path.clone()));
        let good = c.hash_files(&[&f], 1).unwrap();
        c.save().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(parse(&bytes).is_some_and(|m| m.len() == 1));
        let mut bad_files: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            bad_files.push(b);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        bad_files.push(longer);
        bad_files.push(
            b"1 2 7 0 0 0000000000000000000000000000000000000000000000000000000000000000 /f\n"
                .to_vec(),
        );
        for b in bad_files {
            std::fs::write(&path, &b).unwrap();
            let mut c = trusting(Some(path.clone()));
            assert!(c.map.is_empty(), "{b:?} loaded");
            assert_eq!(c.hash_files(&[&f], 1).unwrap(), good);
            assert_eq!(c.hashed, 1);
        }
    }

    #[test]
    fn walked_stamps_give_the_same_answers() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..40 {
            let sub = d.path().join(format!("d{}", i % 4));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        let tree = crate::tree::Tree::Dir {
            root: d.path().to_path_buf(),
            ignore: crate::ignore::IgnoreMatcher::default(),
        };
        let walk = || {
            let mut all = Vec::new();
            tree.walk("", &mut all).unwrap();
            all.into_iter()
                .filter(|n| n.kind == crate::tree::Kind::File)
                .map(|n| n.host)
                .collect::<Vec<_>>()
        };
        let files = walk();
        assert_eq!(files.len(), 40);
        let mut c = trusting(None);
        let h1 = c.hash_files(&files, 2).unwrap();
        assert_eq!(c.hashed, 40);
        for f in &files {
            let want: [u8; 32] = Sha256::digest(std::fs::read(f).unwrap()).into();
            assert_eq!(h1.get(f), Some(&want));
        }
        let files = walk();
        let h2 = c.hash_files(&files, 2).unwrap();
        assert_eq!((c.hashed, &h2), (40, &h1));
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(d.path().join("d1/f5"), "file X").unwrap();
        let files = walk();
        let h3 = c.hash_files(&files, 2).unwrap();
        assert_eq!(c.hashed, 41, "the changed file is hashed again");
        assert_eq!(
            h3.get(&d.path().join("d1/f5")),
            Some(&Sha256::digest(b"file X").into())
        );
    }

    #[test]
    fn digest_ignores_mtime_but_not_mode_or_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let mut c = StatCache::load(None);
        let hashes = c.hash_files(std::slice::from_ref(&file), 1).unwrap();
        let base: BTreeMap<_, _> = [entry("a", EntrySource::File(file.clone()), 0o644, 1)].into();
        let touched: BTreeMap<_, _> =
            [entry("a", EntrySource::File(file.clone()), 0o644, 99)].into();
        let mode: BTreeMap<_, _> = [entry("a", EntrySource::File(file.clone()), 0o600, 1)].into();
        let path: BTreeMap<_, _> = [entry("b", EntrySource::File(file.clone()), 0o644, 1)].into();
        let mut owner = base.clone();
        owner.get_mut("a").unwrap().uid = 1000;
        let mut xattr = base.clone();
        xattr.get_mut("a").unwrap().xattrs = vec![("user.k".into(), b"v".to_vec())];
        let bytes: BTreeMap<_, _> =
            [entry("a", EntrySource::Bytes(b"x".to_vec()), 0o644, 1)].into();
        let d = |e: &BTreeMap<String, Entry>| entries_digest(e, &hashes);
        assert_eq!(d(&base), d(&touched));
        assert_eq!(d(&base), d(&bytes), "content, not where it comes from");
        for other in [&mode, &path, &owner, &xattr] {
            assert_ne!(d(&base), d(other));
        }
        std::fs::write(&file, "y").unwrap();
        let hashes2 = c.hash_files(std::slice::from_ref(&file), 1).unwrap();
        assert_ne!(d(&base), entries_digest(&base, &hashes2));
        let l1: BTreeMap<_, _> = [entry("l", EntrySource::Symlink("x".into()), 0o777, 1)].into();
        let l2: BTreeMap<_, _> = [entry("l", EntrySource::Symlink("y".into()), 0o777, 1)].into();
        let h1: BTreeMap<_, _> = [entry("l", EntrySource::Hardlink("x".into()), 0o777, 1)].into();
        assert_ne!(d(&l1), d(&l2));
        assert_ne!(d(&l1), d(&h1));
        // a path that looks like a longer one plus a field cannot collide
        let split: BTreeMap<_, _> = [
            entry("a", EntrySource::Dir, 0o755, 1),
            entry("a/b", EntrySource::Dir, 0o755, 1),
        ]
        .into();
        let joined: BTreeMap<_, _> = [entry("a", EntrySource::Dir, 0o755, 1)].into();
        assert_ne!(d(&split), d(&joined));
    }
}
