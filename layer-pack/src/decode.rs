//! Decompression with format detection from magic bytes.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;

use crate::options::Compression;

/// A decoder over a raw reader; `into_raw` gives the raw reader back.
pub(crate) enum Decoder<R: Read> {
    Gzip(Box<MultiGzDecoder<BufReader<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<R>>>),
    Plain(BufReader<R>),
}

impl<R: Read> Decoder<R> {
    /// Detects gzip (`1f 8b`), zstd (`28 b5 2f fd`) or plain tar from the first bytes.
    pub(crate) fn new(raw: R) -> io::Result<(Self, Compression)> {
        let mut br = BufReader::with_capacity(256 * 1024, raw);
        let head = loop {
            match br.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok((
                Decoder::Gzip(Box::new(MultiGzDecoder::new(br))),
                Compression::Gzip,
            ))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let d = zstd::stream::read::Decoder::with_buffer(br)?;
            Ok((Decoder::Zstd(Box::new(d)), Compression::Zstd))
        } else {
            Ok((Decoder::Plain(br), Compression::None))
        }
    }

    /// The raw reader (any bytes still buffered are lost: drain the decoder first).
    pub(crate) fn into_raw(self) -> R {
        match self {
            Decoder::Gzip(d) => d.into_inner().into_inner(),
            Decoder::Zstd(d) => d.finish().into_inner(),
            Decoder::Plain(b) => b.into_inner(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Plain(b) => b.read(buf),
        }
    }
}
