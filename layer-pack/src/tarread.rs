//! A strict streaming tar reader (ustar, GNU and PAX) with bounded header sizes.
//!
//! Only what layers need is accepted: regular files, directories, symlinks, hard links,
//! char/block devices and fifos, with PAX (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`,
//! `SCHILY.xattr.*`) and GNU long name/link extensions. Anything else is refused, naming the
//! entry; extension headers above [`MAX_EXT`] bytes are refused instead of being buffered.

use std::io::{self, Read};

use crate::error::UnpackError;

/// Largest PAX or GNU long-name extension accepted.
pub(crate) const MAX_EXT: u64 = 1024 * 1024;

/// Largest entry size accepted (`i64::MAX`, as Go's archive/tar).
const MAX_SIZE: u64 = i64::MAX as u64;

/// Entry types of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One parsed entry header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) path: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) ty: Ty,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: i64,
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) xattrs: Vec<(String, Vec<u8>)>,
}

/// Reads headers and contents in sequence.
pub(crate) struct TarReader<R> {
    r: R,
    /// Content bytes of the current entry not read yet.
    left: u64,
    /// Padding after the current entry's content.
    pad: u64,
}

fn malformed(entry: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Malformed {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

fn refused(entry: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

fn field(h: &[u8; 512], start: usize, len: usize) -> &[u8] {
    h.get(start..start + len).unwrap_or_default()
}

fn cstr(b: &[u8]) -> &[u8] {
    b.iter()
        .position(|&c| c == 0)
        .map_or(b, |n| b.get(..n).unwrap_or_default())
}

/// Octal (NUL/space padded) or GNU base-256 numeric field.
fn num(b: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = b.split_first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &c in rest {
            v = v.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(v);
    }
    let s = cstr(b);
    let s: Vec<u8> = s.iter().copied().filter(|c| *c != b' ').collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for c in s {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(())
}

#[derive(Default)]
struct Ext {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn parse_pax(data: &[u8], ext: &mut Ext, entry: &[u8]) -> Result<(), UnpackError> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| malformed(entry, "bad pax record"))?;
        let len: usize = std::str::from_utf8(rest.get(..sp).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed(entry, "bad pax record length"))?;
        let rec = rest
            .get(sp + 1..len)
            .ok_or_else(|| malformed(entry, "pax record overruns header"))?;
        rest = rest.get(len..).unwrap_or_default();
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or_else(|| malformed(entry, "pax record without newline"))?;
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| malformed(entry, "pax record without ="))?;
        let (k, v) = (
            rec.get(..eq).unwrap_or_default(),
            rec.get(eq + 1..).unwrap_or_default(),
        );
        let k = std::str::from_utf8(k).map_err(|_| malformed(entry, "pax key is not utf-8"))?;
        let int = |v: &[u8]| -> Result<u64, UnpackError> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| malformed(entry, format!("bad pax {k}")))
        };
        match k {
            "path" => ext.path = Some(v.to_vec()),
            "linkpath" => ext.link = Some(v.to_vec()),
            "size" => ext.size = Some(int(v)?),
            "uid" => ext.uid = Some(int(v)?),
            "gid" => ext.gid = Some(int(v)?),
            "mtime" => {
                let s = std::str::from_utf8(v).map_err(|_| malformed(entry, "bad pax mtime"))?;
                let secs = s.split('.').next().unwrap_or("0");
                let m = secs
                    .parse::<i64>()
                    .map_err(|_| malformed(entry, "bad pax mtime"))?;
                // "-1.5" means -2 whole seconds; only the sign matters for clamping here.
                ext.mtime = Some(if s.starts_with('-') && s.contains('.') {
                    m.saturating_sub(1)
                } else {
                    m
                });
            }
            _ => {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    ext.xattrs.push((name.to_string(), v.to_vec()));
                }
            }
        }
    }
    Ok(())
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        TarReader { r, left: 0, pad: 0 }
    }

    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    /// Reads the current entry's content.
    pub(crate) fn read_content(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.r.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.left -= n as u64;
        Ok(n)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        skip(&mut self.r, self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        Ok(())
    }

    fn read_block(&mut self, last: &[u8]) -> Result<Option<[u8; 512]>, UnpackError> {
        let mut h = [0u8; 512];
        let n = read_full(&mut self.r, &mut h).map_err(UnpackError::Read)?;
        if n == 0 {
            return Ok(None);
        }
        if n < 512 {
            return Err(malformed(last, "truncated header"));
        }
        Ok(Some(h))
    }

    /// The next entry, `None` at the end-of-archive marker (or a clean EOF).
    pub(crate) fn next(&mut self) -> Result<Option<Header>, UnpackError> {
        let mut ext = Ext::default();
        let mut last: Vec<u8> = b"<header>".to_vec();
        loop {
            self.finish_entry()
                .map_err(|e| malformed(&last, format!("truncated content: {e}")))?;
            let Some(h) = self.read_block(&last)? else {
                return Ok(None);
            };
            if h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let name = cstr(field(&h, 0, 100)).to_vec();
            let stored =
                num(field(&h, 148, 8)).ok_or_else(|| malformed(&name, "bad checksum field"))?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(b as i8)
                    }
                })
                .sum();
            if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
                return Err(malformed(&name, "header checksum mismatch"));
            }
            let typeflag = h[156];
            let size = num(field(&h, 124, 12)).ok_or_else(|| malformed(&name, "bad size"))?;
            let ustar = field(&h, 257, 6) == b"ustar\0";
            let mut path = name.clone();
            if ustar {
                let prefix = cstr(field(&h, 345, 155));
                if !prefix.is_empty() {
                    path = [prefix, b"/", &name].concat();
                }
            }
            last.clone_from(&path);
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    if size > MAX_EXT {
                        return Err(refused(
                            &path,
                            format!("oversized extension header ({size} bytes)"),
                        ));
                    }
                    let mut data = vec![0u8; size as usize];
                    let n = read_full(&mut self.r, &mut data).map_err(UnpackError::Read)?;
                    if n < data.len() {
                        return Err(malformed(&path, "truncated extension header"));
                    }
                    self.pad = (512 - size % 512) % 512;
                    match typeflag {
                        b'x' => parse_pax(&data, &mut ext, &path)?,
                        b'L' => ext.path = Some(cstr(&data).to_vec()),
                        b'K' => ext.link = Some(cstr(&data).to_vec()),
                        _ => {} // global PAX headers carry nothing a layer needs
                    }
                    continue;
                }
                _ => {}
            }
            let ty = match typeflag {
                b'0' | 0 | b'7' => Ty::File,
                b'1' => Ty::Hardlink,
                b'2' => Ty::Symlink,
                b'3' => Ty::Char,
                b'4' => Ty::Block,
                b'5' => Ty::Dir,
                b'6' => Ty::Fifo,
                other => {
                    let p = ext.path.unwrap_or(path);
                    return Err(refused(
                        &p,
                        format!("unsupported entry type {:?}", char::from(other)),
                    ));
                }
            };
            let path = ext.path.take().unwrap_or(path);
            let link = ext
                .link
                .take()
                .unwrap_or_else(|| cstr(field(&h, 157, 100)).to_vec());
            let size = ext.size.unwrap_or(size);
            let bad = |what: &str| malformed(&path, format!("bad {what}"));
            // tar sizes are int64 (Go's archive/tar); bigger ones overflow the padding arithmetic
            if size > MAX_SIZE {
                return Err(malformed(&path, format!("entry size {size} out of range")));
            }
            let hdr = Header {
                ty,
                mode: num(field(&h, 100, 8)).ok_or_else(|| bad("mode"))? as u32 & 0o7777,
                uid: match ext.uid {
                    Some(u) => u,
                    None => num(field(&h, 108, 8)).ok_or_else(|| bad("uid"))?,
                },
                gid: match ext.gid {
                    Some(g) => g,
                    None => num(field(&h, 116, 8)).ok_or_else(|| bad("gid"))?,
                },
                mtime: match ext.mtime {
                    Some(m) => m,
                    None => i64::try_from(num(field(&h, 136, 12)).ok_or_else(|| bad("mtime"))?)
                        .unwrap_or(i64::MAX),
                },
                major: u32::try_from(num(field(&h, 329, 8)).unwrap_or(0)).unwrap_or(0),
                minor: u32::try_from(num(field(&h, 337, 8)).unwrap_or(0)).unwrap_or(0),
                xattrs: std::mem::take(&mut ext.xattrs),
                link,
                path,
            };
            // Content of non-file entries (hard links may carry some) is skipped.
            self.left = size;
            self.pad = (512 - size % 512) % 512;
            if !matches!(ty, Ty::File) {
                self.finish_entry()
                    .map_err(|e| malformed(&hdr.path, format!("truncated content: {e}")))?;
            }
            return Ok(Some(hdr));
        }
    }
}
