//! gzip as `unpigz` (which Docker runs) reads it: members one after the other, each with its
//! CRC and length checked, and trailing bytes that do not start another member ignored (a
//! corrupt member is an error, trailing junk is not).

use std::io::{BufRead, Read};

use flate2::bufread::GzDecoder;

/// A reader of the concatenated members of a gzip stream.
pub struct GzMembers<'a> {
    inner: Option<GzDecoder<Box<dyn BufRead + 'a>>>,
}

impl<'a> GzMembers<'a> {
    /// Decodes the members of `r`.
    pub fn new(r: Box<dyn BufRead + 'a>) -> GzMembers<'a> {
        GzMembers {
            inner: Some(GzDecoder::new(r)),
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
            let Some(&first) = r.fill_buf()?.first() else {
                return Ok(0);
            };
            if first != 0x1f {
                return Ok(0);
            }
            r.consume(1);
            if r.fill_buf()?.first() != Some(&0x8b) {
                return Ok(0);
            }
            let next: Box<dyn BufRead + '_> = Box::new(std::io::Cursor::new([0x1f]).chain(r));
            self.inner = Some(GzDecoder::new(next));
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
}
