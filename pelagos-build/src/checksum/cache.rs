//! [`StatCache`]: the persistent map from a file's stamp to its sha256, and the parallel hashing
//! of the files it does not know.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use super::file::{Rec, parse, serialize};
use super::stamp::{PathMap, Stamp, WALK_STAMP_TTL, take_walked};
use super::{FileHashes, HashError, sha256_file};

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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::time::Duration;

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
}
