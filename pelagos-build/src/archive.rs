//! ADD of local archives: detection by content (gzip, bzip2, xz, zstd or plain tar, as Docker:
//! a file is an archive when its decompressed start is a valid tar header), and safe extraction
//! into layer entries (paths cleaned so nothing lands outside the destination, whiteout names
//! and special files handled).

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use layer_pack::{Entry, EntrySource};

use crate::ignore::clean;

/// Errors reading or extracting an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// I/O on the archive or the staging dir.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The tar stream is broken.
    #[error("{path}: malformed archive: {reason}")]
    Malformed {
        /// The archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Compression of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// The codec announced by the first bytes.
pub fn codec_of(head: &[u8]) -> Codec {
    if head.starts_with(&[0x1f, 0x8b]) {
        Codec::Gzip
    } else if head.starts_with(b"BZh") {
        Codec::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Codec::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Codec::Zstd
    } else {
        Codec::None
    }
}

/// Whether `block` is a valid tar header (checksum over the header with the checksum field as
/// spaces, as Go's archive/tar checks).
pub fn is_tar_header(block: &[u8]) -> bool {
    let Some(b) = block.get(..512) else {
        return false;
    };
    if b.iter().all(|x| *x == 0) {
        return false;
    }
    let field = &b[148..156];
    let text: String = field
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*c)
            }
        })
        .sum();
    sum == want
}

/// A decompressing reader for `codec`.
pub fn decoder<'a, R: Read + 'a>(codec: Codec, r: R) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::None => Box::new(r),
        Codec::Gzip => Box::new(crate::gzmembers::GzMembers::new(Box::new(BufReader::new(
            r,
        )))),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Codec::Xz => Box::new(XzReader::new(r)),
    })
}

/// lzma-rs decodes xz into a writer; run it on a thread and read through a pipe, so memory stays
/// bounded.
struct XzReader {
    rx: crossbeam_channel::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    /// The decoder sent its end marker.
    done: bool,
}

struct ChanWriter(crossbeam_channel::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if b.is_empty() {
            return Ok(0);
        }
        self.0
            .send(Ok(b.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl XzReader {
    fn new<R: Read>(r: R) -> XzReader {
        // lzma-rs needs a 'static BufRead: read the compressed input fully first (ADD archives are
        // files on disk; the compressed size is what is held)
        let mut data = Vec::new();
        let mut r = r;
        let res = r.read_to_end(&mut data);
        let (tx, rx) = crossbeam_channel::bounded(16);
        std::thread::spawn(move || {
            if let Err(e) = res {
                let _ = tx.send(Err(e));
                return;
            }
            let mut w = ChanWriter(tx.clone());
            // lzma-rs has arithmetic that overflows on hostile input (a panic with overflow
            // checks): that is a decode error too, never a silently truncated stream
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // concatenated streams are decoded one after the other, as the xz tool does
                match crate::xzstreams::split(&data) {
                    Some(streams) => streams.into_iter().try_for_each(|r| {
                        let part = data.get(r).unwrap_or_default();
                        lzma_rs::xz_decompress(&mut std::io::Cursor::new(part), &mut w)
                    }),
                    None => lzma_rs::xz_decompress(&mut std::io::Cursor::new(&data[..]), &mut w),
                }
            }));
            let _ = tx.send(match res {
                // an empty chunk marks the end (ChanWriter never sends one)
                Ok(Ok(())) => Ok(Vec::new()),
                Ok(Err(e)) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                )),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "corrupt xz stream",
                )),
            });
        });
        XzReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for XzReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) if b.is_empty() => self.done = true,
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::Error::other("xz decoder stopped")),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether the file at `path` is an archive ADD extracts, and its codec.
pub fn detect(path: &Path) -> Result<Option<Codec>, ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 6];
    let n = read_full(&mut f, &mut head).map_err(io)?;
    let codec = codec_of(&head[..n]);
    let f = std::fs::File::open(path).map_err(io)?;
    let Ok(mut d) = decoder(codec, BufReader::new(f)) else {
        return Ok(None);
    };
    let mut block = vec![0u8; 512];
    match read_full(&mut d, &mut block) {
        Ok(512) if is_tar_header(&block) => Ok(Some(codec)),
        _ => Ok(None),
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Files up to this size are held in memory; bigger ones are staged in the staging dir.
const INLINE_MAX: u64 = 256 * 1024;

/// Extracts the archive at `path` as entries below `into` (a layer path, `""` for the root).
/// Regular file contents go to `staging` (a private temp dir the caller removes after packing)
/// or inline. Owners, modes and mtimes come from the archive unless `chown` is given.
pub fn extract(
    path: &Path,
    codec: Codec,
    into: &str,
    staging: &Path,
    chown: Option<(u32, u32)>,
) -> Result<Vec<Entry>, ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason: String| ArchiveError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut ar = tar::Archive::new(decoder(codec, BufReader::new(file)).map_err(io)?);
    let mut out: Vec<Entry> = Vec::new();
    let mut staged = 0u64;
    let place = |name: &str| -> Option<String> {
        let c = clean(&format!("/{name}"));
        let rel = c.trim_start_matches('/');
        if rel.is_empty() {
            return None;
        }
        Some(if into.is_empty() {
            rel.to_string()
        } else {
            format!("{into}/{rel}")
        })
    };
    for e in ar.entries().map_err(io)? {
        let mut e = e.map_err(|err| bad(err.to_string()))?;
        let name = e
            .path()
            .map_err(|err| bad(err.to_string()))?
            .to_string_lossy()
            .into_owned();
        let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if base.starts_with(".wh.") {
            continue;
        }
        let h = e.header().clone();
        let Some(dest) = place(&name) else { continue };
        // a NUL cannot be in a file name or link target (tar's GNU/PAX records can carry one)
        let link_nul = e.link_name_bytes().is_some_and(|l| l.contains(&0));
        if name.contains('\0') || link_nul {
            return Err(bad(format!(
                "{}: NUL byte in a name or link target",
                name.replace('\0', "\\0")
            )));
        }
        // untar sets every xattr of the entry, and the layer BuildKit exports keeps
        // security.capability only (Docker's tar writer; checked with Docker 20.10)
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().map_err(|err| bad(err.to_string()))? {
            for ext in exts {
                let ext = ext.map_err(|err| bad(err.to_string()))?;
                if ext.key_bytes() == b"SCHILY.xattr.security.capability" {
                    xattrs.push((
                        "security.capability".to_string(),
                        ext.value_bytes().to_vec(),
                    ));
                }
            }
        }
        // a symlink's own mode is always 0777 on Linux (untar cannot set another)
        let mode = if h.entry_type().is_symlink() {
            0o777
        } else {
            h.mode().unwrap_or(0o644) & 0o7777
        };
        // empty numeric fields read as 0, as Go's archive/tar does
        let (uid, gid) =
            chown.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let mtime = h.mtime().unwrap_or(0) as i64;
        let et = h.entry_type();
        let source = if et.is_dir() {
            EntrySource::Dir
        } else if et.is_symlink() {
            let t = e
                .link_name()
                .map_err(|err| bad(err.to_string()))?
                .ok_or_else(|| bad(format!("{name}: symlink without target")))?;
            EntrySource::Symlink(t.into_owned().into_os_string())
        } else if et.is_hard_link() {
            let t = e
                .link_name()
                .map_err(|err| bad(err.to_string()))?
                .ok_or_else(|| bad(format!("{name}: link without target")))?;
            let Some(t) = place(&t.to_string_lossy()) else {
                continue;
            };
            EntrySource::Hardlink(t)
        } else if et.is_character_special() || et.is_block_special() {
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            if et.is_character_special() {
                EntrySource::CharDevice { major, minor }
            } else {
                EntrySource::BlockDevice { major, minor }
            }
        } else if et.is_fifo() {
            EntrySource::Fifo
        } else if et.is_file() || et == tar::EntryType::Continuous {
            if e.size() <= INLINE_MAX {
                let mut v = Vec::with_capacity(e.size() as usize);
                e.read_to_end(&mut v).map_err(|err| bad(err.to_string()))?;
                EntrySource::Bytes(v)
            } else {
                staged += 1;
                let p = staging.join(format!("f{staged}"));
                let mut w = std::fs::File::create(&p).map_err(|source| ArchiveError::Io {
                    path: p.clone(),
                    source,
                })?;
                std::io::copy(&mut e, &mut w).map_err(|err| bad(err.to_string()))?;
                EntrySource::File(p)
            }
        } else {
            continue;
        };
        // a hard link's header sets the metadata of the file it names (one inode), as untar's
        // chown/chmod/chtimes of the link path do (checked with Docker 20.10's ADD)
        if let EntrySource::Hardlink(t) = &source {
            let mut target = t.clone();
            for _ in 0..out.len() {
                let Some(x) = out.iter_mut().find(|x| x.path_in_layer == target) else {
                    break;
                };
                match &x.source {
                    EntrySource::Hardlink(next) => target = next.clone(),
                    EntrySource::Symlink(_) => break,
                    // link(2) refuses directories: untar fails, and so does applying the layer
                    EntrySource::Dir => {
                        return Err(bad(format!("{name}: hard link to a directory")));
                    }
                    _ => {
                        (x.mode, x.uid, x.gid, x.mtime) = (mode, uid, gid, mtime);
                        break;
                    }
                }
            }
        }
        // an entry below a symlink of the archive would be written through the link: untar
        // (in BuildKit's chroot) fails unless the link resolves inside; refuse it always. Below
        // any other non-directory, untar fails (ENOTDIR), and the layer could not be applied.
        let mut anc = dest.as_str();
        while let Some((parent, _)) = anc.rsplit_once('/') {
            if parent.len() < into.len() {
                break;
            }
            match out
                .iter()
                .find(|x| x.path_in_layer == parent)
                .map(|x| &x.source)
            {
                Some(EntrySource::Symlink(_)) => {
                    return Err(bad(format!(
                        "{name}: a parent of the entry is a symlink of the archive"
                    )));
                }
                Some(EntrySource::Dir) | None => {}
                Some(_) => {
                    return Err(bad(format!(
                        "{name}: a parent of the entry is not a directory in the archive"
                    )));
                }
            }
            anc = parent;
        }
        // a later entry of the same path replaces the earlier one, as tar -x does (a
        // directory replaced by anything else goes with its contents)
        let below = format!("{dest}/");
        let replaces_tree = !matches!(source, EntrySource::Dir);
        out.retain(|x| {
            x.path_in_layer != dest && !(replaces_tree && x.path_in_layer.starts_with(&below))
        });
        out.push(Entry {
            path_in_layer: dest,
            source,
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        });
    }
    // the rest of the stream is read too, as Docker's untar does: a corrupt compressed stream
    // fails (a gzip CRC, junk after bzip2 or xz data), plain data after a tar does not
    std::io::copy(&mut ar.into_inner(), &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
    implied_dirs(&mut out, into);
    order_hardlinks(&mut out);
    Ok(out)
}

/// Directories below `into` that the archive implies without an entry of their own are made
/// as untar does (0755, root-owned; never the ADD's `--chown`, as in BuildKit).
fn implied_dirs(out: &mut Vec<Entry>, into: &str) {
    let have: std::collections::HashSet<String> =
        out.iter().map(|e| e.path_in_layer.clone()).collect();
    let mut add = std::collections::BTreeSet::new();
    for e in out.iter() {
        let mut cur = e.path_in_layer.as_str();
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if parent.len() <= into.len() {
                break;
            }
            if !have.contains(parent) {
                add.insert(parent.to_string());
            }
            cur = parent;
        }
    }
    for p in add {
        out.push(Entry {
            path_in_layer: p,
            source: EntrySource::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        });
    }
}

/// Layers are packed in path order, and a tar hard link must follow its target: in every group
/// of names of one file, the first name in path order gets the content and the others link to
/// it (all names of a hard-linked file are equal, so the extracted tree is the same).
pub fn order_hardlinks(entries: &mut [Entry]) {
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path_in_layer.clone(), i))
        .collect();
    // the file every link leads to (following links to links)
    let root_of = |mut i: usize| {
        for _ in 0..entries.len() {
            match &entries[i].source {
                EntrySource::Hardlink(t) => match index.get(t) {
                    Some(&j) if j != i => i = j,
                    _ => return None,
                },
                _ => return Some(i),
            }
        }
        None
    };
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.source, EntrySource::Hardlink(_))
            && let Some(r) = root_of(i)
        {
            groups.entry(r).or_default().push(i);
        }
    }
    for (root, links) in groups {
        let Some(&first) = links
            .iter()
            .min_by(|a, b| entries[**a].path_in_layer.cmp(&entries[**b].path_in_layer))
        else {
            continue;
        };
        if entries[first].path_in_layer >= entries[root].path_in_layer {
            for &l in &links {
                entries[l].source = EntrySource::Hardlink(entries[root].path_in_layer.clone());
            }
            continue;
        }
        let name = entries[first].path_in_layer.clone();
        let content = std::mem::replace(
            &mut entries[root].source,
            EntrySource::Hardlink(name.clone()),
        );
        entries[first].source = content;
        // the file's metadata moves with its content (a link header's may differ)
        let (mode, uid, gid, mtime) = {
            let r = &entries[root];
            (r.mode, r.uid, r.gid, r.mtime)
        };
        let xattrs = std::mem::take(&mut entries[root].xattrs);
        let f = &mut entries[first];
        (f.mode, f.uid, f.gid, f.mtime, f.xattrs) = (mode, uid, gid, mtime, xattrs);
        for &l in &links {
            if l != first {
                entries[l].source = EntrySource::Hardlink(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o750);
        h.set_uid(5);
        h.set_gid(6);
        h.set_mtime(100);
        h.set_size(0);
        b.append_data(&mut h, "d/", &[][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o640);
        h.set_size(5);
        h.set_mtime(200);
        b.append_data(&mut h, "d/f.txt", &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "d/l", "f.txt").unwrap();
        // an entry trying to escape
        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..9].copy_from_slice(b"../../esc");
        raw.set_size(1);
        raw.set_mode(0o644);
        raw.set_cksum();
        b.append(&raw, &b"e"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn compress(codec: &str, data: &[u8]) -> Vec<u8> {
        match codec {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "bzip2" => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zstd" => zstd::encode_all(data, 1).unwrap(),
            "xz" => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut std::io::Cursor::new(data), &mut out).unwrap();
                out
            }
            _ => data.to_vec(),
        }
    }

    #[test]
    fn detects_every_codec_and_extracts_safely() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_bytes();
        for (codec, want) in [
            ("none", Codec::None),
            ("gzip", Codec::Gzip),
            ("bzip2", Codec::Bzip2),
            ("xz", Codec::Xz),
            ("zstd", Codec::Zstd),
        ] {
            let p = d.path().join(format!("a.{codec}"));
            std::fs::write(&p, compress(codec, &t)).unwrap();
            assert_eq!(detect(&p).unwrap(), Some(want), "{codec}");
            let es = extract(&p, want, "opt/x", d.path(), None).unwrap();
            let paths: Vec<&str> = es.iter().map(|e| e.path_in_layer.as_str()).collect();
            assert_eq!(
                paths,
                ["opt/x/d", "opt/x/d/f.txt", "opt/x/d/l", "opt/x/esc"],
                "{codec}"
            );
            assert_eq!(
                (es[0].mode, es[0].uid, es[0].gid, es[0].mtime),
                (0o750, 5, 6, 100)
            );
            assert_eq!(es[1].source, EntrySource::Bytes(b"hello".to_vec()));
            assert_eq!(es[2].source, EntrySource::Symlink("f.txt".into()));
        }
        let es = extract(
            &d.path().join("a.gzip"),
            Codec::Gzip,
            "",
            d.path(),
            Some((9, 9)),
        )
        .unwrap();
        assert!(es.iter().all(|e| e.uid == 9 && e.gid == 9));
    }

    #[test]
    fn hard_links_are_reordered_to_follow_their_target_in_path_order() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o640);
        header.set_size(2);
        builder
            .append_data(&mut header, "top/owned", &b"hi"[..])
            .unwrap();
        for name in ["top/hard", "top/zz", "a-first"] {
            let mut link = tar::Header::new_ustar();
            link.set_entry_type(tar::EntryType::Link);
            link.set_size(0);
            link.set_mode(0o640);
            builder.append_link(&mut link, name, "top/owned").unwrap();
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.tar");
        std::fs::write(&p, builder.into_inner().unwrap()).unwrap();
        let mut es = extract(&p, Codec::None, "x", d.path(), None).unwrap();
        es.sort_by(|a, b| a.path_in_layer.cmp(&b.path_in_layer));
        assert!(
            matches!(
                &es.iter()
                    .find(|e| e.path_in_layer == "x/top")
                    .unwrap()
                    .source,
                EntrySource::Dir
            ),
            "the implied dir is made"
        );
        es.retain(|e| !matches!(e.source, EntrySource::Dir));
        let src: Vec<(&str, &EntrySource)> = es
            .iter()
            .map(|e| (e.path_in_layer.as_str(), &e.source))
            .collect();
        assert!(matches!(src[0], ("x/a-first", EntrySource::Bytes(b)) if b == b"hi"));
        assert_eq!(es[0].mode, 0o640, "the content's metadata moves with it");
        for (path, s) in &src[1..] {
            assert!(
                matches!(s, EntrySource::Hardlink(t) if t == "x/a-first"),
                "{path}: {s:?}"
            );
        }
        // packed in path order, the layer is valid
        let mut out = Vec::new();
        layer_pack::pack_entries(es, &layer_pack::PackOptions::default(), &mut out).unwrap();
    }

    #[test]
    fn link_headers_set_the_inode_metadata_and_symlinks_are_0777() {
        // as Docker 20.10's ADD (untar chmods/chowns the link path, i.e. the shared inode)
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o4755);
        h.set_uid(3);
        h.set_size(2);
        b.append_data(&mut h, "f", &b"ff"[..]).unwrap();
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Link);
        link.set_mode(0o600);
        link.set_uid(7);
        link.set_mtime(9);
        link.set_size(0);
        b.append_link(&mut link, "hard", "f").unwrap();
        let mut sym = tar::Header::new_ustar();
        sym.set_entry_type(tar::EntryType::Symlink);
        sym.set_mode(0o644);
        sym.set_size(0);
        b.append_link(&mut sym, "sym", "/etc/passwd").unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.tar");
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        let es = extract(&p, Codec::None, "", d.path(), None).unwrap();
        let get = |n: &str| es.iter().find(|e| e.path_in_layer == n).unwrap();
        for n in ["f", "hard"] {
            assert_eq!(
                (get(n).mode, get(n).uid, get(n).mtime),
                (0o600, 7, 9),
                "{n}"
            );
        }
        assert_eq!(get("sym").mode, 0o777);
    }

    #[test]
    fn entries_below_an_archive_symlink_fail_and_replaced_dirs_go_with_their_contents() {
        let tar_of = |entries: &[(&str, Option<&str>)]| {
            let mut b = tar::Builder::new(Vec::new());
            for (name, link) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_size(0);
                h.set_mode(0o644);
                match link {
                    Some(t) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        b.append_link(&mut h, name, t).unwrap();
                    }
                    None => b.append_data(&mut h, name, &[][..]).unwrap(),
                }
            }
            b.into_inner().unwrap()
        };
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar");
        // the classic escape: a link to /etc, then a file through it (BuildKit fails too)
        std::fs::write(&p, tar_of(&[("ln", Some("/etc")), ("ln/evil", None)])).unwrap();
        let e = extract(&p, Codec::None, "x", d.path(), None).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // a file first, then a link of its parent's name: the link replaces the directory
        std::fs::write(&p, tar_of(&[("ln/f", None), ("ln", Some("/etc"))])).unwrap();
        let es = extract(&p, Codec::None, "x", d.path(), None).unwrap();
        let names: Vec<&str> = es.iter().map(|e| e.path_in_layer.as_str()).collect();
        assert_eq!(names, ["x/ln"]);
    }

    #[test]
    fn security_capability_xattrs_are_kept_others_dropped() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            (
                "SCHILY.xattr.security.capability",
                &b"\x01\x00\x00\x02cap"[..],
            ),
            ("SCHILY.xattr.user.note", &b"dropped"[..]),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_size(1);
        b.append_data(&mut h, "bin", &b"x"[..]).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.tar");
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        let es = extract(&p, Codec::None, "", d.path(), None).unwrap();
        assert_eq!(
            es[0].xattrs,
            [(
                "security.capability".to_string(),
                b"\x01\x00\x00\x02cap".to_vec()
            )]
        );
    }

    #[test]
    fn the_whole_stream_is_read_as_docker_untar_does() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_bytes();
        for (codec, ok) in [
            ("none", true),
            ("gzip", true),
            ("bzip2", false),
            ("xz", false),
        ] {
            let mut data = compress(codec, &t);
            data.extend_from_slice(b"trailing junk");
            let p = d.path().join(format!("junk.{codec}"));
            std::fs::write(&p, &data).unwrap();
            let got = extract(&p, detect(&p).unwrap().unwrap(), "x", d.path(), None);
            assert_eq!(got.is_ok(), ok, "{codec}: {got:?}");
        }
        // a gzip whose CRC is wrong fails even when the tar ended before it
        let mut gz = compress("gzip", &t);
        let n = gz.len();
        gz[n - 8] ^= 0xFF;
        let p = d.path().join("crc.tgz");
        std::fs::write(&p, &gz).unwrap();
        assert!(extract(&p, Codec::Gzip, "x", d.path(), None).is_err());
    }

    #[test]
    fn concatenated_xz_streams_decode_as_one() {
        let tar = tar_bytes();
        let (a, b) = tar.split_at(tar.len() / 2);
        let mut data = compress("xz", a);
        data.extend_from_slice(&[0; 4]);
        data.extend_from_slice(&compress("xz", b));
        let mut out = Vec::new();
        decoder(Codec::Xz, &data[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar);
    }

    #[test]
    fn non_archives_are_not_extracted() {
        let d = tempfile::tempdir().unwrap();
        for (name, data) in [
            ("text", b"just some text\n".repeat(100)),
            (
                "gz-text",
                compress("gzip", &b"plain text, not tar\n".repeat(50)),
            ),
            ("short", b"x".to_vec()),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, data).unwrap();
            assert_eq!(detect(&p).unwrap(), None, "{name}");
        }
    }
}
