//! Concatenated xz streams (`xz -c a; xz -c b`, with optional stream padding between them),
//! which the `xz` tool (and so Docker) decodes as one: lzma-rs decodes one stream, so the
//! streams are located from the end of the data, through each stream's footer and index, and
//! decoded one after the other.

/// The byte ranges of the streams of `data`, first to last, without stream padding; `None`
/// when the data does not end in well-formed xz streams (the caller decodes it as one stream
/// then, and reports that decoder's error).
pub fn split(data: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    const HEADER_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
    let mut out = Vec::new();
    let mut end = data.len();
    loop {
        // stream padding: NUL bytes in multiples of four
        let mut pad_end = end;
        while pad_end >= 4 && data.get(pad_end - 4..pad_end)? == [0, 0, 0, 0] {
            pad_end -= 4;
        }
        if pad_end == 0 {
            break;
        }
        end = pad_end;
        let footer = data.get(end.checked_sub(12)?..end)?;
        if footer.get(10..12)? != b"YZ" {
            return None;
        }
        let backward = u32::from_le_bytes(footer.get(4..8)?.try_into().ok()?);
        let index_size = (usize::try_from(backward).ok()? + 1) * 4;
        let index_start = end.checked_sub(12 + index_size)?;
        let blocks = index_blocks_size(data.get(index_start..end - 12)?)?;
        let start = index_start.checked_sub(blocks)?.checked_sub(12)?;
        if data.get(start..start + 6)? != HEADER_MAGIC {
            return None;
        }
        out.push(start..end);
        end = start;
    }
    out.reverse();
    (!out.is_empty()).then_some(out)
}

/// The total size of the blocks an xz index lists (each block's unpadded size rounded up to
/// a multiple of four).
fn index_blocks_size(index: &[u8]) -> Option<usize> {
    let mut pos = 1;
    if *index.first()? != 0 {
        return None;
    }
    let count = varint(index, &mut pos)?;
    let mut total: usize = 0;
    for _ in 0..count {
        let unpadded = usize::try_from(varint(index, &mut pos)?).ok()?;
        let _uncompressed = varint(index, &mut pos)?;
        total = total.checked_add(unpadded.checked_add(3)? & !3)?;
    }
    Some(total)
}

/// An xz multibyte integer (7 bits a byte, little end first, at most 9 bytes).
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut std::io::Cursor::new(data), &mut out).unwrap();
        out
    }

    #[test]
    fn concatenated_streams_with_padding_are_found() {
        let a = xz(b"first part");
        let b = xz(&[7u8; 5000]);
        let mut data = a.clone();
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&b);
        data.extend_from_slice(&[0; 4]);
        let ranges = split(&data).unwrap();
        assert_eq!(ranges, vec![0..a.len(), a.len() + 8..a.len() + 8 + b.len()]);
        assert_eq!(split(&a).unwrap(), vec![0..a.len()]);
    }

    #[test]
    fn malformed_data_is_none() {
        assert_eq!(split(b""), None);
        assert_eq!(split(b"not xz at all, no footer"), None);
        let mut a = xz(b"x");
        let n = a.len();
        a[n - 8] ^= 0xFF; // backward size
        assert_eq!(split(&a), None);
        assert_eq!(split(&[0; 12]), None);
    }
}
