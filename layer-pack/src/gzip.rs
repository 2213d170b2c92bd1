//! Parallel, deterministic gzip.
//!
//! The input is cut into fixed 128 KiB blocks (boundaries depend only on byte offsets). Each block
//! is deflated independently by a worker, primed with the preceding 32 KiB as dictionary, and ends
//! with a sync flush (the last one with the final bit), like pigz. Blocks whose byte histogram is
//! flat (random or already-compressed data) are written as stored blocks without trying to deflate
//! them. The output therefore depends on the input and the level only, never on the thread count.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::thread::JoinHandle;

use crate::queue::{Receiver, Sender, bounded};
use flate2::{Compress, FlushCompress, Status};

/// Size of one independently compressed block.
pub(crate) const BLOCK: usize = 128 * 1024;
/// Dictionary carried from the previous block (the deflate window).
const DICT: usize = 32 * 1024;
/// Largest stored-block payload.
const STORED_MAX: usize = 65_535;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    data: Vec<u8>,
}

/// A parallel gzip writer; call [`ParallelGzip::finish`] to complete the stream.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    block: Vec<u8>,
    dict: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    pending: BTreeMap<u64, Done>,
    crc: crc32fast::Hasher,
    total: u64,
    job_tx: Option<Sender<Job>>,
    done_rx: Receiver<Done>,
    spare: Vec<Vec<u8>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream at `level` (0..=9) compressed by `threads` workers.
    pub(crate) fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        // Fixed header: no name, mtime 0, no extra flags, OS unknown.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        // Deep enough that workers never wait for the writer, even when descheduled on a busy host.
        let max_in_flight = threads * 8 + 4;
        let (job_tx, job_rx) = bounded::<Job>(max_in_flight);
        let (done_tx, done_rx) = bounded::<Done>(max_in_flight);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let rx = job_rx.clone();
            let tx = done_tx.clone();
            workers.push(std::thread::spawn(move || worker(&rx, &tx, level)));
        }
        Ok(ParallelGzip {
            out,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            next_seq: 0,
            next_write: 0,
            in_flight: 0,
            max_in_flight,
            pending: BTreeMap::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            job_tx: Some(job_tx),
            done_rx,
            spare: Vec::new(),
            workers,
        })
    }

    /// Appends uncompressed bytes.
    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.block.len() == BLOCK {
                // A full block goes out only once more data follows (the last block is final).
                self.dispatch(false)?;
            }
            let room = BLOCK - self.block.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.extend_from_slice(now);
            data = rest;
        }
        Ok(())
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let next = self.spare.pop().map_or_else(
            || Vec::with_capacity(BLOCK),
            |mut v| {
                v.clear();
                v
            },
        );
        let data = std::mem::replace(&mut self.block, next);
        let dict = std::mem::take(&mut self.dict);
        let tail = data.len().saturating_sub(DICT);
        self.dict = data.get(tail..).unwrap_or_default().to_vec();
        let job = Job {
            seq: self.next_seq,
            data,
            dict,
            last,
        };
        self.next_seq += 1;
        self.in_flight += 1;
        let tx = self
            .job_tx
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream finished"))?;
        tx.send(job)
            .map_err(|_| io::Error::other("gzip worker exited"))
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let done = self
            .done_rx
            .recv()
            .ok_or_else(|| io::Error::other("gzip worker exited"))?;
        self.in_flight -= 1;
        self.pending.insert(done.seq, done);
        while let Some(done) = self.pending.remove(&self.next_write) {
            let out = done.out?;
            self.out.write_all(&out)?;
            self.crc.combine(&done.crc);
            self.total += done.data.len() as u64;
            self.next_write += 1;
            if self.spare.len() < 4 {
                self.spare.push(done.data);
            }
        }
        Ok(())
    }

    /// Compresses the last block, writes the trailer and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.job_tx = None;
        for w in self.workers.drain(..) {
            w.join()
                .map_err(|_| io::Error::other("gzip worker panicked"))?;
        }
        let crc = self.crc.clone().finalize();
        let len = self.total as u32;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        Ok(self.out)
    }
}

fn worker(rx: &Receiver<Job>, tx: &Sender<Done>, level: u32) {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    while let Some(job) = rx.recv() {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let out = deflate_block(&mut c, level, &job.data, &job.dict, job.last);
        if tx
            .send(Done {
                seq: job.seq,
                out,
                crc,
                data: job.data,
            })
            .is_err()
        {
            return;
        }
    }
}

/// True when the byte histogram of `data` is nearly flat (collision entropy within ~0.02 bit of
/// 8 bits per byte): deflate cannot win anything there. Integer-only, so deterministic everywhere.
pub(crate) fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let n = data.len() as u64;
    let sum_sq: u64 = counts.iter().map(|c| c * c).sum();
    // Uniform bytes give sum_sq ~= n^2/256 + n.
    sum_sq * 256 <= n * n + n * n / 64 + 256 * n
}

/// Deflates one block as a raw deflate fragment ending byte-aligned (sync flush) or final.
pub(crate) fn deflate_block(
    c: &mut Compress,
    level: u32,
    data: &[u8],
    dict: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    if level == 0 || looks_incompressible(data) {
        return Ok(stored(data, last));
    }
    // A fresh state per block: zlib-rs' reset() can leave match state behind, which made the
    // output depend on which blocks a worker had compressed before (thread count).
    *c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 64);
    let start_in = c.total_in();
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        let input = data.get(consumed..).unwrap_or_default();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (c.total_in() - start_in) as usize;
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => {
                !last && consumed == data.len() && out.len() < out.capacity()
            }
        };
        if done {
            break;
        }
        out.reserve(64 * 1024);
    }
    // Never expand: stored blocks cost 5 bytes per 64 KiB.
    if out.len() > data.len() + 5 * (data.len() / STORED_MAX + 1) {
        return Ok(stored(data, last));
    }
    Ok(out)
}

/// `data` as byte-aligned stored deflate blocks; the final bit on the last one when `last`.
pub(crate) fn stored(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / STORED_MAX + 1));
    let mut pieces = data.chunks(STORED_MAX).peekable();
    if pieces.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
        return out;
    }
    while let Some(p) = pieces.next() {
        let fin = last && pieces.peek().is_none();
        let len = p.len() as u16;
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::pseudo_random;
    use std::io::Read;

    fn gz(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut g = ParallelGzip::new(Vec::new(), level, threads).unwrap();
        for piece in data.chunks(77_777) {
            g.write_all(piece).unwrap();
        }
        g.finish().unwrap()
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_and_ignores_thread_count() {
        let mut data = Vec::new();
        for i in 0..60_000u32 {
            data.extend_from_slice(format!("line {i} of some text\n").as_bytes());
        }
        data.extend(pseudo_random(300_000, 7));
        data.extend(std::iter::repeat_n(0u8, BLOCK * 2)); // exact-multiple boundaries
        for level in [0, 1, 6, 9] {
            let one = gz(&data, level, 1);
            let four = gz(&data, level, 4);
            assert!(one == four, "level {level} differs by thread count");
            assert_eq!(gunzip(&one), data);
        }
    }

    #[test]
    fn empty_and_exact_block_inputs() {
        for n in [0, 1, BLOCK, 2 * BLOCK] {
            let data = vec![b'a'; n];
            assert_eq!(gunzip(&gz(&data, 6, 2)), data);
        }
    }

    #[test]
    fn random_data_is_stored_not_deflated() {
        let data = pseudo_random(BLOCK, 3);
        assert!(looks_incompressible(&data));
        let text = b"hello world, hello world ".repeat(5000);
        assert!(!looks_incompressible(&text));
        let z = gz(&data, 6, 2);
        // header 10 + trailer 8 + 3 stored headers (2 pieces + nothing else) of 5 bytes
        assert_eq!(z.len(), data.len() + 10 + 8 + 5 * 3);
    }
}
