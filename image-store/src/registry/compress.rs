//! Layer compression for push: media types per format, and deterministic recompression of a
//! stored layer (verified against its diff_id) whose result is remembered in the store's cache
//! index so the next push reuses it.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::error::{RegistryError, Result};
use crate::cache::CacheRecord;
use crate::digest::{Digest, HashingReader};
use crate::oci::{
    Descriptor, MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
};
use crate::store::Store;

/// Docker's uncompressed layer media type.
pub(crate) const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The zstd layer type some Docker-format producers use.
pub(crate) const MEDIA_TYPE_DOCKER_LAYER_ZSTD: &str =
    "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// gzip level used when recompressing (Go's and Docker's default).
pub const GZIP_LEVEL: u32 = 6;
/// zstd level used when recompressing (zstd's default).
pub const ZSTD_LEVEL: i32 = 3;
/// Uncompressed bytes per gzip member: members are compressed in parallel and concatenated,
/// so the output depends on this constant and the level, never on the thread count.
pub const GZIP_BLOCK: usize = 1 << 20;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// A plain tar.
    None,
}

impl LayerCompression {
    /// The compression of a layer media type (OCI or Docker), `None` for other types.
    pub fn of_media_type(mt: &str) -> Option<LayerCompression> {
        match mt {
            MEDIA_TYPE_LAYER_GZIP
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(LayerCompression::Gzip)
            }
            MEDIA_TYPE_LAYER_ZSTD
            | MEDIA_TYPE_DOCKER_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(LayerCompression::Zstd)
            }
            MEDIA_TYPE_LAYER_TAR
            | MEDIA_TYPE_DOCKER_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
                Some(LayerCompression::None)
            }
            _ => None,
        }
    }

    /// Parses `gzip`, `zstd`, `none` (or `uncompressed`).
    pub fn parse(s: &str) -> Option<LayerCompression> {
        match s {
            "gzip" => Some(LayerCompression::Gzip),
            "zstd" => Some(LayerCompression::Zstd),
            "none" | "uncompressed" => Some(LayerCompression::None),
            _ => None,
        }
    }

    /// `gzip`, `zstd` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
            LayerCompression::None => "none",
        }
    }

    /// The OCI layer media type.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            LayerCompression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
            LayerCompression::None => MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// The Docker v2s2 layer media type; Docker has none for zstd.
    pub fn docker_media_type(self) -> Option<&'static str> {
        match self {
            LayerCompression::Gzip => Some(MEDIA_TYPE_DOCKER_LAYER_GZIP),
            LayerCompression::None => Some(MEDIA_TYPE_DOCKER_LAYER_TAR),
            LayerCompression::Zstd => None,
        }
    }
}

/// A decompressing reader for a layer blob.
pub(crate) fn decoder<'r>(
    raw: impl Read + 'r,
    compression: LayerCompression,
) -> io::Result<Box<dyn Read + 'r>> {
    let br = io::BufReader::with_capacity(256 << 10, raw);
    Ok(match compression {
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        LayerCompression::None => Box::new(br),
    })
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn gzip_member(block: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(block.len() / 2 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(block)?;
    enc.finish()
}

/// Compresses `input` into `out` deterministically: gzip as concatenated members of
/// [`GZIP_BLOCK`] bytes compressed in parallel; zstd at [`ZSTD_LEVEL`] with workers (zstd's
/// multi-threaded output does not depend on the worker count); `None` copies.
pub(crate) fn compress_stream(
    mut input: impl Read,
    out: &mut impl Write,
    compression: LayerCompression,
) -> io::Result<()> {
    match compression {
        LayerCompression::None => {
            io::copy(&mut input, out)?;
        }
        LayerCompression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            enc.multithread(threads().clamp(1, 8) as u32)?;
            io::copy(&mut input, &mut enc)?;
            enc.finish()?;
        }
        LayerCompression::Gzip => {
            let n = threads().clamp(1, 8);
            let mut wrote_any = false;
            loop {
                let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut b = Vec::with_capacity(GZIP_BLOCK);
                    (&mut input).take(GZIP_BLOCK as u64).read_to_end(&mut b)?;
                    if b.is_empty() {
                        break;
                    }
                    let short = b.len() < GZIP_BLOCK;
                    blocks.push(b);
                    if short {
                        break;
                    }
                }
                if blocks.is_empty() {
                    break;
                }
                let last = blocks.len() < n || blocks.last().is_some_and(|b| b.len() < GZIP_BLOCK);
                let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
                    let hs: Vec<_> = blocks
                        .iter()
                        .map(|b| s.spawn(move || gzip_member(b)))
                        .collect();
                    hs.into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")))
                        })
                        .collect()
                });
                for m in members {
                    out.write_all(&m?)?;
                    wrote_any = true;
                }
                if last {
                    break;
                }
            }
            if !wrote_any {
                // an empty input is still one valid (empty) gzip member
                out.write_all(&gzip_member(&[])?)?;
            }
        }
    }
    Ok(())
}

fn mapping_key(source: &Digest, target: LayerCompression) -> String {
    format!("pelagos.registry.recompress.v1:{}:{source}", target.name())
}

/// Returns a descriptor of `layer` compressed with `target` (OCI media type), making that blob
/// when needed: the stored blob is decompressed, checked against `diff_id`, recompressed
/// deterministically and stored; the mapping is remembered in the store's cache index, so the
/// next call returns at once. The bool tells whether recompression happened now.
pub fn recompress_layer(
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
    target: LayerCompression,
) -> Result<(Descriptor, bool)> {
    let source = LayerCompression::of_media_type(&layer.media_type).ok_or_else(|| {
        RegistryError::UnsupportedMediaType {
            what: format!("layer {}", layer.digest),
            media_type: layer.media_type.clone(),
        }
    })?;
    if source == target {
        let mut d = layer.clone();
        d.media_type = target.oci_media_type().to_string();
        return Ok((d, false));
    }
    let key = mapping_key(&layer.digest, target);
    if let Some(rec) = store.cache_get(&key)?
        && let Some(l) = rec.layer
        && l.diff_id == *diff_id
    {
        return Ok((l.descriptor, false));
    }
    let blob = store.open_blob(&layer.digest)?;
    let dec = decoder(blob, source)
        .map_err(|e| RegistryError::invalid(format!("layer {}", layer.digest), e.to_string()))?;
    let mut hashing = HashingReader::new(dec);
    let mut w = store.blob_writer()?;
    compress_stream(&mut hashing, &mut w, target).map_err(|e| {
        RegistryError::invalid(
            format!("layer {}", layer.digest),
            format!("recompression failed: {e}"),
        )
    })?;
    let (actual, _) = hashing.finish();
    if actual != *diff_id {
        return Err(RegistryError::DigestMismatch {
            what: format!("diff_id of layer {}", layer.digest),
            expected: diff_id.clone(),
            actual,
        });
    }
    let info = w.commit(None)?;
    let made = Descriptor::new(target.oci_media_type(), info.digest, info.size);
    store.cache_put(
        &key,
        &CacheRecord::with_layer(made.clone(), diff_id.clone()),
    )?;
    Ok((made, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 12345u32;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 { (x >> 24) as u8 } else { b'a' }
            })
            .collect()
    }

    #[test]
    fn gzip_round_trips_and_is_deterministic() {
        for n in [0, 1, GZIP_BLOCK, GZIP_BLOCK * 3 + 17] {
            let src = data(n);
            let mut a = Vec::new();
            compress_stream(&src[..], &mut a, LayerCompression::Gzip).unwrap();
            let mut b = Vec::new();
            compress_stream(&src[..], &mut b, LayerCompression::Gzip).unwrap();
            assert_eq!(a, b);
            let mut back = Vec::new();
            decoder(&a[..], LayerCompression::Gzip)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, src, "n={n}");
        }
    }

    #[test]
    fn zstd_round_trips_and_is_deterministic() {
        let src = data(5 << 20);
        let mut a = Vec::new();
        compress_stream(&src[..], &mut a, LayerCompression::Zstd).unwrap();
        // the same output with one worker
        let mut one = Vec::new();
        {
            let mut enc = zstd::stream::write::Encoder::new(&mut one, ZSTD_LEVEL).unwrap();
            enc.multithread(1).unwrap();
            enc.write_all(&src).unwrap();
            enc.finish().unwrap();
        }
        assert_eq!(a, one);
        let mut back = Vec::new();
        decoder(&a[..], LayerCompression::Zstd)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, src);
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn recompress_is_verified_and_remembered() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let tar = data(300_000);
        let diff_id = Digest::of(&tar);
        let mut gz = Vec::new();
        compress_stream(&tar[..], &mut gz, LayerCompression::Gzip).unwrap();
        let b = s.put_blob_bytes(&gz).unwrap();
        let layer = Descriptor::new(MEDIA_TYPE_DOCKER_LAYER_GZIP, b.digest.clone(), b.size);
        let (z, fresh) = recompress_layer(&s, &layer, &diff_id, LayerCompression::Zstd).unwrap();
        assert!(fresh);
        assert_eq!(z.media_type, MEDIA_TYPE_LAYER_ZSTD);
        let mut back = Vec::new();
        decoder(s.open_blob(&z.digest).unwrap(), LayerCompression::Zstd)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(Digest::of(&back), diff_id);
        let (z2, fresh2) = recompress_layer(&s, &layer, &diff_id, LayerCompression::Zstd).unwrap();
        assert!(!fresh2);
        assert_eq!(z2, z);
        // same compression: only the media type changes
        let (g, f) = recompress_layer(&s, &layer, &diff_id, LayerCompression::Gzip).unwrap();
        assert!(!f);
        assert_eq!(
            (g.digest, g.media_type.as_str()),
            (b.digest, MEDIA_TYPE_LAYER_GZIP)
        );
        // a wrong diff_id is refused and stores nothing
        let before = std::fs::read_dir(d.path().join("blobs/sha256"))
            .unwrap()
            .count();
        let err =
            recompress_layer(&s, &layer, &Digest::of(b"x"), LayerCompression::None).unwrap_err();
        assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
        let after = std::fs::read_dir(d.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(before, after);
    }
}
