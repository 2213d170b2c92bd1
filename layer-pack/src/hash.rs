//! sha256 helpers: hashing writers/readers and one-shot digests.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crate::queue::{Receiver, Sender, bounded};

use sha2::{Digest, Sha256};

/// Formats a finished sha256 as `sha256:<hex>`.
pub(crate) fn fmt_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A writer that counts everything written through it (the uncompressed case, whose digest
/// is the diff_id hashed upstream).
pub(crate) struct CountWriter<W> {
    pub(crate) inner: W,
    pub(crate) count: u64,
}

impl<W: Write> CountWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CountWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
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

/// Size of the blocks [`SplitHashWriter`] writes and hashes.
const SPLIT_BLOCK: usize = 1024 * 1024;

/// What the hashing thread receives, in output order.
enum Piece {
    /// Output bytes gathered by the writer (handed back for reuse once hashed).
    Block(Arc<Vec<u8>>),
    /// A tar chunk already written out as a zstd frame of raw blocks: the hasher hashes the
    /// same framing ([`crate::zstdw::raw_frame_heads`]) and recycles the chunk.
    RawZstd(Vec<u8>),
}

/// A writer that counts what goes through it and hashes it on a helper thread: bytes are
/// gathered into 1 MiB blocks; each full block is written to `inner` on the calling thread
/// while the helper hashes the same block. For incompressible layers the compressed stream is
/// as large as the tar, so this takes a whole sha256 pass off the compressing thread.
pub(crate) struct SplitHashWriter<'scope, W> {
    inner: W,
    buf: Vec<u8>,
    count: u64,
    tx: Option<Sender<Piece>>,
    back: Receiver<Arc<Vec<u8>>>,
    hasher: ScopedJoinHandle<'scope, Sha256>,
}

impl<'scope, W: Write> SplitHashWriter<'scope, W> {
    /// Starts the hashing thread in `scope`; tar chunks written with
    /// [`SplitHashWriter::write_raw_zstd`] go to `recycle` once hashed.
    pub(crate) fn new<'env>(
        scope: &'scope Scope<'scope, 'env>,
        inner: W,
        recycle: Option<Sender<Vec<u8>>>,
    ) -> Self {
        let (tx, rx) = bounded::<Piece>(3);
        let (back_tx, back) = bounded::<Arc<Vec<u8>>>(3);
        let hasher = scope.spawn(move || {
            let mut h = Sha256::new();
            while let Some(piece) = rx.recv() {
                match piece {
                    Piece::Block(block) => {
                        h.update(block.as_slice());
                        // Hand the block back for reuse; dropped when the writer is gone or has
                        // enough.
                        let _ = back_tx.try_send(block);
                    }
                    Piece::RawZstd(chunk) => {
                        let heads = crate::zstdw::raw_frame_heads(&chunk);
                        for s in crate::zstdw::raw_frame_slices(&heads, &chunk) {
                            h.update(s);
                        }
                        if let Some(r) = &recycle {
                            let _ = r.try_send(chunk);
                        }
                    }
                }
            }
            h
        });
        SplitHashWriter {
            inner,
            buf: Vec::with_capacity(SPLIT_BLOCK),
            count: 0,
            tx: Some(tx),
            back,
            hasher,
        }
    }

    /// The block being gathered, with room at its end (a full block is written out first):
    /// a compressor may fill `spare_capacity` and extend the length.
    pub(crate) fn spare(&mut self) -> io::Result<&mut Vec<u8>> {
        if self.buf.len() >= SPLIT_BLOCK || self.buf.len() == self.buf.capacity() {
            self.flush_block()?;
        }
        Ok(&mut self.buf)
    }

    fn send(&self, piece: Piece) -> io::Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(piece).is_ok());
        if sent {
            Ok(())
        } else {
            Err(io::Error::other("output hasher stopped"))
        }
    }

    /// Writes out and hands over the gathered bytes.
    fn flush_block(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.count += self.buf.len() as u64;
        let next = self
            .back
            .try_recv()
            .and_then(|a| Arc::try_unwrap(a).ok())
            .map_or_else(
                || Vec::with_capacity(SPLIT_BLOCK),
                |mut v| {
                    v.clear();
                    v
                },
            );
        let block = Arc::new(std::mem::replace(&mut self.buf, next));
        self.send(Piece::Block(Arc::clone(&block)))?;
        self.inner.write_all(&block)
    }

    /// Writes `chunk` as one zstd frame of raw blocks without copying it (one vectored write),
    /// then hands it to the hasher, which hashes the same framing.
    pub(crate) fn write_raw_zstd(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.flush_block()?;
        let heads = crate::zstdw::raw_frame_heads(&chunk);
        let mut slices: Vec<io::IoSlice<'_>> = crate::zstdw::raw_frame_slices(&heads, &chunk)
            .map(io::IoSlice::new)
            .collect();
        write_all_vectored(&mut self.inner, &mut slices)?;
        self.count += (heads.len() + chunk.len()) as u64;
        self.send(Piece::RawZstd(chunk))
    }

    /// Writes the rest, flushes `inner` and returns it with the sha256 and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(W, Sha256, u64)> {
        self.flush_block()?;
        self.inner.flush()?;
        self.tx = None;
        let h = self
            .hasher
            .join()
            .map_err(|_| io::Error::other("output hasher panicked"))?;
        Ok((self.inner, h, self.count))
    }
}

/// `write_all` for a list of slices (a single `writev` when `w` takes it all).
fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<W: Write> Write for SplitHashWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = SPLIT_BLOCK.saturating_sub(self.buf.len());
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() >= SPLIT_BLOCK {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_block()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_hash_writer_hashes_and_counts_writes_and_direct_fills_in_order() {
        let data: Vec<u8> = (0..3 * SPLIT_BLOCK + 12_345)
            .map(|i| (i * 7 + i / 5000) as u8)
            .collect();
        let (out, h, n) = std::thread::scope(|s| {
            let mut w = SplitHashWriter::new(s, Vec::new(), None);
            let mut rest = data.as_slice();
            let mut step = 1;
            while !rest.is_empty() {
                let (now, tail) = rest.split_at(step.min(rest.len()));
                if step % 2 == 0 {
                    w.write_all(now).unwrap();
                } else {
                    // what a compressor does: fill the spare room of the current block
                    let mut now = now;
                    while !now.is_empty() {
                        let buf = w.spare().unwrap();
                        let room = buf.capacity() - buf.len();
                        let (a, b) = now.split_at(room.min(now.len()));
                        buf.extend_from_slice(a);
                        now = b;
                    }
                }
                rest = tail;
                step = step * 3 + 1;
            }
            w.finish().unwrap()
        });
        assert_eq!(out, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(fmt_digest(h), fmt_digest(Sha256::new_with_prefix(&data)));
    }
}
