//! Deterministic tar formatting into bounded chunks handed to the pipeline.
//!
//! Headers are ustar with numeric ids only (no uname/gname); a PAX extended header precedes an
//! entry only when needed: a name or link target longer than 100 bytes, ids or size or mtime
//! beyond the octal fields, or xattrs (`SCHILY.xattr.NAME`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::queue::{Receiver, Sender};

use crate::error::PackError;

/// Size of the chunks handed from the tar producer to the hashing/compression stage.
pub(crate) const CHUNK: usize = 1024 * 1024;

/// The type-specific part of a tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Regular file of this size (content follows).
    File(u64),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// Everything a tar header says about one entry.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Path in the layer, relative, no leading or trailing `/`.
    pub(crate) path: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    /// Already filtered by the allow-list and sorted by name.
    pub(crate) xattrs: Vec<(String, Vec<u8>)>,
}

/// Keeps `security.capability` and `user.*` except overlayfs' own `user.overlay.*`.
pub(crate) fn xattr_allowed(name: &str) -> bool {
    name == "security.capability"
        || (name.starts_with("user.") && !name.starts_with("user.overlay."))
}

/// Clamps a whole-second mtime to `[0, source_date_epoch]`.
pub(crate) fn clamp_mtime(mtime: i64, sde: Option<i64>) -> i64 {
    let m = mtime.max(0);
    match sde {
        Some(s) if m > s => s.max(0),
        _ => m,
    }
}

/// Signals that the consumer stopped (its own error is the one reported).
fn gone() -> PackError {
    PackError::Write {
        path: "<output>".into(),
        source: io::Error::from(io::ErrorKind::BrokenPipe),
    }
}

/// Collects tar bytes into `CHUNK`-sized buffers sent to the consumer.
///
/// `buf[..fill]` is the chunk being built. A recycled buffer keeps its old bytes beyond `fill`
/// (`buf.len()` is what is initialized), so file data is read into it without zeroing it first.
pub(crate) struct Chunker {
    buf: Vec<u8>,
    fill: usize,
    tx: Sender<Vec<u8>>,
    free: Receiver<Vec<u8>>,
}

impl Chunker {
    pub(crate) fn new(tx: Sender<Vec<u8>>, free: Receiver<Vec<u8>>) -> Self {
        Chunker {
            buf: Vec::with_capacity(CHUNK),
            fill: 0,
            tx,
            free,
        }
    }

    fn flush(&mut self) -> Result<(), PackError> {
        if self.fill == 0 {
            return Ok(());
        }
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let mut full = std::mem::replace(&mut self.buf, next);
        full.truncate(self.fill);
        self.fill = 0;
        self.tx.send(full).map_err(|_| gone())
    }

    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<(), PackError> {
        while !data.is_empty() {
            if self.fill == CHUNK {
                self.flush()?;
            }
            let room = CHUNK - self.fill;
            let (now, rest) = data.split_at(room.min(data.len()));
            let end = self.fill + now.len();
            if let Some(dst) = self.buf.get_mut(self.fill..end) {
                dst.copy_from_slice(now);
            } else {
                self.buf.truncate(self.fill);
                self.buf.extend_from_slice(now);
            }
            self.fill = end;
            data = rest;
        }
        Ok(())
    }

    /// Copies exactly `size` bytes of `f` (then the padding to 512); a short file is an error.
    pub(crate) fn copy_file(
        &mut self,
        f: &mut File,
        size: u64,
        path: &Path,
    ) -> Result<(), PackError> {
        let mut left = size;
        while left > 0 {
            if self.fill == CHUNK {
                self.flush()?;
            }
            let room = (CHUNK - self.fill).min(usize::try_from(left).unwrap_or(usize::MAX));
            let start = self.fill;
            if self.buf.len() < start + room {
                // Zeroed once per buffer; recycled buffers are already initialized.
                self.buf.resize(start + room, 0);
            }
            let n = loop {
                match f.read(self.buf.get_mut(start..start + room).unwrap_or_default()) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(PackError::Read {
                            path: path.to_path_buf(),
                            source,
                        });
                    }
                }
            };
            if n == 0 {
                return Err(PackError::Changed {
                    path: path.to_path_buf(),
                });
            }
            self.fill = start + n;
            left -= n as u64;
        }
        self.pad(size)
    }

    /// Writes in-memory content plus padding.
    pub(crate) fn write_content(&mut self, data: &[u8]) -> Result<(), PackError> {
        self.write(data)?;
        self.pad(data.len() as u64)
    }

    fn pad(&mut self, size: u64) -> Result<(), PackError> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.write([0u8; 512].get(rem..).unwrap_or_default())?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and sends the last chunk.
    pub(crate) fn finish(mut self) -> Result<(), PackError> {
        self.write(&[0u8; 1024])?;
        self.flush()
    }
}

const MAX_OCTAL_7: u64 = 0o777_7777;
const MAX_OCTAL_11: u64 = 0o777_7777_7777;

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN key=value\n" where LEN counts the whole record including its own digits.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    for (i, b) in field.iter_mut().enumerate() {
        *b = value.get(i).copied().unwrap_or(0);
    }
}

/// Writes the header (and PAX header when needed) of `m`; file content follows separately.
pub(crate) fn write_header(out: &mut Chunker, m: &Meta) -> Result<(), PackError> {
    let mut name = m.path.clone();
    if m.kind == Kind::Dir {
        name.push(b'/');
    }
    let (size, link): (u64, Option<&[u8]>) = match &m.kind {
        Kind::File(s) => (*s, None),
        Kind::Symlink(t) | Kind::Hardlink(t) => (0, Some(t)),
        _ => (0, None),
    };
    let mtime = m.mtime.max(0) as u64;
    let mut pax = Vec::new();
    if name.len() > 100 {
        pax_record(&mut pax, "path", &name);
    }
    if let Some(l) = link.filter(|l| l.len() > 100) {
        pax_record(&mut pax, "linkpath", l);
    }
    if u64::from(m.uid) > MAX_OCTAL_7 {
        pax_record(&mut pax, "uid", m.uid.to_string().as_bytes());
    }
    if u64::from(m.gid) > MAX_OCTAL_7 {
        pax_record(&mut pax, "gid", m.gid.to_string().as_bytes());
    }
    if size > MAX_OCTAL_11 {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    if mtime > MAX_OCTAL_11 {
        pax_record(&mut pax, "mtime", mtime.to_string().as_bytes());
    }
    for (k, v) in &m.xattrs {
        pax_record(&mut pax, &format!("SCHILY.xattr.{k}"), v);
    }
    if !pax.is_empty() {
        let mut h = tar::Header::new_ustar();
        set_bytes(&mut h.as_old_mut().name, b"././@PaxHeader");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(pax.len() as u64);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_cksum();
        out.write(h.as_bytes())?;
        out.write_content(&pax)?;
    }
    let mut h = tar::Header::new_ustar();
    set_bytes(
        &mut h.as_old_mut().name,
        name.get(..name.len().min(100)).unwrap_or_default(),
    );
    if let Some(l) = link {
        set_bytes(
            &mut h.as_old_mut().linkname,
            l.get(..l.len().min(100)).unwrap_or_default(),
        );
    }
    h.set_mode(m.mode & 0o7777);
    h.set_uid(u64::from(m.uid).min(MAX_OCTAL_7));
    h.set_gid(u64::from(m.gid).min(MAX_OCTAL_7));
    h.set_mtime(mtime.min(MAX_OCTAL_11));
    h.set_size(size.min(MAX_OCTAL_11));
    let ty = match &m.kind {
        Kind::File(_) => tar::EntryType::Regular,
        Kind::Dir => tar::EntryType::Directory,
        Kind::Symlink(_) => tar::EntryType::Symlink,
        Kind::Hardlink(_) => tar::EntryType::Link,
        Kind::Char(..) => tar::EntryType::Char,
        Kind::Block(..) => tar::EntryType::Block,
        Kind::Fifo => tar::EntryType::Fifo,
    };
    h.set_entry_type(ty);
    let (major, minor) = match m.kind {
        Kind::Char(a, b) | Kind::Block(a, b) => (a, b),
        _ => (0, 0),
    };
    h.set_device_major(major)
        .map_err(|source| PackError::Write {
            path: "<output>".into(),
            source,
        })?;
    h.set_device_minor(minor)
        .map_err(|source| PackError::Write {
            path: "<output>".into(),
            source,
        })?;
    h.set_cksum();
    out.write(h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [0, 1, 5, 90, 95, 96, 97, 995, 996, 1000] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; n]);
            let s = String::from_utf8(out.clone()).unwrap();
            let (len, _) = s.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "value length {n}");
        }
    }

    #[test]
    fn allow_list() {
        assert!(xattr_allowed("security.capability"));
        assert!(xattr_allowed("user.mime"));
        assert!(!xattr_allowed("user.overlay.opaque"));
        assert!(!xattr_allowed("trusted.overlay.opaque"));
        assert!(!xattr_allowed("security.selinux"));
        assert!(!xattr_allowed("system.nfs4_acl"));
    }

    #[test]
    fn mtime_clamping() {
        assert_eq!(clamp_mtime(100, Some(50)), 50);
        assert_eq!(clamp_mtime(10, Some(50)), 10);
        assert_eq!(clamp_mtime(-5, None), 0);
    }
}
