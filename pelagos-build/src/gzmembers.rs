//! gzip as `unpigz` (which Docker runs) reads it: members one after the other, each with its
//! CRC and length checked, and trailing bytes that do not start another member ignored (a
//! corrupt member is an error, trailing junk is not).

use std::io::{BufRead, Read};

use flate2::bufread::GzDecoder;

/// A reader of the concatenated members of a gzip stream.
pub struct GzMembers<'a> {
    inner: Option<GzDecoder<Peek<'a>>>,
}

impl<'a> GzMembers<'a> {
    /// Decodes the members of `r`.
    pub fn new(r: Box<dyn BufRead + 'a>) -> GzMembers<'a> {
        GzMembers {
            inner: Some(GzDecoder::new(Peek {
                head: Vec::new(),
                inner: r,
            })),
        }
    }
}

/// The source with the bytes looked at between two members put back in front, so each member's
/// decoder reads the same one-level reader (never a chain that grows with the member count).
struct Peek<'a> {
    head: Vec<u8>,
    inner: Box<dyn BufRead + 'a>,
}

impl Peek<'_> {
    /// Whether gzip's magic comes next; the bytes looked at stay unread.
    fn magic_next(&mut self) -> std::io::Result<bool> {
        let mut seen = Vec::with_capacity(2);
        while seen.len() < 2 {
            let buf = self.fill_buf()?;
            let Some(&b) = buf.first() else { break };
            seen.push(b);
            self.consume(1);
        }
        let magic = seen == [0x1f, 0x8b];
        seen.extend_from_slice(&self.head);
        self.head = seen;
        Ok(magic)
    }
}

impl Read for Peek<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Peek<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.head.is_empty() {
            self.inner.fill_buf()
        } else {
            Ok(&self.head)
        }
    }

    fn consume(&mut self, n: usize) {
        if self.head.is_empty() {
            self.inner.consume(n);
        } else {
            self.head.drain(..n.min(self.head.len()));
        }
    }
}

impl Read for GzMembers<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(d) = self.inner.as_mut() else {
                return Ok(0);
            };
            let n = d.read(out)?;
            if n > 0 {
                return Ok(n);
            }
            // the member ended: another one follows only when gzip's magic comes next
            let Some(d) = self.inner.take() else {
                return Ok(0);
            };
            let mut r = d.into_inner();
            if !r.magic_next()? {
                return Ok(0);
            }
            self.inner = Some(GzDecoder::new(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzMembers::new(Box::new(data)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_are_concatenated_and_junk_ignored() {
        let mut data = gz(b"one ");
        data.extend(gz(b"two"));
        assert_eq!(decode(&data).unwrap(), b"one two");
        data.extend_from_slice(b"trailing junk");
        assert_eq!(decode(&data).unwrap(), b"one two");
        data.extend_from_slice(&[0x1f]);
        assert_eq!(decode(&data).unwrap(), b"one two");
    }

    #[test]
    fn a_corrupt_member_is_an_error() {
        let mut data = gz(&[9u8; 10_000]);
        let n = data.len();
        data[n - 8] ^= 0xFF; // CRC
        assert!(decode(&data).is_err());
        let mut two = gz(b"ok");
        two.extend_from_slice(&[0x1f, 0x8b, 0x08, 0, 1, 2]);
        assert!(decode(&two).is_err(), "a truncated second member");
    }

    #[test]
    fn many_members_keep_one_reader_level() {
        // a chain of readers growing per member would overflow the stack here
        let one = gz(b"x");
        let data: Vec<u8> = std::iter::repeat_n(&one[..], 100_000)
            .flatten()
            .copied()
            .collect();
        assert_eq!(decode(&data).unwrap(), vec![b'x'; 100_000]);
    }

    #[test]
    fn a_magic_split_across_reads_is_found() {
        let mut data = gz(b"one ");
        data.extend(gz(b"two"));
        // one byte a read: the magic of the second member spans two fill_buf calls
        let r = std::io::BufReader::with_capacity(1, &data[..]);
        let mut out = Vec::new();
        GzMembers::new(Box::new(r)).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"one two");
    }
}
