//! zstd on the raw streaming API, compressing straight into the output blocks of a
//! [`SplitHashWriter`] (no intermediate buffer between libzstd and the hashed output).
//!
//! The stream is a sequence of zstd frames (RFC 8878 §3.1: decoders read concatenated frames
//! as one stream). Tar chunks (fixed 1 MiB pieces of the tar, so their boundaries depend on
//! byte offsets only) that look incompressible are written as frames of raw blocks without
//! running libzstd's match finder; runs of other chunks go through libzstd as one frame each.
//! The choice depends only on the chunk's bytes, so the output stays independent of the thread
//! count.

use std::io::{self, Write};

use sha2::Sha256;
use zstd::stream::raw::{CParameter, Encoder, InBuffer, Operation, OutBuffer};

use crate::hash::SplitHashWriter;

/// zstd job size for levels up to 9.
const ZSTD_JOB: u32 = 1024 * 1024;
/// Largest zstd block (and so largest raw block).
const BLOCK_MAX: usize = 128 * 1024;
/// Chunks shorter than this always go through libzstd (too few samples to judge).
const RAW_MIN: usize = 128 * 1024;
/// Sampled bytes per probe of [`looks_incompressible`] ...
const SAMPLE: usize = 2048;
/// ... taken every `STRIDE` bytes (1/16 of the chunk is looked at).
const STRIDE: usize = 32 * 1024;

/// True when one sample's byte histogram is flat: `256·Σc² − n²` is `n` times a chi-square
/// statistic with 255 degrees of freedom for uniform random bytes (mean 255, sd 23); compressed
/// or encrypted data stays well under 384, text, code, headers and zero runs are far above.
fn sample_is_flat(s: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as u64;
    let sum_sq: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    sum_sq * 256 <= n * n + 384 * n
}

/// True when a tar chunk looks incompressible: every 2 KiB probe taken every 32 KiB has a flat
/// byte histogram, except at most one (a tar header between two incompressible files).
/// Integer-only and a function of the bytes alone, so the decision is deterministic.
pub(crate) fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < RAW_MIN {
        return false;
    }
    let mut uneven = 0;
    let mut start = 0;
    while let Some(s) = data.get(start..start + SAMPLE) {
        if !sample_is_flat(s) {
            uneven += 1;
            if uneven > 1 {
                return false;
            }
        }
        start += STRIDE;
    }
    true
}

/// The headers of `data` as one zstd frame of raw blocks: magic and a single-segment frame
/// header with the 4-byte content size (9 bytes), then one 3-byte header per 128 KiB block.
/// [`raw_frame_slices`] interleaves them with the data.
pub(crate) fn raw_frame_heads(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(BLOCK_MAX).max(1);
    let mut heads = Vec::with_capacity(9 + 3 * blocks);
    heads.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
    // Frame_Header_Descriptor: Frame_Content_Size 4 bytes (flag 2), Single_Segment, no
    // checksum, no dictionary. Chunks are at most 1 MiB (the pipeline's chunk size).
    heads.push(0b1010_0000);
    heads.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    for k in 0..blocks {
        let len = data.len().saturating_sub(k * BLOCK_MAX).min(BLOCK_MAX) as u32;
        // Block_Header: Last_Block bit, Block_Type 0 (raw), Block_Size.
        let h = (len << 3) | u32::from(k + 1 == blocks);
        heads.extend_from_slice(h.to_le_bytes().get(..3).unwrap_or_default());
    }
    heads
}

/// The frame in output order: frame header, then each block header followed by its block.
pub(crate) fn raw_frame_slices<'a>(
    heads: &'a [u8],
    data: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let (frame, block_heads) = heads.split_at(9.min(heads.len()));
    std::iter::once(frame).chain(
        block_heads
            .chunks(3)
            .zip(data.chunks(BLOCK_MAX).chain(std::iter::once(&[][..])))
            .flat_map(|(h, d)| [h, d]),
    )
}

/// A multithreaded zstd stream (no checksum) into a [`SplitHashWriter`].
pub(crate) struct ZstdSink<'scope, W: Write> {
    enc: Encoder<'static>,
    out: SplitHashWriter<'scope, W>,
    /// A libzstd frame is open (started and not yet ended).
    in_frame: bool,
}

impl<'scope, W: Write> ZstdSink<'scope, W> {
    /// Starts a stream at `level` compressed by `workers` threads.
    pub(crate) fn new(
        out: SplitHashWriter<'scope, W>,
        level: i32,
        workers: usize,
    ) -> io::Result<Self> {
        let mut enc = Encoder::new(level)?;
        // Always at least one worker: zstd's output is then the same for any worker count.
        enc.set_parameter(CParameter::NbWorkers(
            u32::try_from(workers.max(1)).unwrap_or(u32::MAX),
        ))?;
        enc.set_parameter(CParameter::ChecksumFlag(false))?;
        if level <= 9 {
            // 1 MiB jobs (zstd's default is 4 windows) keep both cores busy: measured 1.5x faster
            // at level 1. A fixed value, so the output stays deterministic.
            enc.set_parameter(CParameter::JobSize(ZSTD_JOB))?;
        }
        Ok(ZstdSink {
            enc,
            out,
            in_frame: false,
        })
    }

    /// Compresses one tar chunk. Chunk boundaries must depend only on byte offsets (the
    /// pipeline's fixed-size chunks), since each chunk is judged on its own.
    /// An incompressible chunk is consumed (written without a copy and recycled after
    /// hashing); any other one is given back.
    pub(crate) fn write_chunk(&mut self, chunk: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        if looks_incompressible(&chunk) {
            self.end_frame()?;
            self.out.write_raw_zstd(chunk)?;
            return Ok(None);
        }
        self.in_frame = true;
        let mut input = InBuffer::around(&chunk);
        while input.pos() < chunk.len() {
            let buf = self.out.spare()?;
            let pos = buf.len();
            let mut ob = OutBuffer::around_pos(buf, pos);
            self.enc.run(&mut input, &mut ob)?;
        }
        Ok(Some(chunk))
    }

    /// Ends the open libzstd frame, if any.
    fn end_frame(&mut self) -> io::Result<()> {
        if !self.in_frame {
            return Ok(());
        }
        loop {
            let buf = self.out.spare()?;
            let pos = buf.len();
            let mut ob = OutBuffer::around_pos(buf, pos);
            if self.enc.finish(&mut ob, true)? == 0 {
                break;
            }
        }
        self.enc.reinit()?;
        self.in_frame = false;
        Ok(())
    }

    /// Ends the stream: the output writer, the sha256 of the output and its size.
    pub(crate) fn finish(mut self) -> io::Result<(W, Sha256, u64)> {
        self.end_frame()?;
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::pseudo_random;
    use std::io::Read;

    fn text(n: usize) -> Vec<u8> {
        let mut t = Vec::new();
        let mut i = 0;
        while t.len() < n {
            t.extend_from_slice(format!("line {i} of some text\n").as_bytes());
            i += 1;
        }
        t.truncate(n);
        t
    }

    /// Compresses `chunks` (as the pipeline hands them over) with `workers` threads.
    fn compress(chunks: &[Vec<u8>], workers: usize) -> Vec<u8> {
        std::thread::scope(|s| {
            let out = SplitHashWriter::new(s, Vec::new(), None);
            let mut z = ZstdSink::new(out, 1, workers).unwrap();
            for c in chunks {
                z.write_chunk(c.clone()).unwrap();
            }
            z.finish().unwrap().0
        })
    }

    fn decompress(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(z)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    const MIB: usize = 1024 * 1024;

    #[test]
    fn random_chunks_become_raw_frames_and_the_rest_goes_through_libzstd() {
        let chunks = vec![
            text(MIB),
            pseudo_random(MIB, 1),
            pseudo_random(MIB, 2),
            text(MIB),
            pseudo_random(300_000, 3),
        ];
        let all: Vec<u8> = chunks.concat();
        let z = compress(&chunks, 2);
        assert_eq!(decompress(&z), all);
        // every random chunk is one raw frame: magic, descriptor (single segment, 4-byte
        // content size), size, then raw blocks of 128 KiB with 3-byte headers
        for (i, n) in [(1, MIB), (2, MIB), (4, 300_000)] {
            let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0];
            frame.extend_from_slice(&(n as u32).to_le_bytes());
            let blocks: Vec<&[u8]> = chunks[i].chunks(BLOCK_MAX).collect();
            for (k, b) in blocks.iter().enumerate() {
                let last = u32::from(k + 1 == blocks.len());
                frame.extend_from_slice(&(((b.len() as u32) << 3) | last).to_le_bytes()[..3]);
                frame.extend_from_slice(b);
            }
            assert!(z.windows(frame.len()).any(|w| w == frame), "chunk {i}");
        }
        // the text went through libzstd (two frames, one per run of compressible chunks)
        let raw_total = 2 * (MIB + 9 + 3 * 8) + 300_000 + 9 + 3 * 3;
        assert!(z.len() < raw_total + 2 * MIB / 10, "{}", z.len());
        let frames = z
            .windows(4)
            .filter(|w| *w == [0x28, 0xb5, 0x2f, 0xfd])
            .count();
        assert!(frames >= 5);
    }

    #[test]
    fn output_does_not_depend_on_the_worker_count() {
        let chunks = vec![
            pseudo_random(MIB, 4),
            text(MIB),
            text(MIB),
            pseudo_random(MIB, 5),
            text(5000),
        ];
        let one = compress(&chunks, 1);
        for n in [2, 3, 8] {
            assert!(compress(&chunks, n) == one, "{n} workers");
        }
        assert_eq!(decompress(&one), chunks.concat());
    }

    #[test]
    fn incompressibility_needs_every_probe_but_one_flat() {
        let r = pseudo_random(MIB, 6);
        assert!(looks_incompressible(&r));
        // short chunks are left to libzstd
        assert!(!looks_incompressible(&r[..RAW_MIN - 1]));
        // one tar header (mostly zeros) inside random data is tolerated ...
        let mut one = r.clone();
        one[STRIDE..STRIDE + 512].fill(0);
        assert!(looks_incompressible(&one));
        // ... two are not
        let mut two = one.clone();
        two[5 * STRIDE + 100..5 * STRIDE + 612].fill(0);
        assert!(!looks_incompressible(&two));
        // 64 KiB of text in random data is seen
        let mut t = r.clone();
        t[10 * STRIDE..12 * STRIDE].copy_from_slice(&text(2 * STRIDE));
        assert!(!looks_incompressible(&t));
        assert!(!looks_incompressible(&text(MIB)));
        // a flat histogram over 256 symbols but sparse use of them is not flat per probe
        assert!(!looks_incompressible(&vec![7u8; MIB]));
    }

    #[test]
    fn the_zstd_cli_decodes_mixed_frames() {
        let chunks = vec![pseudo_random(MIB, 8), text(MIB), pseudo_random(MIB, 9)];
        let z = compress(&chunks, 2);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.zst");
        std::fs::write(&f, &z).unwrap();
        let out = std::process::Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == chunks.concat());
    }
}
