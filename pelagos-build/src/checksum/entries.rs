//! The checksum of the planned layer entries of a COPY/ADD (what its cache key holds).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use layer_pack::{Entry, EntrySource};
use sha2::{Digest, Sha256};

use super::FileHashes;

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
    use crate::checksum::StatCache;

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
