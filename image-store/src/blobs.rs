//! Content-addressed blobs: streaming, verified ingest and verified reads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::{Digest, HashingWriter};
use crate::error::{AtPath, IoContext, Result, StoreError};
use crate::store::{Store, sync_parent};

/// Digest and size of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The largest JSON document (manifest, config, index) read into memory.
pub const MAX_DOCUMENT_SIZE: u64 = 64 << 20;

/// A streaming blob writer: hashes while writing to a temp file in the store; [`BlobWriter::commit`]
/// verifies and publishes it atomically. Dropping it without committing removes the temp file.
/// (A writer from [`Store::blob_writer_trusting`] counts the bytes instead of hashing them.)
pub struct BlobWriter<'s> {
    store: &'s Store,
    path: PathBuf,
    inner: Option<Sink>,
}

/// Where a [`BlobWriter`]'s bytes go.
enum Sink {
    /// Hashed while written.
    Hashing(HashingWriter<BufWriter<File>>),
    /// Counted only: the writer's caller supplies the digest at commit.
    Counting(BufWriter<File>, u64),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Hashing(w) => w.write(buf),
            Sink::Counting(w, count) => {
                let n = w.write(buf)?;
                *count += n as u64;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Hashing(w) => w.flush(),
            Sink::Counting(w, _) => w.flush(),
        }
    }
}

impl std::fmt::Debug for BlobWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf).map_err(|e| AtPath::wrap(&self.path, e)),
            None => Err(io::Error::other("blob writer already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush().map_err(|e| AtPath::wrap(&self.path, e)),
            None => Ok(()),
        }
    }
}

impl BlobWriter<'_> {
    /// The temp file the bytes go to until [`BlobWriter::commit`].
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlobWriter<'_> {
    /// Verifies the content against `expected` (digest and size) when given, then makes the blob
    /// visible (fsync, rename, fsync dir). On a mismatch nothing is stored and the error names
    /// the blob. A writer from [`Store::blob_writer_trusting`] needs `expected`: its size is
    /// checked, its digest is taken as given.
    pub fn commit(mut self, expected: Option<(&Digest, u64)>) -> Result<BlobInfo> {
        let (digest, size, buf) = match self.inner.take() {
            Some(Sink::Hashing(w)) => w.finish(),
            Some(Sink::Counting(buf, size)) => {
                let Some((want, _)) = expected else {
                    return Err(StoreError::Unsupported(
                        "a trusting blob writer needs the digest at commit".into(),
                    ));
                };
                (want.clone(), size, buf)
            }
            None => {
                return Err(StoreError::Unsupported(
                    "blob writer committed twice".into(),
                ));
            }
        };
        let file = buf
            .into_inner()
            .map_err(|e| StoreError::io("write", &self.path, e.into_error()))?;
        if let Some((want, want_size)) = expected {
            // the size first: a truncated or over-long blob says so
            if want_size != size {
                return Err(StoreError::SizeMismatch {
                    name: want.to_string(),
                    expected: want_size,
                    actual: size,
                });
            }
            if *want != digest {
                return Err(StoreError::DigestMismatch {
                    name: want.to_string(),
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        file.sync_all().ctx("fsync", &self.path)?;
        drop(file);
        self.store.publish_temp(&self.path, &digest)?;
        self.store.write_verified_stamp(&digest);
        Ok(BlobInfo { digest, size })
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A blob reader that checks size and digest at end of stream: the final `read` returns an
/// `InvalidData` error instead of EOF when the content does not match.
pub struct VerifiedReader {
    inner: Option<crate::digest::HashingReader<io::BufReader<File>>>,
    expected: Digest,
    size: u64,
}

impl std::fmt::Debug for VerifiedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedReader")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl VerifiedReader {
    /// The blob's size on disk.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(h) = self.inner.take()
        {
            let (actual, _) = h.finish();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    CorruptBlob {
                        expected: self.expected.clone(),
                        actual,
                    },
                ));
            }
        }
        Ok(n)
    }
}

impl Store {
    /// Whether a blob is present (not verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob (see [`BlobWriter`]).
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.temp_path("blob")?;
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .open(&path)
            .ctx("create", &path)?;
        Ok(BlobWriter {
            store: self,
            path,
            inner: Some(Sink::Hashing(HashingWriter::new(BufWriter::with_capacity(
                1 << 20,
                file,
            )))),
        })
    }

    /// A writer for a new blob whose digest the caller computes itself, in this process, over
    /// exactly the bytes it writes (e.g. the digest in a layer-pack `LayerDescriptor`): the
    /// writer only counts the bytes instead of hashing them a second time, and
    /// [`BlobWriter::commit`] requires `expected`, checks the size and trusts the digest. Never
    /// for bytes from outside (load, pull): use [`Store::blob_writer`] or [`Store::put_blob`].
    pub fn blob_writer_trusting(&self) -> Result<BlobWriter<'_>> {
        let mut w = self.blob_writer()?;
        if let Some(Sink::Hashing(h)) = w.inner.take() {
            let (_, _, buf) = h.finish();
            w.inner = Some(Sink::Counting(buf, 0));
        }
        Ok(w)
    }

    /// Streams `reader` into a new blob. With `expected` the content must have that digest and
    /// size (checked while streaming for the size, at the end for the digest); when that blob is
    /// already present the reader is not consumed. This is the ingest path for anything from
    /// outside (load, pull).
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<BlobInfo> {
        if let Some((d, size)) = expected {
            let present = self.protected(&[d], || {
                Ok(fs::metadata(self.blob_path(d)).is_ok_and(|m| m.len() == size))
            })?;
            if present {
                return Ok(BlobInfo {
                    digest: d.clone(),
                    size,
                });
            }
        }
        let mut w = self.blob_writer()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let name =
                        expected.map_or_else(|| "stream".to_string(), |(d, _)| d.to_string());
                    return Err(StoreError::io("read", name, e));
                }
            };
            total += n as u64;
            if let Some((d, size)) = expected
                && total > size
            {
                return Err(StoreError::SizeMismatch {
                    name: d.to_string(),
                    expected: size,
                    actual: total,
                });
            }
            let chunk = buf.get(..n).unwrap_or_default();
            w.write_all(chunk)
                .map_err(|e| StoreError::io("write", &w.path, e))?;
        }
        w.commit(expected)
    }

    /// Stores a small in-memory blob (a manifest or config).
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let digest = Digest::of(bytes);
        self.put_blob(bytes, Some((&digest, bytes.len() as u64)))
    }

    /// Publishes a finished temp file (already fsynced) as blob `digest`, protected by the lease.
    /// The caller guarantees the content hashes to `digest`.
    pub(crate) fn publish_temp(&self, tmp: &std::path::Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        self.protected(&[digest], || {
            fs::rename(tmp, &dest).ctx("rename", &dest)?;
            sync_parent(&dest)
        })
    }

    /// Opens a blob for reading; the reader fails at end of stream if the content does not match
    /// the digest.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifiedReader> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobNotFound {
                    digest: digest.clone(),
                }
            } else {
                StoreError::io("open", &path, e)
            }
        })?;
        let size = file.metadata().ctx("stat", &path)?.len();
        Ok(VerifiedReader {
            inner: Some(crate::digest::HashingReader::new(
                io::BufReader::with_capacity(1 << 20, file),
            )),
            expected: digest.clone(),
            size,
        })
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        if r.size() > MAX_DOCUMENT_SIZE {
            return Err(StoreError::Invalid {
                what: digest.to_string(),
                reason: format!("document larger than {MAX_DOCUMENT_SIZE} bytes"),
            });
        }
        let mut out = Vec::with_capacity(r.size() as usize);
        r.read_to_end(&mut out)
            .map_err(|e| blob_read_error(digest, e))?;
        Ok(out)
    }

    /// Re-hashes a blob; checks its size too when given.
    pub fn verify_blob(&self, digest: &Digest, size: Option<u64>) -> Result<()> {
        let mut r = self.open_blob(digest)?;
        if let Some(s) = size
            && s != r.size()
        {
            return Err(StoreError::SizeMismatch {
                name: digest.to_string(),
                expected: s,
                actual: r.size(),
            });
        }
        io::copy(&mut r, &mut io::sink()).map_err(|e| blob_read_error(digest, e))?;
        Ok(())
    }
}

impl Store {
    /// The `verify_blob_fast` stamp of a blob: `ROOT/verified/<hex>`.
    pub(crate) fn verified_stamp_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("verified").join(digest.hex())
    }

    /// Removes stamps whose blob is gone, and abandoned stamp temp files (`<hex>.tmp<pid>`);
    /// returns how many were removed. Stamps of present blobs are kept.
    pub(crate) fn clean_verified_stamps(&self) -> u64 {
        let dir = self.root().join("verified");
        let Ok(rd) = fs::read_dir(&dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.filter_map(std::result::Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = match Digest::parse(&format!("sha256:{name}")) {
                Ok(d) => !self.has_blob(&d),
                Err(_) => crate::gc::is_abandoned(&e.path()),
            };
            if stale && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Like [`Store::verify_blob`], but skips the re-hash when the blob file is unchanged since
    /// its last full verification by this store: a stamp under `ROOT/verified/<hex>` records the
    /// inode, size, mtime and ctime seen then. Any write to the blob changes its ctime, so a
    /// modified or replaced blob is re-hashed; `fsck` always re-hashes everything.
    pub fn verify_blob_fast(&self, digest: &Digest, size: Option<u64>) -> Result<()> {
        let path = self.blob_path(digest);
        let meta = fs::symlink_metadata(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobNotFound {
                    digest: digest.clone(),
                }
            } else {
                StoreError::io("stat", &path, e)
            }
        })?;
        let stamp = verified_stamp(&meta);
        let stamp_path = self.verified_stamp_path(digest);
        let fresh = size.is_none_or(|s| s == meta.len())
            && fs::read_to_string(&stamp_path).is_ok_and(|old| old == stamp);
        if fresh {
            return Ok(());
        }
        self.verify_blob(digest, size)?;
        self.write_verified_stamp(digest);
        Ok(())
    }

    /// Records that the blob file now at `digest`'s path has been verified (best effort: a
    /// missing stamp only costs a re-hash later). Called after a full re-hash, and by
    /// [`BlobWriter::commit`], whose digest was computed from the very bytes it wrote.
    pub(crate) fn write_verified_stamp(&self, digest: &Digest) {
        let Ok(meta) = fs::symlink_metadata(self.blob_path(digest)) else {
            return;
        };
        let stamp_path = self.verified_stamp_path(digest);
        if let Some(dir) = stamp_path.parent()
            && fs::create_dir_all(dir).is_ok()
        {
            let tmp = stamp_path.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, verified_stamp(&meta)).is_ok()
                && fs::rename(&tmp, &stamp_path).is_err()
            {
                let _ = fs::remove_file(&tmp);
            }
        }
    }
}

/// What a verification stamp records of a blob file: inode, size, mtime and ctime.
fn verified_stamp(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {}.{} {}.{}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Turns a verified-read failure into the right error.
/// The I/O error a [`VerifiedReader`] ends with when the content does not hash to its digest
/// (self-contained for callers that only see the `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("blob {expected} is corrupt: content hashes to {actual}")]
pub(crate) struct CorruptBlob {
    expected: Digest,
    actual: Digest,
}

pub(crate) fn blob_read_error(digest: &Digest, e: io::Error) -> StoreError {
    if let Some(c) = e.get_ref().and_then(|i| i.downcast_ref::<CorruptBlob>()) {
        return StoreError::DigestMismatch {
            name: digest.to_string(),
            expected: c.expected.clone(),
            actual: c.actual.clone(),
        };
    }
    if e.kind() == io::ErrorKind::InvalidData {
        StoreError::Invalid {
            what: format!("blob {digest}"),
            reason: e.to_string(),
        }
    } else {
        StoreError::io("read", format!("blob {digest}"), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        (d, s)
    }

    #[test]
    fn put_and_read_back() {
        let (_d, s) = store();
        let info = s.put_blob(&b"hello"[..], None).unwrap();
        assert_eq!(info.digest, Digest::of(b"hello"));
        assert_eq!(s.read_blob(&info.digest).unwrap(), b"hello");
        s.verify_blob(&info.digest, Some(5)).unwrap();
        // no temp files left
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn mismatch_stores_nothing_and_names_blob() {
        let (_d, s) = store();
        let want = Digest::of(b"other");
        let err = s.put_blob(&b"hello"[..], Some((&want, 5))).unwrap_err();
        assert!(err.to_string().contains(want.as_str()), "{err}");
        assert!(!s.has_blob(&want));
        assert!(!s.has_blob(&Digest::of(b"hello")));
        let err = s
            .put_blob(&b"hello"[..], Some((&Digest::of(b"hello"), 4)))
            .unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn trusting_writer_takes_the_callers_digest_and_checks_the_size() {
        let (_d, s) = store();
        let want = Digest::of(b"layer bytes");
        let mut w = s.blob_writer_trusting().unwrap();
        w.write_all(b"layer ").unwrap();
        w.write_all(b"bytes").unwrap();
        let info = w.commit(Some((&want, 11))).unwrap();
        assert_eq!(
            info,
            BlobInfo {
                digest: want.clone(),
                size: 11
            }
        );
        assert_eq!(s.read_blob(&want).unwrap(), b"layer bytes");
        s.verify_blob(&want, Some(11)).unwrap();
        // the size is still checked; without a digest there is nothing to trust
        let mut w = s.blob_writer_trusting().unwrap();
        w.write_all(b"abc").unwrap();
        let other = Digest::of(b"abcd");
        let err = w.commit(Some((&other, 4))).unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
        let mut w = s.blob_writer_trusting().unwrap();
        w.write_all(b"abc").unwrap();
        assert!(w.commit(None).is_err());
        assert!(!s.has_blob(&other));
        assert!(!s.has_blob(&Digest::of(b"abc")));
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_blob_detected_on_read() {
        let (_d, s) = store();
        let info = s.put_blob_bytes(b"hello").unwrap();
        fs::write(s.blob_path(&info.digest), b"jello").unwrap();
        assert!(s.read_blob(&info.digest).is_err());
        assert!(s.verify_blob(&info.digest, None).is_err());
    }
}
