//! Content checksums of COPY/ADD sources for cache keys, with a stat cache so unchanged files are
//! not hashed again, and parallel hashing of the rest.
//!
//! The checksum of a COPY covers, for every entry of the planned layer: its path, type, mode,
//! owner, size, link target and content digest — never its mtime, so touching a file without
//! changing it keeps the step cached.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// What identifies an unchanged file: if all of these are equal, the content is assumed equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

/// A persistent map from a file's stat stamp to its sha256.
#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    map: HashMap<PathBuf, (Stamp, [u8; 32])>,
    dirty: bool,
    /// Files hashed (stat cache misses) since loading.
    pub hashed: usize,
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

impl StatCache {
    /// Loads the cache at `path` (missing or unreadable: empty). `None`: in memory only.
    pub fn load(path: Option<PathBuf>) -> StatCache {
        let mut map = HashMap::new();
        if let Some(p) = &path
            && let Ok(f) = std::fs::File::open(p)
        {
            for line in std::io::BufReader::new(f).split(b'\n') {
                let Ok(line) = line else { break };
                let mut it = line.splitn(7, |b| *b == b' ');
                let mut num =
                    || -> Option<i128> { std::str::from_utf8(it.next()?).ok()?.parse().ok() };
                let (Some(dev), Some(ino), Some(size), Some(mt), Some(ct)) =
                    (num(), num(), num(), num(), num())
                else {
                    continue;
                };
                let (Some(hx), Some(path)) = (it.next(), it.next()) else {
                    continue;
                };
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(hx, &mut digest).is_err() {
                    continue;
                }
                let stamp = Stamp {
                    dev: dev as u64,
                    ino: ino as u64,
                    size: size as u64,
                    mtime_ns: mt,
                    ctime_ns: ct,
                };
                map.insert(
                    PathBuf::from(std::ffi::OsStr::from_bytes(path)),
                    (stamp, digest),
                );
            }
        }
        StatCache {
            path,
            map,
            dirty: false,
            hashed: 0,
        }
    }

    /// Writes the cache back (temp file and rename) when it changed.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for (path, (s, d)) in &self.map {
            let pb = path.as_os_str().as_bytes();
            if pb.contains(&b'\n') {
                continue;
            }
            write!(
                w,
                "{} {} {} {} {} {} ",
                s.dev,
                s.ino,
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                hex::encode(d)
            )?;
            w.write_all(pb)?;
            w.write_all(b"\n")?;
        }
        w.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        std::fs::rename(&tmp, p)
    }

    /// The sha256 of each file, from the cache when its stamp is unchanged, else hashed (in
    /// parallel on `threads` threads).
    pub fn hash_files(
        &mut self,
        files: &[PathBuf],
        threads: usize,
    ) -> Result<HashMap<PathBuf, [u8; 32]>, HashError> {
        let mut out = HashMap::with_capacity(files.len());
        let mut todo: Vec<(PathBuf, Stamp)> = Vec::new();
        for f in files {
            if out.contains_key(f) {
                continue;
            }
            let m = std::fs::metadata(f).map_err(|source| HashError {
                path: f.clone(),
                source,
            })?;
            let stamp = Stamp::of(&m);
            match self.map.get(f) {
                Some((s, d)) if *s == stamp => {
                    out.insert(f.clone(), *d);
                }
                _ => todo.push((f.clone(), stamp)),
            }
        }
        if todo.is_empty() {
            return Ok(out);
        }
        self.hashed += todo.len();
        self.dirty = true;
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
                                    r.push((p.clone(), *st, d));
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
        for (p, st, d) in results.into_inner().unwrap_or_default() {
            self.map.insert(p.clone(), (st, d));
            out.insert(p, d);
        }
        Ok(out)
    }
}

/// The checksum of planned layer entries: `sha256:<hex>` over every entry's path, type, mode,
/// owner, size, link target and content digest (never the mtime).
pub fn entries_digest(
    entries: &BTreeMap<String, Entry>,
    hashes: &HashMap<PathBuf, [u8; 32], impl std::hash::BuildHasher>,
) -> String {
    let mut h = Sha256::new();
    for (path, e) in entries {
        h.update(path.as_bytes());
        h.update([0]);
        let (tag, extra): (&str, Vec<u8>) = match &e.source {
            EntrySource::File(p) => ("f", hashes.get(p).map(|d| d.to_vec()).unwrap_or_default()),
            EntrySource::Bytes(b) => ("f", Sha256::digest(b).to_vec()),
            EntrySource::Dir => ("d", Vec::new()),
            EntrySource::Symlink(t) => ("l", t.as_bytes().to_vec()),
            EntrySource::Hardlink(t) => ("h", t.as_bytes().to_vec()),
            EntrySource::CharDevice { major, minor } => {
                ("c", format!("{major}:{minor}").into_bytes())
            }
            EntrySource::BlockDevice { major, minor } => {
                ("b", format!("{major}:{minor}").into_bytes())
            }
            EntrySource::Fifo => ("p", Vec::new()),
            EntrySource::Whiteout => ("w", Vec::new()),
            EntrySource::OpaqueWhiteout => ("o", Vec::new()),
        };
        let size = match &e.source {
            EntrySource::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            EntrySource::Bytes(b) => b.len() as u64,
            _ => 0,
        };
        h.update(format!("{tag} {:o} {} {} {size} ", e.mode, e.uid, e.gid).as_bytes());
        h.update(&extra);
        for (k, v) in &e.xattrs {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v);
        }
        h.update([b'\n']);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The host files referenced by entries.
pub fn entry_files(entries: &BTreeMap<String, Entry>) -> Vec<PathBuf> {
    entries
        .values()
        .filter_map(|e| crate::copy::entry_file(e).map(Path::to_path_buf))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn stat_cache_skips_unchanged_and_rehashes_changed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let g = d.path().join("g");
        std::fs::write(&f, "one").unwrap();
        std::fs::write(&g, "two").unwrap();
        let cache_path = d.path().join("cache/stat");
        let mut c = StatCache::load(Some(cache_path.clone()));
        let h1 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 2);
        assert_eq!(
            hex::encode(h1[&f]),
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        c.save().unwrap();
        let mut c = StatCache::load(Some(cache_path.clone()));
        let h2 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 0, "nothing rehashed after reload");
        assert_eq!(h1, h2);
        std::fs::write(&g, "changed").unwrap();
        let h3 = c.hash_files(&[f.clone(), g.clone()], 2).unwrap();
        assert_eq!(c.hashed, 1);
        assert_ne!(h3[&g], h2[&g]);
        assert!(c.hash_files(&[d.path().join("missing")], 2).is_err());
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
        assert_eq!(
            entries_digest(&base, &hashes),
            entries_digest(&touched, &hashes)
        );
        assert_ne!(
            entries_digest(&base, &hashes),
            entries_digest(&mode, &hashes)
        );
        assert_ne!(
            entries_digest(&base, &hashes),
            entries_digest(&path, &hashes)
        );
        std::fs::write(&file, "y").unwrap();
        let hashes2 = c.hash_files(std::slice::from_ref(&file), 1).unwrap();
        assert_ne!(
            entries_digest(&base, &hashes),
            entries_digest(&base, &hashes2)
        );
        let l1: BTreeMap<_, _> = [entry("l", EntrySource::Symlink("x".into()), 0o777, 1)].into();
        let l2: BTreeMap<_, _> = [entry("l", EntrySource::Symlink("y".into()), 0o777, 1)].into();
        assert_ne!(entries_digest(&l1, &hashes), entries_digest(&l2, &hashes));
    }
}
