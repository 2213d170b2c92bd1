//! A deterministic parallel gzip writer: the stream is cut into 1 MiB blocks, each compressed
//! independently (on all cores) into its own gzip member, written in order. A multi-member gzip
//! stream is valid gzip (RFC 1952) and every OCI/Docker reader accepts it. Blocks that do not
//! compress (a level-1 probe of their first 64 KiB saves < 3%) are stored, so random data costs
//! no deflate time. The output depends only on the input, the level and the block size.

use std::io::{self, Write};

const BLOCK: usize = 1 << 20;
const PROBE: usize = 64 << 10;

/// Parallel gzip [`Write`] adapter; call [`ParallelGz::finish`] at the end.
pub(crate) struct ParallelGz<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
}

fn looks_incompressible(block: &[u8]) -> bool {
    let probe = block.get(..PROBE.min(block.len())).unwrap_or_default();
    if probe.len() < 4096 {
        return false;
    }
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    if e.write_all(probe).is_err() {
        return false;
    }
    e.finish().is_ok_and(|c| c.len() * 100 >= probe.len() * 97)
}

fn member(block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let level = if looks_incompressible(block) {
        0
    } else {
        level
    };
    let mut e = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(block.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    e.write_all(block)?;
    e.finish()
}

impl<W: Write> ParallelGz<W> {
    pub(crate) fn new(out: W, level: u32) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        ParallelGz {
            out,
            level,
            threads,
            pending: Vec::new(),
            current: Vec::with_capacity(BLOCK),
        }
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let level = self.level;
        let blocks = std::mem::take(&mut self.pending);
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = blocks
                .iter()
                .map(|b| s.spawn(move || member(b, level)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")))
                })
                .collect()
        });
        for m in members {
            self.out.write_all(&m?)?;
        }
        Ok(())
    }

    /// Compresses what is buffered and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || self.pending.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.pending.push(last);
        }
        self.flush_pending()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.current.len();
        let n = room.min(buf.len());
        self.current
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        if self.current.len() == BLOCK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK));
            self.pending.push(full);
            if self.pending.len() >= self.threads {
                self.flush_pending()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut g = ParallelGz::new(Vec::new(), 6);
        g.write_all(data).unwrap();
        g.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let mut x: u32 = 1;
        let mut data: Vec<u8> = (0..3 * BLOCK + 123)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i < 2 * BLOCK {
                    (i % 251) as u8
                } else {
                    (x >> 16) as u8
                }
            })
            .collect();
        data.extend_from_slice(b"tail");
        let a = gz(&data);
        assert_eq!(a, gz(&data));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // compressible blocks shrink, random ones are stored (about their own size)
        assert!(a.len() < data.len() - BLOCK);
        let empty = gz(b"");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
