//! sha256 helpers: hashing writers/readers and one-shot digests.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// Formats a finished sha256 as `sha256:<hex>`.
pub(crate) fn fmt_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A writer that hashes and counts everything written through it.
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) count: u64,
    hash: bool,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            hash: true,
        }
    }

    /// Counts without hashing.
    pub(crate) fn counting(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            hash: false,
        }
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(buf);
        if self.hash {
            self.hasher.update(done);
        }
        self.count += done.len() as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        if self.hash {
            self.hasher.update(buf);
        }
        self.count += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashReader<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
    pub(crate) count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        self.hasher.update(got);
        self.count += got.len() as u64;
        Ok(n)
    }
}

/// Reads `r` to its end, discarding the bytes.
pub(crate) fn drain<R: Read>(r: &mut R) -> io::Result<u64> {
    io::copy(r, &mut io::sink())
}

/// `sha256:<hex>` of everything `r` yields.
pub fn digest_of<R: Read>(r: R) -> io::Result<String> {
    let mut hr = HashReader::new(r);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match hr.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(fmt_digest(hr.hasher))
}

/// `sha256:<hex>` of the uncompressed content of a layer blob (gzip, zstd or plain, detected
/// from the first bytes).
pub fn diff_id_of<R: Read>(blob: R) -> io::Result<String> {
    let (dec, _) = crate::decode::Decoder::new(blob)?;
    digest_of(dec)
}
